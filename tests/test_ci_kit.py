"""Issue 9, the CI kit: `check [TARGETS] --json`, `build --json`'s per-asset lists and
`plan --format text|json|markdown`, each checked against the JSON Schema in tests/data/schemas
that README documents; and examples/ci/assetbuild.yml and .pre-commit-hooks.yaml, parsed, with
every assetbuild command line they contain run against a copy of examples/brand-kit (offline:
the local provider), so a renamed option breaks this test."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO, ProjectDir

SCHEMAS = REPO / "tests" / "data" / "schemas"
WORKFLOW = REPO / "examples" / "ci" / "assetbuild.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"
SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>", "2>&1"}
COMMAND_STARTS = SHELL_OPERATORS | {"if", "then", "else", "elif", "do", "while", "until", "!"}
PR_PLAN = ["plan", "--format", "markdown", "--assume-keys", "-o", "assetbuild-plan.json"]
MAIN_LINES = [["plan", "-o", "assetbuild-plan.json"], ["plan", "--exit-code", "-q"],
              ["build", "--plan", "assetbuild-plan.json", "--yes", "--json"]]


def validate(name: str, data: Any) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(data)


def run_json(project: ProjectDir, *args: str, code: int = 0) -> Any:
    res = project.run(*args)
    assert res.exit_code == code, res.stderr + res.output
    return json.loads(res.output)


# -- build --json -----------------------------------------------------------------------------

def test_build_json_lists_each_asset_with_its_files(brand_kit: ProjectDir) -> None:
    summary = run_json(brand_kit, "build", "--json")
    validate("build-json", summary)
    assets = summary["assets"]
    assert {name: len(items) for name, items in assets.items()} == {
        "generated": 14, "restored": 0, "derived": 12, "failed": 0, "blocked": 0, "pruned": 0}
    assert all(summary[name] == len(assets[name]) for name in ("generated", "restored", "derived", "failed",
                                                               "blocked"))
    by = {a["asset"]: a for a in assets["generated"]}
    assert by["storyboard"]["files"] == [f"assets/storyboard-{i}.png" for i in range(1, 5)]
    assert by["logo"] == {"asset": "logo", "files": ["assets/logo.png"], "cost": 0.0, "provider": "local"}
    derived = {a["asset"]: a["files"] for a in assets["derived"]}
    assert derived["og-image"] == ["assets/og-image.jpg"] and derived["favicon"] == ["assets/favicon.ico"]
    for item in assets["generated"] + assets["derived"]:
        for rel in item["files"]:
            assert (brand_kit.root / rel).is_file(), rel
    assert summary["missing_keys"] == []

    # a second build: everything up to date, every list empty
    again = run_json(brand_kit, "build", "--json")
    validate("build-json", again)
    assert again["up_to_date"] == 26 and all(items == [] for items in again["assets"].values())

    # a deleted output comes back from the cache: restored, with its file
    (brand_kit.root / "assets" / "hero.png").unlink()
    third = run_json(brand_kit, "build", "--json")
    assert third["assets"]["restored"] == [{"asset": "hero", "files": ["assets/hero.png"]}]


CHAIN = """
[project]
provider = "local"
[defaults]
size = "64x64"
[assets.root]
prompt = "the root"
[assets.mid]
prompt = "the middle"
references = ["@root"]
[assets.leaf]
prompt = "the leaf"
references = ["@mid"]
[assets.other]
prompt = "independent"
"""


def test_build_json_names_failed_and_blocked_assets_with_reasons(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    project.calls.fail = {"mid"}
    summary = run_json(project, "build", "--json", "-k", "-j", "1", code=1)
    validate("build-json", summary)
    assets = summary["assets"]
    assert [a["asset"] for a in assets["failed"]] == ["mid"]
    assert "emulated outage" in assets["failed"][0]["error"]
    assert assets["blocked"] == [{"asset": "leaf", "reasons": ["upstream mid not built"],
                                  "codes": ["upstream-unbuilt"]}]
    assert sorted(a["asset"] for a in assets["generated"]) == ["other", "root"]


def test_build_json_lists_pruned_assets(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    assert project.run("build").exit_code == 0
    project.manifest(CHAIN.replace('[assets.other]\nprompt = "independent"\n', ""))
    out = project.run("plan", "--format", "markdown").output
    assert "| `other` | prune | no longer in the manifest; removes assets/other.png |   |" in out
    assert out.endswith("(3 up-to-date, 1 prune)\n")
    summary = run_json(project, "build", "--json")
    validate("build-json", summary)
    assert summary["assets"]["pruned"] == [{"asset": "other", "files": ["assets/other.png"], "kept": []}]
    assert not (project.root / "assets" / "other.png").exists()


# -- check [TARGETS] --json -------------------------------------------------------------------

def test_check_json_gives_each_asset_its_status_and_reasons(brand_kit: ProjectDir) -> None:
    before = run_json(brand_kit, "check", "--json", code=1)
    validate("check-json", before)
    assert before["summary"] == {"checked": 26, "up_to_date": 0, "stale": 26, "ok": False}
    logo = next(a for a in before["assets"] if a["asset"] == "logo")
    assert logo == {"asset": "logo", "status": "stale", "action": "generate", "reasons": ["new asset"],
                    "codes": ["new-asset"]}

    assert brand_kit.run("build").exit_code == 0
    after = run_json(brand_kit, "check", "--json")
    validate("check-json", after)
    assert after["summary"] == {"checked": 26, "up_to_date": 26, "stale": 0, "ok": True}
    assert {a["status"] for a in after["assets"]} == {"up-to-date"}
    assert all(a["reasons"] == [] and a["codes"] == [] for a in after["assets"])

    # a hand-edited output: stale with its code; the text form says the same
    (brand_kit.root / "assets" / "hero-night.png").write_bytes(b"edited")
    edited = run_json(brand_kit, "check", "--json", code=1)
    validate("check-json", edited)
    stale = [a for a in edited["assets"] if a["status"] == "stale"]
    assert [(a["asset"], a["action"], a["codes"]) for a in stale] == [("hero-night", "blocked", ["output-modified"])]
    text = brand_kit.run("check")
    assert text.exit_code == 1 and "stale      hero-night: output assets/hero-night.png modified by hand" in text.output


def test_check_takes_targets_like_plan_and_build(brand_kit: ProjectDir) -> None:
    assert brand_kit.run("build", "logo", "logo-mono").exit_code == 0
    res = brand_kit.run("check", "logo-mono")  # its upstream (logo) comes along
    assert res.exit_code == 0 and res.output == "check: all 2 asset(s) up to date\n"
    found = run_json(brand_kit, "check", "--json", "logo-mono")
    assert [a["asset"] for a in found["assets"]] == ["logo", "logo-mono"] and found["summary"]["ok"]
    res = brand_kit.run("check", "sneaker[color=navy]")
    assert res.exit_code == 1 and res.output.count("stale      sneaker[color=navy,") == 2
    assert brand_kit.run("check").exit_code == 1
    assert brand_kit.run("check", "nosuch").exit_code == 2


def test_check_json_names_assets_gone_from_the_manifest(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    assert project.run("build").exit_code == 0
    project.manifest(CHAIN.replace('[assets.other]\nprompt = "independent"\n', ""))
    found = run_json(project, "check", "--json", code=1)
    validate("check-json", found)
    assert [a for a in found["assets"] if a["status"] == "stale"] == [
        {"asset": "other", "status": "stale", "action": "prune",
         "reasons": ["no longer in the manifest (a build without targets prunes it and removes its files)"],
         "codes": ["asset-removed"]}]


# -- plan --format ----------------------------------------------------------------------------

def test_plan_json_and_its_alias(brand_kit: ProjectDir) -> None:
    as_json = run_json(brand_kit, "plan", "--json")
    validate("plan-json", as_json)
    assert run_json(brand_kit, "plan", "--format", "json") == as_json
    assert run_json(brand_kit, "plan", "--json", "--format", "json") == as_json
    res = brand_kit.run("plan", "--json", "--format", "markdown")
    assert res.exit_code == 2 and "--json is --format json" in res.stderr
    assert brand_kit.run("plan", "--format", "text").output == brand_kit.run("plan").output
    assert brand_kit.run("plan", "--format", "yaml").exit_code == 2


PAID = """
[project]
provider = "ark"

