"""The stage-2 sweep table: per run and intermediate benchmark, the start, peak and final
intermediate accuracy and whether training collapsed. Parameter columns come from the objective
registry (``redi.train.objectives.PARAMETERS``)."""

from __future__ import annotations

from redi.data.student_negatives import negatives_of
from redi.eval.benchmarks import display_name
from redi.fmt import format_number
from redi.report.collect import Results, number, peak_and_final
from redi.report.layout import TABLES
from redi.report.render import MISSING, Table, pm
from redi.report.tables.common import Notes, frame, p100
from redi.train.collapse import CollapseRule, verdict_text
from redi.train.objectives import PARAMETERS, objective_params

# Objective parameters shown as columns (learning rate has its own column): name -> symbol.
PARAM_COLUMNS = {name: p.symbol for name, p in PARAMETERS.items() if name != "learning_rate"}


def _accuracy(point) -> tuple[float | None, float | None]:
    if point is None or point["metrics"] is None:
        return None, None
    return number(point["metrics"].get("pass@1")), number(point["metrics"].get("sem"))


def _collapse_text(results: Results, name: str, notes: Notes) -> str:
    found = results.collapse_assessment(name)
    if found is None:
        notes.miss(f"train/{name}/summary.json")
    return verdict_text(found)


def _run_bench(
    results: Results, name: str, run: dict, bench: str, collapse_text: str, notes: Notes
) -> tuple[list[str], dict]:
    """The display row and tidy record of one run on one intermediate benchmark."""
    points = results.curve(name, bench)
    start = points[0] if points and points[0]["step"] == 0 else None
    peak, final = peak_and_final(points)
    checkpoints = [p for p in points if p["step"]]
    evaluated = sum(p["metrics"] is not None for p in checkpoints)
    for p in checkpoints:
        if p["metrics"] is None:
            notes.miss(f"{name}/{p['ckpt']}/{bench}")
    summary = results.summaries.get(name)
    if not checkpoints:
        notes.miss(f"{name} ({'no summary.json' if summary is None else 'no checkpoints'})")
    samples = sorted({int(p["metrics"]["n_samples"]) for p in points if p["metrics"] and p["metrics"].get("n_samples")})
    (s_val, s_sem), (p_val, p_sem), (f_val, f_sem) = _accuracy(start), _accuracy(peak), _accuracy(final)
    if start is None or start["metrics"] is None:
        start_text = notes.miss(f"{run['start']} last checkpoint on {bench}")
    else:
        start_text = pm(s_val, s_sem)
    params = objective_params(run)
    found = results.collapse_assessment(name)
    row = [
        name,
        run["objective"],
        *(format_number(params[p]) if params.get(p) is not None else "" for p in PARAM_COLUMNS),
        format_number(run["learning_rate"]),
        run["start"],
        negatives_of(run),
        display_name(results.config, bench),
        ", ".join(map(str, samples)) if samples else MISSING,
        start_text,
        pm(p_val, p_sem) if peak else MISSING,
        str(peak["step"]) if peak else MISSING,
        pm(f_val, f_sem) if final else MISSING,
        str(final["step"]) if final else MISSING,
        f"{evaluated}/{len(checkpoints)}" if checkpoints else MISSING,
        collapse_text,
    ]
    record = {
        "run": name,
        "objective": run["objective"],
        **{p: params.get(p) for p in PARAM_COLUMNS},
        "learning_rate": run["learning_rate"],
        "start": run["start"],
        "negatives": negatives_of(run),
        "benchmark": bench,
        "n_samples": samples[0] if len(samples) == 1 else None,
        "start_pct": p100(s_val),
        "start_sem_pct": p100(s_sem),
        "peak_pct": p100(p_val),
        "peak_sem_pct": p100(p_sem),
        "peak_step": peak["step"] if peak else None,
        "final_pct": p100(f_val),
        "final_sem_pct": p100(f_sem),
        "final_step": final["step"] if final else None,
        "evaluated": evaluated,
        "checkpoints": len(checkpoints),
        "collapse_verdict": found.verdict if found else "unknown",
        "collapse_step": found.step if found else None,
        "stopped_reason": (summary or {}).get("stopped_reason"),
    }
    return row, record


def sweep_table(results: Results) -> Table:
    notes = Notes(results.settings.max_listed_missing)
    benches = results.intermediate_benchmarks
    columns = [
        "Run",
        "Objective",
        *PARAM_COLUMNS.values(),
        "LR",
        "Start",
        "Negatives",
        "Benchmark",
        "Samples",
        "Step 0 (start)",
        "Peak ± SEM (step 0 incl.)",
        "Peak step",
        "Final ± SEM",
        "Final step",
        "Evaluated",
        "Collapse verdict",
    ]
    rows, data = [], []
    for name, run in results.stage2.items():
        collapse_text = _collapse_text(results, name, notes)
        for bench in benches:
            row, record = _run_bench(results, name, run, bench, collapse_text, notes)
            rows.append(row)
            data.append(record)
    notes.add(
        "Intermediate pass@1 in % ± the paper's SEM (std over sample indices / sqrt(samples)), over "
        "Samples samples per problem of the intermediate benchmark. Step 0 is the start SFT run's last "
        "checkpoint evaluation; peak = highest evaluated point, step 0 included (earliest on ties); final = "
        "last evaluated checkpoint."
    )
    notes.add(
        "Negatives: where the run's rejected traces came from (teacher: the curated pairs; student: the start "
        "model's own incorrect samples; both)."
    )
    notes.add("Collapse verdict: " + CollapseRule().text().replace("**", ""))
    if not results.stage2:
        notes.add("No stage-2 runs are configured.")
    title = TABLES["sweep"] + (f" ({', '.join(display_name(results.config, b) for b in benches)})" if benches else "")
    align = ["l", "l"] + ["r"] * (len(PARAM_COLUMNS) + 1) + ["l", "l", "l"] + ["r"] * 7 + ["l"]
    return Table(
        name="sweep", title=title, columns=columns, rows=rows, notes=notes.render(), data=frame(data), align=align
    )
