"""The whole-project stamp (run/stamp.py, issue 20): a true no-op `build` or `check` is
answered from it without importing click or the library; every change that can change an
answer (an API key set or unset, the provider configuration, an output deleted, touched or
edited, a reference edited, a cache entry removed, the manifest or the lock edited, another
build running, a temp file a killed write left) takes the full path, which gives the same
answer as a run with no stamp at all.

Real CLI processes (``python -m assetbuild``) on projects in temp dirs; whether a run was
answered from the stamp is read off ``-X importtime`` (the full path imports click)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from assetbuild.run.stamp import variant_of
from tests.conftest import REPO, png
from tests.fakes.ark import ArkEmulator

KEY = "sk-stamp-test-7e1d"
MANIFEST = """
[project]
provider = "local"
model = "seedream-4.0"

[providers.ark]
type = "modelark"
base_url = "{url}"
api_key_env = "STAMP_TEST_KEY"

[defaults]
size = "64x64"

[assets.logo]
prompt = "a logo"
references = ["refs/palette.png"]

[assets.banner]
prompt = "a banner with the logo"
references = ["@logo"]

[assets.hosted]
provider = "ark"
prompt = "a hosted picture"
size = "1K"
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str  # without the -X importtime lines
    replayed: bool  # answered from the stamp: click was never imported


def env_of(key: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETBUILD_") and k != "STAMP_TEST_KEY"}
    env["PYTHONPATH"] = str(REPO)
    if key:
        env["STAMP_TEST_KEY"] = KEY
    return env


def run(root: Path, *args: str, key: bool = True) -> Run:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "assetbuild", *args], cwd=root,
                          env=env_of(key), capture_output=True, text=True, timeout=60)
    lines = proc.stderr.splitlines()
    imports = [line for line in lines if line.startswith("import time:")]
    assert imports, proc.stderr  # -X importtime worked: the replayed flag below means something
    return Run(proc.returncode, proc.stdout, "\n".join(line for line in lines if not line.startswith("import time:")),
               replayed=not any(line.rstrip().endswith(" click") for line in imports))


def forget_stamps(root: Path) -> None:
    for stamp in (root / ".assetbuild").glob("stamp-*"):
        stamp.unlink()


