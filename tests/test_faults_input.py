"""Issue 6, bad input beyond the corpus: files of the wrong kind where outputs should be,
symlinks, the per-project file-hash memo, reference checks kept in the memo, the limits, and
several manifest errors at once through the library API."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from assetbuild.api import Project
from assetbuild.errors import ManifestError, ManifestErrors, UserError
from assetbuild.store.hashing import FileHasher
from assetbuild.store.lockfile import Lockfile
from tests.conftest import png

ONE = '[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\n'
WITH_REF = ONE + 'references = ["ref.png"]\n'


def age(path: Path, seconds: int = 10) -> None:
    """Move a file's mtime into the past, beyond the racy window of the hash memo."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns - seconds * 10**9, st.st_mtime_ns - seconds * 10**9))


# -- non-regular files where files should be ---------------------------------------------------

def test_check_on_a_fifo_output_says_what_to_do_instead_of_blocking(project, tmp_path):
    project.manifest(ONE)
    assert project.run("build").exit_code == 0
    output = project.root / "assets" / "a.png"
    output.unlink()
    os.mkfifo(output)
    env = {**os.environ, **project.env}
    res = subprocess.run([sys.executable, "-m", "assetbuild", "check"], cwd=project.root, env=env,
                         capture_output=True, text=True, timeout=30)  # before the fix: blocked forever
    assert res.returncode == 2
    assert res.stderr.strip() == "error: assets/a.png is a FIFO, not a file; remove it"


def test_an_output_replaced_by_a_folder_is_one_line(project):
    project.manifest(ONE)
    assert project.run("build").exit_code == 0
    output = project.root / "assets" / "a.png"
    output.unlink()
    output.mkdir()
    for command in ("plan", "build", "check"):
        res = project.run(command)
        assert res.exit_code == 2 and res.stderr == "error: assets/a.png is a folder, not a file; remove it\n"


def test_file_hasher_never_opens_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    hasher = FileHasher(tmp_path, None)
    with pytest.raises(UserError, match="pipe is a FIFO, not a file; remove it"):
        hasher.hash("pipe")
    assert hasher.hashed == 0


# -- symlinks ------------------------------------------------------------------------------------

def test_a_symlinked_output_dir_inside_the_project_is_fine(project):
    (project.root / "real").mkdir()
    os.symlink("real", project.root / "assets")
    project.manifest(ONE)
    assert project.run("build").exit_code == 0
    assert (project.root / "real" / "a.png").is_file()


def test_a_build_never_writes_through_a_symlink_out_of_the_project(project, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, project.root / "assets")
    project.manifest(ONE)
    res = project.run("build")
    assert res.exit_code == 2 and "outside the project (assets is a symlink)" in res.stderr
    assert list(outside.iterdir()) == []


# -- item 11: one memo per project ----------------------------------------------------------------

def _same_size_pngs() -> tuple[bytes, bytes]:
    first = png(color=(10, 20, 30))
    for blue in range(31, 255):
        other = png(color=(10, 20, blue))
        if len(other) == len(first):
            return first, other
    raise AssertionError("no two same-size PNGs")


def test_two_projects_sharing_a_cache_dir_never_share_file_hashes(tmp_path):
    cache = {"ASSETBUILD_CACHE_DIR": str(tmp_path / "shared-cache")}
    one, two = _same_size_pngs()
    roots = []
    for name, data in (("p1", one), ("p2", two)):
        root = tmp_path / name
        root.mkdir()
        (root / "assetbuild.toml").write_text(WITH_REF)
        (root / "ref.png").write_bytes(data)
        os.utime(root / "ref.png", ns=(10**18, 10**18))  # same mtime, same size, other bytes
        roots.append(root)
    first = Project.load(roots[0], env=cache)
    assert first.build().to_json()["generated"] == 1
    second = Project.load(roots[1], env=cache)
    report = second.build().to_json()
    assert report["generated"] == 1 and report["restored"] == 0  # before the fix: restored p1's image
    lock = Lockfile.load(roots[1] / "assetbuild.lock")
    import hashlib

    assert lock.entries["a"].inputs["references"][0]["sha256"] == hashlib.sha256(two).hexdigest()
    assert second.hasher.hashed >= 1


def test_the_lock_memo_is_never_another_projects(tmp_path):
    memo = tmp_path / "cache" / "lock.json"
    paths = []
    for name, aid in (("p1", "aa"), ("p2", "bb")):
        path = tmp_path / name / "assetbuild.lock"
        path.parent.mkdir()
        path.write_text(f'version = 1\n[assets.{aid}]\nfingerprint = "x"\n')
        os.utime(path, ns=(10**18, 10**18))
        paths.append(path)
    assert set(Lockfile.load(paths[0], memo=memo).entries) == {"aa"}
    assert memo.exists()
    assert set(Lockfile.load(paths[1], memo=memo).entries) == {"bb"}


