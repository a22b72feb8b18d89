"""The whole-project stamp: a no-op ``build`` or ``check`` answered from one file, after one
``lstat`` per file it rests on, before click or any of the library is imported (ninja's
no-op: read the log, stat the files, say "no work to do").

A full ``build`` or ``check`` that found every asset up to date (no targets, nothing pruned,
no warning, no missing key) leaves a stamp in the cache folder, one per command variant
(``build``, ``build --json``, ``check``, ``check --json``): the exact text it printed, and
the identity (inode, size, mtime, ctime) of every file its answer rested on:

* the manifest, the lock, the lock's journal (an interrupted build's) and the project folder;
* every output and reference file, and each folder on their paths (a temp file a killed
  write left, a folder swapped for a link);
* the cache index (a cache entry removed), assetbuild's own modules and Pillow's (an
  upgrade);

and the settings that change decisions: which of the project's API-key variables are set,
every ``ASSETBUILD_*`` variable, the Python and assetbuild versions and which checkout of
assetbuild answers. :func:`replay` prints that text again only when all of it still
matches; anything off (a key set or unset, an output touched, edited or deleted, a reference
edited, the manifest or lock changed, the build lock held by another build) takes the full
path, which answers the usual way and, if it is a no-op again, writes a fresh stamp.

Trust is the same as FileHasher's mtime+size memo (STYLE rule 3: stat decides only whether
to look again), made stricter: inode and ctime too, so a file replaced or edited with its
mtime put back is seen; and no stamp is written while any of its files is younger than the
racy window, in which an edit could keep every one of those numbers. Symbolic links are not
stamped (a project with one always takes the full path).

This module imports nothing beyond os, sys and the builtin sha256 at the top: :func:`replay`
runs before everything else in the process (``assetbuild.__main__``, which prints its answer).
"""

from __future__ import annotations

import os
import sys

try:  # the builtin sha256: hashlib would load OpenSSL's _hashlib first, 4 ms of a 40 ms no-op
    from _sha256 import sha256  # Python <= 3.11
except ImportError:  # pragma: no cover - the module's name in 3.12+, else hashlib's
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment]

FORMAT = "assetbuild-stamp/1"
MANIFEST_NAME = "assetbuild.toml"  # the only manifest replay looks for (api.MANIFEST_NAME; remember() checks)
CACHE_DIR_ENV = "ASSETBUILD_CACHE_DIR"  # store.cache's; remember() writes no stamp where the two disagree
RACY_NS = 2_000_000_000  # hashing._RACY_S: a file changed this recently may change again unseen
VARIANTS = ("build", "build-json", "check", "check-json")

# The options replay accepts after the command: those that cannot change a no-op's answer.
_FLAGS = {"build": {"--json", "-q", "--quiet", "-k", "--keep-going", "-y", "--yes"},
          "check": {"--json", "-q", "--quiet"}}


def variant_of(argv: list[str]) -> str | None:
    """The stamp variant a command line asks for, or None when only the full path can answer
    it (targets, -v, -C, -f, --force, --provider, --offline, anything unknown)."""
    i = 0
    while i < len(argv) and argv[i] in ("-q", "--quiet"):
        i += 1
    if i >= len(argv) or argv[i] not in _FLAGS:
        return None
    command, json_out = argv[i], False
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if command == "build" and arg in ("-j", "--jobs"):
            if j + 1 >= len(rest) or not _jobs_ok(rest[j + 1]):
                return None
            j += 2
            continue
        if command == "build" and arg.startswith(("--jobs=", "-j")) and len(arg) > 2:
            if not _jobs_ok(arg[7:] if arg.startswith("--jobs=") else arg[2:]):
                return None
        elif arg not in _FLAGS[command]:
            return None
        json_out = json_out or arg == "--json"
        j += 1
    return f"{command}-json" if json_out else command


def _jobs_ok(value: str) -> bool:
    return value.isdigit() and 1 <= int(value) <= 64  # cli.JOBS: IntRange(1, 64)


def cache_dir(root: str, env: os._Environ[str] | dict[str, str]) -> str:
    """Where the stamp is: the cache folder store.cache.cache_dir names."""
    override = env.get(CACHE_DIR_ENV)
    return os.path.realpath(os.path.expanduser(override)) if override else os.path.join(root, ".assetbuild")


