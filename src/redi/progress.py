"""Progress lines for long jobs, written to the job's log at a sane rate.

A job (one process) has one rate limit, however many reporters it starts: a line is logged when
no progress line of the job was logged in the last ``interval_s`` seconds (so the job's first
update), and when a reporter that has already spoken finishes; never a carriage return, so log
files stay greppable. A job that evaluates several checkpoints and benchmarks, each with its own
generation and verification reporter, thus writes one line per ``interval_s`` rather than a
first and a last line per evaluation (each evaluation's result has its own line). Example::

    generation sft/step-26/synthetic: 384/800 samples (48.0%), 12.5 samples/s, 1534 tokens/s,
    elapsed 0:00:31, ETA 0:00:33

(one line in the log; wrapped here).

Used by training (``redi.train.trainer``), generation (``redi.eval.run``) and verification
(``redi.verify``); the backends report batches through them, not with lines of their own.
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


class RateLimit:
    """When a job last logged a progress line (``None``: never). One per process
    (:data:`JOB`): every :class:`Progress` of the job shares it."""

    def __init__(self) -> None:
        self.last: float | None = None

    def due(self, now: float, interval_s: float) -> bool:
        return self.last is None or now - self.last >= interval_s


#: the rate limit of this process' job
JOB = RateLimit()


class Progress:
    """Counts ``done`` of ``total`` units; :meth:`update` logs at most once per ``interval_s``
    seconds of the job (``limit``, shared by the job's reporters), plus a last line when this
    reporter has logged before and finishes.

    ``extra`` counters (e.g. tokens) are summed and reported as rates. ``start_done`` is work
    already done before this session (a resume): it counts towards done/total, not towards rates.
    ``clock`` gives seconds (``time.monotonic``).
    """

    def __init__(self, what: str, total: int, unit: str, *, logger: logging.Logger | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, start_done: int = 0, clock=time.monotonic,
                 limit: RateLimit | None = None):  # fmt: skip
        self.what, self.total, self.unit = what, int(total), unit
        self.log = logger or logging.getLogger("redi.progress")
        self.interval_s = float(interval_s)
        self.clock = clock
        self.limit = JOB if limit is None else limit
        self.start = clock()
        self.start_done = self.done = int(start_done)
        self.extra: dict[str, float] = {}
        self.lines = 0

    def update(self, n: int = 1, *, force: bool = False, note: str = "", **extra: float) -> str | None:
        """Add ``n`` units (and ``extra`` counters); returns the line when one was logged."""
        self.done += int(n)
        for k, v in extra.items():
            self.extra[k] = self.extra.get(k, 0.0) + float(v)
        now = self.clock()
        finished = self.done >= self.total and self.lines > 0
        if not (force or finished or self.limit.due(now, self.interval_s)):
            return None
        self.limit.last = now
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