# -- references are checked at plan time, from the memo when unchanged ---------------------------

def test_an_unchanged_reference_is_checked_without_being_read_again(project):
    ref = project.write("ref.png", png())
    age(ref)
    project.manifest(WITH_REF)
    first = Project.load(project.root, env=project.env)
    first.plan()
    assert first.hasher.hashed == 1
    again = Project.load(project.root, env=project.env)
    again.plan()
    assert again.hasher.hashed == 0
    data = png()
    ref.write_bytes(data[: len(data) // 2])  # truncated in place: new size, so re-read and re-checked
    third = Project.load(project.root, env=project.env)
    with pytest.raises(ManifestError, match="ref.png is a truncated or corrupt PNG image"):
        third.plan()


def test_an_image_over_the_pixel_limit_is_decoded_once_the_limit_allows_it(project):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, format="PNG")
    data = buf.getvalue()
    ref = project.write("ref.png", data[: len(data) // 2])  # cut inside the pixel data
    age(ref)
    project.manifest("[limits]\nmax_reference_pixels = 100\n" + WITH_REF)
    with pytest.raises(ManifestError, match="64x64 = 4,096 pixels, more than the limit of 100"):
        Project.load(project.root, env=project.env).plan()
    project.manifest("[limits]\nmax_reference_pixels = 5000\n" + WITH_REF)  # facts in the memo: never decoded
    with pytest.raises(ManifestError, match="truncated or corrupt PNG"):
        Project.load(project.root, env=project.env).plan()


def test_a_bad_reference_fails_plan_not_the_build(project):
    project.write("ref.png", b"")
    project.manifest(WITH_REF)
    res = project.run("plan")
    assert res.exit_code == 2
    assert res.stderr == ("error: assetbuild.toml:5: assets.a.references: ref.png is not an image (0 bytes); "
                          "use a PNG, JPEG or WebP file\n")


# -- limits ----------------------------------------------------------------------------------------

def test_max_variants_is_configurable(project):
    body = '[defaults]\nsize = "32x32"\n[assets.s]\nprompt = "{c}{f}"\nmatrix = { c = ["r", "g"], f = ["x", "y"] }\n'
    project.manifest("[limits]\nmax_variants = 3\n" + body)
    assert project.run("plan").exit_code == 2
    project.manifest("[limits]\nmax_variants = 4\n" + body)
    res = project.run("plan", "--json")
    assert res.exit_code == 0 and len(json.loads(res.output)["actions"]) == 4


def test_a_huge_matrix_is_refused_before_it_is_expanded(project):
    values = "[" + ", ".join(str(i) for i in range(100)) + "]"
    project.manifest(f'[assets.a]\nprompt = "x"\nmatrix = {{ a = {values}, b = {values}, c = {values}, d = {values} }}\n')
    started = time.process_time()
    with pytest.raises(ManifestError, match="100,000,000 variants"):
        Project.load(project.root, env=project.env)
    assert time.process_time() - started < 5  # 10^8 nodes would take minutes and gigabytes


# -- several independent errors at once ---------------------------------------------------------

def test_independent_errors_come_together_through_the_api(project):
    project.manifest('[assets.a]\nprompt = "x"\nsise = "1K"\n[assets.b]\nprompt = "y"\ncount = 99\n'
                     '[assets.c]\nprompt = "z"\nwatermark = "no"\n')
    with pytest.raises(ManifestErrors) as info:
        Project.load(project.root, env=project.env)
    errors = info.value.errors
    assert [(e.line, e.key) for e in errors] == [(3, "assets.a.sise"), (6, "assets.b.count"),
                                                 (9, "assets.c.watermark")]
    assert str(info.value).splitlines() == [str(e) for e in errors]
    assert isinstance(info.value, ManifestError) and info.value.line == 3


def test_one_asset_with_a_thousand_bad_variants_says_it_once(project):
    values = "[" + ", ".join(f'"v{i}"' for i in range(1000)) + "]"
    project.manifest(f'[assets.a]\nprompt = "{{v}} {{nope}}"\nmatrix = {{ v = {values} }}\n')
    res = project.run("plan")
    assert res.exit_code == 2
    assert len(res.stderr.splitlines()) == 1 and "unknown placeholder {nope}" in res.stderr


def test_an_error_quoting_a_newline_stays_one_line(project):
    project.manifest('[assets.a]\nprompt = "x"\n"bad\\nkey" = 1\n')
    res = project.run("plan")
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1 and "bad\\nkey" in res.stderr
