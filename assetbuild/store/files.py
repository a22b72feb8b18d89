"""Writing files so a crash never leaves half of one (temp file in the same folder, fsync,
then ``os.replace``), sweeping the temp files a killed write left, the one-build-at-a-time
guard, and the one rule for removing a file (:class:`DeletionRule`)."""

from __future__ import annotations

import hashlib
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

from ..errors import ManifestError, UserError

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
PROTECTED_NAMES = frozenset({".git", ".hg", ".svn", ".assetbuild"})  # never an output's folder or name
TEMP_SUFFIX = ".assetbuild-tmp"  # `assetbuild init` git-ignores it; a build sweeps what a kill left


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words ("a folder", "a FIFO", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class BuildLocked(UserError):
    """Another build of the same project is running."""


def _umask_at_import() -> int:
    """The umask, read the only portable way (set it, then put it back): done once, at
    import, before any build thread exists, so no other thread can create a file meanwhile."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_at_import()


def umask_from_status(text: str) -> int | None:
    """The ``Umask:`` line of /proc/self/status (Linux 4.7+), or None."""
    for line in text.splitlines():
        if line.startswith("Umask:"):
            try:
                return int(line.split(":", 1)[1].strip(), 8)
            except ValueError:
                return None
    return None


def current_umask() -> int:
    """The process's umask without changing it (no race with threads creating files): from
    /proc/self/status where there is one, else as it was at import."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            found = umask_from_status(fh.read())
    except OSError:
        found = None
    return _IMPORT_UMASK if found is None else found


def file_mode() -> int:
    """The mode a file the user owns gets, as ``open()`` would create it: 0o666 & ~umask
    (0644 under umask 022), not the 0600 of a temp file."""
    return 0o666 & ~current_umask()


def write_atomic(path: Path, data: bytes) -> None:
    import tempfile  # here: a no-op build writes nothing, and tempfile imports random and shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; the user's files get the usual mode
                os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_manifest(path: Path) -> tuple[bytes, str]:
    """The manifest's bytes and text, never blocking on a FIFO nor reading a huge file."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError("is not a regular file; pass the manifest file with -f", file=str(path))
        if st.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"is {st.st_size:,} bytes, more than a manifest should be "
                                f"({MAX_MANIFEST_BYTES:,}); split the project", file=str(path))
        data = path.read_bytes()
        return data, data.decode("utf-8")
    except FileNotFoundError:
        raise ManifestError("no manifest found; run `assetbuild init` or pass -f", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                            "save it as UTF-8", file=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", file=str(path)) from exc


def sweep_temp_files(folders: Iterable[Path]) -> int:
    """Remove the temp files killed writes left in ``folders`` (call it holding the build
    lock, so no write of this project is under way). Returns how many were removed."""
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (the manifest) for a build, so two builds of one
    project never interleave their lock writes. Raises BuildLocked if another holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, no guard
        yield
        return
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildLocked(f"another assetbuild build is running in {path.parent}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class DeletionRule:
    """The one rule for removing a file, whatever asks (prune after a build, ``clean``,
    ``clean --git-revs``): assetbuild removes only a regular file under ``output_dir`` whose
    every path component is reached inside the project without a symlink, that no manifest in
    the folder claims or reads, and whose bytes the local cache index says assetbuild wrote
    at that path. A lock only names candidates: a path and bytes it says were written. Every
    other file is kept, with the reason.

    ``kept``: path -> why, for what the loaded manifest claims or reads (and the manifest and
    lock themselves). ``others``: called once, when a file passed every other check: path ->
    why, for what the other manifests in the folder claim or read (key ``"*"``: every path,
    when one of them cannot be read). ``wrote(path, sha)``: the local cache index's record.
    ``hash(path)``: the file's sha256 (memoised by size and mtime), None if it is not there."""

    root: Path  # resolved
    output_dir: str  # posix, relative to root; "." is the project
    kept: Mapping[str, str]
    others: Callable[[], Mapping[str, str]]
    wrote: Callable[[str, str], bool]
    hash: Callable[[str], "str | None"]
    _others: "Mapping[str, str] | None" = None

    def why_kept(self, rel: str, sha: str) -> str | None:
        """None if ``rel`` (as a lock recorded it, with bytes ``sha``) may be removed; "" if
        there is nothing there to remove; else why it stays."""
        problem = path_problem(rel)
        if problem:
            return problem
        if not (self.output_dir == "." or rel.startswith(self.output_dir.rstrip("/") + "/")):
            return f"not under output_dir {self.output_dir}"
        if rel in self.kept:
            return self.kept[rel]
        problem = walk_problem(self.root, rel)
        if problem is not None:
            return problem
        on_disk = self.hash(rel)
        if on_disk is None:
            return ""
        if on_disk != sha:
            return "changed since assetbuild wrote it (kept; delete it by hand if it is not wanted)"
        if not self.wrote(rel, sha):
            return ("not written here by assetbuild (the local cache has no record of it; a lock's word "
                    "is not enough): delete it by hand if it is not wanted")
        if self._others is None:
            self._others = self.others()
        return self._others.get(rel) or self._others.get("*")

    def remove(self, rel: str, sha: str, before: Callable[[bytes], object]) -> str | None:
        """Remove ``rel`` if :meth:`why_kept` allows it; ``before(data)`` runs first (the bytes
        go to the cache). Opened folder by folder without following a symlink (``O_NOFOLLOW``,
        ``dir_fd``), so a link swapped in after the check is not followed. Returns None if the
        file is gone, else why it stays."""
        why = self.why_kept(rel, sha)
        if why is not None:
            return why
        parts = rel.split("/")
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        if os.open not in os.supports_dir_fd or os.unlink not in os.supports_dir_fd or not nofollow:
            return self._remove_by_path(rel, sha, before)  # pragma: no cover - Windows
        opened: list[int] = []
        try:
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            opened.append(fd)
            for part in parts[:-1]:
                fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
                opened.append(fd)
            file_fd = os.open(parts[-1], os.O_RDONLY | nofollow, dir_fd=fd)
            with os.fdopen(file_fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    return "not a regular file"
                data = fh.read()
            if hashlib.sha256(data).hexdigest() != sha:
                return "changed since it was written"
            before(data)
            os.unlink(parts[-1], dir_fd=fd)
        except OSError as exc:
            return f"cannot remove it ({exc.strerror or exc})"
        finally:
            for fd in opened:
                os.close(fd)
        return None

    def _remove_by_path(self, rel: str, sha: str, before: Callable[[bytes], object]) -> str | None:
        path = self.root / rel
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                return "changed since it was written"
            before(data)
            os.unlink(path)
        except OSError as exc:
            return f"cannot remove it ({exc.strerror or exc})"
        return None


def walk_problem(root: Path, rel: str) -> str | None:
    """Each component of ``rel`` from ``root`` with lstat: "" if something is missing, why if a
    folder is a symlink (or not a folder) or the file is not a regular one with one name."""
    parts = rel.split("/")
    path = str(root)
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return ""
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        shown = "/".join(parts[:i + 1])
        last = i == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            return "is a symlink" if last else f"{shown} is a symlink"
        if not last and not stat.S_ISDIR(st.st_mode):
            return ""
        if last and not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if last and st.st_nlink > 1:
            return f"has {st.st_nlink} hard links (another name holds the same file)"
    return None


def read_inside(root: Path, rel: str) -> bytes:
    """The bytes of the regular file ``rel`` under ``root``, opened folder by folder without
    following a symlink (OSError ELOOP/ENOTDIR if one is in the way)."""
    parts = rel.split("/")
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if os.open not in os.supports_dir_fd or not nofollow:  # pragma: no cover - Windows
        return (root / rel).read_bytes()
    opened = [os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))]
    try:
        for part in parts[:-1]:
            opened.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=opened[-1]))
        with os.fdopen(os.open(parts[-1], os.O_RDONLY | nofollow, dir_fd=opened[-1]), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise IsADirectoryError(f"{rel} is not a regular file")
            return fh.read()
    finally:
        for fd in opened:
            os.close(fd)


def path_problem(rel: str) -> str | None:
    """Why ``rel`` (from a lock: data that may be hostile) is not a plain relative posix path
    inside the project that may name an output, or None."""
    if not rel or not rel.isprintable() or "\\" in rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return "not a relative path inside the project"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "not a normalised path inside the project"
    if any(part.lower() in PROTECTED_NAMES for part in parts):
        return "inside a folder assetbuild never writes outputs to (.git, .assetbuild)"
    return None
