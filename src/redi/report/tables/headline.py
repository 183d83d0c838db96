"""The headline table: every stage-2 run's final pass@1 as a difference from its start model and
from the alpha = 0 control, with paired problem-level intervals (:mod:`redi.report.headline`)."""

from __future__ import annotations

from redi.eval.benchmarks import display_name
from redi.report.collect import Results
from redi.report.headline import headline_rows, interval_text
from redi.report.layout import TABLES
from redi.report.render import Table, pct
from redi.report.tables.common import Notes, frame, p100
from redi.train.collapse import verdict_text
from redi.train.objectives import PARAMETERS


def _record(prefix: str, paired: dict | None) -> dict:
    keys = ("diff", "se", "low", "high")
    out = {f"{prefix}_{k}_pct": p100(paired[k]) if paired else None for k in keys}
    out[f"{prefix}_significant"] = paired["significant"] if paired else None
    out[f"{prefix}_n_problems"] = paired["n_problems"] if paired else None
    return out


def headline_table(results: Results) -> Table:
    notes = Notes(results.settings.max_listed_missing)
    k = results.settings.significance_sems
    final = results.evaluation.get("final", {})
    rows, data = [], []
    for row in headline_rows(results):
        if row.score is None:
            notes.miss(f"{row.run}/{row.ckpt} on every final benchmark")
        rows.append(
            [
                row.run,
                row.label,
                row.ckpt,
                pct(row.score),
                interval_text(row.vs_start),
                "(itself)" if row.is_control else (row.control or "none"),
                "—" if row.is_control else interval_text(row.vs_control),
                verdict_text(row.verdict),
            ]
        )
        run = results.runs[row.run]
        data.append(
            {
                "run": row.run,
                "objective": run["objective"],
                **{p: run.get(p) for p in PARAMETERS},
                "negatives": run.get("negatives") or "teacher",
                "checkpoint": row.ckpt,
                "n_samples": final.get("n_samples"),
                "value_pct": p100(row.score),
                **_record("vs_start", row.vs_start),
                "control": row.control,
                **_record("vs_control", row.vs_control),
                "collapse_verdict": row.verdict.verdict if row.verdict else "unknown",
                "collapse_step": row.verdict.step if row.verdict else None,
            }
        )
    benches = ", ".join(display_name(results.config, b) for b in results.final_benchmarks)
    notes.add(
        f"pass@1 in %, averaged over the final benchmarks ({benches}; {final.get('n_samples')} samples per problem), "
        f"at each run's {results.reported_checkpoint('')} checkpoint; sorted by the difference from the start model "
        f"`{results.stage2_start}` ({results.start_checkpoint()} model)."
    )
    notes.add(
        f"Δ in points [interval]: the paired per-problem difference (same problems, each problem's accuracy over "
        f"its samples), ± {k:g} paired standard errors (≈ 95 % for 2); an interval that excludes 0 is a difference, "
        "otherwise the two are indistinguishable at this sample size. n/a: a per-problem score is missing "
        "(not evaluated yet, or a metrics.json from older code without samples.parquet)."
    )
    notes.add(
        "α=0 control: the REDI α=0 run (the positives only) from the same start trained with the run's learning "
        "rate, batch, length, seed and pairs file (teacher or own negatives); none when no control was trained so, "
        "since a difference from a control trained otherwise would mix that setting's effect into the negatives' "
        "(redi.report.headline.control_run)."
    )
    if not rows:
        notes.add("No stage-2 runs are configured.")
    return Table(
        name="headline",
        title=TABLES["headline"],
        columns=[
            "Run", "Objective", "Checkpoint", "pass@1 (%)", "Δ vs start", "α=0 control (same settings)", "Δ vs control",
            "Collapse verdict",
        ],  # fmt: skip
        rows=rows,
        notes=notes.render(),
        data=frame(data),
        align=["l", "l", "l", "r", "r", "l", "r", "l"],
    )
