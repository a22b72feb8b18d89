"""spec/layout.py on its own: which path names a manifest may use, and the disk checks that
keep every read and write inside the project (symlinks, a file where a folder should be,
anything but a file where a reference should be). Each problem is one line with its key."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from assetbuild.errors import ManifestError
from assetbuild.spec.layout import (MAX_NAME_BYTES, folder_problems, name_problem, project_path, reference_problem,
                                    under)
from assetbuild.spec.manifest import parse_manifest
from assetbuild.store.files import kind_of

MANIFEST = '[project]\nprovider = "local"\noutput_dir = "out"\n\n[assets.a]\nprompt = "x"\noutput = "a.png"\n'


@pytest.fixture
def loaded(tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "assetbuild.toml").write_text(MANIFEST)
    return parse_manifest(MANIFEST, root / "assetbuild.toml")


def test_name_problems_say_what_to_do():
    assert name_problem("out/hero.png") is None
    assert name_problem("out/a\tb.png") == "contains the control character '\\t'; use printable characters"
    long_name = "x" * (MAX_NAME_BYTES + 1)
    assert name_problem(f"out/{long_name}.png").startswith("has a name of 260 bytes (")
    assert name_problem("é" * 125 + ".png") is None  # bytes count, not characters: 254 bytes
    assert name_problem("é" * 126 + ".png").startswith("has a name of 256 bytes")
    assert name_problem("/".join(["d" * 200] * 21)) == "is longer than 4,000 bytes; use a shorter path"


@pytest.mark.parametrize("text, rel", [
    ("out/a.png", "out/a.png"), ("./out//a.png", "out/a.png"), ("out/x/../a.png", "out/a.png"),
    ("out\\a.png", "out/a.png"),
])
def test_project_path_folds_a_path_to_posix_inside_the_project(loaded, text, rel):
    assert project_path(loaded, text, "assets", "a", "output") == rel


@pytest.mark.parametrize("text, message", [
    ("/etc/passwd", "path '/etc/passwd' is absolute; use a path relative to the manifest"),
    ("C:/x.png", "path 'C:/x.png' is absolute"),
    ("../x.png", "path '../x.png' leaves the project; keep files under "),
    ("out/../../x.png", "leaves the project"),
    ("out/..", "path 'out/..' is the project folder itself"),
    ("out/\x01.png", "contains the control character '\\x01'"),
])
def test_project_path_refuses_with_the_key(loaded, text, message):
    with pytest.raises(ManifestError) as exc:
        project_path(loaded, text, "assets", "a", "output")
    assert message in str(exc.value) and exc.value.key == "assets.a.output" and exc.value.line == 7


def test_under_is_by_whole_folder_names():
    assert under("out/a.png", "out") and under("out/x/a.png", "out") and under("a.png", ".")
    assert not under("outside/a.png", "out") and not under("out", "out")


def test_reference_problems(loaded, tmp_path):
    root = loaded.root
    (root / "brand").mkdir()
    (root / "brand" / "logo.png").write_bytes(b"png")
    assert reference_problem(loaded, "brand/logo.png") is None
    assert reference_problem(loaded, "brand/none.png") == \
        "reference file brand/none.png does not exist; add it or fix the path"
    assert reference_problem(loaded, "brand") == \
        "reference brand is a folder, not a file; point references at image files"
    (tmp_path / "secret.png").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.png", root / "brand" / "leak.png")
    problem = reference_problem(loaded, "brand/leak.png")
    assert problem is not None and problem.startswith("reference brand/leak.png resolves to ")
    assert problem.endswith("outside the project (through a symlink); copy the file into the project")
    os.symlink(root / "brand" / "logo.png", root / "brand" / "alias.png")
    assert reference_problem(loaded, "brand/alias.png") is None  # a link that stays inside is a file like any


def test_a_fifo_is_named_for_what_it_is(loaded):
    os.mkfifo(loaded.root / "pipe.png")
    assert reference_problem(loaded, "pipe.png") == \
        "reference pipe.png is a FIFO, not a file; point references at image files"


def test_kind_of_names_each_kind_of_non_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        assert kind_of(os.stat(tmp_path / "sock").st_mode) == "a socket"
    finally:
        sock.close()
    assert kind_of(os.stat(tmp_path).st_mode) == "a folder"
    assert kind_of(os.stat(tmp_path / "fifo").st_mode) == "a FIFO"
    assert kind_of(os.stat("/dev/null").st_mode) == "a device"


def test_an_output_folder_that_escapes_through_a_symlink_blames_the_link(loaded, tmp_path):
    root = loaded.root
    (root / "out").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "out" / "web")
    (problem,) = folder_problems(loaded, {"out/web": ("assets", "a", "output"), "out": ("assets", "a", "output")})
    assert f"out/web resolves to {elsewhere}, outside the project (out/web is a symlink)" in str(problem)
    assert "make out/web a real folder" in str(problem) and problem.key == "assets.a.output"


def test_a_linked_output_dir_is_blamed_on_project_output_dir(loaded, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, loaded.root / "out")
    (problem,) = folder_problems(loaded, {"out/web": ("assets", "a", "output")})
    assert problem.key == "project.output_dir" and "(out is a symlink)" in str(problem)


def test_a_file_in_the_way_of_an_output_folder(loaded):
    root = loaded.root
    (root / "out").mkdir()
    (root / "out" / "icons").write_bytes(b"a file")
    (problem,) = folder_problems(loaded, {"out/icons/small": ("assets", "a", "output")})
    assert "out/icons is a file, but outputs go inside it as a folder (out/icons/small); remove it or change " \
           "the output" in str(problem) and problem.key == "assets.a.output"
    (root / "out" / "icons").unlink()
    (root / "out").rmdir()
    (root / "out").write_bytes(b"a file named like the output folder")
    (problem,) = folder_problems(loaded, {"out/icons": ("assets", "a", "output")})
    assert "output_dir out is a file, not a folder" in str(problem) and problem.key == "project.output_dir"


def test_folders_not_made_yet_are_fine(loaded):
    assert list(folder_problems(loaded, {"out/new/deeper": ("assets", "a", "output")})) == []
