"""Collapse guard: a sharp, simultaneous drop of chosen and rejected per-token log-probs.

The paper's collapse signature (symmetric REDI / DPO at high learning rates): the log-probs of
*both* the chosen and the rejected responses fall sharply together while accuracy drops and the
update norm surges. Per-step values are noisy (every step sees different pairs), so the guard
compares window means: at step ``t`` with window ``w``

    drop_x = mean(x[t-2w+1 .. t-w]) - mean(x[t-w+1 .. t])      for x in {chosen, rejected}

and flags the step when ``drop_chosen >= drop`` and ``drop_rejected >= drop`` (nats/token).
A falling rejected log-prob alone is the intended effect of the negative term and is not flagged.

That guard misses slow collapses (symmetric REDI fell from 22.4 % to 7.4 % held-out
while its chosen log-prob fell -0.06 -> -0.28 and the rejected one was too noisy to fall
"together"). :func:`assess` judges a finished (or running) run from its smoothed chosen
log-prob *and* its evaluation curve (accuracy drops judged by the paired problem-level
difference, :func:`redi.eval.metrics.paired_difference`); :func:`assess_run` reads a run's
files for it, and the report, ``redi status`` and the model cards all use that one reading.
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
# Run-level assessment: training signals (smoothed) + the evaluation curve

#: The one vocabulary of collapse verdicts, on every surface (tables, CSV, summary, ``redi
#: status``, figures, model cards): :func:`verdict_text` renders an :class:`Assessment`.
VERDICTS = ("collapsed", "suspect", "stable", "unknown")

RULE_TEXT = (
    "A stage-2 run is **collapsed** at the first evaluated step where both conditions hold: (a) its "
    "chosen per-token log-prob, smoothed with a running median over {span} steps (robust to single "
    "wild batches), is at least {chosen_drop:g} nats/token below its level over the first {span} "
    "steps (and stays there to the last step), and (b) its held-out accuracy is below the best "
    "earlier point (step 0 = the start model included) by more than {sem_factor:g} paired standard "
    "errors (the per-problem difference between the two checkpoints, over the same problems); or "
    "when the in-training guard fired (chosen and rejected per-token log-probs both falling "
    "together, `collapse.window`/`collapse.drop`). One condition alone, or both at different "
    "steps, is **suspect**; neither is **stable**; no training record yet is **unknown**. The "
    "rejected log-prob (noisy per batch, and meant to fall) and the update norm (it decays with "
    "the learning-rate schedule) are not used."
)


@dataclass(frozen=True)
class CollapseRule:
    """Thresholds of :func:`assess` (defaults chosen so that a known slow collapse is caught:
    chosen -0.06 -> -0.28 nats/token while held-out accuracy fell 22.4 % -> 7.4 %)."""

    span: int = 10  # running-median window (steps) of the chosen per-token log-prob; also the baseline window
    chosen_drop: float = 0.1  # nats/token the smoothed chosen log-prob must fall below its start
    sem_factor: float = 2.0  # accuracy drop below an earlier point, in paired standard errors

    def text(self) -> str:
        return RULE_TEXT.format(span=self.span, chosen_drop=self.chosen_drop, sem_factor=self.sem_factor)


@dataclass
class Assessment:
    """Outcome of :func:`assess` for one run. ``verdict``: one of :data:`VERDICTS`.

    ``step``: collapsed - the first step where both conditions hold (or the guard's step);
    suspect - the first step of the one signal; else None. ``chosen_series``: (step, smoothed
    chosen log-prob) - the series condition (a) reads; ``chosen_bar``: its threshold."""

    verdict: str
    step: int | None = None
    chosen_start: float | None = None  # mean raw chosen per-token log-prob over the first span
    chosen_end: float | None = None  # smoothed chosen per-token log-prob at the last step
    chosen_step: int | None = None  # first step of the final, persistent excursion below the bar
    chosen_bar: float | None = None  # the threshold of condition (a)
    chosen_series: list = field(default_factory=list)  # [(step, smoothed chosen log-prob)]
    guard_step: int | None = None  # first step the in-training guard flagged
    peak: tuple | None = None  # (step, pass@1, sem) of the best point before the drop
    drop: tuple | None = None  # first (step, pass@1, sem) significantly below an earlier point
    paired: dict | None = None  # redi.eval.metrics.paired_difference of drop vs peak
    no_scores: int = 0  # curve points without per-problem scores (condition (b) not judged there)
    reasons: list = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return self.verdict == "collapsed"


def verdict_text(found: Assessment | None) -> str:
    """The one rendering of a verdict: ``collapsed at step 50``, ``suspect from step 26``,
    ``stable``, ``unknown``."""
    if found is None:
        return "unknown"
    if found.verdict == "collapsed" and found.step is not None:
        return f"collapsed at step {found.step}"
    if found.verdict == "suspect" and found.step is not None:
        return f"suspect from step {found.step}"
    return found.verdict


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


def _point(p) -> tuple:
    """(step, pass@1, sem, scores) from a 3- or 4-tuple curve point."""
    step, value, err = p[0], p[1], p[2]
    scores = p[3] if len(p) > 3 else None
    return int(step), float(value), (float(err) if _finite(err) else None), scores


def assess(records: list[dict] | None, curve: list[tuple] | None, rule: CollapseRule = CollapseRule()) -> Assessment:
    """Collapse verdict of one run (rule: :data:`RULE_TEXT`).

    ``records``: the run's ``metrics.jsonl`` rows (dicts with ``step``, ``chosen_logp_per_token``
    and, optionally, ``collapse_flag``); ``curve``: ``(step, pass@1, sem[, scores])`` of its
    evaluated checkpoints on the held-out benchmark, step 0 = the start model; ``scores``:
    ``{problem_id: (correct, samples)}`` (:func:`redi.eval.metrics.problem_scores`). A point
    without scores cannot show condition (b) (counted in ``no_scores``, named in the reasons).
    Either input may be empty/None; with neither the verdict is ``unknown``.
    """
    from redi.eval.metrics import paired_difference

    out = Assessment("unknown")
    records = sorted((r for r in records or [] if _finite(r.get("step"))), key=lambda r: int(r["step"]))
    rows = [r for r in records if _finite(r.get("chosen_logp_per_token"))]
    if rows:
        steps = [int(r["step"]) for r in rows]
        chosen = [float(r["chosen_logp_per_token"]) for r in rows]
        head = chosen[: rule.span]
        out.chosen_start = sum(head) / len(head)
        smooth = running_median(chosen, rule.span)
        out.chosen_series = list(zip(steps, smooth))
        out.chosen_end = smooth[-1]
        out.chosen_bar = bar = out.chosen_start - rule.chosen_drop
        if len(rows) > rule.span and smooth[-1] <= bar:
            first = len(smooth) - 1
            while first > 0 and smooth[first - 1] <= bar:
                first -= 1
            out.chosen_step = steps[first]
            out.reasons.append(
                f"smoothed chosen per-token log-prob {out.chosen_start:.3f} -> {out.chosen_end:.3f} "
                f"(below {bar:.3f} from step {out.chosen_step})"
            )
    guard = [int(r["step"]) for r in records if r.get("collapse_flag")]
    if guard:
        out.guard_step = guard[0]
        out.reasons.append(f"in-training guard flagged step {out.guard_step}")

    points = sorted(_point(p) for p in curve or [] if _finite(p[1]))
    out.no_scores = sum(p[3] is None for p in points)
    drops = []  # (point, best earlier point, paired difference) for every significant drop
    for i, p in enumerate(points):
        earlier = [q for q in points[:i] if q[3] is not None]
        if not earlier or p[3] is None:
            continue
        best = max(earlier, key=lambda q: (q[1], -q[0]))
        paired = paired_difference([p[3]], [best[3]], rule.sem_factor)
        if paired is not None and paired["high"] < 0:
            drops.append((p, best, paired))
    if points:
        out.peak = max(points, key=lambda q: (q[1], -q[0]))[:3]
    if drops:
        p, best, paired = drops[0]
        out.drop, out.peak, out.paired = p[:3], best[:3], paired
        out.reasons.append(
            f"held-out accuracy {100 * best[1]:.1f}% (step {best[0]}) -> {100 * p[1]:.1f}% (step {p[0]}): "
            f"{100 * paired['diff']:+.1f} points, more than {rule.sem_factor:g} paired SEs "
            f"({100 * paired['se']:.1f}) over {paired['n_problems']} problems"
        )
    if out.no_scores:
        out.reasons.append(
            f"{out.no_scores} evaluated point(s) lack per-problem scores (older metrics.json without "
            "samples.parquet): accuracy not judged there"
        )
    both = [p[0] for p, _b, _d in drops if out.chosen_step is not None and p[0] >= out.chosen_step]
    if out.guard_step is not None:
        out.verdict, out.step = "collapsed", out.guard_step
    elif both:
        out.verdict, out.step = "collapsed", both[0]
    elif out.chosen_step is not None or drops:
        out.verdict = "suspect"
        out.step = min(s for s in (out.chosen_step, drops[0][0][0] if drops else None) if s is not None)
        if out.chosen_step is not None and drops:
            out.reasons.append("both signals occur, but never at the same evaluated step")
    elif rows or points:
        out.verdict = "stable"
    return out


def assess_run(results, run: str, benchmark: str | None, rule: CollapseRule = CollapseRule()) -> Assessment | None:
    """:func:`assess` of ``results/train/{run}`` from its files alone - the one reading that the
    report, ``redi status`` and the model cards share.

    Reads ``metrics.jsonl`` (``checkpoints/metrics.jsonl`` while running), ``summary.json`` (the
    guard's ``collapse_step``; the start run from its recorded ``config.start``) and the curve on
    ``benchmark``: ``results/eval/{run}/step-*/{benchmark}/metrics.json``, step 0 = the start run's
    last evaluated checkpoint, per-problem scores by :func:`redi.eval.metrics.load_problem_scores`.
    None when the run has neither a metrics record nor a summary.
    """
    import json
    from pathlib import Path

    from redi.eval.metrics import load_problem_scores

    root = Path(results)
    folder = root / "train" / run
    summary = None
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    metrics = folder / "metrics.jsonl"
    if not metrics.is_file():
        metrics = folder / "checkpoints" / "metrics.jsonl"
    records = []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a run killed mid-write leaves a partial last line
                continue
    if summary is None and not records:
        return None
    if summary and summary.get("collapse_step") is not None:
        records.append({"step": summary["collapse_step"], "collapse_flag": True})

    def points(name: str) -> list[tuple]:
        found = []
        if not benchmark:
            return found
        for path in (root / "eval" / name).glob(f"step-*/{benchmark}/metrics.json"):
            try:
                m = json.loads(path.read_text())
                step = int(path.parts[-3][5:])
            except (OSError, ValueError):
                continue
            if _finite(m.get("pass@1")):
                scores, _source = load_problem_scores(path)
                found.append((step, float(m["pass@1"]), m.get("sem"), scores))
        return sorted(found, key=lambda p: p[0])

    curve = points(run)
    start = ((summary or {}).get("config") or {}).get("start")
    if start:  # step 0: the start run's final model, evaluated at its last checkpoint
        prior = points(start)
        try:
            last = int(json.loads((root / "train" / start / "summary.json").read_text())["steps"])
            prior = [p for p in prior if p[0] == last]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if prior:
            curve.insert(0, (0, *prior[-1][1:]))
    return assess(records, curve, rule)
