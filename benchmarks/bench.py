"""What the benchmark scripts share: the environment measured processes run in, timing a
whole process, min/median statistics, a plain table, and the figures each script reports
(printed as "target ... <= X: met/NOT met" and, with ``--figures FILE``, written as JSON
for ``run_all.py``).

The measured processes run with ``PYTHONDONTWRITEBYTECODE`` removed from their
environment: the shell these benchmarks were written in sets it, which makes every run
compile every module again, while users have bytecode caches.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]  # the repository (for tests.fakes)
PYTHON = sys.executable


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured process: ours, without PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


def assetbuild(*args: str) -> list[str]:
    return [PYTHON, "-m", "assetbuild", *args]


@dataclass
class Run:
    """One whole process: wall time, its own CPU time (user + sys, from wait4) and peak RSS."""

    wall_s: float
    cpu_s: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_timed(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], *, ok_codes: tuple[int, ...] = (0,)) -> Run:
    """Run ``cmd`` to its end: wall time from start to exit, and the child's own rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode,
                  out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))
    if run.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(cmd)} exited {run.returncode} in {cwd}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return run


@dataclass
class Sample:
    """Repeated measurements of one thing."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    def __str__(self) -> str:
        return f"{self.min:.3f} / {self.median:.3f}"


def kilo(n: int) -> str:
    """1000 -> "1k", 500 -> "0.5k"."""
    return f"{n / 1000:g}k"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> str:
    """A plain text table: the first ``left`` columns aligned left, the others right."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Figure:
    name: str  # what was measured, e.g. "no-op build, 1k assets (median)"
    value: float
    unit: str  # "s", "ms", "MB", "x", "%", "files"
    command: str  # how to reproduce it
    target: str = ""  # e.g. "<= 0.15"; empty for a figure without a target
    met: bool | None = None

    def verdict(self) -> str:
        if not self.target:
            return ""
        return f"target {self.name} {self.target} {self.unit}: {'met' if self.met else 'NOT met'} " \
               f"({self.value:.3f} {self.unit})"


class Report:
    """The figures of one script."""

    def __init__(self, script: str):
        self.script = script
        self.figures: list[Figure] = []

    def add(self, name: str, value: float, unit: str, command: str, *, at_most: float | None = None,
            at_least: float | None = None) -> Figure:
        target, met = "", None
        if at_most is not None:
            target, met = f"<= {at_most:g}", value <= at_most
        elif at_least is not None:
            target, met = f">= {at_least:g}", value >= at_least
        figure = Figure(name, value, unit, command, target, met)
        self.figures.append(figure)
        return figure

    def print_verdicts(self) -> None:
        lines = [f.verdict() for f in self.figures if f.target]
        if lines:
            print()
            print("\n".join(lines))

    def dump(self, path: Path | None) -> None:
        if path is not None:
            path.write_text(json.dumps({"script": self.script, "figures": [asdict(f) for f in self.figures]}, indent=1))


def machine() -> str:
    """One line about the machine: cores and load when the run started."""
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start; " \
           f"Python {sys.version.split()[0]}"
