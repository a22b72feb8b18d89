"""`assetbuild watch`: real files, real watchfiles, bounded in time. Editing one prompt makes
exactly one rebuild of exactly that asset and its dependents; a changed reference file
rebuilds its readers; a bad manifest edit says one line and watching goes on; the budget
rules are those of `build`."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from assetbuild.cli import Seams, cli
from assetbuild.run.watch import watched_files
from tests.conftest import ProjectDir, png
from tests.fakes.ark import ArkEmulator

MANIFEST = """
[project]
provider = "local"
[defaults]
size = "16x16"
[assets.a]
prompt = "a"
references = ["brand/palette.png"]
[assets.b]
prompt = "b"
[assets.c]
prompt = "c"
references = ["@b"]
[assets.d]
from = "@b"
steps = [{ op = "overlay", image = "brand/mark.png" }]
[assets.e]
prompt = "e"
"""


def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Watching:
    """`assetbuild watch ARGS` in a thread, through the CLI, with the project's counted provider."""

    def __init__(self, project: ProjectDir, *args: str, factory: Any = None, max_builds: int | None = None):
        self.project = project
        self.watcher: Any = None
        self.result: Any = None
        seams = Seams(env=project.env, provider_factory=factory or project.factory, terminal=False,
                      max_builds=max_builds, on_watch=self._got)
        self.thread = threading.Thread(target=self._run, args=(seams, args), daemon=True)

    def _got(self, watcher: Any) -> None:
        self.watcher = watcher

    def _run(self, seams: Seams, args: tuple[str, ...]) -> None:
        self.result = CliRunner().invoke(cli, ["-C", str(self.project.root), "watch", *args], obj=seams,
                                         catch_exceptions=False)

    def __enter__(self) -> "Watching":
        self.thread.start()
        until(lambda: self.watcher is not None and self.watcher.ready.is_set())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.watcher is not None:
            self.watcher.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()

    def after_change(self, change: Callable[[], None], builds: int) -> None:
        """Make ``change``; wait until build number ``builds`` ran and watching resumed, then
        a quiet second more in which no other build may start."""
        self.project.calls.reset()
        change()
        until(lambda: self.watcher.builds >= builds and self.watcher.ready.is_set())
        time.sleep(0.6)
        assert self.watcher.builds == builds


def setup(project: ProjectDir) -> ProjectDir:
    project.write("brand/palette.png", png(8, 8, (200, 0, 0)))
    project.write("brand/mark.png", png(4, 4, (0, 0, 0)))
    project.manifest(MANIFEST)
    return project


@pytest.mark.slow
def test_editing_one_prompt_rebuilds_exactly_it_and_its_dependents_once(project):
    setup(project)
    with Watching(project) as w:
        assert w.watcher.builds == 1 and project.calls.assets == {"a", "b", "c", "e"}
        w.after_change(lambda: project.manifest(MANIFEST.replace('prompt = "b"', 'prompt = "b, bolder"')), 2)
        assert project.calls.by_asset == {"b": 1, "c": 1}  # d is derived: no call, but rebuilt
        w.after_change(lambda: project.write("brand/mark.png", png(4, 4, (255, 255, 255))), 3)
        assert project.calls.total == 0  # only d reads the overlay image
        w.after_change(lambda: project.write("brand/palette.png", png(8, 8, (0, 0, 200))), 4)
        assert project.calls.by_asset == {"a": 1}
        w.after_change(lambda: project.write("notes.txt", "not read by the manifest"), 4)  # no build
        w.after_change(lambda: project.write("assetbuild.toml", MANIFEST + "[assets.f]\nprompt = 3\n"), 5)
        assert project.calls.total == 0
        w.after_change(lambda: project.manifest(MANIFEST.replace('prompt = "e"', 'prompt = "e2"')), 6)
        assert project.calls.by_asset == {"e": 1}  # watching went on after the bad edit
    out = w.result.stdout
    second = out.split("watch: assetbuild.toml changed; building\n")[1].split("watch: ")[0]
    assert sorted(line.split("  [")[0] for line in second.splitlines()) == [
        "build: 2 generated, 0 restored, 1 derived, 2 up to date, 0 failed, 0 blocked; cost $0.00",
        "derived    d", "generated  b", "generated  c"]
    assert "watch: assetbuild.toml changed; building" in out
    assert "watch: brand/mark.png changed; building" in out and "watch: notes.txt" not in out
    assert w.result.stderr == "error: assetbuild.toml:20: assets.f.prompt: 3 is the wrong type: input should be a valid string\n"
    assert w.result.exit_code == 0