[providers.ark]
type = "modelark"
price_per_image = 0.03

[defaults]
size = "2K"

[assets.hero]
prompt = "a hero | with a pipe"

[assets.storyboard]
prompt = "four panels"
count = 4

[assets.local-logo]
prompt = "a local logo"
provider = "local"
size = "64x64"
"""


def test_plan_markdown_is_a_table_with_the_total(project: ProjectDir) -> None:
    project.manifest(PAID)
    res = project.run("plan", "--format", "markdown", "--assume-keys")
    assert res.exit_code == 0, res.stderr
    assert res.output == (
        "### assetbuild plan\n"
        "\n"
        "_Planned as if every API key were set (`--assume-keys`)._\n"
        "\n"
        "| asset | action | reasons | cost |\n"
        "|---|---|---|---:|\n"
        "| `hero` | generate | new asset | $0.03 |\n"
        "| `storyboard` | generate | new asset | $0.12 |\n"
        "| `local-logo` | generate | new asset |   |\n"
        "\n"
        "**Estimated cost: $0.15** (3 generate)\n")
    assert res.stderr == ""
    # without the key: the blocked assets and the variable, and no cost
    res = project.run("plan", "--format", "markdown")
    assert "> **Warning:** `ARK_API_KEY` is not set: 2 asset(s) of ark are blocked." in res.output
    assert "| `hero` | blocked | new asset; API key not set: set the environment variable ARK_API_KEY |   |" \
        in res.output
    assert res.output.endswith("**Estimated cost: $0.00** (2 blocked, 1 generate)\n")
    # built: nothing to do
    project.manifest(PAID.replace('provider = "ark"\n\n[providers', 'provider = "local"\n\n[providers')
                     .replace('size = "2K"', 'size = "64x64"'))
    assert project.run("build").exit_code == 0
    assert project.run("plan", "--format", "markdown").output == (
        "### assetbuild plan\n\n**Estimated cost: $0.00** (3 up-to-date)\n")


def test_a_pipe_in_a_reason_does_not_break_the_table(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    assert project.run("build").exit_code == 0
    project.manifest(CHAIN.replace('prompt = "the root"', 'prompt = "the root | changed"'))
    out = project.run("plan", "--format", "markdown").output
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    assert rows and all(len(re.findall(r"(?<!\\)\|", row)) == 5 for row in rows)


# -- the workflow and the hook ----------------------------------------------------------------

def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def workflow() -> dict[str, Any]:
    wf = load_yaml(WORKFLOW)
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
    return wf


def commands(script: str) -> list[list[str]]:
    """Every assetbuild command line in a shell script, as its argv (without redirections)."""
    found = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token == "assetbuild" and (i == 0 or tokens[i - 1] in COMMAND_STARTS):
                argv = []
                for arg in tokens[i + 1:]:
                    if arg in SHELL_OPERATORS:
                        break
                    argv.append(arg)
                found.append(argv)
    return found


def job_commands(job: dict[str, Any]) -> list[list[str]]:
    return [argv for step in job["steps"] for argv in commands(step.get("run", ""))]


def test_the_workflow_runs_check_and_plan_on_pull_requests_and_builds_on_main() -> None:
    wf = workflow()
    assert "pull_request" in wf["on"] and wf["on"]["push"]["branches"] == ["main"]
    jobs = wf["jobs"]
    assert job_commands(jobs["check"]) == [PR_PLAN, ["check"]]
    plan_step = next(s for s in jobs["check"]["steps"] if "plan" in s.get("run", ""))
    assert '>> "$GITHUB_STEP_SUMMARY"' in plan_step["run"]
    saved = next(s for s in jobs["check"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert saved["with"] == {"name": "assetbuild-plan", "path": "assetbuild-plan.json"}
    assert "pull_request" in jobs["check"]["if"] and "refs/heads/main" in jobs["build"]["if"]
    # main builds the plan the pull request saved (or, pushed without one, its own), and only if there is work
    assert job_commands(jobs["build"]) == MAIN_LINES
    fetch = next(s for s in jobs["build"]["steps"] if "gh run download" in s.get("run", ""))
    assert "--name assetbuild-plan" in fetch["run"] and fetch["env"]["GH_TOKEN"] == "${{ github.token }}"
    build_step = next(s for s in jobs["build"]["steps"] if "--plan" in s.get("run", ""))
    assert build_step["if"] == "steps.work.outputs.todo == 'yes'"
    env = jobs["build"]["env"]
    assert env["AWS_ACCESS_KEY_ID"] == "${{ secrets.AWS_ACCESS_KEY_ID }}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"
    assert "ASSETBUILD_CACHE_REMOTE" in env
    assert jobs["build"]["permissions"] == {"contents": "write", "actions": "read", "pull-requests": "read"}
    commit = jobs["build"]["steps"][-1]["run"]
    assert "git add --all -- assetbuild.lock assets" in commit and "git push" in commit
    # no secret is ever written into the workflow itself
    assert not re.search(r"(AKIA[0-9A-Z]{12,}|sk-[A-Za-z0-9]{8,})", WORKFLOW.read_text(encoding="utf-8"))


def _check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    """check-jsonschema (the test extra), with the schemas it ships: no download."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--no-cache", *args], capture_output=True,
                          text=True, timeout=120)


