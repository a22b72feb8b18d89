"""The command line: click commands over api.Project. The only module that prints,
colours or exits."""

from __future__ import annotations

import gc
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import click

from . import jsonout
from .money import unit_price, usd
from .errors import AssetbuildError, BuildInterrupted, LockfileError, UsageError, UserError
from .run import stamp
from .store.files import TEMP_SUFFIX

if TYPE_CHECKING:  # the library is imported by the commands that use it: `--help` stays quick
    from .api import BuildOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

STARTER = '''# assetbuild.toml: the images of this project, as a dependency graph.
# `assetbuild plan` shows what a build would do; `assetbuild build` does it.

[project]
name = "{name}"
output_dir = "assets"
provider = "local"          # offline placeholders; see README for Seedream hosts
model = "seedream-4.0"

[defaults]
size = "512x512"

[assets.logo]
prompt = "Minimal geometric logo mark, flat, orange on white"

[assets.banner]
prompt = "Wide hero banner featuring our logo"
references = ["@logo"]
size = "1024x512"
'''


@dataclass
class Seams:
    """What tests pass in place of the real environment (STYLE rule 1)."""

    env: Mapping[str, str] | None = None
    provider_factory: Callable[..., Any] | None = None
    clock: Any = None
    terminal: bool | None = None  # the live build display: None = only on a terminal, True = always, False = never
    max_builds: int | None = None  # watch returns after this many builds
    on_watch: Callable[[Any], None] | None = None  # given the Watcher before it starts (a test stops it)


@dataclass
class Ctx:
    directory: Path
    manifest: str | None
    verbose: bool
    seams: Seams
    quiet: bool = False

    def project(self, provider_override: str | None = None, **kwargs: Any) -> Any:
        from .api import Project

        return Project.load(self.directory, self.manifest, env=self.seams.env,
                            provider_factory=self.seams.provider_factory, clock=self.seams.clock,
                            provider_override=provider_override, **kwargs)


class Paint:
    """Colours for a terminal. On only where stdout is a terminal (not a pipe, a file or CI's
    log), ``TERM`` is not ``dumb`` and ``NO_COLOR`` is unset or empty (no-color.org);
    ``FORCE_COLOR`` (non-empty) turns them on anywhere. Off, every text is exactly the plain one."""

    ACTIONS = {"generate": {"fg": "yellow", "bold": True}, "restore": {"fg": "cyan"}, "derive": {"fg": "blue"},
               "blocked": {"fg": "red", "bold": True}, "up-to-date": {"fg": "green"}, "prune": {"fg": "magenta"},
               "stale": {"fg": "red", "bold": True}}

    def __init__(self, ctx: "Ctx"):
        env = os.environ if ctx.seams.env is None else {**os.environ, **ctx.seams.env}
        if env.get("NO_COLOR"):
            self.on = False
        elif env.get("FORCE_COLOR"):
            self.on = True
        else:
            self.on = sys.stdout.isatty() and env.get("TERM") != "dumb"

    def __call__(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.on and text else text

    def action(self, word: str, width: int = 10) -> str:
        return self(f"{word:<{width}}", **self.ACTIONS.get(word.strip(), {}))

    def echo(self, text: str, **kwargs: Any) -> None:
        click.echo(text, color=self.on, **kwargs)


def _fail(message: str, code: int) -> None:
    """Each line of ``message`` (several independent manifest errors give several) as its own
    ``error:`` line, then exit."""
    for line in message.splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-v/-q given after the command: they set the same flag as before it."""
    obj = ctx.find_object(Ctx)
    if value and obj is not None:
        setattr(obj, str(param.name), True)
        if obj.verbose and obj.quiet:
            raise UsageError("-q and -v: give one of them")


def _verbosity_options(command: click.Command) -> None:
    """Every command (and subcommand) takes -v/-q after its name too, as the group takes them
    before it: ``assetbuild build -v`` is ``assetbuild -v build``."""
    names = {p.name for p in command.params}
    for name, flags, text in (("verbose", ("-v", "--verbose"), "Say more (never secrets)."),
                              ("quiet", ("-q", "--quiet"), "Say less: only problems and the summary.")):
        if name not in names:
            # the name goes with the flags: Option's second positional is show_default, which
            # printed "[default: (verbose)]" in --help
            command.params.append(click.Option([*flags, name], is_flag=True, expose_value=False,
                                               callback=_set_verbosity, help=text))


class _Group(click.Group):
    """Turns assetbuild errors into one line and an exit code, never a traceback. Its commands
    (and the groups made with ``@cli.group()``, which are _Groups too) take -v/-q."""

    group_class = type  # subgroups are _Groups

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _verbosity_options(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, LockfileError) as exc:
            _fail(str(exc), EXIT_USAGE)
        except BuildInterrupted as exc:
            click.echo(f"error: {exc}", err=True)
            if exc.abandoned:  # the workers still waiting would hold the process open
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            sys.exit(EXIT_INTERRUPTED)
        except AssetbuildError as exc:
            _fail(str(exc), EXIT_FAILED)
        except KeyboardInterrupt:
            _fail("interrupted; everything finished so far is kept (rerun to continue)", EXIT_INTERRUPTED)


def _complete_assets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of asset ids (and variant ids) from the manifest the command would
    use (-C and -f as typed so far); nothing when it cannot be read."""
    from click.shell_completion import CompletionItem

    from .api import find_manifest
    from .spec.blueprint import Blueprint

    root = ctx.find_root().params
    try:
        path = find_manifest(root.get("directory") or Path("."), root.get("manifest"))
        nodes = Blueprint.load(path, memo_dir=None).nodes
    except Exception:  # completing must never print a traceback into the user's prompt
        return []
    ids = dict.fromkeys([n.asset for n in nodes.values()] + list(nodes))
    return [CompletionItem(i) for i in ids if i.startswith(incomplete)]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Run as if started in DIR.")
@click.option("-f", "manifest", default=None,
              help="The manifest file (default: assetbuild.toml here or in the nearest folder above, "
                   "up to the repository root).")
@click.option("-v", "--verbose", is_flag=True, help="Say more (never secrets); also after the command.")
@click.option("-q", "--quiet", is_flag=True, help="Say less: only problems and the summary; also after the command.")
@click.version_option(package_name="assetbuild")
@click.pass_context
def cli(ctx: click.Context, directory: Path, manifest: str | None, verbose: bool, quiet: bool) -> None:
    """assetbuild: a declarative build system for AI-generated images."""
    seams = ctx.obj if isinstance(ctx.obj, Seams) else Seams()
    if not directory.is_dir():
        raise UserError(f"-C {directory}: no such directory")
    if verbose and quiet:
        raise UsageError("-q and -v: give one of them")
    ctx.obj = Ctx(directory, manifest, verbose, seams, quiet)


# -- completion -------------------------------------------------------------------------------

@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options and asset ids).

    \b
    bash: eval "$(assetbuild completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(assetbuild completion zsh)"    (in ~/.zshrc)
    fish: assetbuild completion fish > ~/.config/fish/completions/assetbuild.fish
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # the three shells click ships
    click.echo(completer(cli, {}, "assetbuild", "_ASSETBUILD_COMPLETE").source())