PAID = """
[project]
provider = "h"
model = "seedream-4.0"
[providers.h]
type = "modelark"
base_url = "{url}"
api_key_env = "E2E_KEY"
[defaults]
size = "2K"
[assets.a]
prompt = "a"
[assets.b]
prompt = "b"
[assets.c]
prompt = "c"
references = ["@b"]
"""


def test_watch_keeps_the_budget_rules_of_build(project):
    """Without --yes and without a terminal a watch build proceeds only within the budget,
    as `build` does; over it, one line, nothing sent, and watching would go on."""
    ark = ArkEmulator(api_key="sk-watch").start()
    try:
        project.env["E2E_KEY"] = "sk-watch"
        project.manifest(PAID.format(url=ark.base_url))

        def watch(*args: str) -> Any:
            seams = Seams(env=project.env, provider_factory=project.factory, terminal=False, max_builds=1)
            return CliRunner().invoke(cli, ["-C", str(project.root), "watch", *args], obj=seams,
                                      catch_exceptions=False)

        res = watch("--max-cost", "0.05")  # 3 images at $0.03
        assert res.exit_code == 0 and ark.requests == []
        assert res.stderr == ("error: estimated cost $0.09 exceeds the budget of $0.05 (max_cost / --max-cost); "
                              "nothing was sent\n")
        res = watch("b", "--max-cost", "0.05")
        assert res.exit_code == 0 and [r.method for r in ark.requests if r.method == "POST"] == ["POST"]
        assert "generated  b  [1/1]" in res.stdout and "cost $0.03" in res.stdout
    finally:
        ark.stop()


def test_watched_files_are_the_manifest_and_what_the_targets_read(project):
    setup(project)
    root = project.root.resolve()
    manifest = root / "assetbuild.toml"
    assert watched_files(manifest) == {manifest, root / "brand/palette.png", root / "brand/mark.png"}
    assert watched_files(manifest, ["d"]) == {manifest, root / "brand/mark.png"}
    assert watched_files(manifest, ["e"]) == {manifest}
    project.write("brand/logo.png", png(8, 8))
    project.manifest(MANIFEST + '[assets.g]\nfrom = "brand/logo.png"\nsteps = [{ op = "grayscale" }]\n')
    assert watched_files(manifest, ["g"]) == {manifest, root / "brand/logo.png"}  # a from file
    project.manifest("[project\n")
    assert watched_files(manifest) == {manifest}


@pytest.mark.parametrize("flag", ["-v", "-q"])
def test_watch_takes_the_verbosity_flags_and_a_debounce(project, flag):
    res = CliRunner().invoke(cli, ["watch", flag, "--debounce", "300", "--help"])
    assert res.exit_code == 0 and "--debounce" in res.output


def test_a_watch_build_never_runs_beside_another_build(project):
    """The watch's builds take the project's build lock like `build`: while another build holds
    it, the watch says so in one line, sends nothing, and would go on watching."""
    from assetbuild.store.files import exclusive

    setup(project)
    seams = Seams(env=project.env, provider_factory=project.factory, terminal=False, max_builds=1)
    with exclusive(project.root / "assetbuild.toml"):
        res = CliRunner().invoke(cli, ["-C", str(project.root), "watch"], obj=seams, catch_exceptions=False)
    assert res.exit_code == 0 and project.calls.total == 0
    assert res.stderr == f"error: another assetbuild build is running in {project.root}; wait for it to finish\n"
