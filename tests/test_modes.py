"""Outputs and the lock get the usual mode (0o666 & ~umask), not a temp file's 0600, so a
web server or a shared folder can read them. The umask is read without changing it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assetbuild.store.files import current_umask, file_mode, umask_from_status, write_atomic

MANIFEST = """\
[project]
provider = "local"

[defaults]
size = "64x64"

[assets.logo]
prompt = "a logo"

[assets.banner]
prompt = "a banner with the logo"
references = ["@logo"]
output = "web/banner.png"

[assets.logo-mono]
from = "@logo"
steps = [{ op = "grayscale" }]
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664)])
def test_outputs_and_the_lock_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, expected: int) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "assetbuild.toml").write_text(MANIFEST, encoding="utf-8")
    env = {**os.environ, "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache")}
    script = f"umask {umask:03o} && exec {sys.executable} -m assetbuild build"
    res = subprocess.run(["sh", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    written = [root / "assetbuild.lock", root / "assets/logo.png", root / "assets/web/banner.png",
               root / "assets/logo-mono.png"]
    assert {str(p.relative_to(root)): oct(mode(p)) for p in written} == \
        {str(p.relative_to(root)): oct(expected) for p in written}
    # a rebuild that rewrites an output (here: restored from the cache) keeps the mode
    (root / "assets/logo.png").unlink()
    res = subprocess.run(["sh", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert mode(root / "assets/logo.png") == expected


def test_write_atomic_gives_0666_minus_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.bin"
    write_atomic(target, b"x")
    assert mode(target) == 0o666 & ~current_umask() == file_mode()
    assert mode(target) != 0o600 or current_umask() == 0o066


def test_the_umask_is_read_from_proc_status() -> None:
    assert umask_from_status("Name:\tpython\nUmask:\t0027\nState:\tR\n") == 0o027
    assert umask_from_status("Name:\tpython\n") is None  # a kernel before 4.7: the import-time value
    assert umask_from_status("Umask:\tjunk\n") is None


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_the_umask_is_known_in_a_fresh_process_and_left_as_it_was(umask: int) -> None:
    code = textwrap.dedent("""
        import os
        from assetbuild.store import files
        print(oct(files.current_umask()), oct(files._IMPORT_UMASK), oct(os.umask(0)))
    """)
    res = subprocess.run(["sh", "-c", f"umask {umask:03o} && exec {sys.executable} -c '{code}'"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [oct(umask)] * 3
