"""What a whole-process command (the CLI sets ``PROCESS.whole_process``) tunes in the Python
process, and a library caller keeps as it is.

* The cyclic garbage collector. Loading a project and planning it make tens of thousands of
  objects (nodes, lock entries, decisions) that all stay alive: the collector would only scan
  them again and again, and then once more in full when it is turned back on. :func:`paused`
  turns it off for such a phase and restores it; in a whole process it also moves what the
  phase made into the permanent generation (``gc.freeze()``), so it is never scanned again.
* glibc's malloc (:func:`big_blocks_returned`). glibc raises its mmap threshold each time a
  big block is freed, up to 32 MB; after that every decoded image (12 MB of pixels at 2K) is
  carved from the heap of the thread that decoded it and stays there when freed, so a build
  at -j 16 holds sixteen threads' worth of freed images (about 500 MB). A fixed threshold
  keeps each block of 1 MB or more a mapping of its own, given back when freed.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_MMAP_THRESHOLD = 1 << 20


class Tuning:
    """What one process tunes: whether it is a whole-process command (the CLI's main() says
    so), and whether malloc was tuned already. :data:`PROCESS` is this process's."""

    def __init__(self, whole_process: bool = False):
        self.whole_process = whole_process
        self.done = False  # malloc tuned (at most once)
        self._lock = threading.Lock()

    @contextmanager
    def paused(self) -> Iterator[None]:
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if self.whole_process:
                gc.freeze()
            if enabled:
                gc.enable()

    def big_blocks_returned(self) -> None:
        """Before images are decoded: in a whole process on glibc, blocks of 1 MB or more are
        mapped on their own and given back when freed (see the module's docstring). Once."""
        if self.done or not self.whole_process:
            return
        with self._lock:
            if self.done:
                return
            self.done = True
            if not sys.platform.startswith("linux"):
                return
            try:
                import ctypes

                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError, ImportError):  # no libc to ask: nothing to tune
                return
            m_mmap_threshold = -3  # glibc's malloc.h; musl's mallopt accepts and ignores it
            mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(_MMAP_THRESHOLD))


PROCESS = Tuning()  # this process's (the CLI's main() sets whole_process)
paused = PROCESS.paused
big_blocks_returned = PROCESS.big_blocks_returned