def test_the_workflow_passes_github_workflow_schemas_including_required_timeouts(tmp_path: Path) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        done = _check_jsonschema("--builtin-schema", schema, str(WORKFLOW))
        assert done.returncode == 0, (schema, done.stdout + done.stderr)
    # the timeout schema is not a formality: the same workflow without a job's timeout fails it
    untimed = tmp_path / "untimed.yml"
    untimed.write_text(re.sub(r"\n    timeout-minutes: \d+[^\n]*", "", WORKFLOW.read_text(encoding="utf-8"), count=1),
                       encoding="utf-8")
    done = _check_jsonschema("--builtin-schema", "custom.github-workflows-require-timeout", str(untimed))
    assert done.returncode == 1 and "'timeout-minutes' is a required property" in done.stdout


def test_the_workflow_times_out_cancels_stale_pull_request_runs_checks_out_lfs_and_wires_every_key() -> None:
    from assetbuild.providers import PROVIDER_CLASSES, provider_class

    wf = workflow()
    for name, job in wf["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, name
        checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["lfs"] is True, name
    assert wf["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    keys = {getattr(provider_class(t), "default_key_env", None) for t in PROVIDER_CLASSES} - {None}
    assert len(keys) == 6  # every host's key variable, from the provider classes (volcengine shares Ark's)
    env = wf["jobs"]["build"]["env"]
    for key in keys:
        assert env.get(key) == f"${{{{ secrets.{key} }}}}", key


def test_the_install_step_never_runs_pip_with_an_empty_name(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pip").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$PIP_ARGS"\n', encoding="utf-8")
    (bindir / "pip").chmod(0o755)
    for name, job in workflow()["jobs"].items():
        step = next(s for s in job["steps"] if "pip install" in s.get("run", ""))
        for value in ("", "git+https://example.invalid/org/assetbuild@v0.1.0"):
            record = tmp_path / f"pip-args-{name}-{bool(value)}"
            env = {"PATH": f"{bindir}:{os.environ['PATH']}", "PIP_ARGS": str(record),
                   **{k: substitute(v, {"ASSETBUILD_INSTALL": value}) for k, v in step.get("env", {}).items()}}
            done = subprocess.run(["bash", "-eo", "pipefail", "-c", substitute(step["run"], {})], env=env,
                                  capture_output=True, text=True, timeout=60)
            if value:
                assert done.returncode == 0 and record.read_text().split("\n")[:2] == ["install", value], name
            else:  # unset: one clear error, and pip is never asked to install ""
                assert done.returncode == 1 and not record.exists(), name
                assert "::error::set the repository variable ASSETBUILD_INSTALL" in done.stdout, name


def test_the_pre_commit_hook_runs_check() -> None:
    hooks = load_yaml(HOOKS)
    assert isinstance(hooks, list) and len(hooks) == 1
    hook = hooks[0]
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["id"] == "assetbuild-check" and hook["language"] == "python" and hook["pass_filenames"] is False
    assert shlex.split(hook["entry"]) == ["assetbuild", "check"]
    files = re.compile(hook["files"])
    for path in ("assetbuild.toml", "assetbuild.lock", "web/assetbuild.toml", "assets/logo.png",
                 "assets/og-image.jpg", "assets/favicon.ico", "assets/thumb.webp"):
        assert files.search(path), path
    for path in ("README.md", "src/app.py", "assetbuild.toml.bak"):
        assert not files.search(path), path


def test_every_assetbuild_command_line_of_the_kit_runs_on_the_brand_kit(brand_kit: ProjectDir) -> None:
    jobs = workflow()["jobs"]
    hook = load_yaml(HOOKS)[0]
    # main first (it builds), then what a pull request runs, then the hook, on the built kit
    lines = job_commands(jobs["build"]) + job_commands(jobs["check"]) + [shlex.split(hook["entry"])[1:]]
    assert len(lines) == 6
    for argv in lines:
        res = brand_kit.run(*argv)
        expected = 1 if argv == ["plan", "--exit-code", "-q"] else 0  # the kit is not built yet: there is work
        assert res.exit_code == expected, (argv, res.stderr + res.output)
    assert brand_kit.run("plan", "--exit-code", "-q").exit_code == 0  # built: nothing left
    # and on a kit a pull request left stale, check fails the job and the hook
    (brand_kit.root / "assets" / "logo.png").unlink()
    for argv in job_commands(jobs["check"]):
        assert brand_kit.run(*argv).exit_code == (1 if argv[0] == "check" else 0)


def substitute(text: str, values: dict[str, str]) -> str:
    """GitHub's ${{ secrets.X }} / ${{ vars.X }} expressions, as a run would see them."""
    return re.sub(r"\$\{\{\s*(?:secrets|vars)\.([A-Z0-9_]+)\s*\}\}", lambda m: values.get(m.group(1), ""), text)


def git(cwd: Path, *args: str) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


# GitHub's API as the main job's `gh` calls see it (tests never reach the internet): the pull
# request a commit came from (none unless tests write `pr-head`), its last plan run, its artifact.
GH_STANDIN = """#!/usr/bin/env bash
case "$1 $2" in
  "api "*) cat "$GH_STANDIN/pr-head" 2>/dev/null || true ;;
  "run list") cat "$GH_STANDIN/run-id" 2>/dev/null || true ;;
  "run download") cp "$GH_STANDIN/assetbuild-plan.json" . ;;
  *) echo "gh stand-in: $*" >&2; exit 2 ;;
esac
"""


@pytest.mark.slow
def test_the_workflow_steps_run_in_a_real_clone(tmp_path: Path) -> None:
    """The build job's and the pull-request job's shell steps, run by bash in a git clone of
    the brand kit with a bare origin and a file:// remote cache: the outputs and the lock are
    committed and pushed, the pull request's job summary is the plan's table, and main builds
    the plan the pull request saved, or refuses it once main has moved."""
    origin, clone, remote = tmp_path / "origin.git", tmp_path / "clone", tmp_path / "remote-cache"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    shutil.copytree(REPO / "examples" / "brand-kit", clone,
                    ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild"))
    (clone / ".gitignore").write_text(".assetbuild/\nassetbuild-plan.json\n", encoding="utf-8")
    git(clone, "init", "-q", "-b", "main")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "the kit")
    git(clone, "remote", "add", "origin", str(origin))
    git(clone, "push", "-q", "origin", "main")

    jobs = workflow()["jobs"]
    bindir, standin = tmp_path / "bin", tmp_path / "github"
    bindir.mkdir()
    standin.mkdir()
    (bindir / "gh").write_text(GH_STANDIN, encoding="utf-8")
    (bindir / "gh").chmod(0o755)
    values = {"ASSETBUILD_CACHE_REMOTE": remote.as_uri(), "AWS_REGION": "us-east-1"}
    env = {"PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "LANG": "C.UTF-8", "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache"), "GIT_CONFIG_NOSYSTEM": "1",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_REF_NAME": "main",
           "GITHUB_REPOSITORY": "org/kit", "GITHUB_SHA": "0" * 40, "GH_STANDIN": str(standin),
           **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}}  # the assetbuild under test

    def run_job(name: str, extra: dict[str, str] | None = None, fails: str = "") -> list[subprocess.CompletedProcess[str]]:
        """Each `run` step as the runner runs it, honouring `if: steps.ID.outputs.KEY == 'VALUE'`;
        ``fails``: the name of the step expected to fail (the job stops there)."""
        outputs: dict[str, dict[str, str]] = {}
        done = []
        for step in jobs[name]["steps"]:
            script = step.get("run")
            if script is None or "pip install" in script:  # uses: actions; assetbuild is installed here
                continue
            condition = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+) == '(\w+)'", step.get("if", ""))
            if condition and outputs.get(condition[1], {}).get(condition[2]) != condition[3]:
                continue
            out_file = tmp_path / "github-output"
            out_file.write_text("")
            job_env = {**env, **{k: substitute(str(v), values) for k, v in jobs[name].get("env", {}).items()},
                       **{k: substitute(str(v), values) for k, v in step.get("env", {}).items()},
                       "GITHUB_OUTPUT": str(out_file), **(extra or {})}
            done.append(subprocess.run(["bash", "-eo", "pipefail", "-c", substitute(script, values)], cwd=clone,
                                       env=job_env, capture_output=True, text=True, timeout=120))
            if step.get("name") == fails:
                assert done[-1].returncode != 0, step.get("name")
                return done
            assert done[-1].returncode == 0, (step.get("name"), done[-1].stderr)
            if "id" in step:
                outputs[step["id"]] = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if line)
        assert not fails, f"{fails} did not fail"
        return done

    steps = run_job("build")  # pushed without a pull request: plans on main, builds that plan
    assert "pushed without a pull request" in steps[0].stdout
    log = git(origin, "log", "--format=%s", "main")
    assert log.splitlines()[0] == "assetbuild: build outputs and lock [skip ci]"
    pushed = git(origin, "ls-tree", "-r", "--name-only", "main")
    assert "assetbuild.lock" in pushed.split() and "assets/hero.png" in pushed.split()
    assert "build.json" not in pushed.split() and "assetbuild-plan.json" not in pushed.split()
    assert list(remote.rglob("*")), "the build filled the remote cache"
    # a second run on main has nothing to build (plan --exit-code) and nothing to commit
    steps = run_job("build")
    assert "nothing to commit" in steps[-1].stdout
    assert not any("build:" in s.stdout + s.stderr for s in steps)
    assert len(git(origin, "log", "--format=%s", "main").splitlines()) == 3

    # a pull request that changes a prompt: the summary shows what would be generated, and check fails
    manifest = clone / "assetbuild.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("at golden hour", "at dawn"), encoding="utf-8")
    pr = jobs["check"]
    summary_step = next(s for s in pr["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    res = subprocess.run(["bash", "-eo", "pipefail", "-c", summary_step["run"]], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "| `hero` | generate | prompt changed |" in summary and "**Estimated cost: $0.00**" in summary
    check_step = next(s for s in pr["steps"] if s.get("run", "").strip() == "assetbuild check")
    res = subprocess.run(["bash", "-c", check_step["run"]], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and "stale      hero: prompt changed" in res.stdout

    # merged: main builds exactly the plan the pull request saved (its artifact)
    shutil.move(str(clone / "assetbuild-plan.json"), standin / "assetbuild-plan.json")
    approved = json.loads((standin / "assetbuild-plan.json").read_text())
    (standin / "pr-head").write_text("f" * 40)
    (standin / "run-id").write_text("4242")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "hero at dawn")
    run_job("build")
    built = json.loads((clone / "build.json").read_text())
    planned = {a["asset"] for a in approved["actions"] if a["action"] == "generate"}
    assert planned == {"hero", "hero-night"}  # hero-night reads hero
    assert built["generated"] == 2 and {a["asset"] for a in built["assets"]["generated"]} == planned

    # the next pull request's plan, applied after main moved on: refused, nothing sent, nothing committed
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("at dawn", "at dusk"), encoding="utf-8")
    subprocess.run(["bash", "-eo", "pipefail", "-c", summary_step["run"]], cwd=clone, env=env, check=True,
                   capture_output=True, text=True, timeout=120)
    shutil.move(str(clone / "assetbuild-plan.json"), standin / "assetbuild-plan.json")
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("at dusk", "at night"), encoding="utf-8")
    steps = run_job("build", fails="Build the approved plan")
    assert steps[-1].returncode == 2
    assert "assetbuild.toml changed since the plan was made" in steps[-1].stderr