# -- init -------------------------------------------------------------------------------------

@cli.command()
@click.option("--git", "git", is_flag=True,
              help="Set up git to merge the lock per asset (.gitattributes and git config).")
@click.pass_obj
def init(ctx: Ctx, git: bool) -> None:
    """Write a starter assetbuild.toml and ignore the cache in .gitignore."""
    from .api import MANIFEST_NAME, lock_path
    from .commands.lockmerge import attributes_line, config_command, setup_git

    manifest = ctx.directory / (ctx.manifest or MANIFEST_NAME)
    lock_name = lock_path(manifest).name
    if git:
        for line in setup_git(ctx.directory, lock_name):  # first: outside a repository it writes nothing
            click.echo(line)
        wrote = not manifest.exists()
        if wrote:
            _write_starter(ctx, manifest)
        else:
            _ignore_in_git(ctx, manifest)
        click.echo(f"wrote {manifest.name} and .gitignore; next: assetbuild plan" if wrote
                   else f"{manifest.name} already exists: left as it is")
        return
    if manifest.exists():
        raise UserError(f"{manifest.name} already exists; edit it, or remove it to start over "
                        "(`assetbuild init --git` sets up git for an existing project)")
    _write_starter(ctx, manifest)
    click.echo(f"wrote {manifest.name} and .gitignore; next: assetbuild plan")
    click.echo(f"in git, to merge {lock_name} per asset: add `{attributes_line(lock_name)}` to .gitattributes "
               f"and run: {shlex.join(config_command())} (or: assetbuild init --git)")


def _write_starter(ctx: Ctx, manifest: Path) -> None:
    name = ctx.directory.resolve().name or "project"
    manifest.write_text(STARTER.format(name=name), encoding="utf-8")
    _ignore_in_git(ctx, manifest)


def _ignore_in_git(ctx: Ctx, manifest: Path) -> None:
    """The cache, half-written temp files and the report page (`assetbuild report` writes it
    beside the manifest) in .gitignore: `git add -A` never commits them."""
    gitignore = ctx.directory / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    report = "/" + manifest.with_name(f"{manifest.stem}-report.html").relative_to(ctx.directory).as_posix()
    missing = [entry for entry in (".assetbuild/", f"*{TEMP_SUFFIX}", report) if entry not in lines]
    if missing:
        gitignore.write_text("\n".join(lines + missing) + "\n", encoding="utf-8")


# -- plan -------------------------------------------------------------------------------------

def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of USD; give an amount such as 5 or 0.50")
    return value


# Options several commands share: the same flag reads the same everywhere.
JOBS = click.option("-j", "--jobs", type=click.IntRange(1, 64), default=4, show_default=True,
                    help="Assets built at once.")
KEEP_GOING = click.option("-k", "--keep-going", is_flag=True, help="Go on with independent assets after a failure.")
OFFLINE = click.option("--offline", is_flag=True, help="No provider calls: restore, derive and local only.")
PROVIDER = click.option("--provider", "provider_override", default=None, help="Use this provider for every asset.")
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask before spending money.")


RETRY_FAILED = click.option(
    "--retry-failed", is_flag=True,
    help="Pay again for inputs whose billed job's images could not be fetched (held back otherwise).")


def max_cost_option(help_text: str) -> Callable[[Any], Any]:
    return click.option("--max-cost", type=click.FloatRange(min=0), default=None,
                        callback=lambda ctx, param, value: _finite(value), help=help_text)


@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default=None,
              help="text (default), json, or markdown (a table for a GitHub job summary).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (same as --format json).")
@click.option("--force", is_flag=True, help="Plan as if rebuilding the targets regardless.")
@click.option("--offline", is_flag=True, help="Plan without provider calls.")
@PROVIDER
@click.option("--assume-keys", is_flag=True,
              help="Plan as if every API key were set (CI without secrets: what would be generated, its cost).")
@click.option("--reroll", multiple=True, metavar="ASSET", shell_complete=_complete_assets, help="Plan as `assetbuild reroll ASSET` would (repeatable).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the plan to FILE (decisions, cost, and every hash they rest on): "
                   "`assetbuild build --plan FILE` builds exactly it.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there is work to do (like git diff --exit-code), 0 if none.")
@RETRY_FAILED
@click.pass_obj
def plan(ctx: Ctx, targets: tuple[str, ...], fmt: str | None, as_json: bool, force: bool, offline: bool,
         provider_override: str | None, assume_keys: bool, reroll: tuple[str, ...], out: Path | None,
         exit_code: bool, retry_failed: bool) -> None:
    """What a build would do, per asset, with reasons and the estimated cost."""
    if as_json and fmt not in (None, "json"):
        raise UsageError(f"--json is --format json; give one of --json and --format {fmt}")
    fmt = "json" if as_json else fmt or "text"
    from .api import BuildOptions

    options = BuildOptions(force=force, offline=offline, assume_keys=assume_keys, reroll=reroll,
                           retry_failed=retry_failed)
    with ctx.project(provider_override) as project:
        result = project.plan(targets, options, on_event=_warn_on_stderr, every_node=out is not None)
        if out is not None:
            from .commands import savedplan

            saved = savedplan.record(project, result, {
                "targets": list(targets), "force": force, "offline": offline, "provider": provider_override,
                "reroll": list(reroll), "assume_keys": assume_keys, "retry_failed": retry_failed})
            savedplan.save(out if out.is_absolute() else ctx.directory / out, saved)
    _show_plan(ctx, result, fmt)
    if out is not None:
        click.echo(f"plan: saved to {out}; `assetbuild build --plan {out}` builds exactly this plan", err=True)
    if exit_code and (result.pruned or any(d.action.value != "up-to-date" for d in result.decisions)):
        sys.exit(EXIT_FAILED)


