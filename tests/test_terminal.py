"""Terminal polish (issue 21, item 7): colours in plan, check and explain on a real terminal
(a pseudo-terminal of a set width) and never with NO_COLOR, piped or TERM=dumb; did-you-mean
for unknown asset ids; `assetbuild completion bash|zsh|fish` with asset ids completing (in a
real bash); `build --help` without "[default: (verbose)]"; the report's `assetbuild pick ID N`
beside each candidate; `adopt --undo`; `reroll X` naming the dependents it leaves."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ProjectDir, png

KIT = """\
[project]
output_dir = "assets"
[defaults]
size = "32x32"
[assets.logo]
prompt = "a logo"
candidates = 3
[assets.event-poster]
prompt = "a poster with the logo"
references = ["@logo"]
[assets.thumb]
from = "@event-poster"
steps = [{ op = "resize", size = "16x16" }]
"""
ANSI = "\x1b["


def env_for(project: ProjectDir, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    env.update(project.env, TERM="xterm-256color", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    env.update(extra)
    return env


def in_terminal(project: ProjectDir, *args: str, columns: int = 100, **extra: str) -> str:
    """``assetbuild ARGS`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide:
    what a person at a terminal sees (escape sequences included)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "assetbuild", *args], cwd=project.root, stdin=follower,
                            stdout=follower, stderr=follower, env=env_for(project, **extra), close_fds=True)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(leader)
    return out.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def kit(project: ProjectDir) -> ProjectDir:
    project.manifest(KIT)
    return project


# -- colours ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_plan_check_and_explain_are_coloured_on_a_terminal_only(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0
    kit.manifest(KIT.replace("a poster with", "a wide poster with"))
    for args in (("plan",), ("check",), ("explain", "event-poster")):
        coloured = in_terminal(kit, *args)
        assert ANSI in coloured, args
        plain = in_terminal(kit, *args, NO_COLOR="1")
        assert ANSI not in plain and plain.strip(), args
        assert in_terminal(kit, *args, TERM="dumb") == plain, args
        piped = subprocess.run([sys.executable, "-m", "assetbuild", *args], cwd=kit.root, env=env_for(kit),
                               capture_output=True, text=True, timeout=60)
        assert ANSI not in piped.stdout + piped.stderr and piped.stdout.strip(), args
        # the colours add nothing but colour: the same text once the escapes are gone
        assert _strip(coloured) == plain, args
    plan = in_terminal(kit, "plan")
    assert "\x1b[33m\x1b[1mgenerate  \x1b[0m event-poster" in plan  # the action in yellow
    assert "prompt: a\x1b[32m{+ wide+}\x1b[0m poster with the logo" in plan  # the added words in green


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.slow
def test_build_help_fits_the_terminal_and_shows_no_bogus_default(kit: ProjectDir) -> None:
    text = in_terminal(kit, "build", "--help", columns=80)
    assert "-v, --verbose" in text and "-q, --quiet" in text
    assert "(verbose)" not in text and "(quiet)" not in text and "[default: (" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_help_of_every_command_shows_no_default_for_v_and_q(kit: ProjectDir) -> None:
    for command in ("build", "plan", "check", "explain", "adopt", "lock"):
        out = kit.run(command, "--help").output
        assert "[default: (verbose)]" not in out and "[default: (quiet)]" not in out, command


# -- did you mean -----------------------------------------------------------------------------

def test_an_unknown_asset_id_gets_a_did_you_mean(kit: ProjectDir) -> None:
    res = kit.run("explain", "poster")
    assert res.exit_code == 2
    assert res.stderr == ("error: explain: no asset matches 'poster' (did you mean event-poster?); "
                          "`assetbuild ls` lists the ids\n")
    for args, words in [(("plan", "lgo"), "no asset matches 'lgo' (did you mean logo?)"),
                        (("build", "thum"), "(did you mean thumb?)"),
                        (("pick", "lgoo", "1"), "(did you mean logo?)"),
                        (("reroll", "event-postr"), "(did you mean event-poster?)")]:
        res = kit.run(*args)
        assert res.exit_code == 2 and words in res.stderr and kit.calls.total == 0, (args, res.stderr)
    assert "did you mean" not in kit.run("explain", "zzzz").stderr  # nothing close: no guess


# -- shell completion -------------------------------------------------------------------------

def test_completion_prints_each_shells_script(kit: ProjectDir) -> None:
    for shell, marker in (("bash", "complete -o nosort -F _assetbuild_completion assetbuild"),
                          ("zsh", "#compdef assetbuild"), ("fish", "complete --no-files --command assetbuild")):
        res = kit.run("completion", shell)
        assert res.exit_code == 0 and marker in res.output and "_ASSETBUILD_COMPLETE" in res.output, shell
    assert kit.run("completion", "tcsh").exit_code == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_asset_ids_complete_in_a_real_bash(kit: ProjectDir) -> None:
    (kit.root / "assets").mkdir()

    def complete(words: str, cwd: Path) -> list[str]:
        script = ('eval "$(assetbuild completion bash)"; COMP_WORDS=(' + words + '); '
                  'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _assetbuild_completion assetbuild; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env_for(kit), capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("assetbuild explain e", kit.root) == ["event-poster"]
    assert sorted(complete("assetbuild build ''", kit.root)) == ["event-poster", "logo", "thumb"]
    assert complete("assetbuild pick l", kit.root / "assets") == ["logo"]  # the manifest above, found
    assert "--plan" in complete("assetbuild build --pl", kit.root)
    assert complete("assetbuild explain x", kit.root) == []


# -- the report, adopt --undo, reroll ---------------------------------------------------------

def test_the_report_shows_the_pick_command_beside_each_candidate(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0 and kit.run("report").exit_code == 0
    page = (kit.root / "assetbuild-report.html").read_text()
    for n in (1, 2, 3):
        assert f">assetbuild pick logo {n}</code>" in page


def test_adopt_undo_puts_the_generated_image_back(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0
    generated = kit.read("assets/logo.png")
    kit.write("assets/logo.png", png(32, 32, (1, 2, 3)))
    assert kit.run("adopt", "logo").exit_code == 0
    assert kit.run("build").exit_code == 0 and kit.calls.assets == {"event-poster"}

    res = kit.run("adopt", "--undo", "logo")
    assert res.exit_code == 0 and "logo's generated image is assets/logo.png again" in res.output
    assert "now stale: event-poster" in res.output and kit.calls.total == 0
    assert kit.read("assets/logo.png") == generated
    assert "adopted" not in (kit.root / "assetbuild.lock").read_text().split("[assets.logo]")[1].split("[assets.")[0]
    # the poster built from the first image is in the cache: back to it at no cost
    assert kit.run("build").exit_code == 0 and kit.calls.total == 0
    assert kit.run("check").exit_code == 0
    res = kit.run("adopt", "--undo", "logo")
    assert res.exit_code == 2 and "logo has no adopted hand edit" in res.stderr


def test_adopt_undo_keeps_a_later_edit_unless_forced(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0
    kit.write("assets/logo.png", png(32, 32, (1, 2, 3)))
    assert kit.run("adopt", "logo").exit_code == 0
    kit.write("assets/logo.png", png(32, 32, (9, 9, 9)))
    res = kit.run("adopt", "--undo", "logo")
    assert res.exit_code == 2 and "modified again since it was adopted" in res.stderr
    assert kit.run("adopt", "--undo", "--force", "logo").exit_code == 0
    assert kit.run("adopt", "--force", "logo").exit_code == 2  # --force goes with --undo


def test_adopt_undo_after_the_inputs_changed_lets_the_next_build_generate(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0
    kit.write("assets/logo.png", png(32, 32, (1, 2, 3)))
    assert kit.run("adopt", "logo").exit_code == 0
    kit.manifest(KIT.replace('"a logo"', '"a new logo"'))
    res = kit.run("adopt", "--undo", "logo")
    assert res.exit_code == 0 and "the next build generates it anew" in res.output
    assert kit.run("build").exit_code == 0 and kit.calls.assets == {"logo", "event-poster"}


def test_reroll_names_the_dependents_it_leaves_for_the_next_build(kit: ProjectDir) -> None:
    assert kit.run("build").exit_code == 0
    res = kit.run("reroll", "logo")
    assert res.exit_code == 0 and kit.calls.assets == {"logo"}
    assert ("reroll: left for the next build: event-poster (reads the rerolled logo); run `assetbuild build`"
            in res.output)
    assert kit.run("build").exit_code == 0 and kit.calls.assets == {"event-poster"}
