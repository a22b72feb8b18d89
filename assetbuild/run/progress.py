"""What a build shows while it runs.

Piped, in CI (``CI`` set) or on a dumb terminal: :class:`Lines`, one plain line per event,
the same bytes as ever (``generated  hero  [13/14]``). On a terminal: :class:`LiveDisplay`,
a live region drawn with rich below those same lines: done/total counting only the work to
do (not the up-to-date assets), each asset in flight with its state (generate, restore,
derive; a host's job as submitted, polling, downloading), elapsed, ETA and money spent.

The executor's events drive both; neither decides anything. The CLI picks one with
:func:`live_wanted` and echoes what :class:`Lines` returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Mapping, Sequence

from ..money import usd
from .executor import Event
from ..plan.planner import Action, Decision


def live_wanted(stream: IO[str], env: Mapping[str, str]) -> bool:
    """A live display only for a person at a terminal: ``stream`` is a TTY, ``CI`` is not set
    (to anything but ``""``, ``0`` or ``false``) and ``TERM`` is not ``dumb``."""
    if env.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False
    if env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class Lines:
    """The plain one-line events of a build. ``line(event)`` is the text to print, or None.
    ``total`` is every asset of the plan (up-to-date ones included), as the running count
    ``[n/total]`` has always said; ``quiet`` keeps only problems (failed, blocked, warnings,
    fallbacks, an interrupt); ``verbose`` adds up-to-date assets and why each one runs."""

    def __init__(self, *, verbose: bool = False, quiet: bool = False, total: int = 0):
        self.verbose = verbose
        self.quiet = quiet
        self.total = total
        self.finished = 0

    def line(self, event: Event) -> str | None:
        if event.kind == "done":
            self.finished += 1
        if event.kind == "start":
            if self.verbose:
                return f"  {event.status:<10} {event.node}  ({event.detail})"
            return None
        if event.kind == "phase":  # only the live display shows a host job's state
            if event.status == "waiting" and self.verbose:
                return f"  waiting for {event.node} (another machine is generating it)"
            return None
        if event.kind == "fallback":
            return f"  fallback   {event.node}: {event.detail}"
        if event.kind == "warning":
            return f"warning    {event.node}: {event.detail}" if event.node else f"warning: {event.detail}"
        if event.kind == "interrupted":
            waiting = f"; waiting for what is in flight: {event.detail} (Ctrl-C again: stop now)" if event.detail else ""
            return f"interrupted: starting nothing new{waiting}"
        if event.status in ("failed", "blocked"):
            return f"{event.status:<10} {event.node}: {event.detail}"
        if self.quiet:
            return None
        if event.status != "up-to-date" or self.verbose:
            return f"{event.status:<10} {event.node}  [{self.finished}/{self.total}]"
        return None


@dataclass
class InFlight:
    action: str  # restore | derive | generate
    since: float
    phase: str = ""  # submitted | polling | downloading (a host's job), when the provider says


@dataclass
class State:
    """What the live display draws; updated from events (from the worker threads too)."""

    work: set[str]  # the ids planned to do something (not up to date)
    estimated_usd: float = 0.0
    done: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    in_flight: dict[str, InFlight] = field(default_factory=dict)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LiveDisplay:
    """The live region of a build on a terminal, below the plain lines (printed above it by
    rich as they come). Use as a context manager around the build; ``handle`` every event.

    ``console`` is a rich Console (tests pass one writing to a StringIO with
    ``force_terminal=True``); ``now`` is a monotonic clock in seconds; ``rows`` is how many
    assets in flight are listed before "and N more"."""

    def __init__(self, console: Any, decisions: Sequence[Decision], lines: Lines, *,
                 now: Callable[[], float] = time.monotonic, rows: int = 8, refresh_per_second: float = 8):
        self.console = console
        self.lines = lines
        self.now = now
        self.rows = rows
        self.state = State({d.id for d in decisions if d.action is not Action.UP_TO_DATE},
                           round(sum(d.cost_usd for d in decisions), 6))
        self.started = now()
        self._mutex = threading.Lock()
        self._refresh = refresh_per_second
        self._live: Any = None

    def __enter__(self) -> "LiveDisplay":
        from rich.live import Live

        self.started = self.now()
        self._live = Live(console=self.console, get_renderable=self.render, transient=True,
                          refresh_per_second=self._refresh, redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def handle(self, event: Event) -> None:
        with self._mutex:
            line = self.lines.line(event)
            s = self.state
            if event.kind == "start":
                s.in_flight[event.node] = InFlight(event.status, self.now())
            elif event.kind == "phase" and event.node in s.in_flight:
                s.in_flight[event.node].phase = (f"waiting for {event.node} (another machine is generating it)"
                                                 if event.status == "waiting" else event.status)
            elif event.kind == "done":
                s.in_flight.pop(event.node, None)
                s.spent_usd = round(s.spent_usd + event.cost_usd, 6)
                if event.node in s.work:
                    s.done += 1
                    s.failed += event.status in ("failed", "blocked")
        if line is not None:
            from rich.text import Text

            self.console.print(Text(line), soft_wrap=True)  # Text: "[1/2]" is no markup
        if self._live is not None:
            self._live.refresh()

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the pace so far (work done per second, jobs in parallel included);
        None before anything is done."""
        s = self.state
        left = len(s.work) - s.done
        if left <= 0:
            return 0.0
        if s.done == 0 or elapsed <= 0:
            return None
        return elapsed / s.done * left

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._mutex:
            s = self.state
            now = self.now()
            elapsed = now - self.started
            eta = self.eta(elapsed)
            total = len(s.work)
            facts = [f"{s.done}/{total} done", f"{len(s.in_flight)} running",
                     f"spent {usd(s.spent_usd)}/~{usd(s.estimated_usd)}", f"{_clock(elapsed)} elapsed",
                     f"ETA {'--:--' if eta is None else _clock(eta)}"]
            if s.failed:
                facts.insert(2, f"{s.failed} failed/blocked")
            head = Table.grid(padding=(0, 1))
            head.add_column(no_wrap=True, min_width=10)
            head.add_column(no_wrap=True, overflow="ellipsis")
            head.add_row(ProgressBar(total=max(total, 1), completed=s.done if total else 1, width=10),
                         Text(" · ".join(facts)))
            rows = Table.grid(padding=(0, 2))
            for _ in range(3):
                rows.add_column(no_wrap=True, overflow="ellipsis")
            rows.add_column(no_wrap=True)
            flying = sorted(s.in_flight.items(), key=lambda item: item[1].since)
            for nid, f in flying[: self.rows]:
                rows.add_row(Text(f"  {f.action}", style="cyan"), Text(nid), Text(f.phase or "", style="yellow"),
                             Text(_clock(now - f.since), style="dim"))
            parts: list[Any] = [head, rows]
            if len(flying) > self.rows:
                parts.append(Text(f"  ... and {len(flying) - self.rows} more", style="dim"))
            return Group(*parts)
