"""Collapse guard: a sharp, simultaneous drop of chosen and rejected per-token log-probs.

The paper's collapse signature (symmetric REDI / DPO at high learning rates): the log-probs of
*both* the chosen and the rejected responses fall sharply together while accuracy drops and the
update norm surges. Per-step values are noisy (every step sees different pairs), so the guard
compares window means: at step ``t`` with window ``w``

    drop_x = mean(x[t-2w+1 .. t-w]) - mean(x[t-w+1 .. t])      for x in {chosen, rejected}

and flags the step when ``drop_chosen >= drop`` and ``drop_rejected >= drop`` (nats/token).
A falling rejected log-prob alone is the intended effect of the negative term and is not flagged.

That guard misses slow collapses (issue 15: symmetric REDI fell from 22.4 % to 7.4 % held-out
while its chosen log-prob fell -0.06 -> -0.28 and the rejected one was too noisy to fall
"together"). :func:`assess` judges a finished (or running) run from its smoothed chosen
log-prob *and* its evaluation curve; the report and ``redi status`` use it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


class CollapseDetector:
    def __init__(self, window: int, drop: float):
        self.window = int(window)
        self.drop = float(drop)
        self._chosen: deque[float] = deque(maxlen=2 * self.window)
        self._rejected: deque[float] = deque(maxlen=2 * self.window)

    def update(self, chosen: float, rejected: float) -> bool:
        """Add one step's mean per-token log-probs; True when this step is flagged."""
        self._chosen.append(float(chosen))
        self._rejected.append(float(rejected))
        if len(self._chosen) < 2 * self.window:
            return False
        return self._fell(self._chosen) and self._fell(self._rejected)

    def _fell(self, values: deque) -> bool:
        v = list(values)
        before = sum(v[: self.window]) / self.window
        after = sum(v[self.window :]) / self.window
        if not (math.isfinite(before) and math.isfinite(after)):
            return False
        return before - after >= self.drop


# ----------------------------------------------------------------------------------------------
# Run-level assessment: training signals (smoothed) + the evaluation curve (issue 15)

RULE_TEXT = (
    "A stage-2 run is flagged **collapsed** when (a) its chosen per-token log-prob, smoothed with "
    "a running median over {span} steps (robust to single wild batches), ends at least {chosen_drop:g} nats/token "
    "below its level over the first {span} steps (and stays there to the last step), and (b) its "
    "held-out accuracy at a later checkpoint is below its peak (step 0 = the start model "
    "included) by more than {sem_factor:g} combined SEMs; or when the in-training guard fired "
    "(chosen and rejected per-token log-probs both falling together, `collapse.window`/"
    "`collapse.drop`). One of (a) or (b) alone is reported as **suspect**. The rejected "
    "log-prob (noisy per batch, and meant to fall) and the update norm (it decays with the "
    "learning-rate schedule) are not used."
)


@dataclass(frozen=True)
class CollapseRule:
    """Thresholds of :func:`assess` (defaults chosen so that the issue-15 run is caught:
    chosen -0.06 -> -0.28 nats/token while held-out accuracy fell 22.4 % -> 7.4 %)."""

    span: int = 10  # running-median window (steps) of the chosen per-token log-prob; also the baseline window
    chosen_drop: float = 0.1  # nats/token the smoothed chosen log-prob must fall below its start
    sem_factor: float = 2.0  # accuracy drop from the peak, in combined SEMs

    def text(self) -> str:
        return RULE_TEXT.format(span=self.span, chosen_drop=self.chosen_drop, sem_factor=self.sem_factor)


