"""Keeping the cyclic garbage collector out of the way of loading and planning.

Loading a project and planning it make tens of thousands of objects (nodes, lock entries,
decisions) that all stay alive: the collector would only scan them again and again, and
then once more in full when it is turned back on. :func:`paused` turns it off for such a
phase and restores it. A whole-process command (the CLI sets :data:`freeze_after`) also
moves what the phase made into the permanent generation (``gc.freeze()``), so the collector
never scans it again; a library caller keeps the ordinary behaviour.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

freeze_after = False  # set by the CLI's main(): one command is the whole process


@contextmanager
def paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze_after:
            gc.freeze()
        if enabled:
            gc.enable()