def _show_plan(ctx: Ctx, result: Any, fmt: str) -> None:
    for missing in result.missing_keys:
        click.echo(f"warning: {missing.variable} is not set: {len(missing.assets)} asset(s) of provider "
                   f"{', '.join(missing.providers)} blocked; set it to build them "
                   "(plan --assume-keys shows what they would cost)", err=True)
    if fmt == "json":
        click.echo(result.json_text())
        return
    if fmt == "markdown":
        from .commands.summaries import plan_markdown

        click.echo(plan_markdown(result), nl=False)
        return
    width = max((len(d.id) for d in result.decisions), default=0)
    from .plan.reasons import prompt_change

    paint = Paint(ctx)
    for d in ([] if ctx.quiet else result.decisions):
        cost = paint(f" {usd(d.cost_usd)}", fg="yellow") if d.cost_usd else ""
        why = f"  ({'; '.join(map(str, d.reasons))})" if d.reasons else ""
        paint.echo(f"{paint.action(d.action.value)} {d.id:<{width}}{cost}{why}".rstrip())
        change = prompt_change(d.reasons, d.inputs)
        if change is not None:  # as terraform plan shows a changed attribute: old -> new, word by word
            paint.echo(f"{'':<10} {'':<{width}}  prompt: {_word_diff(*change, paint=paint)}")
    for left in result.pruned:
        paint.echo(paint.action("prune") + _leftover_line("prune", left, "would remove")[10:])
    paint.echo(paint(f"plan: {result.summary}; estimated cost {usd(result.estimated_cost)}", bold=True))
    _say_merge(d.id for d in result.decisions if any(r.code == "merge-built" for r in d.reasons))


def _word_diff(old: str, new: str, *, short: bool = True, paint: Paint | None = None) -> str:
    """A prompt's change in git's word-diff marks, ``[-old-]{+new+}`` (red and green on a
    terminal); long unchanged runs cut to a few words either side (``short``)."""
    from .plan.wordiff import shorten, word_diff

    pieces = word_diff(old, new)
    if short:
        pieces = shorten(pieces)
    colour = paint or (lambda text, **style: text)
    return "".join(p.text if p.op == "=" else colour(f"[-{p.text}-]", fg="red") if p.op == "-"
                   else colour(f"{{+{p.text}+}}", fg="green") for p in pieces)


def _say_merge(assets: Any) -> None:
    """The one step that comes first during a merge: assets the other side built wait for it."""
    waiting = list(assets)
    if waiting:
        click.echo(f"merge in progress: run `assetbuild lock resolve` first: it takes {len(waiting)} asset(s) "
                   f"({', '.join(waiting[:5])}{', ...' if len(waiting) > 5 else ''}) from git instead of paying "
                   "for them again", err=True)


def _leftover_line(verb: str, left: Any, removed: str) -> str:
    """One asset gone from the manifest: what happens to its files."""
    parts = [f"{removed} {', '.join(left.files)}"] if left.files else []
    parts += [f"keeps {k}" for k in left.kept]
    return f"{verb:<10} {left.asset}  (no longer in the manifest{'; ' if parts else ''}{'; '.join(parts)})"


def _warn_on_stderr(event: Any) -> None:
    if event.kind == "warning":
        click.echo(f"warning: {event.detail}", err=True)


# -- build ------------------------------------------------------------------------------------

@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@JOBS
@KEEP_GOING
@click.option("--force", is_flag=True, help="Rebuild the targets (all if none) even if up to date; pays again.")
@OFFLINE
@PROVIDER
@max_cost_option("Refuse a build estimated above USD.")
@YES
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Build exactly the plan `assetbuild plan -o FILE` saved; refuse (exit 2) if anything it "
                   "rests on changed.")
@click.option("--shard", default=None, metavar="K/N",
              help="Build only shard K of N (a CI matrix sharing a remote cache); a final build restores all.")
