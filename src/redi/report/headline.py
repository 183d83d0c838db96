"""The headline answer: every stage-2 run's final pass@1 as a difference from its start model and
from the alpha = 0 control, with intervals from the paired problem-level statistic.

One row per stage-2 run (at its reported checkpoint, averaged over the final benchmarks); the
differences are :func:`redi.eval.metrics.paired_difference` (per problem, over the same
problems), interval ± ``report.significance_sems`` paired standard errors (2 = about 95 %).
The headline table, the headline figure and the summary's first lines all read these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from redi.data.student_negatives import negatives_of
from redi.report.collect import Results, number
from redi.report.layout import FAMILY_LABEL, family, run_label
from redi.train.objectives import objective_params


@dataclass
class HeadlineRow:
    run: str
    label: str  # the objective and its parameters, from the run's recorded config
    family: str
    ckpt: str  # the reported checkpoint (best / final)
    score: float | None  # pass@1 (fraction), average over the final benchmarks
    vs_start: dict | None  # paired_difference(run, start) or None
    vs_control: dict | None  # paired_difference(run, control) or None (a control itself: None)
    verdict: object = None  # redi.train.collapse.Assessment
    control: str | None = None  # the run's alpha = 0 control (control_run); itself for a control
    teacher_twin: str | None = None  # own-negatives runs: the same run on the teacher's pairs (teacher_twin)
    vs_teacher_twin: dict | None = None  # paired_difference(run, teacher_twin) or None

    @property
    def is_control(self) -> bool:
        return self.control == self.run


def final_score(results: Results, run: str, ckpt: str) -> float | None:
    """pass@1 averaged over the final benchmarks (None if any is missing)."""
    found = [results.eval(run, ckpt, b) for b in results.final_benchmarks]
    if not found or any(m is None for m in found):
        return None
    values = [number(m.get("pass@1")) for m in found]
    return None if None in values else sum(values) / len(values)


#: Training settings a run and its control must share for the difference to be the negatives'.
CONTROL_MATCH = ("learning_rate", "global_batch_size", "epochs", "max_steps", "seed", "negatives")


def _setting(run: dict, key: str):
    """A recorded run setting (the negatives source through :func:`negatives_of`)."""
    return negatives_of(run) if key == "negatives" else run.get(key)


def control_run(results: Results, run: str) -> str | None:
    """The alpha = 0 control (REDI alpha = 0: the positives only) that stage-2 run ``run`` is
    compared with: the control-family run from the stage-2 start trained with ``run``'s settings
    (:data:`CONTROL_MATCH`: learning rate, batch, length, seed, and the pairs file it read, since
    with the student's own negatives the control's chosen traces are those of the problems that
    kept a student pair); a run of the control family is its own control. None when no control
    was trained so: a difference from a control trained otherwise would mix the setting's effect
    into the negatives'."""
    if run not in results.stage2:
        return None
    start = results.stage2_start
    controls = [n for n, r in results.stage2.items() if family(r) == "control" and r.get("start") == start]
    if run in controls:
        return run
    settings = {k: _setting(results.stage2[run], k) for k in CONTROL_MATCH}
    same = [n for n in controls if all(_setting(results.stage2[n], k) == v for k, v in settings.items())]
    return same[0] if same else None


def teacher_twin(results: Results, run: str) -> str | None:
    """For a run whose rejected traces are (partly) the student's own: the run trained the same
    way on the teacher's pairs (same objective, objective parameters and :data:`CONTROL_MATCH`
    settings but ``negatives``), the comparison that isolates where the negatives came from.
    None for teacher-negative runs, for alpha = 0 controls (they use no negatives) and when no
    such run exists."""
    spec = results.stage2.get(run)
    if spec is None or _setting(spec, "negatives") == "teacher" or family(spec) == "control":
        return None  # an alpha = 0 control reads no negatives: its difference is only which problems kept a pair
    keys = (*objective_params(spec), *(k for k in CONTROL_MATCH if k != "negatives"))
    for name, other in results.stage2.items():
        if (
            _setting(other, "negatives") == "teacher"
            and other["objective"] == spec["objective"]
            and other.get("start") == spec.get("start")
            and all(other.get(k) == spec.get(k) for k in keys)
        ):
            return name
    return None


def headline_rows(results: Results) -> list[HeadlineRow]:
    """Rows of every stage-2 run from the stage-2 start, sorted by the difference from the start
    (largest first; runs without one last, in configured order)."""
    start = results.stage2_start
    start_ref = (start, results.start_checkpoint()) if start else None
    benches = results.final_benchmarks
    rows = []
    for name, run in results.stage2.items():
        if run.get("start") != start:
            continue
        ckpt = results.reported_checkpoint(name)
        control = control_run(results, name)
        twin = teacher_twin(results, name)
        rows.append(
            HeadlineRow(
                run=name,
                label=run_label(run),
                family=FAMILY_LABEL[family(run)],
                ckpt=ckpt,
                score=final_score(results, name, ckpt),
                vs_start=results.paired((name, ckpt), start_ref, benches) if start_ref else None,
                vs_control=(
                    results.paired((name, ckpt), (control, results.reported_checkpoint(control)), benches)
                    if control and control != name
                    else None
                ),
                verdict=results.collapse_assessment(name),
                control=control,
                teacher_twin=twin,
                vs_teacher_twin=(
                    results.paired((name, ckpt), (twin, results.reported_checkpoint(twin)), benches) if twin else None
                ),
            )
        )
    rows.sort(key=lambda r: (r.vs_start is None, -(r.vs_start or {}).get("diff", 0.0)))
    return rows


def interval_text(paired: dict | None) -> str:
    """``+1.2 [-0.4, +2.8]`` in points, or ``n/a``."""
    if paired is None:
        return "n/a"
    return f"{100 * paired['diff']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]"


def word(paired: dict | None) -> str:
    """``above`` / ``below`` / ``indistinguishable from`` by the interval; ``not comparable with``."""
    if paired is None:
        return "not comparable with"
    if not paired["significant"]:
        return "indistinguishable from"
    return "above" if paired["diff"] > 0 else "below"
