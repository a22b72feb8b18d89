"""Where files may be: the rules for path names, and the disk checks that keep every read
and write inside the project.

A path in the manifest is relative to it, stays inside the project once ``..`` is folded,
and names a file the OS can create (no control characters, each name at most 255 bytes).
Outputs stay under ``output_dir``. On disk, symlinks are resolved once per distinct output
folder and once per reference file (never per output file, so a no-op build stays cheap):
a folder or reference that resolves outside the project is refused, and so is a file where
an output folder should be, or anything but a regular file where a reference should be.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol

from ..errors import ManifestError, clip
from ..store.files import kind_of

if TYPE_CHECKING:  # plan-time checks need no models
    from .models import Manifest


class LoadedManifest(Protocol):
    """What the checks read of a loaded manifest (manifest.LoadedManifest is one; manifest.py
    uses the name rules here, so this module does not import it back)."""

    manifest: Manifest
    root: Path

    def error(self, message: str, *path: str) -> ManifestError: ...

MAX_NAME_BYTES = 255  # one file or folder name, on every common file system
MAX_PATH_BYTES = 4000  # PATH_MAX is 4096, and the project's own path comes in front


WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                              *(f"lpt{i}" for i in range(1, 10))})


def portable_problem(name: str) -> str | None:
    """Why one file or folder name cannot be held on Windows (a reserved device name, with any
    extension, or a name ending in a dot or a space), or None. A project is portable: the same
    files check out on every OS."""
    if name.split(".", 1)[0].lower() in WINDOWS_RESERVED:
        return (f"has the name {name!r}, which Windows reserves (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any "
                "extension); rename it")
    if name.endswith(".") and name not in (".", ".."):
        return f"has the name {name!r}, which ends in a dot (Windows cannot hold it); remove the dot"
    if name.endswith(" "):
        return f"has the name {name!r}, which ends in a space (Windows cannot hold it); remove the space"
    return None


def name_problem(rel: str) -> str | None:
    """Why the relative posix path ``rel`` cannot be created as a file on every OS, or None."""
    if not rel.isprintable():
        bad = next(c for c in rel if not c.isprintable())
        return f"contains the control character {bad!r}; use printable characters"
    if len(rel.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES:,} bytes; use a shorter path"
    for part in rel.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_NAME_BYTES:
            return f"has a name of {size:,} bytes ({clip(part, 40)}); names are at most {MAX_NAME_BYTES} bytes"
        problem = portable_problem(part)
        if problem:
            return problem
    return None


def project_path(loaded: LoadedManifest, text: str, *where: str) -> str:
    """A posix path relative to the project root; an error if it is absolute, leaves the
    project, or cannot be a file name."""
    shown = clip(text)
    pure = text.replace("\\", "/")
    if pure.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise loaded.error(f"path {shown} is absolute; use a path relative to the manifest", *where)
    rel = posixpath.normpath(pure)
    if rel == ".." or rel.startswith("../"):
        raise loaded.error(f"path {shown} leaves the project; keep files under {loaded.root}", *where)
    if rel == ".":
        raise loaded.error(f"path {shown} is the project folder itself", *where)
    problem = name_problem(rel)
    if problem:
        raise loaded.error(f"path {shown} {problem}", *where)
    return rel


def under(rel: str, folder: str) -> bool:
    """Whether the relative posix path ``rel`` is inside ``folder`` ("." is the project)."""
    return folder == "." or rel.startswith(folder + "/")


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def reference_problem(loaded: LoadedManifest, rel: str) -> str | None:
    """Why the reference file ``rel`` cannot be read as one, or None. One stat and one
    realpath: call it once per distinct reference path."""
    root = str(loaded.root)
    path = os.path.join(root, rel)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return f"reference file {rel} does not exist; add it or fix the path"
    except OSError as exc:
        return f"reference file {rel} cannot be read ({exc.strerror}); fix it or fix the path"
    if not stat.S_ISREG(st.st_mode):
        return f"reference {rel} is {kind_of(st.st_mode)}, not a file; point references at image files"
    real = os.path.realpath(path)
    if not _inside(real, root):
        return (f"reference {rel} resolves to {real}, outside the project (through a symlink); "
                "copy the file into the project")
    return None


def folder_problems(loaded: LoadedManifest, folders: dict[str, tuple[str, ...]]) -> Iterable[ManifestError]:
    """Errors for output folders (relative, each with the manifest key that puts an output
    there) that resolve outside the project or have a file in the way."""
    root = str(loaded.root)
    out_dir = posixpath.normpath(loaded.manifest.project.output_dir.replace("\\", "/"))
    for folder, where in folders.items():
        path = os.path.join(root, folder)
        real = os.path.realpath(path)
        if not _inside(real, root):
            link = _first_symlink(root, folder)
            key = ("project", "output_dir") if link is not None and not under(link, out_dir) else where
            yield loaded.error(f"{folder} resolves to {real}, outside the project"
                               f"{f' ({link} is a symlink)' if link else ''}; outputs must stay in the project: "
                               f"make {link or folder} a real folder", *key)
            continue
        blocker = _file_in_the_way(real)
        if blocker is not None:
            rel = os.path.relpath(blocker, root).replace(os.sep, "/")
            if rel == out_dir or under(out_dir, rel):
                yield loaded.error(f"output_dir {rel} is a file, not a folder; remove it or set "
                                   "project.output_dir to a folder", "project", "output_dir")
            else:
                yield loaded.error(f"{rel} is a file, but outputs go inside it as a folder ({folder}); "
                                   "remove it or change the output", *where)


def _first_symlink(root: str, folder: str) -> str | None:
    parts = folder.split("/")
    for end in range(1, len(parts) + 1):
        rel = "/".join(parts[:end])
        if os.path.islink(os.path.join(root, rel)):
            return rel
    return None


def _file_in_the_way(real: str) -> str | None:
    """The deepest existing ancestor of the folder ``real`` (itself included) if it is not a
    folder, else None."""
    path = real
    while True:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
            continue
        except OSError:
            return None  # unreadable: the write will say why
        return None if stat.S_ISDIR(st.st_mode) else path
