"""Progress lines for long jobs, written to the job's log at a sane rate (issue 15).

One line per ``interval_s`` seconds at most (plus the first and the last update), never a
carriage return: log files stay greppable. Example::

    generation sft/step-26/synthetic: 384/800 samples (48.0%), 12.5 samples/s, 1534 tokens/s,
    elapsed 0:00:31, ETA 0:00:33

(one line in the log; wrapped here).

Used by training (``redi.train.trainer``), generation (``redi.eval.run``) and verification.
"""

from __future__ import annotations

import logging
import time

DEFAULT_INTERVAL_S = 30.0


def hms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts ``done`` of ``total`` units; :meth:`update` logs when ``interval_s`` has passed.

    ``extra`` counters (e.g. tokens) are summed and reported as rates. ``start_done`` is work
    already done before this session (a resume): it counts towards done/total, not towards rates.
    """

    def __init__(self, what: str, total: int, unit: str, *, logger: logging.Logger | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, start_done: int = 0, clock=time.monotonic):
        self.what, self.total, self.unit = what, int(total), unit
        self.log = logger or logging.getLogger("redi.progress")
        self.interval_s = float(interval_s)
        self.clock = clock
        self.start = clock()
        self.start_done = self.done = int(start_done)
        self.extra: dict[str, float] = {}
        self._last = None
        self.lines = 0

    def update(self, n: int = 1, *, force: bool = False, note: str = "", **extra: float) -> str | None:
        """Add ``n`` units (and ``extra`` counters); returns the line when one was logged."""
        self.done += int(n)
        for k, v in extra.items():
            self.extra[k] = self.extra.get(k, 0.0) + float(v)
        now = self.clock()
        due = self._last is None or now - self._last >= self.interval_s or self.done >= self.total
        if not (due or force):
            return None
        self._last = now
        line = self.line(now, note)
        self.log.info(line)
        self.lines += 1
        return line

    def line(self, now: float | None = None, note: str = "") -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        session = self.done - self.start_done
        rate = session / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        parts = [f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.1f}%)", f"{rate:.3g} {self.unit}/s"]
        parts += [f"{v / elapsed:.0f} {k}/s" for k, v in self.extra.items()]
        eta = (self.total - self.done) / rate if rate > 0 else None
        parts += [f"elapsed {hms(elapsed)}", f"ETA {hms(eta if self.done < self.total else 0)}"]
        if note:
            parts.append(note)
        return ", ".join(parts)