@RETRY_FAILED
@click.option("--reroll", multiple=True, hidden=True)  # `assetbuild reroll ASSET` (review.py)
@click.pass_obj
def build(ctx: Ctx, targets: tuple[str, ...], jobs: int, keep_going: bool, force: bool, offline: bool,
          provider_override: str | None, max_cost: float | None, yes: bool, as_json: bool,
          plan_file: Path | None = None, shard: str | None = None, retry_failed: bool = False,
          reroll: tuple[str, ...] = ()) -> None:
    """Build the targets (all assets if none) and their upstream."""
    from .api import BuildOptions, parse_shard

    saved = None
    if plan_file is not None:
        from .commands import savedplan

        given = [flag for flag, value in (("TARGETS", targets), ("--force", force), ("--offline", offline),
                                          ("--provider", provider_override), ("--reroll", reroll),
                                          ("--shard", shard), ("--retry-failed", retry_failed)) if value]
        if given:
            raise UsageError(f"--plan builds the plan as it was made: leave out {', '.join(given)} "
                             "(give them to `assetbuild plan -o`)")
        saved = savedplan.read(plan_file if plan_file.is_absolute() else ctx.directory / plan_file)
        settings = savedplan.settings_of(saved)
        targets, force, offline = settings["targets"], settings["force"], settings["offline"]
        retry_failed = settings["retry_failed"]
        provider_override, reroll = settings["provider"], settings["reroll"]
        approved = float(saved["estimated_cost"])  # never spend more than was approved
        max_cost = approved if max_cost is None else min(max_cost, approved)
    options = BuildOptions(force=force, offline=offline, reroll=reroll, jobs=jobs, keep_going=keep_going,
                           max_cost=max_cost, shard=parse_shard(shard) if shard is not None else None,
                           retry_failed=retry_failed)
    report = _build_once(ctx, targets, options, provider_override=provider_override, yes=yes, as_json=as_json,
                         saved=(str(plan_file), saved) if saved is not None else None)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _build_once(ctx: Ctx, targets: tuple[str, ...], options: BuildOptions, *, provider_override: str | None = None,
                yes: bool = False, as_json: bool = False, saved: tuple[str, dict[str, Any]] | None = None) -> Any:
    """One build as `build` runs it (and `watch` after each change): the build lock, the plan,
    the question before spending on a terminal, the budget, the progress, the summary. The
    plan is made under ``options`` and built under the same."""
    from contextlib import nullcontext

    from .run.executor import Event
    from .run.progress import Lines, LiveDisplay, live_wanted

    started_ns = time.time_ns()
    project = ctx.project(provider_override)
    out = sys.stderr if as_json else sys.stdout
    lines = Lines(verbose=ctx.verbose, quiet=ctx.quiet)
    env = os.environ if ctx.seams.env is None else ctx.seams.env
    live = not as_json and not ctx.quiet and ctx.seams.terminal is not False \
        and (ctx.seams.terminal or live_wanted(out, env))
    display: LiveDisplay | None = None

    def show(event: Event) -> None:
        if display is not None:
            display.handle(event)
            return
        line = lines.line(event)
        if line is not None:
            click.echo(line, file=out)

    try:
        with project.exclusive():  # before reading the lock and before asking: never act on a stale lock
            def replan() -> Any:
                return project.plan(targets, options, on_event=show)

            if saved is not None:
                from .commands import savedplan

                the_plan = savedplan.verify(project, saved[1], replan, saved[0])
            else:
                the_plan = replan()
            lines.total = len(the_plan.decisions)
            cost = the_plan.estimated_cost
            if cost > 0 and not yes and sys.stdin.isatty() and sys.stdout.isatty():
                n = sum(1 for d in the_plan.decisions if d.cost_usd)
                if not click.confirm(f"This build generates {n} asset(s) for an estimated {usd(cost)}. Go on?"):
                    raise UserError("build cancelled; nothing was sent")
            if live:
                from rich.console import Console

                display = LiveDisplay(Console(file=out, force_terminal=True if ctx.seams.terminal else None),
                                      the_plan.decisions, lines)
            with display or nullcontext():
                report = project.build(targets, plan=the_plan, on_event=show)
        noop = (not targets and not options.reroll and provider_override is None and not ctx.verbose
                and not report.pruned and not report.warnings and not report.missing_keys
                and all(r.status == "up-to-date" for r in report.results))
        key_names = stamp.key_variables(project) if noop else []
    finally:
        project.close()
    summary = report.to_json()
    if as_json:
        from .commands.summaries import build_json

        text = jsonout.dumps(build_json(report, project.nodes))
    else:
        for left in report.pruned:
            click.echo(_leftover_line("pruned", left, "removed"))
        text = (f"build: {summary['generated']} generated, {summary['restored']} restored, "
                f"{summary['derived']} derived, "
                f"{summary['up_to_date']} up to date, {summary['failed']} failed, {summary['blocked']} blocked; "
                f"cost {usd(report.cost_usd)}")
    click.echo(text)
    if noop:  # the next no-op is answered from the stamp (run/stamp.py)
        stamp.remember(project, "build-json" if as_json else "build", text + "\n", key_names, started_ns=started_ns)
    blocked = [(r.id, [c.code for c in r.reasons]) for r in report.results if r.status == "blocked"]
    _say_merge(aid for aid, codes in blocked if "merge-built" in codes)
    if any(code in ("output-modified", "output-foreign") for _, codes in blocked for code in codes):
        click.echo(f"build: {_next_step(blocked)}", err=as_json)
    for missing in report.missing_keys:
        click.echo(f"error: {len(missing.assets)} asset(s) of provider {', '.join(missing.providers)} not built: "
                   f"set the environment variable {missing.variable} to its API key", err=True)
    return report


# -- watch ------------------------------------------------------------------------------------

@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@JOBS
@KEEP_GOING
@OFFLINE
@PROVIDER
@max_cost_option("Refuse a build estimated above USD (each build).")
@YES
@click.option("--debounce", "debounce_ms", type=click.IntRange(10, 60_000), default=200, show_default=True,
              help="Build once no change came for MS milliseconds.")
@click.pass_obj
def watch(ctx: Ctx, targets: tuple[str, ...], jobs: int, keep_going: bool, offline: bool,
          provider_override: str | None, max_cost: float | None, yes: bool, debounce_ms: int) -> None:
    """Build the targets (all if none), then again whenever the manifest or a file they read changes."""
    from .run.watch import Watcher

    from .api import BuildOptions

    options = BuildOptions(offline=offline, jobs=jobs, keep_going=keep_going, max_cost=max_cost)

    def build_once() -> None:
        _build_once(ctx, targets, options, provider_override=provider_override, yes=yes)

    def on_error(exc: AssetbuildError) -> None:
        for line in str(exc).splitlines() or [""]:
            click.echo(f"error: {line}", err=True)

    from .api import find_manifest

    watcher = Watcher(find_manifest(ctx.directory, ctx.manifest), build_once, targets=targets,
                      echo=click.echo, on_error=on_error, step_ms=debounce_ms,
                      debounce_ms=max(1600, debounce_ms * 4))
    if ctx.seams.on_watch is not None:
        ctx.seams.on_watch(watcher)
    try:
        watcher.run(max_builds=ctx.seams.max_builds)
    except KeyboardInterrupt:
        click.echo("watch: stopped")


# -- the review loop: reroll, pick, adopt (review.py) -----------------------------------------