def _context(env: os._Environ[str] | dict[str, str], key_names: list[str]) -> str:
    from .. import __version__  # the package is imported already

    keys_set = [name for name in key_names if env.get(name, "").strip()]
    settings = sorted((k, v) for k, v in env.items() if k.startswith("ASSETBUILD_"))
    code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # which assetbuild (two checkouts differ)
    # Hashed: an ASSETBUILD_* value may be a secret (ASSETBUILD_REMOTE_SIGNING_KEY), and the
    # stamp is a file in the cache folder.
    text = repr((FORMAT, __version__, code, sys.version, sys.executable, keys_set, settings))
    return sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _identity(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _identities(paths: list[str]) -> str:
    parts = []
    append = parts.append
    lstat = os.lstat
    for path in paths:
        try:
            append(_identity(lstat(path)))
        except OSError:
            append("-")
    return " ".join(parts)


# -- answering from a stamp ---------------------------------------------------------------------

def replay(argv: list[str], env: os._Environ[str] | dict[str, str] | None = None) -> tuple[int, str] | None:
    """(exit code, what it printed) of the last no-op of this command, if its stamp still
    holds; else None: the full path must answer. Prints nothing (the entry point does)."""
    variant = variant_of(argv)
    if variant is None:
        return None
    env = os.environ if env is None else env
    try:
        root = os.getcwd()
        with open(os.path.join(cache_dir(root, env), f"stamp-{variant}"), encoding="utf-8") as fh:
            fields = fh.read().split("\0")
    except (OSError, ValueError):
        return None
    if len(fields) < 7 or fields[0] != FORMAT or fields[1] != root:
        return None
    key_names = fields[2].split("\n") if fields[2] else []
    if fields[3] != _context(env, key_names) or not fields[4].isdigit():
        return None
    if _identities_under(root, fields[7:]) != fields[6]:
        return None
    if variant.startswith("build") and _build_running(os.path.join(root, MANIFEST_NAME)):
        return None  # the full path says "another assetbuild build is running"
    return int(fields[4]), fields[5]


def _build_running(manifest: str) -> bool:
    """Another build holds the project's build lock (store.files.exclusive)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: builds take no lock
        return False
    try:
        with open(manifest, "rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except OSError:
        return True
    return False


# -- leaving one ----------------------------------------------------------------------------------

def key_variables(project: object) -> list[str]:
    """The API-key variables the project's providers read (each generating asset's provider
    and its fallbacks), asked of the providers themselves."""
    from ..plan.routing import calls_host

    routing = project.routing()  # type: ignore[attr-defined]
    names: dict[str, None] = {}
    for node in project.nodes.values():  # type: ignore[attr-defined]
        if not node.derived and calls_host(node):
            names.update(dict.fromkeys(routing.chain(node.provider)))
    found = {project.providers.get(name).key_env for name in names}  # type: ignore[attr-defined]
    return sorted(v for v in found if v)


def remember(project: object, variant: str, text: str, key_names: list[str], *, started_ns: int) -> bool:
    """Leave the stamp of a no-op that printed ``text`` (and exited 0) for ``variant``. Call it
    only when every asset was up to date and nothing else was said; ``started_ns`` is when the
    command started (before the project was read). Writes nothing (returns False) where replay
    would not find the same project, or a file changed within the racy window before the
    command started or since."""
    from ..store.files import write_atomic

    root = str(project.root)  # type: ignore[attr-defined]
    env = project.env  # type: ignore[attr-defined]
    manifest = project.manifest_path  # type: ignore[attr-defined]
    cache = project.cache.dir  # type: ignore[attr-defined]
    if (variant not in VARIANTS or manifest.name != MANIFEST_NAME or str(manifest.parent.resolve()) != root
            or str(cache) != cache_dir(root, env) or "\0" in text):
        return False
    files = _stamped_files(project, root, str(cache))
    identities = _settled_identities(root, files, started_ns)
    if identities is None:
        return False
    fields = [FORMAT, root, "\n".join(key_names), _context(env, key_names), "0", text, identities, *files]
    if any("\0" in f for f in fields):
        return False
    try:
        write_atomic(cache / f"stamp-{variant}", "\0".join(fields).encode("utf-8", "surrogatepass"))
    except (OSError, UnicodeError):
        return False
    return True


def _is_link(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISLNK(st.st_mode)


def _stamped_files(project: object, root: str, cache: str) -> list[str]:
    """Every file a no-op's answer rests on: project files relative to ``root`` (replay runs
    there), the rest absolute."""
    import importlib.util

    lock = project.lock  # type: ignore[attr-defined]
    rel = [MANIFEST_NAME, lock.path.name, "."]  # the lock is beside the manifest
    folders: dict[str, None] = {}
    for node in project.nodes.values():  # type: ignore[attr-defined]
        paths = [*node.outputs, *(ref.path for ref in node.references if ref.path is not None)]
        rel.extend(paths)
        for path in paths:
            folder = path.rpartition("/")[0]
            while folder and folder not in folders:
                folders[folder] = None
                folder = folder.rpartition("/")[0]
    rel.extend(folders)
    absolute = [os.path.join(cache, "index", "cache.db"), os.path.join(cache, "index")]
    if lock.journal is not None:
        absolute.append(str(lock.journal.path))
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder, subfolders, names in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        absolute.append(folder)  # a module added or removed
        absolute.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
    pillow = importlib.util.find_spec("PIL")
    if pillow is not None and pillow.origin:
        absolute.append(pillow.origin)
    return list(dict.fromkeys(rel)) + absolute


# -- the up-to-date record: the nodes a plan may take as up to date without deciding them ---------

UP_TO_DATE_FORMAT = "assetbuild-uptodate/1"


def _up_to_date_file(project: object) -> str:
    manifest = str(project.manifest_path.resolve())  # type: ignore[attr-defined]
    return os.path.join(str(project.cache.dir), f"uptodate-{sha256(manifest.encode()).hexdigest()[:16]}")  # type: ignore[attr-defined]


class UpToDate:
    """What the last full plan of the project found up to date: the ids of those nodes; the
    blueprint memo key of the manifest it planned, and where that blueprint was a memo's
    with some nodes changed (``Blueprint.changed_from``), that memo's key and those nodes
    with a digest of each one's record; the identity of every file a no-op stamp rests on
    but the manifest, the project folder and the cache index (the lock and its journal,
    every output and reference and their folders, assetbuild's and Pillow's modules); the
    ``ASSETBUILD_*`` settings and versions.

    An up-to-date decision rests on the node's blueprint record, its upstream's decisions,
    its lock entry and the bytes of its files, and on nothing else (no key, no price, no
    cache record where the outputs hold the bytes the lock recorded, the only ones
    recorded). So while all of those files keep their identities, a node whose record is
    the same in the manifest planned then and in this one, and whose upstream are all such
    nodes, is up to date again (planner.Planner.plan). Forced, rerolled and resumed nodes
    are decided as usual; ``plan -o`` decides every node."""

    def __init__(self, fields: list[str]):
        self.key = fields[3]
        self.ids = frozenset(fields[4].split("\n")) if fields[4] else frozenset()
        self._identities = fields[5]
        self.base = (fields[6], dict(line.rsplit(" ", 1) for line in fields[7].split("\n")) if fields[7] else {})
        self.files_from = fields[8]
        self._files = fields[9:]

    @classmethod
    def read(cls, project: object) -> "UpToDate | None":
        """The project's record, where its files still have the identities it wrote; else None."""
        env = project.env  # type: ignore[attr-defined]
        root = str(project.root)  # type: ignore[attr-defined]
        try:
            with open(_up_to_date_file(project), encoding="utf-8") as fh:
                fields = fh.read().split("\0")
        except (OSError, ValueError):
            return None
        if len(fields) < 9 or fields[0] != UP_TO_DATE_FORMAT or fields[1] != root or fields[2] != _context(env, []):
            return None
        if _identities_under(root, fields[9:]) != fields[5]:
            return None
        try:
            return cls(fields)
        except ValueError:  # a damaged record: as if there were none
            return None

    def proven(self, blueprint: object) -> frozenset[str]:
        """The node ids this record shows up to date in ``blueprint``: all of them where it
        is the manifest the record planned; else those whose record is the same in both (the
        blueprint was made from the record's manifest's memo and did not change it; or both
        were made from one memo, and neither changed it, or both changed it alike)."""
        key = blueprint.key  # type: ignore[attr-defined]
        changed_from = blueprint.changed_from  # type: ignore[attr-defined]
        if key is not None and key == self.key:
            return self.ids
        if changed_from is None:
            return frozenset()
        if changed_from[0] == self.key:
            return self.ids - changed_from[1].keys()
        if changed_from[0] == self.base[0]:  # both from one memo: the nodes either changed, unless alike
            ours, theirs = self.base[1], changed_from[1]
            return self.ids - {nid for nid in ours.keys() | theirs.keys() if ours.get(nid) != theirs.get(nid)}
        return frozenset()

    @staticmethod
    def write(project: object, ids: list[str], *, started_ns: int, earlier: "UpToDate | None" = None) -> bool:
        """Leave the record of a full plan of ``project.blueprint`` that found ``ids`` up to
        date. Writes nothing (returns False) where a file it rests on is a link, or changed
        within the racy window before the plan started or since. ``earlier``: the record this
        plan read (its files' identities were checked then; where the files are the same,
        they are not looked at again)."""
        from pathlib import Path

        from ..store.files import write_atomic

        blueprint = project.blueprint  # type: ignore[attr-defined]
        root = str(project.root)  # type: ignore[attr-defined]
        # Not the manifest (the memo key stands for it), the project folder (an editor saving the
        # manifest by a rename changes it: each output and reference is looked at by its own
        # path) nor the cache index (a plan that looks up a result opens it; an output whose
        # bytes only the cache vouches for is not recorded, Project._record_up_to_date).
        cache = str(project.cache.dir)  # type: ignore[attr-defined]
        index = os.path.join(cache, "index")
        if earlier is not None and blueprint.files_from is not None and blueprint.files_from == earlier.files_from:
            files = earlier._files  # the same nodes' files (no node decoded to list them again)
        else:
            files = [f for f in _stamped_files(project, root, cache)
                     if f not in (MANIFEST_NAME, ".") and not (f == index or f.startswith(index + os.sep))]
        if earlier is not None and earlier._files == files:
            identities = earlier._identities
        else:
            found = _settled_identities(root, files, started_ns)
            if found is None:
                return False
            identities = found
        base, changed = blueprint.changed_from or ("", {})
        fields = [UP_TO_DATE_FORMAT, root, _context(project.env, []), blueprint.key, "\n".join(ids),  # type: ignore[attr-defined]
                  identities, base, "\n".join(f"{nid} {digest}" for nid, digest in sorted(changed.items())),
                  blueprint.files_from or "", *files]
        if any("\0" in f for f in fields):
            return False
        try:
            write_atomic(Path(_up_to_date_file(project)), "\0".join(fields).encode("utf-8", "surrogatepass"))
        except (OSError, UnicodeError):
            return False
        return True


