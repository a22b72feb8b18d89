"""The build's progress: plain one-line events when piped or in CI (byte for byte as ever),
a live rich display on a terminal (counts of the work to do, what is in flight and its
state, elapsed, ETA, money spent), and --json that stays JSON."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from rich.console import Console

from assetbuild.api import Project
from assetbuild.cli import Seams, cli
from assetbuild.run.executor import Event
from assetbuild.run.progress import Lines, LiveDisplay, live_wanted
from tests.conftest import ProjectDir

MANIFEST = """
[project]
provider = "local"
[defaults]
size = "16x16"
[assets.a]
prompt = "a"
[assets.b]
prompt = "b"
references = ["@a"]
[assets.c]
prompt = "c"
[assets.d]
from = "@c"
steps = [{ op = "grayscale" }]
"""


class Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def display(project: ProjectDir, **kwargs):
    """A LiveDisplay over the project's real plan, drawing into a StringIO 'terminal'."""
    loaded = Project.load(project.root, env=project.env)
    try:
        decisions = loaded.plan().decisions
    finally:
        loaded.close()
    console = Console(force_terminal=True, file=io.StringIO(), width=120, record=True)
    clock = Tick()
    return LiveDisplay(console, decisions, Lines(total=len(decisions)), now=clock, **kwargs), console, clock


def drawn(live: LiveDisplay, console: Console) -> str:
    console.print(live.render())
    return console.export_text()


def test_live_display_counts_only_the_work_and_shows_what_is_in_flight(project):
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    project.manifest(MANIFEST.replace('prompt = "c"', 'prompt = "c, again"') + '[assets.e]\nprompt = "e"\n')
    live, console, clock = display(project)
    assert live.state.work == {"c", "d", "e"}  # a and b are up to date: not work
    live.handle(Event("done", "a", "up-to-date"))
    live.handle(Event("done", "b", "up-to-date"))
    live.handle(Event("start", "c", "generate", "prompt changed"))
    live.handle(Event("phase", "c", "polling"))
    clock.t += 4
    live.handle(Event("start", "e", "generate", "new asset"))
    live.handle(Event("phase", "e", "submitted"))
    text = drawn(live, console)
    assert "0/3 done · 2 running · spent $0.00/~$0.00 · 0:04 elapsed · ETA --:--" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["generate", "c", "polling", "0:04"] in rows and ["generate", "e", "submitted", "0:00"] in rows
    clock.t += 6
    live.handle(Event("done", "c", "generated", "", cost_usd=0.03))
    live.handle(Event("start", "d", "derive", "upstream c changed"))
    text = drawn(live, console)
    assert "1/3 done" in text and "spent $0.03" in text and "ETA 0:20" in text  # 10 s for 1, 2 left
    assert "generated  c  [3/5]" in text  # the plain line, printed above the live region
    rows = [line.split() for line in text.split("generated  c  [3/5]")[-1].splitlines()]
    assert ["derive", "d", "0:00"] in rows and not any("polling" in row for row in rows)  # c has landed
    live.handle(Event("done", "e", "failed", "local: emulated outage"))
    assert "1 failed/blocked" in drawn(live, console)


def test_a_long_flight_lists_the_first_rows_and_counts_the_rest(project):
    project.manifest(MANIFEST)
    live, console, _ = display(project, rows=2)
    for nid in ("a", "c", "e", "f"):
        live.handle(Event("start", nid, "restore", "in cache"))
    text = drawn(live, console)
    assert "... and 2 more" in text and "4 running" in text


def test_the_cli_draws_the_live_display_on_a_terminal(project):
    project.manifest(MANIFEST)
    seams = Seams(env=project.env, provider_factory=project.factory, terminal=True)
    res = CliRunner().invoke(cli, ["-C", str(project.root), "build", "-j", "1"], obj=seams, catch_exceptions=False)
    assert res.exit_code == 0
    out = res.stdout
    assert "\x1b[" in out  # drawn for a terminal
    assert "4/4 done · 0 running · spent $0.00/~$0.00 · 0:00 elapsed · ETA 0:00" in out
    assert "generated  a  [1/4]" in out and "derived    d  [4/4]" in out
    assert out.rstrip().endswith("build: 3 generated, 0 restored, 1 derived, 0 up to date, 0 failed, 0 blocked; "
                                 "cost $0.00")