@cli.command()
@click.argument("assets", nargs=-1, required=True, shell_complete=_complete_assets)
@JOBS
@click.option("--offline", is_flag=True, help="No provider calls: only local assets can be rerolled.")
@max_cost_option("Refuse a reroll estimated above USD.")
@YES
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_context
def reroll(click_ctx: click.Context, assets: tuple[str, ...], jobs: int, offline: bool, max_cost: float | None,
           yes: bool, as_json: bool) -> None:
    """Generate ASSETS again though nothing changed; the previous images stay pickable. Their
    dependents are left for the next build (it says which)."""
    from .commands import review

    ctx: Ctx = click_ctx.obj
    with ctx.project() as project:
        rerolled = review.reroll_nodes(project, list(assets))
        left = list(dict.fromkeys(d for nid in rerolled for d in review.dependents(project, nid)
                                  if d not in rerolled))
    click_ctx.invoke(build, targets=assets, reroll=assets, jobs=jobs, offline=offline, max_cost=max_cost, yes=yes,
                     as_json=as_json)
    if left:
        click.echo(f"reroll: left for the next build: {', '.join(left)} (read{'s' if len(left) == 1 else ''} the "
                   f"rerolled {', '.join(rerolled)}); run `assetbuild build`", err=as_json)


@cli.command(context_settings={"ignore_unknown_options": True})  # `pick logo -1` is a bad N, not an option
@click.argument("asset", shell_complete=_complete_assets)
@click.argument("number", metavar="N")
@click.option("--force", is_flag=True, help="Replace an output modified by hand.")
@click.pass_obj
def pick(ctx: Ctx, asset: str, number: str, force: bool) -> None:
    """Make candidate N of ASSET its output; its dependents become stale. Pays nothing."""
    from .commands import review

    try:
        chosen = int(number)
    except ValueError:
        raise UsageError(f"pick: N is a candidate number (1, 2, ...), not {number!r}; "
                         f"`assetbuild explain {asset}` lists the candidates") from None
    with ctx.project() as project:
        done = review.pick(project, asset, chosen, force=force)
    if not done.changed:
        click.echo(f"pick: candidate {done.number} of {done.candidates} is {done.asset}'s output already")
        return
    click.echo(f"pick: {done.asset} is candidate {done.number} of {done.candidates}; wrote {done.path}")
    if done.kept_edit:
        click.echo(f"pick: the adopted hand edit stays pickable as candidate {done.kept_edit}")
    if done.dependents:
        click.echo(f"pick: now stale: {', '.join(done.dependents)}; run `assetbuild build`")


@cli.command()
@click.argument("asset", shell_complete=_complete_assets)
@click.option("--undo", is_flag=True,
              help="Un-adopt: make the generated image ASSET's output again (from the cache); pays nothing.")
@click.option("--force", is_flag=True, help="With --undo: replace an output modified again since it was adopted.")
@click.pass_obj
def adopt(ctx: Ctx, asset: str, undo: bool, force: bool) -> None:
    """Accept ASSET's hand-edited output as its output; its dependents become stale."""
    from .commands import review

    if force and not undo:
        raise UsageError("adopt --force goes with --undo (adopt itself replaces nothing)")
    if undo:
        with ctx.project() as project:
            undone = review.unadopt(project, asset, force=force)
        if undone.restored:
            click.echo(f"adopt --undo: {undone.asset}'s generated image is {undone.path} again; "
                       "the hand edit stays in the cache")
        else:
            click.echo(f"adopt --undo: {undone.asset} is no longer adopted; its inputs changed since, so the next "
                       "build generates it anew")
        if undone.dependents:
            click.echo(f"adopt --undo: now stale: {', '.join(undone.dependents)}; run `assetbuild build`")
        return
    with ctx.project() as project:
        done = review.adopt(project, asset)
    if not done.changed:
        click.echo(f"adopt: {done.path} is what the lock records already; nothing to adopt")
        return
    click.echo(f"adopt: {done.asset} keeps {done.path} (sha256 {done.sha256[:12]}); later builds leave it alone")
    if done.dependents:
        click.echo(f"adopt: now stale: {', '.join(done.dependents)}; run `assetbuild build`")


# -- check ------------------------------------------------------------------------------------

@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@click.option("--json", "as_json", is_flag=True, help="Print each asset's status and reasons, and a summary, as JSON.")
@click.pass_obj
def check(ctx: Ctx, targets: tuple[str, ...], as_json: bool) -> None:
    """For CI: exit 0 only if every output exists and matches the lock and the manifest."""
    started_ns = time.time_ns()
    with ctx.project() as project:
        found = project.check_all(targets)
        for warning in project.cache.warnings:  # e.g. a shared-cache record that proves nothing
            click.echo(f"warning: {warning}", err=True)
        stale = [s for s in found if s.stale]
        key_names = stamp.key_variables(project) if not stale and not targets else None
    if as_json:
        from .commands.summaries import check_json

        text = jsonout.dumps(check_json(found))
        click.echo(text)
        if stale:
            sys.exit(EXIT_FAILED)
    else:
        paint = Paint(ctx)
        for s in stale:
            paint.echo(f"{paint.action('stale')} {s.asset}: {'; '.join(s.reasons)}")
        if stale:
            paint.echo(paint(f"check: {len(stale)} stale asset(s)", fg="red", bold=True)
                       + f"; {_next_step([(s.asset, s.codes) for s in stale])}")
            sys.exit(EXIT_FAILED)
        text = f"check: all {len(found)} asset(s) up to date"
        click.echo(text)
    if key_names is not None:  # the next no-op check is answered from the stamp (run/stamp.py)
        stamp.remember(project, "check-json" if as_json else "check", text + "\n", key_names, started_ns=started_ns)


def _next_step(stale: list[tuple[str, list[str]]]) -> str:
    """What to run about these stale assets (id, reason codes): a build, unless a merge in
    progress has built some (`lock resolve` first) or a hand edit blocks it, which waits for
    `adopt` (keep it) or `build --force` (overwrite it)."""
    from .plan.reasons import HAND_EDIT_CODES, shell_word

    if any("merge-built" in codes for _, codes in stale):
        return "a merge is in progress: run `assetbuild lock resolve` first (it takes what the other side built)"
    edited = [shell_word(a) for a, codes in stale if HAND_EDIT_CODES.intersection(codes)]
    if not edited:
        return "run `assetbuild build`"
    others = len(stale) - len(edited) - sum(1 for _, codes in stale if "upstream-hand-edited" in codes)
    names = " ".join(edited)
    return (f"hand-edited: run `assetbuild adopt {names}` to keep the edits or `assetbuild build --force {names}` "
            "to overwrite them" + ("; then `assetbuild build`" if others > 0 else ""))