def _identities_under(root: str, paths: list[str]) -> str:
    """_identities of ``paths`` relative to ``root`` (absolute ones as they are), each
    looked up from an open ``root`` (no path joined per file) where the OS allows it."""
    fd = None
    if os.stat in os.supports_dir_fd:
        try:
            fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            fd = None
    if fd is None:  # (Windows)
        return _identities([os.path.join(root, p) for p in paths])
    parts = []
    append = parts.append
    stat = os.stat
    try:
        for path in paths:
            try:
                st = stat(path, dir_fd=fd, follow_symlinks=False)  # lstat
            except OSError:
                append("-")
                continue
            append(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")  # _identity, inline
    finally:
        os.close(fd)
    return " ".join(parts)


def _settled_identities(root: str, paths: list[str], started_ns: int) -> str | None:
    """The identities of ``paths`` (relative to ``root``), or None where one is a link,
    unreadable, or changed within the racy window before ``started_ns`` or since."""
    identities = []
    for path in paths:
        try:
            st = os.lstat(os.path.join(root, path))
        except FileNotFoundError:
            identities.append("-")
            continue
        except OSError:
            return None
        if _is_link(st) or max(st.st_mtime_ns, st.st_ctime_ns) > started_ns - RACY_NS:
            return None
        identities.append(_identity(st))
    return " ".join(identities)
