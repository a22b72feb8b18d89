"""`assetbuild watch`: build, then build again whenever the manifest or a file it reads
changes (references, a ``from`` file, overlay images), with watchfiles.

The folders of those files are watched (not the files: an editor that saves by renaming a
new file into place would lose a watch on the old one), and a change counts only if it is
one of the files. Changes are debounced: a batch ends once no change came for ``step_ms``
(or after ``debounce_ms`` at most), and then one build runs. Builds run one after another
in this thread, each inside the project's build lock like any `build`; a change made while
one runs is picked up when it ends. What a build is (plan, budget, question, progress) is
the caller's ``build`` callable: the CLI passes the very code `build` runs, so the budget
rules are the same. A build that fails (a bad manifest, a failed asset, over budget) is
reported through ``on_error`` and watching goes on; Ctrl-C ends it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import AssetbuildError, BuildInterrupted


def watched_files(manifest: Path, targets: Iterable[str] = ()) -> set[Path]:
    """The manifest and every file the targets (all assets if none) and their upstream read.
    A manifest that does not load gives the manifest alone (the build reports why)."""
    from ..spec.blueprint import Blueprint

    files = {manifest.resolve()}
    try:
        blueprint = Blueprint.load(manifest, memo_dir=None)
        selected = blueprint.select(targets)
    except AssetbuildError:
        return files
    root = blueprint.root
    for nid in selected:
        for ref in blueprint.nodes[nid].references:
            if ref.path is not None:
                files.add((root / ref.path).resolve())
    return files


class Watcher:
    """Builds once, then on every batch of changes. ``run(max_builds=N)`` returns after N
    builds (a test's bound); ``stop`` (a threading.Event) ends it from another thread;
    ``ready`` is set while a watch is in place and no build runs (a test edits files then)."""

    def __init__(self, manifest: Path, build: Callable[[], Any], *, targets: Iterable[str] = (),
                 echo: Callable[[str], None] = print, on_error: Callable[[AssetbuildError], None] | None = None,
                 debounce_ms: int = 1600, step_ms: int = 200, stop: threading.Event | None = None):
        self.manifest = Path(manifest)
        self.build = build
        self.targets = tuple(targets)
        self.echo = echo
        self.on_error = on_error or (lambda exc: echo(f"error: {exc}"))
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.stop = stop or threading.Event()
        self.ready = threading.Event()
        self.builds = 0
        self.files: set[Path] = set()

    def _build_once(self) -> None:
        self.ready.clear()
        self.builds += 1
        try:
            self.build()
        except BuildInterrupted:
            raise
        except AssetbuildError as exc:
            self.on_error(exc)
        self.files = watched_files(self.manifest, self.targets)

    def _wanted(self, change: Any, path: str) -> bool:
        return Path(path) in self.files

    def run(self, max_builds: int | None = None) -> int:
        """Watch until ``stop`` is set (or Ctrl-C), or ``max_builds`` builds ran; the number
        of builds run."""
        import watchfiles

        def enough() -> bool:
            return self.stop.is_set() or (max_builds is not None and self.builds >= max_builds)

        self._build_once()
        while not enough():
            files = set(self.files)
            folders = sorted({f.parent for f in files if f.parent.is_dir()})
            self.echo(f"watch: waiting for changes to {len(files)} file(s) (Ctrl-C to stop)")
            for changes in watchfiles.watch(*folders, watch_filter=self._wanted, debounce=self.debounce_ms,
                                            step=self.step_ms, stop_event=self.stop, rust_timeout=200,
                                            yield_on_timeout=True, recursive=False):
                if not changes:  # a timeout: the watch is in place
                    self.ready.set()
                    continue
                root = self.manifest.resolve().parent
                names = sorted({_shown(Path(p), root) for _, p in changes})
                self.echo(f"watch: {', '.join(names)} changed; building")
                self._build_once()
                if enough() or self.files != files:  # the files to watch changed: watch them instead
                    break
                self.echo(f"watch: waiting for changes to {len(files)} file(s) (Ctrl-C to stop)")
        return self.builds


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
