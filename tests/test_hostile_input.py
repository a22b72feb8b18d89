"""Issue 6, bad input: a corpus of broken manifests, locks and reference files in tests/data,
each driven through the real CLI with plan, build and check. Every one must exit 2 with one
line per problem (file:line or key, and what to do), no traceback, and nothing written.

Each manifest carries its expectation in its leading comments::

    # expect: <fragment> | <fragment>     one per error line, in order
    # given: file|dir|fifo|png PATH       something on disk first
    # given: symlink PATH -> OUTSIDE[/x]   a symlink out of the project

Locks and reference files have a table, ``expectations.txt``, beside them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ProjectDir, png

DATA = Path(__file__).parent / "data"
COMMANDS = (("plan",), ("build", "--yes"), ("check",))
LOCK_MANIFEST = '[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\n'
REFERENCE_MANIFEST = '[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\nreferences = ["ref.png"]\n'


def _expectations(folder: Path) -> dict[str, list[str]]:
    table = {}
    for line in (folder / "expectations.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, fragments = line.partition(" | ")
            table[name.strip()] = [f.strip() for f in fragments.split(" | ")]
    return table


def _header(path: Path) -> tuple[list[list[str]], list[str]]:
    expects, given = [], []
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", "replace")
        if line.startswith("# expect: "):
            expects.append([f.strip() for f in line[len("# expect: "):].split(" | ")])
        elif line.startswith("# given: "):
            given.append(line[len("# given: "):])
        else:
            break
    return expects, given


def tree(root: Path) -> dict[str, tuple]:
    """Everything under ``root``: path -> (kind, size, mtime, sha256) (symlinks not followed)."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        state[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state


def arrange(project: ProjectDir, given: list[str], outside: Path) -> None:
    root = project.root
    for item in given:
        kind, _, rest = item.partition(" ")
        if kind == "symlink":
            name, _, target = rest.partition(" -> ")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target.replace("OUTSIDE", str(outside)), root / name)
            continue
        path = root / rest
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_text("in the way\n")
        elif kind == "dir":
            path.mkdir(exist_ok=True)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "png":
            path.write_bytes(png())
        else:
            raise AssertionError(f"unknown given: {item}")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "x.png").write_bytes(png(color=(1, 2, 3)))
    return folder


def assert_refused(project: ProjectDir, expects: list[list[str]], label: str) -> None:
    before = tree(project.root)
    for command in COMMANDS:
        res = project.run(*command)
        assert res.exit_code == 2, (label, command, res.stderr, res.output)
        assert "Traceback" not in res.stderr + res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == len(expects), (label, command, lines)
        for line, fragments in zip(lines, expects):
            assert line.startswith("error: "), (label, line)
            for fragment in fragments:
                assert fragment in line, (label, command, fragment, line)
        assert project.calls.total == 0
    assert tree(project.root) == before, f"{label}: the project changed"
    assert not (project.root / "assetbuild.lock").exists() or (project.root / "assetbuild.lock").is_file()


MANIFESTS = sorted(p.name for p in (DATA / "manifests").iterdir())
LOCKS = _expectations(DATA / "locks")
REFERENCES = _expectations(DATA / "references")


def test_the_corpus_is_big_enough_and_every_file_has_an_expectation():
    assert len(MANIFESTS) + len(LOCKS) + len(REFERENCES) >= 45
    assert all(_header(DATA / "manifests" / name)[0] for name in MANIFESTS)
    assert set(LOCKS) == {p.name for p in (DATA / "locks").iterdir()} - {"expectations.txt"}
    assert set(REFERENCES) == {p.name for p in (DATA / "references").iterdir()} - {"expectations.txt"}


@pytest.mark.parametrize("name", MANIFESTS)
def test_broken_manifest(project, outside, name):
    source = DATA / "manifests" / name
    expects, given = _header(source)
    arrange(project, given, outside)
    shutil.copyfile(source, project.root / "assetbuild.toml")
    outside_before = tree(outside)
    assert_refused(project, expects, name)
    assert tree(outside) == outside_before
    assert not (project.root / "assetbuild.lock").exists()


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_broken_lock(project, name):
    project.manifest(LOCK_MANIFEST)
    shutil.copyfile(DATA / "locks" / name, project.root / "assetbuild.lock")
    assert_refused(project, [LOCKS[name]], name)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_broken_reference(project, name):
    project.manifest(REFERENCE_MANIFEST)
    shutil.copyfile(DATA / "references" / name, project.root / "ref.png")
    expects = [["assetbuild.toml:5: assets.a.references: ", *REFERENCES[name]]]
    assert_refused(project, expects, name)
    assert not (project.root / "assetbuild.lock").exists()


@pytest.mark.parametrize("kind, name", [("manifests", "three-bad-keys-in-three-assets.toml"),
                                        ("manifests", "output-nul.toml"),
                                        ("manifests", "matrix-10-to-the-8.toml"),
                                        ("locks", "not-utf8.lock"),
                                        ("references", "over-pillow-warning-10000x10000.png")])
def test_a_real_process_prints_the_lines_and_no_traceback(tmp_path, kind, name):
    root = tmp_path / "proj"
    root.mkdir()
    if kind == "manifests":
        shutil.copyfile(DATA / kind / name, root / "assetbuild.toml")
        expects = _header(DATA / kind / name)[0]
    elif kind == "locks":
        (root / "assetbuild.toml").write_text(LOCK_MANIFEST)
        shutil.copyfile(DATA / kind / name, root / "assetbuild.lock")
        expects = [LOCKS[name]]
    else:
        (root / "assetbuild.toml").write_text(REFERENCE_MANIFEST)
        shutil.copyfile(DATA / kind / name, root / "ref.png")
        expects = [REFERENCES[name]]
    before = tree(root)
    env = {**os.environ, "ASSETBUILD_CACHE_DIR": str(tmp_path / "cache")}
    for command in ("plan", "build", "check"):
        res = subprocess.run([sys.executable, "-m", "assetbuild", command], cwd=root, env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and res.stdout == ""
        lines = res.stderr.strip().splitlines()
        assert len(lines) == len(expects), lines
        for line, fragments in zip(lines, expects):
            assert all(f in line for f in fragments), (fragments, line)
    assert tree(root) == before