@dataclass
class Assessment:
    """Outcome of :func:`assess` for one run. ``verdict``: collapse | suspect | stable | unknown."""

    verdict: str
    step: int | None = None  # first step of the evidence (training signal, else eval drop)
    chosen_start: float | None = None  # mean raw chosen per-token log-prob over the first span
    chosen_end: float | None = None  # smoothed chosen per-token log-prob at the last step
    chosen_step: int | None = None  # first step of the final, persistent excursion below the bar
    guard_step: int | None = None  # first step the in-training guard flagged
    peak: tuple | None = None  # (step, pass@1, sem)
    drop: tuple | None = None  # first (step, pass@1, sem) significantly below the peak
    reasons: list = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return self.verdict == "collapse"


def running_median(values: list[float], span: int) -> list[float]:
    """Median of the last ``span`` finite values at each position (NaN before the first)."""
    import statistics

    window: deque = deque(maxlen=max(1, int(span)))
    out = []
    for v in values:
        if v is not None and math.isfinite(float(v)):
            window.append(float(v))
        out.append(statistics.median(window) if window else float("nan"))
    return out


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def assess(records: list[dict] | None, curve: list[tuple] | None, rule: CollapseRule = CollapseRule()) -> Assessment:
    """Collapse verdict of one run (rule: :data:`RULE_TEXT`).

    ``records``: the run's ``metrics.jsonl`` rows (dicts with ``step``, ``chosen_logp_per_token``
    and, optionally, ``collapse_flag``); ``curve``: ``(step, pass@1, sem)`` of its evaluated
    checkpoints on the held-out benchmark, step 0 = the start model (sem may be None). Either may
    be empty/None; with neither the verdict is ``unknown``.
    """
    out = Assessment("unknown")
    records = sorted((r for r in records or [] if _finite(r.get("step"))), key=lambda r: int(r["step"]))
    train_signal = False
    rows = [r for r in records if _finite(r.get("chosen_logp_per_token"))]
    if rows:
        steps = [int(r["step"]) for r in rows]
        chosen = [float(r["chosen_logp_per_token"]) for r in rows]
        head = chosen[: rule.span]
        out.chosen_start = sum(head) / len(head)
        smooth = running_median(chosen, rule.span)
        out.chosen_end = smooth[-1]
        bar = out.chosen_start - rule.chosen_drop
        if len(rows) > rule.span and smooth[-1] <= bar:
            first = len(smooth) - 1
            while first > 0 and smooth[first - 1] <= bar:
                first -= 1
            out.chosen_step = steps[first]
            train_signal = True
            out.reasons.append(
                f"smoothed chosen per-token log-prob {out.chosen_start:.3f} -> {out.chosen_end:.3f} "
                f"(below {bar:.3f} from step {out.chosen_step})"
            )
    guard = [int(r["step"]) for r in records if r.get("collapse_flag")]
    if guard:
        out.guard_step = guard[0]
        out.reasons.append(f"in-training guard flagged step {out.guard_step}")

    eval_signal = False
    points = sorted((int(s), float(v), None if not _finite(e) else float(e)) for s, v, e in (curve or []) if _finite(v))
    if points:
        out.peak = max(points, key=lambda p: (p[1], -p[0]))
        for p in points:
            if p[0] <= out.peak[0]:
                continue
            combined = math.sqrt((out.peak[2] or 0.0) ** 2 + (p[2] or 0.0) ** 2)
            if out.peak[1] - p[1] > rule.sem_factor * combined:
                out.drop = p
                eval_signal = True
                out.reasons.append(
                    f"held-out accuracy {100 * out.peak[1]:.1f}% (step {out.peak[0]}) -> "
                    f"{100 * p[1]:.1f}% (step {p[0]}), more than {rule.sem_factor:g} combined SEMs"
                )
                break
    if out.guard_step is not None or (train_signal and eval_signal):
        out.verdict = "collapse"
    elif train_signal or eval_signal:
        out.verdict = "suspect"
    elif rows or points:
        out.verdict = "stable"
    candidates = [s for s in (out.guard_step, out.chosen_step, out.drop[0] if out.drop else None) if s is not None]
    out.step = min(candidates) if candidates else None
    return out