SHARDED = REPO / "examples" / "ci" / "assetbuild-sharded.yml"


def test_the_sharded_workflow_builds_each_shard_then_restores_all_with_no_calls(tmp_path: Path) -> None:
    """examples/ci/assetbuild-sharded.yml: N matrix jobs each run `build --shard K/N` in its own
    clone with its own empty cache against one shared remote; then the final job's build, in a
    fresh clone, restores every asset into one complete lock with 0 provider calls."""
    wf = load_yaml(SHARDED)
    jobs = wf["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(wf["env"]["SHARDS"]) + 1))
    assert jobs["final"]["needs"] == "shard" and jobs["shard"]["strategy"]["fail-fast"] is False
    assert "ASSETBUILD_CACHE_REMOTE" in wf["env"]
    remote = (tmp_path / "remote").as_uri()
    kit = REPO / "examples" / "brand-kit"
    built: dict[str, int] = {}
    for k in shards:
        root = tmp_path / f"shard{k}"
        shutil.copytree(kit, root, ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild"))
        project = ProjectDir(root, tmp_path / f"cache{k}")
        project.env["ASSETBUILD_CACHE_REMOTE"] = remote
        script = substitute(job_commands_text(jobs["shard"]), {}).replace("${{ matrix.shard }}", str(k))
        for argv in commands(script.replace("$SHARDS", wf["env"]["SHARDS"])):
            res = project.run(*argv)
            assert res.exit_code == 0, (argv, res.stderr + res.output)
            summary = json.loads(res.output)
            built[f"shard {k}"] = summary["generated"] + summary["derived"]
    final = tmp_path / "final"
    shutil.copytree(kit, final, ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild"))
    project = ProjectDir(final, tmp_path / "final-cache")
    project.env["ASSETBUILD_CACHE_REMOTE"] = remote
    (argv,) = job_commands(jobs["final"])
    res = project.run(*argv)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.output)
    assert project.calls.total == 0 and summary["generated"] == summary["derived"] == 0
    assert summary["restored"] == 26 and all(n > 0 for n in built.values())  # the kit: 14 generated + 12 derived
    assert project.run("check").exit_code == 0


def job_commands_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])
