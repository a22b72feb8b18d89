"""Writing files so a crash never leaves half of one (temp file in the same folder, fsync,
then ``os.replace``), sweeping the temp files a killed write left, and the
one-build-at-a-time guard."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import ManifestError, UserError

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
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