# -- clean ------------------------------------------------------------------------------------

@cli.command()
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--git-revs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also remove what the lock of each of the last N commits says assetbuild wrote.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def clean(ctx: Ctx, dry_run: bool, git_revs: int, as_json: bool) -> None:
    """Remove orphaned outputs: files assetbuild wrote for assets no longer in the manifest,
    while their bytes are what it wrote (cached first; anything else is kept and named)."""
    from .commands.leftovers import clean as clean_project

    with ctx.project() as project:
        cleaned = clean_project(project, dry_run=dry_run, git_revs=git_revs)
    done, notes = cleaned.pruned, cleaned.notes
    if as_json:
        click.echo(jsonout.dumps({"dry_run": dry_run, "pruned": [d.to_json() for d in done], "notes": notes}))
        return
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for left in done:
        click.echo(_leftover_line("would prune" if dry_run else "pruned", left,
                                  "would remove" if dry_run else "removed"))
    files = sum(len(d.files) for d in done)
    click.echo(f"clean: {files} file(s) {'would be ' if dry_run else ''}removed, "
               f"{sum(len(d.kept) for d in done)} kept, {len(done)} asset(s) pruned from the lock"
               + (" (dry run)" if dry_run else ""))


# -- lock -------------------------------------------------------------------------------------

@cli.group()
def lock() -> None:
    """Merge and repair assetbuild.lock (see README: assetbuild in a team)."""


@lock.command("merge")
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ours", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("theirs", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name", required=False, default=None)
def lock_merge(base: Path, ours: Path, theirs: Path, name: str | None) -> None:
    """The git merge driver: merge BASE, OURS and THEIRS per asset into OURS (git: %O %A %B).
    Exit 1 when both sides changed an asset differently (git then reports a conflict)."""
    from .commands.lockmerge import merge_files
    from .store.lockfile import LOCK_NAME

    name = name or LOCK_NAME
    merged = merge_files(base, ours, theirs, name)
    if merged.conflicts == ["*"]:
        click.echo(f"assetbuild: {name}: a side of the merge is not a lock assetbuild can read; kept ours. "
                   "After merging the manifest, run `assetbuild lock resolve`, then `assetbuild build`", err=True)
        sys.exit(EXIT_FAILED)
    taken = f"{len(merged.ours)} asset(s) from ours, {len(merged.theirs)} from theirs"
    if merged.conflicts:
        shown = ", ".join(merged.conflicts[:10]) + (", ..." if len(merged.conflicts) > 10 else "")
        click.echo(f"assetbuild: {name}: merged per asset ({taken}); {len(merged.conflicts)} asset(s) changed on "
                   f"both sides ({shown}): kept our entry. After merging the manifest and the images, run "
                   "`assetbuild lock resolve`, then `assetbuild build` (it pays only for inputs neither side built)",
                   err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"assetbuild: {name}: merged per asset ({taken})", err=True)


@lock.command("resolve")
@click.option("--git-revs", type=click.IntRange(min=0), default=50, show_default=True,
              help="Also take entries from the lock of the last N commits (0: only the lock itself).")
@click.pass_obj
def lock_resolve(ctx: Ctx, git_revs: int) -> None:
    """Rebuild a consistent lock from what is on disk: an output whose bytes match an entry of
    either side of a conflicted lock, the lock, or an earlier commit's lock is taken as built
    by it."""
    from .commands.lockmerge import resolve

    with ctx.project(unreadable_lock_ok=True) as project:
        res = resolve(project, git_revs)
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    others = sorted(a for a, source in res.taken.items() if source != "the lock")
    for aid in others:
        click.echo(f"taken      {aid}  (its files match the entry of {res.taken[aid]})")
    for aid, source in sorted(res.fetched.items()):
        click.echo(f"fetched    {aid}  (its images from {source}, into the cache: a build restores them)")
    for aid in res.unmatched:
        click.echo(f"unmatched  {aid}  (outputs missing or matching no entry: `assetbuild plan` says what a build does)")
    click.echo(f"lock resolve: {len(res.taken)} asset(s) matched on disk ({len(others)} from another side or commit), "
               f"{len(res.fetched)} fetched from git, {len(res.unmatched)} unmatched; read {res.locks} lock(s)"
               + ("; the conflict markers are gone" if res.conflicted else "")
               + (f"; `git add {project.lock.path.name}` (and the images you chose)" if res.conflicted or res.merging
                  else "")
               + "; next: assetbuild build")


# -- explain ----------------------------------------------------------------------------------