def edit_line(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def drop_cache_entry(root: Path) -> None:
    import tomllib

    from assetbuild.store.cache import Cache

    fingerprint = tomllib.loads((root / "assetbuild.lock").read_text(encoding="utf-8"))["assets"]["logo"]["fingerprint"]
    cache = Cache(root / ".assetbuild")
    assert cache.result(fingerprint) is not None
    cache.drop_result(fingerprint)
    cache.close()
    assert Cache(root / ".assetbuild").result(fingerprint) is None


def rewrite_same_size_keep_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# Each case: how its project was stamped (key set?), the change, and the commands whose answers
# are compared with and without the stamp (read-only ones where the change makes work to do).
CASES: dict[str, tuple[bool, Callable[[Path], Any], list[tuple[str, ...]], bool]] = {
    "key-unset": (True, lambda root: None, [("build",), ("check",)], False),
    "key-set": (False, lambda root: None, [("build",), ("check",)], True),
    "provider-config": (True, lambda root: edit_line(root / "assetbuild.toml", 'api_key_env = "STAMP_TEST_KEY"',
                                                       'api_key_env = "STAMP_TEST_KEY"\npoll_interval_s = 0.5'),
                        [("check",), ("build",)], True),
    "output-deleted": (True, lambda root: (root / "assets" / "logo.png").unlink(), [("check",), ("check", "--json")],
                       True),
    "output-touched": (True, lambda root: os.utime(root / "assets" / "banner.png"), [("build",), ("check",)], True),
    "output-edited": (True, lambda root: (root / "assets" / "logo.png").write_bytes(png(64, 64, (1, 2, 3))),
                      [("check",), ("check", "--json")], True),
    "output-edited-mtime-kept": (True, lambda root: rewrite_same_size_keep_mtime(root / "assets" / "banner.png"),
                                 [("check",), ("build",)], True),
    "reference-edited": (True, lambda root: (root / "refs" / "palette.png").write_bytes(png(16, 16, (9, 9, 9))),
                         [("check",), ("check", "--json")], True),
    "cache-entry-removed": (True, drop_cache_entry, [("check",), ("build",)], True),
    "manifest-edited": (True, lambda root: edit_line(root / "assetbuild.toml", 'prompt = "a logo"',
                                                     'prompt = "a logo, edited"'), [("check",)], True),
    "lock-edited": (True, lambda root: edit_line(root / "assetbuild.lock", 'prompt = "a logo"',
                                                 'prompt = "a logo, edited"'), [("check",), ("check", "--json")], True),
    "temp-file-left": (True, lambda root: (root / "assets" / ".logo.png.x.assetbuild-tmp").write_bytes(b"half"),
                       [("check",)], True),
}


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One built project per case (and one left alone), each stamped by a full-path no-op
    `build` and `check` once its files were older than the racy window."""
    base = tmp_path_factory.mktemp("stamp")
    template = base / "template"
    template.mkdir()
    (template / "refs").mkdir()
    (template / "refs" / "palette.png").write_bytes(png(32, 32, (200, 30, 30)))
    with ArkEmulator(api_key=KEY).start() as ark:
        (template / "assetbuild.toml").write_text(MANIFEST.format(url=ark.base_url), encoding="utf-8")
        first = run(template, "build")
        assert first.code == 0 and "3 generated" in first.stdout, first
        roots = {}
        for name in ["noop", *CASES]:
            roots[name] = base / name
            shutil.copytree(template, roots[name])
        time.sleep(2.2)  # past the racy window: only now may a stamp be written
        answers = {}
        for name, root in roots.items():
            key = CASES[name][0] if name in CASES else True
            for args in (("build",), ("check",)):
                full = run(root, *args, key=key)
                assert full.code == 0 and not full.replayed, (name, full)
                answers[name, args] = full
            assert {p.name for p in (root / ".assetbuild").glob("stamp-*")} == {"stamp-build", "stamp-check"}
        yield {"roots": roots, "answers": answers}


def test_a_true_noop_is_answered_from_the_stamp_with_the_same_text(stamped):
    root = stamped["roots"]["noop"]
    for args in (("build",), ("check",), ("build", "-j", "8", "-q"), ("-q", "check")):
        again = run(root, *args)
        assert again.replayed, args
        command = "build" if "build" in args else "check"
        assert (again.code, again.stdout, again.stderr) == (0, stamped["answers"]["noop", (command,)].stdout, ""), args
    assert run(root, "build").stdout == "build: 0 generated, 0 restored, 0 derived, 3 up to date, 0 failed, " \
                                        "0 blocked; cost $0.00\n"
    # --json has stamps of its own: the first full path writes one, the next is replayed
    full = run(root, "build", "--json")
    assert not full.replayed and full.code == 0
    again = run(root, "build", "--json")
    assert again.replayed and (again.code, again.stdout) == (0, full.stdout)
    # targets, -v and --force always take the full path
    for args in (("build", "logo"), ("build", "-v"), ("-v", "check"), ("build", "--offline"), ("check", "x")):
        assert not run(root, *args).replayed, args


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_takes_the_full_path_and_gives_the_answer_of_no_stamp(stamped, case):
    root = stamped["roots"][case]
    _, change, commands, key = CASES[case]
    change(root)
    for args in commands:
        with_stamp = run(root, *args, key=key)
        assert not with_stamp.replayed, (case, args)
        forget_stamps(root)
        without = run(root, *args, key=key)
        assert (with_stamp.code, with_stamp.stdout, with_stamp.stderr) == (without.code, without.stdout, without.stderr)
    if case == "output-deleted":
        assert "stale" in with_stamp.stdout and with_stamp.code == 1
    if case == "temp-file-left":
        assert run(root, "build", key=key).code == 0
        assert not (root / "assets" / ".logo.png.x.assetbuild-tmp").exists()  # the full path swept it


def test_another_build_running_is_still_refused(stamped):
    root = stamped["roots"]["noop"]
    assert run(root, "build").replayed
    with open(root / "assetbuild.toml", "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = run(root, "build")
        check = run(root, "check")  # check takes no build lock: still answered
    assert not held.replayed and held.code == 2 and "another assetbuild build is running" in held.stderr
    assert check.replayed and check.code == 0


def test_variant_of_accepts_only_what_cannot_change_a_noop():
    assert variant_of(["build"]) == "build"
    assert variant_of(["-q", "build", "-j", "8", "--keep-going", "--yes"]) == "build"
    assert variant_of(["build", "--jobs=3", "--json"]) == "build-json"
    assert variant_of(["build", "-j16"]) == "build"
    assert variant_of(["check", "--json", "-q"]) == "check-json"
    for argv in ([], ["plan"], ["build", "hero"], ["build", "-j", "0"], ["build", "-j"], ["build", "-j", "65"],
                 ["build", "--force"], ["build", "--offline"], ["build", "--provider", "local"], ["-v", "build"],
                 ["build", "-v"], ["-C", "x", "build"], ["-f", "web.toml", "build"], ["check", "-j", "2"],
                 ["build", "--max-cost", "1"], ["build", "--"], ["build", "--json=1"]):
        assert variant_of(argv) is None, argv
