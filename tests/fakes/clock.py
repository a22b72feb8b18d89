"""A fake clock: sleep advances time at once, so backoff and rate limits cost no wall time."""

from __future__ import annotations

import datetime as _dt
import threading


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self._t = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._t += seconds

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Like :meth:`sleep` (time jumps at once), unless ``event`` is already set."""
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()

    def now(self) -> _dt.datetime:
        return _dt.datetime(2026, 11, 21, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=self.monotonic())