def test_piped_output_is_the_plain_lines_byte_for_byte(project):
    project.manifest(MANIFEST)
    project.calls.fail = {"c"}
    res = project.run("build", "-k", "-j", "1")
    assert res.exit_code == 1
    assert res.output == (
        "generated  a  [1/4]\n"
        "generated  b  [2/4]\n"
        "failed     c: local: emulated outage\n"
        "blocked    d: upstream c not built\n"
        "build: 2 generated, 0 restored, 0 derived, 0 up to date, 1 failed, 1 blocked; cost $0.00\n")
    project.calls.fail = set()
    res = project.run("-v", "build", "-j", "1")
    assert res.output == (
        "up-to-date a  [1/4]\n"
        "up-to-date b  [2/4]\n"
        "  generate   c  (new asset)\n"
        "generated  c  [3/4]\n"
        "  derive     d  (new asset)\n"
        "derived    d  [4/4]\n"
        "build: 1 generated, 0 restored, 1 derived, 2 up to date, 0 failed, 0 blocked; cost $0.00\n")
    assert "\x1b" not in res.output


def test_json_stays_json_even_when_a_terminal_is_forced(project):
    project.manifest(MANIFEST)
    seams = Seams(env=project.env, provider_factory=project.factory, terminal=True)
    res = CliRunner().invoke(cli, ["-C", str(project.root), "build", "--json"], obj=seams, catch_exceptions=False)
    assert json.loads(res.stdout)["generated"] == 3
    assert "\x1b" not in res.stderr and "generated  a  [" in res.stderr and "derived    d  [" in res.stderr


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("env, live", [
    ({"TERM": "xterm-256color"}, True),
    ({}, True),
    ({"TERM": "xterm", "CI": "true"}, False),
    ({"TERM": "xterm", "CI": "1"}, False),
    ({"TERM": "xterm", "CI": "false"}, True),
    ({"TERM": "dumb"}, False),
])
def test_live_only_for_a_person_at_a_terminal(env, live):
    assert live_wanted(FakeTTY(), env) is live
    assert live_wanted(io.StringIO(), env) is False


@pytest.mark.slow
def test_a_real_terminal_gets_the_live_display_and_ci_does_not(project):
    """The real program on a pseudo-terminal: drawn live; with CI=true: the plain lines."""
    project.manifest(MANIFEST)

    def run_on_pty(extra_env: dict[str, str]) -> str:
        primary, secondary = pty.openpty()
        env = {**os.environ, **project.env, "TERM": "xterm", **extra_env}
        env.pop("CI", None) if "CI" not in extra_env else None
        proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "-C", str(project.root), "build", "--force"],
                                stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=env)
        os.close(secondary)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(primary)
        assert proc.wait(timeout=30) == 0
        return b"".join(chunks).decode("utf-8", "replace")

    live = run_on_pty({})
    assert "\x1b[" in live and "4/4 done · 0 running" in live and "build: 3 generated" in live
    plain = run_on_pty({"CI": "true"})
    assert "\x1b" not in plain and "done ·" not in plain
    assert plain.replace("\r\n", "\n").endswith(
        "build: 3 generated, 0 restored, 1 derived, 0 up to date, 0 failed, 0 blocked; cost $0.00\n")


def test_a_hosts_job_shows_submitted_polling_downloading(project):
    """An asynchronous host (the evolink emulator on 127.0.0.1): the executor hands on the
    provider's phases as events, the live display draws each, the plain lines ignore them."""
    from tests.fakes.clock import FakeClock
    from tests.fakes.evolink import EvolinkEmulator

    emu = EvolinkEmulator(api_key="sk-progress", polls_until_done=2).start()
    try:
        project.clock = FakeClock()
        project.env["EVO_KEY"] = "sk-progress"
        project.manifest(f'[project]\nprovider = "h"\nmodel = "seedream-4.0"\n[providers.h]\ntype = "evolink"\n'
                         f'base_url = "{emu.base_url}"\napi_key_env = "EVO_KEY"\npoll_interval_s = 0.01\n'
                         '[defaults]\nsize = "2K"\n[assets.fox]\nprompt = "a fox"\n')
        loaded = Project.load(project.root, env=project.env, clock=project.clock)
        events: list[Event] = []
        try:
            loaded.build(on_event=events.append)
        finally:
            loaded.close()
        assert [e.status for e in events if e.kind == "phase"] == ["submitted", "polling", "polling", "downloading"]
        assert all(e.node == "fox" for e in events if e.kind == "phase")
        done = [e for e in events if e.kind == "done"]
        assert len(done) == 1 and done[0].cost_usd > 0  # what the display adds to "spent"

        seams = Seams(env=project.env, provider_factory=project.factory, clock=project.clock, terminal=True)
        res = CliRunner().invoke(cli, ["-C", str(project.root), "build", "--force", "--yes"], obj=seams,
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.stderr
        frames = res.stdout
        for phase in ("submitted", "polling", "downloading"):
            assert phase in frames
        assert f"1/1 done · 0 running · spent ${done[0].cost_usd:.2f}/~${done[0].cost_usd:.2f}" in frames
        plain = project.run("build", "--force", "--yes")
        assert plain.output.splitlines()[0] == "generated  fox  [1/1]" and "polling" not in plain.output
    finally:
        emu.stop()