@cli.command()
@click.argument("asset", shell_complete=_complete_assets)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def explain(ctx: Ctx, asset: str, as_json: bool) -> None:
    """Why ASSET is or is not up to date: its fingerprint inputs, then against the lock."""
    from .commands.explain import explain as explain_asset

    with ctx.project() as project:
        info = explain_asset(project, asset)
    if as_json:
        click.echo(jsonout.dumps(info.to_json()))
        return
    reasons = "; ".join(map(str, info.reasons))
    paint = Paint(ctx)
    say = paint.echo
    say(f"{paint(info.asset, bold=True)}: {paint(info.action.value, **Paint.ACTIONS.get(info.action.value, {}))}" + (f" ({reasons})" if reasons else ""))
    say(f"  provider     {info.provider}")
    price = info.price
    if price:
        images = f" x {price.images} images" if price.images > 1 else ""
        say(f"  price        {price.rule}: {unit_price(price.usd_per_image)}/image{images} (source: {price.source})")
    inputs = info.inputs
    if inputs is None:
        say("  fingerprint  not known until its upstream is rebuilt")
    else:
        say(f"  fingerprint  {info.fingerprint}")
        if inputs.get("kind") == "derive":
            for number, step in enumerate(inputs["steps"], start=1):
                say(f"  step {number:<7} {json.dumps(step, ensure_ascii=False)}")
            for label, ref in zip(["source", *["overlay"] * len(inputs["references"])], inputs["references"]):
                say(f"  {label:<12} {ref['ref']}  sha256 {ref['sha256'][:16]}")
        else:
            for key in ("prompt", "model", "size", "count", "seed", "watermark", "params", "batch", "output_format"):
                if key in inputs:  # batch and output_format only when set
                    say(f"  {key:<12} {json.dumps(inputs[key], ensure_ascii=False)}")
                change = info.prompt_change if key == "prompt" else None
                if change is not None:
                    say(f"  {'was':<12} {json.dumps(change[0], ensure_ascii=False)}")
                    say(f"  {'diff':<12} {_word_diff(*change, short=False, paint=paint)}")
            for ref in inputs["references"]:
                say(f"  reference    {ref['ref']}  sha256 {ref['sha256'][:16]}")
    lock = info.lock
    if lock is None:
        say("  lock         no entry (never built)")
    else:
        same = paint("same", fg="green") if lock.fingerprint == info.fingerprint else paint("differs", fg="red")
        say(f"  lock         fingerprint {lock.fingerprint[:16]} ({same}); built {lock.built} "
                   f"by {lock.provider} ({lock.model_id}), {usd(lock.cost_usd)}")
        for out in lock.outputs:
            say(f"  output       {out.path}  sha256 {out.sha256[:16]}")
        for number, sha in enumerate(lock.candidate_images, start=1):
            mark = "  (the pick)" if number == lock.pick else ""
            say(f"  candidate {number:<2} sha256 {sha[:16]}{mark}")
        if lock.adopted:
            say(f"  adopted      sha256 {lock.adopted[:16]}  (a hand edit: `assetbuild adopt`; "
                f"`assetbuild adopt --undo {info.asset}` undoes it)")


# -- graph and ls -----------------------------------------------------------------------------

@cli.command()
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "json", "list"]), default="dot",
              show_default=True, help="list: one line per asset with its status, as `assetbuild ls`.")
@click.pass_obj
def graph(ctx: Ctx, targets: tuple[str, ...], fmt: str) -> None:
    """The dependency graph of the targets (all assets if none), with the files they read."""
    from .commands import graphview

    if fmt == "list":
        _ls(ctx, targets, as_json=False)
        return
    with ctx.project() as project:
        data = graphview.graph_data(project.blueprint, targets)
    if fmt == "json":
        click.echo(jsonout.dumps(data))
    else:
        for line in (graphview.to_dot if fmt == "dot" else graphview.to_mermaid)(data):
            click.echo(line)


@cli.command("ls")
@click.argument("targets", nargs=-1, shell_complete=_complete_assets)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ls(ctx: Ctx, targets: tuple[str, ...], as_json: bool) -> None:
    """Each asset id (variant ids for a matrix) with its status: up-to-date, new, missing,
    modified, stale or blocked."""
    _ls(ctx, targets, as_json=as_json)


def _ls(ctx: Ctx, targets: tuple[str, ...], *, as_json: bool) -> None:
    from .commands import graphview

    with ctx.project() as project:
        named = {nid for target in targets for nid in project.blueprint.match(target)}
        decisions = project.plan(targets, on_event=_warn_on_stderr).decisions  # upstream too: it decides
        rows = graphview.ls_rows([d for d in decisions if not targets or d.id in named], project.lock.entries)
    if as_json:
        click.echo(jsonout.dumps(rows))
    else:
        for line in graphview.ls_lines(rows):
            click.echo(line)


# -- report -----------------------------------------------------------------------------------

@cli.command()
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write (default: beside the manifest, assetbuild-report.html).")
@click.option("--since", default=None, metavar="REV",
              help="Show what changed since this git revision (default: HEAD, when in a git repository).")
@click.option("--force", is_flag=True,
              help="Write -o even if it is not an .html file, or is the manifest, the lock, an output or a reference.")
@click.pass_obj
def report(ctx: Ctx, out: Path | None, since: str | None, force: bool) -> None:
    """Write one self-contained HTML page to review the kit: images, candidates, status, changes."""
    if out is not None and not out.is_absolute():
        out = ctx.directory / out  # -C DIR: as if started in DIR
    from .commands.report import write_report

    with ctx.project() as project:
        done = write_report(project, out, since=since, force=force)
    changed = "" if done.changes is None else f", {len(done.changes)} changed since {done.since}"
    click.echo(f"report: {done.path} ({_bytes(done.size_bytes)}): {done.assets} asset(s), {done.images} image(s), "
               f"{done.stale} stale{changed}")
    if done.since_note and since is None:
        click.echo(f"report: no comparison with a commit: {done.since_note}", err=True)


# -- providers --------------------------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def providers(ctx: Ctx, as_json: bool) -> None:
    """Each configured provider: type, model ids, price, and whether its key is set."""
    from .commands.explain import provider_info

    with ctx.project() as project:
        rows = provider_info(project)
    if as_json:
        click.echo(jsonout.dumps([row.to_json() for row in rows]))
        return
    for row in rows:
        key = "no key needed" if row.key_env is None else f"key {row.key_env} {'set' if row.key_set else 'NOT set'}"
        fallback = f", falls back to {row.fallback}" if row.fallback else ""
        click.echo(f"{row.name} ({row.type}): {key}{fallback}")
        if row.base_url:
            click.echo(f"  url     {row.base_url}")
        for model, model_id in row.models.items():
            click.echo(f"  {model:<13} -> {model_id:<28} {unit_price(row.price_per_image[model])}/image")


# -- models -----------------------------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Every row with its sources, as JSON.")
def models(as_json: bool) -> None:
    """The models x hosts table: ids, sizes, reference limits, batch, fields and prices."""
    from .spec import catalog

    if as_json:
        click.echo(jsonout.dumps(catalog.rows()))
        return
    for row in catalog.rows():
        ids = " / ".join(dict.fromkeys(row["ids"].values()))  # type: ignore[union-attr]
        click.echo(f"{row['model']} on {row['host']}: {ids}")
        low, high = row["pixels"]  # type: ignore[misc]
        click.echo(f"  sizes    {'/'.join(row['tiers'])} ({row['sizing']}), {low:,} to {high:,} pixels")  # type: ignore[arg-type]
        batch = row["batch"] if row["batch"] in ("none", "jobs") else f"{row['batch']}, up to {row['max_count']}"
        click.echo(f"  refs     up to {row['max_references']}; batch {batch}")
        if row["takes"] or row["refuses"]:
            click.echo(f"  fields   takes {', '.join(row['takes']) or '-'}; never sent {', '.join(row['refuses']) or '-'}")  # type: ignore[arg-type]
        click.echo(f"  price    {row['price_rule']} ({row['price_source']})")


# -- schema -----------------------------------------------------------------------------------

@cli.command()
def schema() -> None:
    """The manifest's JSON Schema (for taplo / Even Better TOML), generated from its models."""
    from .spec.schema import manifest_schema

    click.echo(jsonout.dumps(manifest_schema()))


# -- cache ------------------------------------------------------------------------------------

def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = float(n), "B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"


@cli.group()
def cache() -> None:
    """Manage the local cache and the shared remote cache ([cache] remote)."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def cache_info(ctx: Ctx, as_json: bool) -> None:
    """Results, blobs and bytes in the local cache and the remote."""
    from .commands.upkeep import usage

    with ctx.project() as project:
        info = usage(project)
    if as_json:
        click.echo(jsonout.dumps(info.to_json()))
    else:
        local = info.local
        click.echo(f"local   {info.dir}: {local.records} result(s), {local.blobs} blob(s), {_bytes(local.bytes)}")
        remote = info.remote
        if info.remote_url is None:
            click.echo("remote  none (set [cache] remote or ASSETBUILD_CACHE_REMOTE)")
        elif remote is not None:
            click.echo(f"remote  {info.remote_url}: {remote.records} result(s), {remote.blobs} blob(s), "
                       f"{_bytes(remote.bytes)}")
    if info.remote_error is not None:
        _fail(info.remote_error, EXIT_FAILED)


@cache.command("push")
@click.pass_obj
def cache_push(ctx: Ctx) -> None:
    """Upload every local result (and its blobs) the remote lacks."""
    from .commands.upkeep import push_to_remote, remote_store

    with ctx.project() as project:
        moved = push_to_remote(project)
    click.echo(f"push: {moved.records} result(s), {moved.blobs} blob(s), {_bytes(moved.bytes)} uploaded "
               f"to {remote_store(project.cache).url}")


@cache.command("pull")
@click.pass_obj
def cache_pull(ctx: Ctx) -> None:
    """Download the results the lock references that the local cache lacks."""
    from .commands.upkeep import pull_from_remote, remote_store

    with ctx.project() as project:
        moved = pull_from_remote(project)
    click.echo(f"pull: {moved.records} result(s), {moved.blobs} blob(s), {_bytes(moved.bytes)} downloaded "
               f"from {remote_store(project.cache).url}")
    if moved.missing:
        click.echo(f"pull: {len(moved.missing)} result(s) of the lock are not on the remote")


@cache.command("verify")
@click.option("--remote", "remote", is_flag=True, help="Verify the remote's blobs too (downloads each).")
@click.pass_obj
def cache_verify(ctx: Ctx, remote: bool) -> None:
    """Check that every blob's bytes hash to its name; remove the damaged ones."""
    from .commands.upkeep import verify

    with ctx.project() as project:
        found = verify(project, remote=remote)
    damaged = 0
    for where, seen in (("local", found.local), ("remote", found.remote)):
        if seen is None:
            continue
        for sha in seen.damaged:
            click.echo(f"damaged    {where} blob {sha} (removed)")
        for fingerprint, why in seen.unproven:
            click.echo(f"unproven   {where} record {fingerprint}: {why} (a build ignores it)")
        records = f", {seen.records} record(s) checked, {len(seen.unproven)} not proven" if where == "remote" else ""
        click.echo(f"verify {where}: {seen.checked} blob(s) checked, {len(seen.damaged)} damaged{records}")
        damaged += len(seen.damaged) + len(seen.unproven)
    if damaged:
        click.echo("verify: damaged blobs were removed and unproven records are ignored; a build restores or "
                   "regenerates what needed them (and shares a proven record in their place)")
        sys.exit(EXIT_FAILED)


@cache.command("gc")
@click.option("--remote", "remote", is_flag=True, help="Collect the remote too (it is shared: run it from main).")
@click.option("--git-revs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also keep what the lock referenced in the last N commits.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, and how many bytes; remove nothing.")
@click.pass_obj
def cache_gc(ctx: Ctx, remote: bool, git_revs: int, dry_run: bool) -> None:
    """Remove results and blobs the lock does not reference."""
    from .commands.upkeep import collect

    with ctx.project() as project:
        done = collect(project, remote=remote, git_revs=git_revs, dry_run=dry_run)
    for note in done.notes:
        click.echo(f"warning: {note}", err=True)
    verb = "would remove" if dry_run else "removed"
    for where, gone in (("local", done.local), ("remote", done.remote)):
        if gone is None:
            continue
        if dry_run:
            for fingerprint in gone.records:
                click.echo(f"would remove {where} result {fingerprint}")
            for sha in gone.blobs:
                click.echo(f"would remove {where} blob {sha}")
        click.echo(f"gc {where}: {verb} {len(gone.records)} result(s) and {len(gone.blobs)} blob(s), "
                   f"{_bytes(gone.bytes)} ({gone.bytes} bytes); kept {gone.kept_records} result(s) and "
                   f"{gone.kept_blobs} blob(s) referenced by {done.locks} lock(s)")


def main(argv: list[str] | None = None, seams: Seams | None = None) -> None:
    from . import process

    whole_process = seams is None  # one command is the whole process (tests run many commands in one)
    if whole_process:
        process.PROCESS.whole_process = True
        gc.freeze()  # every module imported so far lives to the end: never scan it
    try:
        cli.main(args=argv, obj=seams, prog_name="assetbuild")
    finally:
        if whole_process:  # called in a process that goes on (a test): as it was
            process.PROCESS.whole_process = False


if __name__ == "__main__":  # pragma: no cover
    main()
