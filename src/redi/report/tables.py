"""The report's tables, built only from a :class:`~redi.report.collect.Results`.

Accuracies are fractions in the metrics files and percentages in every table (CSV included:
``value_pct`` = 100 x the metrics value, unrounded). A value that does not exist yet is shown as
"—" with a footnote that names the missing file; "n/a" in a paper column means the paper has no
such row. Nothing missing is ever shown as 0.
"""

from __future__ import annotations

import math

from redi.plan import OBJECTIVE_PARAMS, format_number
from redi.report import paper
from redi.report.collect import REFERENCE_PREFIX, Results, number, read_benchmark_tsv, step_of
from redi.report.layout import TABLES, run_label
from redi.report.table import MISSING, Table, duration, pct, pm, signed
from redi.train.collapse import CollapseRule

NA = "n/a"
MAX_LISTED = 12


class Notes:
    """Footnotes of one table: missing files, absent paper rows, free text."""

    def __init__(self):
        self.missing: list[str] = []
        self.text: list[str] = []

    def miss(self, what: str) -> str:
        if what not in self.missing:
            self.missing.append(what)
        return MISSING

    def add(self, text: str) -> None:
        if text not in self.text:
            self.text.append(text)

    def render(self) -> list[str]:
        out = list(self.text)
        if self.missing:
            listed = ", ".join(self.missing[:MAX_LISTED])
            more = f" and {len(self.missing) - MAX_LISTED} more" if len(self.missing) > MAX_LISTED else ""
            out.append(f"{MISSING} = not available yet (not evaluated / not run): {listed}{more}.")
        return out



def _paper_cells(value, paper_value, paper_sem) -> tuple[list[str], float | None]:
    """The 'paper' and 'difference' cells beside one of our values (a fraction; paper in %)."""
    if paper_value is None:
        return [NA, NA], None
    diff = 100 * value - paper_value if value is not None else None
    paper_text = f"{paper_value:.1f}" + (f" ± {paper_sem:.1f}" if paper_sem is not None else "")
    return [paper_text, signed(diff)], diff


def _param(run: dict, key: str):
    """An objective parameter, only where the run's objective uses it (run dicts carry every
    knob with its default, e.g. alpha on a DPO run)."""
    return run.get(key) if key in OBJECTIVE_PARAMS.get(run["objective"], ()) else None

def _frame(rows: list[dict], columns: list[str] | None = None):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns) if columns else pd.DataFrame(rows)


def _p100(value):
    return None if value is None else 100.0 * value


def _setting_note(results: Results, notes: Notes) -> None:
    if not paper.paper_setting(results.config):
        notes.add(
            "No paper counterpart: this config is not the paper's setting (synthetic corpus or a "
            "student other than Qwen2.5-Math-1.5B), so only our numbers are shown."
        )


# ---- pass@1 / pass@k tables ------------------------------------------------------------


def _ckpt_label(results: Results, run: str, ckpt: str, metrics: dict | None) -> tuple[str, int | None]:
    step = number(metrics.get("step")) if metrics else None
    if step is None and ckpt == "best":
        best = results.best.get(run) or {}
        step = number(best.get("step"))
        if step is None and best.get("checkpoint"):
            step = step_of(str(best["checkpoint"]))
    if step is None and ckpt == "final":
        step = number((results.summaries.get(run) or {}).get("steps"))
    if step is None and ckpt.startswith("step-"):
        step = step_of(ckpt)
    step = int(step) if step is not None else None
    return (f"{ckpt} (step {step})" if step is not None else ckpt), step


def _paper_lookup(key: str | None, bench: str, kind: str):
    """(value %, sem %) from the paper's tables for a row key (pass@1: Tables 1-2; pass@k: 3-4)."""
    if key is None:
        return None, None
    if kind == "pass1":
        for table in (paper.TABLE1, paper.TABLE2):
            value, sem = paper.paper_value(table, key, bench)
            if value is not None:
                return value, sem
        return None, None
    for table in (paper.TABLE4, paper.TABLE3):
        value = paper.paper_passk(table, key, bench)
        if value is not None:
            return value, None
    return None, None


def _paper_label(key: str | None) -> str | None:
    for table in (paper.TABLE1, paper.TABLE2):
        if key in table:
            return table[key][0]
    return None


def _passk_value(metrics: dict, k: int):
    curve = metrics.get("pass@k") or {}
    value = curve.get(str(k), curve.get(k))
    return number(value)


def _choose_k(results: Results, entries: list[dict], benches: list[str]) -> int:
    """pass@16 when every evaluation has it, else the largest k they all have."""
    available = []
    for entry in entries:
        for bench in benches:
            metrics = results.eval(entry["run"], entry["ckpt"], bench)
            if metrics and metrics.get("pass@k"):
                available.append({int(k) for k in metrics["pass@k"]})
    if not available:
        return min(paper.PASSK_K, int(results.evaluation.get("final", {}).get("n_samples", paper.PASSK_K)))
    common = set.intersection(*available)
    if paper.PASSK_K in common:
        return paper.PASSK_K
    return max(common) if common else 1


def _average(found: list[dict]):
    """(pass@1, sem, how) of the benchmark average; sem by the paper's rule when possible."""
    value = sum(m["pass@1"] for m in found) / len(found)
    per = [m.get("per_sample_pass@1") for m in found]
    if all(p for p in per) and len({len(p) for p in per}) == 1 and len(per[0]) >= 2:  # k=1: no SEM
        k = len(per[0])
        avg = [sum(p[j] for p in per) / len(per) for j in range(k)]
        mean = sum(avg) / k
        sem = math.sqrt(sum((a - mean) ** 2 for a in avg) / k) / math.sqrt(k)
        return value, sem, "paper"
    sems = [number(m.get("sem")) for m in found]
    if all(s is not None for s in sems):
        return value, math.sqrt(sum(s * s for s in sems)) / len(sems), "independent"
    return value, None, None


def accuracy_table(
    results: Results, name: str, title: str, entries: list[dict], benches: list[str], kind: str = "pass1"
) -> Table:
    """A wide table, one row per (model, checkpoint), one column group per benchmark.

    ``entries``: dicts with ``label``, ``run``, ``ckpt``, ``paper_key`` and optional ``config``.
    ``kind``: ``pass1`` (pass@1 ± SEM) or ``passk`` (pass@k, k = 16 when available).
    """
    notes = Notes()
    _setting_note(results, notes)
    k = _choose_k(results, entries, benches) if kind == "passk" else 1
    metric = "pass@1" if kind == "pass1" else f"pass@{k}"
    if kind == "passk":
        title = title.replace("pass@k", f"{metric} (%)")
    compare_paper = kind == "pass1" or k == paper.PASSK_K
    with_paper = compare_paper and any(e.get("paper_key") for e in entries) and any(
        b in paper.BENCHMARKS for b in benches
    )
    with_avg = len(benches) > 1
    show_config = any(e.get("config") for e in entries)
    problems = {}
    for bench in benches:
        counts = {
            int(m["n_problems"])
            for e in entries
            if (m := results.eval(e["run"], e["ckpt"], bench)) and m.get("n_problems") is not None
        }
        problems[bench] = counts

    columns = ["Model"] + (["Configuration"] if show_config else []) + ["Checkpoint", "Samples"]
    for bench in benches + (["avg"] if with_avg else []):
        label = "Avg" if bench == "avg" else paper.display_benchmark(bench)
        if bench != "avg" and len(problems[bench]) == 1:
            label += f" ({next(iter(problems[bench]))} problems)"
        columns.append(label)
        if with_paper:
            columns += [f"{label.split(' (')[0]} paper", f"{label.split(' (')[0]} Δ"]

    rows, data = [], []
    mixed_problems = [b for b in benches if len(problems[b]) > 1]
    for entry in entries:
        run, ckpt, key = entry["run"], entry["ckpt"], entry.get("paper_key")
        found_metrics = {b: results.eval(run, ckpt, b) for b in benches}
        found = [m for m in found_metrics.values() if m]
        ckpt_text, step = _ckpt_label(results, run, ckpt, found[0] if found else None)
        samples = sorted({int(m["n_samples"]) for m in found if m.get("n_samples") is not None})
        row = [entry["label"]] + ([entry.get("config") or ""] if show_config else [])
        row += [ckpt_text, ", ".join(str(s) for s in samples) if samples else MISSING]
        for bench in benches:
            metrics = found_metrics[bench]
            if metrics is None:
                value = sem = None
                row.append(notes.miss(f"{run}/{ckpt}/{bench}"))
            elif kind == "pass1":
                value, sem = number(metrics.get("pass@1")), number(metrics.get("sem"))
                row.append(pm(value, sem))
            else:
                value, sem = _passk_value(metrics, k), None
                row.append(pct(value) if value is not None else notes.miss(f"{run}/{ckpt}/{bench} ({metric})"))
            paper_value = paper_sem = diff = None
            if with_paper:
                paper_value, paper_sem = _paper_lookup(key, bench, kind) if bench in paper.BENCHMARKS else (None, None)
                cells, diff = _paper_cells(value, paper_value, paper_sem)
                row += cells
            data.append(
                {
                    "table": name,
                    "model": entry["label"],
                    "run": run,
                    "checkpoint": ckpt,
                    "step": step,
                    "benchmark": bench,
                    "metric": metric,
                    "n_problems": metrics.get("n_problems") if metrics else None,
                    "n_samples": metrics.get("n_samples") if metrics else None,
                    "value_pct": _p100(value),
                    "sem_pct": _p100(sem),
                    "paper_pct": paper_value,
                    "paper_sem_pct": paper_sem,
                    "diff_pct": diff,
                    "status": "ok" if value is not None else "missing",
                    "source": str(results.eval_path(run, ckpt, bench)),
                }
            )
        if with_avg:
            complete = len(found) == len(benches)
            if kind == "pass1":
                value, sem, how = _average(found) if complete else (None, None, None)
                if how == "independent":
                    notes.add("Avg SEM = sqrt(sum of squared benchmark SEMs) / number of benchmarks (per-sample scores unavailable).")
                elif how == "paper":
                    notes.add("Avg SEM: the paper's rule on the per-sample-index averages over benchmarks.")
                row.append(pm(value, sem) if complete else notes.miss(f"{run}/{ckpt} average (needs every benchmark)"))
            else:
                values = [_passk_value(m, k) for m in found]
                value = sum(values) / len(values) if complete and all(v is not None for v in values) else None
                sem = None
                row.append(pct(value) if value is not None else notes.miss(f"{run}/{ckpt} average (needs every benchmark)"))
            paper_value = paper_sem = diff = None
            if with_paper:
                if kind == "pass1" and set(benches) == set(paper.BENCHMARKS):
                    paper_value, paper_sem = _paper_lookup(key, "avg", kind)
                cells, diff = _paper_cells(value, paper_value, paper_sem)
                row += cells
            data.append(
                {
                    "table": name,
                    "model": entry["label"],
                    "run": run,
                    "checkpoint": ckpt,
                    "step": step,
                    "benchmark": "avg",
                    "metric": metric,
                    "n_problems": None,
                    "n_samples": samples[0] if len(samples) == 1 else None,
                    "value_pct": _p100(value),
                    "sem_pct": _p100(sem),
                    "paper_pct": paper_value,
                    "paper_sem_pct": paper_sem,
                    "diff_pct": diff,
                    "status": "ok" if value is not None else "missing",
                    "source": "",
                }
            )
        rows.append(row)

    if kind == "pass1":
        notes.add("pass@1 in % averaged over the samples per problem; ± is the paper's SEM (std over sample indices / sqrt(samples)).")
    else:
        notes.add(f"{metric} in %: unbiased estimator 1 - C(n-c,k)/C(n,k) per problem, averaged; n = Samples.")
        if k != paper.PASSK_K:
            notes.add(f"Fewer than {paper.PASSK_K} samples per problem: pass@{k} is shown and the paper's pass@16 is not compared.")
    if with_paper:
        notes.add("paper = the paper's value (Tables 1-4 of arXiv 2505.24850); Δ = ours - paper in points; n/a = no paper row for this model/benchmark.")
    if mixed_problems:
        notes.add(f"Evaluated on different numbers of problems across rows: {', '.join(mixed_problems)} (evaluation.*.limit?).")
    n_text = 3 if show_config else 2
    align = ["l"] * n_text + ["r"] * (len(columns) - n_text)
    return Table(name=name, title=title, columns=columns, rows=rows, notes=notes.render(), data=_frame(data), align=align)


def _reference_entries(results: Results) -> list[dict]:
    return [
        {
            "label": ref.get("hub_name") or ref["name"],
            "run": REFERENCE_PREFIX + ref["name"],
            "ckpt": "final",
            "paper_key": paper.reference_key(ref),
            "config": "reference model",
        }
        for ref in results.reference_models
    ]


def final_entries(results: Results) -> list[dict]:
    """Table 1 / 4 rows: reference models, then every run at every final checkpoint."""
    entries = _reference_entries(results)
    for name, run in results.runs.items():
        key = paper.paper_key(run, results.runs, results.config)
        config = "SFT, {} epochs, LR {}".format(run.get("epochs"), format_number(run["learning_rate"])) if run["objective"] == "sft" else run_label(run)
        if run["objective"] != "sft" and run.get("start") != results.stage2_start:
            config += f", from {run['start']}"
        for ckpt in results.final_checkpoints:
            entries.append({"label": name, "run": name, "ckpt": ckpt, "paper_key": key, "config": config})
    return entries


def ablation_entries(results: Results) -> list[dict]:
    """Table 2 / 3 rows: the stage-2 start (its final model) and every stage-2 run from it (best)."""
    start = results.stage2_start
    entries = []
    if start in results.sft:
        run = results.sft[start]
        entries.append(
            {
                "label": f"{start} (start)",
                "run": start,
                "ckpt": results.start_checkpoint(),
                "paper_key": paper.paper_key(run, results.runs, results.config),
                "config": "SFT, {} epochs".format(run.get("epochs")),
            }
        )
    for name, run in results.stage2.items():
        if run["start"] != start:
            continue
        entries.append(
            {
                "label": name,
                "run": name,
                "ckpt": results.reported_checkpoint(name),
                "paper_key": paper.paper_key(run, results.runs, results.config),
                "config": run_label(run),
            }
        )
    return entries


def table1(results: Results) -> Table:
    n = results.evaluation.get("final", {}).get("n_samples")
    title = f"{TABLES['table1_final']} (%) over {n} samples ± SEM"
    return accuracy_table(results, "table1_final", title, final_entries(results), results.final_benchmarks)


def table2(results: Results) -> Table:
    title = f"{TABLES['table2_ablation']} (%, ± SEM; all from {results.stage2_start})"
    table = accuracy_table(results, "table2_ablation", title, ablation_entries(results), results.final_benchmarks)
    if not results.stage2:
        table.notes.insert(0, "No stage-2 runs are configured.")
    return table


def table3(results: Results) -> Table:
    title = f"{TABLES['table3_passk_ablation']} (from {results.stage2_start})"
    return accuracy_table(results, "table3_passk_ablation", title, ablation_entries(results), results.final_benchmarks, "passk")


def table4(results: Results) -> Table:
    return accuracy_table(results, "table4_passk_final", TABLES["table4_passk_final"], final_entries(results), results.final_benchmarks, "passk")


# ---- stage-2 sweep ---------------------------------------------------------------------


def curve(results: Results, run: str, bench: str) -> list[dict]:
    """Intermediate accuracy of a stage-2 run: step 0 (the start) then every saved checkpoint."""
    points = []
    start = results.start_point(run, bench)
    if start is not None:
        points.append(start)
    points += results.intermediate(run, bench)
    return points


def peak_and_final(points: list[dict]):
    """(peak point, final point) over evaluated checkpoints after step 0 (None if none)."""
    evaluated = [p for p in points if p["step"] and p["metrics"] is not None]
    if not evaluated:
        return None, None
    peak = max(evaluated, key=lambda p: (float(p["metrics"]["pass@1"]), -p["step"]))
    return peak, evaluated[-1]


def sweep_table(results: Results) -> Table:
    notes = Notes()
    benches = results.intermediate_benchmarks
    columns = [
        "Run", "Objective", "α", "β", "γ", "LR", "Start", "Benchmark", "Samples",
        "Step 0 (start)", "Peak ± SEM", "Peak step", "Final ± SEM", "Final step", "Evaluated", "Collapsed",
    ]
    rows, data = [], []
    for name, run in results.stage2.items():
        collapsed, collapse_step = results.collapse(name)
        summary = results.summaries.get(name)
        if collapsed is None:
            collapse_text = notes.miss(f"train/{name}/summary.json")
        else:
            collapse_text = ("yes" + (f" (step {collapse_step})" if collapse_step is not None else "")) if collapsed else "no"
        for bench in benches:
            points = curve(results, name, bench)
            start = points[0] if points and points[0]["step"] == 0 else None
            peak, final = peak_and_final(points)
            checkpoints = [p for p in points if p["step"]]
            evaluated = sum(p["metrics"] is not None for p in checkpoints)
            for p in checkpoints:
                if p["metrics"] is None:
                    notes.miss(f"{name}/{p['ckpt']}/{bench}")
            if not checkpoints:
                notes.miss(f"{name} ({'no summary.json' if summary is None else 'no checkpoints'})")
            samples = sorted({int(p["metrics"]["n_samples"]) for p in points if p["metrics"] and p["metrics"].get("n_samples")})

            def acc(point):
                if point is None or point["metrics"] is None:
                    return None, None
                return number(point["metrics"].get("pass@1")), number(point["metrics"].get("sem"))

            s_val, s_sem = acc(start)
            p_val, p_sem = acc(peak)
            f_val, f_sem = acc(final)
            if start is None or start["metrics"] is None:
                start_text = notes.miss(f"{run['start']} last checkpoint on {bench}")
            else:
                start_text = pm(s_val, s_sem)
            rows.append(
                [
                    name,
                    run["objective"],
                    format_number(_param(run, "alpha")) if _param(run, "alpha") is not None else "",
                    format_number(_param(run, "beta")) if _param(run, "beta") is not None else "",
                    format_number(_param(run, "gamma")) if _param(run, "gamma") is not None else "",
                    format_number(run["learning_rate"]),
                    run["start"],
                    paper.display_benchmark(bench),
                    ", ".join(map(str, samples)) if samples else MISSING,
                    start_text,
                    pm(p_val, p_sem) if peak else MISSING,
                    str(peak["step"]) if peak else MISSING,
                    pm(f_val, f_sem) if final else MISSING,
                    str(final["step"]) if final else MISSING,
                    f"{evaluated}/{len(checkpoints)}" if checkpoints else MISSING,
                    collapse_text,
                ]
            )
            data.append(
                {
                    "run": name,
                    "objective": run["objective"],
                    "alpha": _param(run, "alpha"),
                    "beta": _param(run, "beta"),
                    "gamma": _param(run, "gamma"),
                    "learning_rate": run["learning_rate"],
                    "start": run["start"],
                    "benchmark": bench,
                    "n_samples": samples[0] if len(samples) == 1 else None,
                    "start_pct": _p100(s_val),
                    "start_sem_pct": _p100(s_sem),
                    "peak_pct": _p100(p_val),
                    "peak_sem_pct": _p100(p_sem),
                    "peak_step": peak["step"] if peak else None,
                    "final_pct": _p100(f_val),
                    "final_sem_pct": _p100(f_sem),
                    "final_step": final["step"] if final else None,
                    "evaluated": evaluated,
                    "checkpoints": len(checkpoints),
                    "collapsed": collapsed,
                    "collapse_step": collapse_step,
                    "stopped_reason": (summary or {}).get("stopped_reason"),
                }
            )
    notes.add(
        "Intermediate pass@1 in % ± SEM. Step 0 is the start SFT run's last checkpoint evaluation; "
        "peak = highest evaluated checkpoint (earliest on ties); final = last evaluated checkpoint."
    )
    notes.add("Collapsed (step = first evidence): " + CollapseRule().text().replace("**", ""))
    if not results.stage2:
        notes.add("No stage-2 runs are configured.")
    title = TABLES["sweep"] + (f" ({', '.join(paper.display_benchmark(b) for b in benches)})" if benches else "")
    return Table(name="sweep", title=title, columns=columns, rows=rows, notes=notes.render(), data=_frame(data),
                 align=["l", "l", "r", "r", "r", "r", "l", "l"] + ["r"] * 7 + ["l"])


# ---- curation --------------------------------------------------------------------------

PAPER_CURATION = {"sft": 77629, "pairs_before_length_filter": 53175}


def _reasons(reasons) -> str:
    if not isinstance(reasons, dict) or not reasons:
        return ""
    return "; ".join(f"{k}: {int(v):,}" for k, v in reasons.items() if isinstance(v, (int, float)))


def curation_table(results: Results) -> Table:
    """The curation funnel from ``curation_report.json`` (``redi.data.curate``): rows kept after
    every step, what was dropped and why, and the expected counts (config and paper) at the step
    where they are defined (``expected[].at_step``)."""
    notes = Notes()
    report = results.curation
    columns = ["Step", "Kept", "Dropped", "Expected (config)", "Paper", "Match", "Drop reasons"]
    rows, data = [], []
    if report is None:
        notes.miss(str(results.results / "data" / "curation_report.json"))
        for quantity, value in PAPER_CURATION.items():
            rows.append([quantity, MISSING, MISSING, NA, f"{value:,}", MISSING, ""])
            data.append({"step": quantity, "kept": None, "dropped": None, "expected": None, "paper": value, "match": None, "status": "missing"})
    else:
        comparisons = {}
        for item in report.get("expected") or []:
            if isinstance(item, dict) and item.get("at_step"):
                comparisons[item["at_step"]] = item
        for step in report.get("steps") or []:
            name = str(step.get("step"))
            kept, dropped = number(step.get("kept")), number(step.get("dropped"))
            comp = comparisons.get(name, {})
            expected, paper_count = comp.get("expected"), comp.get("paper")
            if comp and comp.get("quantity"):
                name_shown = f"{name} ({comp['quantity']})"
            else:
                name_shown = name
            match = comp.get("match")
            if match is None:
                match_text = NA
            elif match:
                match_text = "yes"
            else:
                match_text = f"NO ({int(kept - expected):+,})" if kept is not None and expected is not None else "NO"
            rows.append(
                [
                    name_shown,
                    f"{int(kept):,}" if kept is not None else notes.miss(f"count of curation step '{name}'"),
                    f"{int(dropped):,}" if dropped is not None else "",
                    f"{int(expected):,}" if expected is not None else NA,
                    f"{int(paper_count):,}" if paper_count is not None else NA,
                    match_text,
                    _reasons(step.get("reasons")),
                ]
            )
            data.append(
                {
                    "step": name,
                    "quantity": comp.get("quantity"),
                    "kept": kept,
                    "dropped": dropped,
                    "expected": expected,
                    "paper": paper_count,
                    "match": match,
                    "status": "ok" if kept is not None else "missing",
                }
            )
        final = report.get("final") or {}
        for key, label in (("sft", "final D_SFT (examples)"), ("pref", "final D_Pref (pairs)")):
            value = number(final.get(key))
            rows.append([label, f"{int(value):,}" if value is not None else notes.miss(f"final {key} count"), "", NA, NA, NA, ""])
            data.append({"step": label, "quantity": key, "kept": value, "status": "ok" if value is not None else "missing"})
        if not report.get("steps"):
            notes.add("The curation report lists no steps.")
    if not paper.paper_setting(results.config):
        notes.add("Paper counts are for OpenR1-Math-Raw (77,629 SFT examples; 53,175 pairs before the length filter); this corpus is not that one.")
    notes.add("Expected (config): curation.expected; Match compares it with our count at that step; n/a = no expectation given.")
    return Table(name="curation", title=TABLES["curation"], columns=columns, rows=rows, notes=notes.render(), data=_frame(data),
                 align=["l", "r", "r", "r", "r", "l", "l"])


def _rate(value) -> str:
    value = number(value)
    return NA if value is None else f"{100 * value:.2f}%"


def verification_table(results: Results) -> Table:
    """Agreement of the recomputed Math-Verify labels with the corpus labels (overall and per
    source), from ``verification_report.json`` (``redi.data.verify_stage.gather``)."""
    notes = Notes()
    report = results.verification
    columns = [
        "Source", "Rows", "Generations", "Recomputed positive", "Corpus MV positive", "Agreement with MV",
        "MV true / ours false", "MV false / ours true", "Llama positive", "Agreement with Llama", "Verifier status",
    ]
    rows, data = [], []
    if report is None:
        rows.append(["(all)"] + [notes.miss(str(results.results / "data" / "verification_report.json"))] + [MISSING] * (len(columns) - 2))
        data.append({"source": "(all)", "status": "missing"})
    else:
        groups = [("(all)", report.get("overall") or {})] + sorted((report.get("per_source") or {}).items())
        for source, stats in groups:
            status = stats.get("status") or {}
            rows.append(
                [
                    source,
                    f"{int(stats['rows']):,}" if number(stats.get("rows")) is not None else NA,
                    f"{int(stats['generations']):,}" if number(stats.get("generations")) is not None else NA,
                    _rate(stats.get("recomputed_positive_rate")),
                    _rate(stats.get("mv_positive_rate")),
                    _rate(stats.get("agreement_with_mv")),
                    f"{int(stats['mv_true_recomputed_false']):,}" if number(stats.get("mv_true_recomputed_false")) is not None else NA,
                    f"{int(stats['mv_false_recomputed_true']):,}" if number(stats.get("mv_false_recomputed_true")) is not None else NA,
                    _rate(stats.get("llama_positive_rate")),
                    _rate(stats.get("agreement_with_llama")),
                    ", ".join(f"{k} {int(v):,}" for k, v in status.items()),
                ]
            )
            data.append(
                {
                    "source": source,
                    **{k: v for k, v in stats.items() if not isinstance(v, dict)},
                    **{f"status_{k}": v for k, v in status.items()},
                }
            )
        secs = report.get("seconds_per_item") or {}
        if number(secs.get("mean")) is not None:
            notes.add(
                f"Verifier seconds per item: mean {secs['mean']:.4f}, p99 {number(secs.get('p99')) or 0:.4f}, "
                f"max {number(secs.get('max')) or 0:.4f}."
            )
    notes.add("Recomputed = our bounded Math-Verify label; MV / Llama = the corpus' own labels; n/a = the corpus has no such label.")
    return Table(name="verification", title=TABLES["verification"], columns=columns, rows=rows, notes=notes.render(), data=_frame(data),
                 align=["l"] + ["r"] * 9 + ["l"])


# ---- cost ------------------------------------------------------------------------------


def _gpu_hours(seconds, gpus):
    if seconds is None:
        return None
    return seconds / 3600 * gpus


def cost_table(results: Results) -> Table:
    """Wall time (Snakemake benchmark files, trainer timing) and GPU-hours per job group."""
    notes = Notes()
    bdir = results.benchmarks_dir
    columns = ["Job", "Kind", "Jobs", "Wall (benchmark)", "Wall (trainer)", "CPU time", "Max RSS (MB)", "GPUs", "GPU-hours",
               f"Paper wall ({paper.PAPER_HARDWARE})", "Paper GPU-hours"]
    rows, data = [], []
    total = {"wall": 0.0, "gpu_hours": 0.0}

    def add(job, kind, jobs, expected, wall, trainer, cpu, rss, gpus, paper_hours):
        gh = _gpu_hours(wall if wall is not None else trainer, gpus)
        if wall is not None:
            total["wall"] += wall
        if gh is not None:
            total["gpu_hours"] += gh
        jobs_text = f"{jobs}/{expected}" if expected is not None and expected != jobs else str(jobs)
        rows.append(
            [
                job,
                kind,
                jobs_text,
                duration(wall) if wall is not None else notes.miss(f"benchmarks for {job}"),
                duration(trainer) if trainer is not None else (notes.miss(f"train/{job}/summary.json") if kind == "train" else NA),
                duration(cpu) if cpu is not None else MISSING if wall is None else NA,
                f"{rss:,.0f}" if rss is not None else NA,
                str(gpus) if gpus else "0 (CPU)",
                f"{gh:.2f}" if gh is not None and gpus else ("0 (CPU)" if gh is not None else MISSING),
                duration(paper_hours * 3600) if paper_hours is not None else NA,
                f"{paper_hours * paper.PAPER_GPUS:.1f}" if paper_hours is not None else NA,
            ]
        )
        data.append(
            {
                "job": job, "kind": kind, "jobs": jobs, "expected_jobs": expected,
                "wall_seconds": wall, "trainer_wall_seconds": trainer, "cpu_seconds": cpu, "max_rss_mb": rss,
                "gpus": gpus, "gpu_hours": gh,
                "paper_wall_hours": paper_hours, "paper_gpu_hours": paper_hours * paper.PAPER_GPUS if paper_hours is not None else None,
            }
        )

    def many(paths):
        records = [r for r in (read_benchmark_tsv(p) for p in paths) if r is not None]
        if not records:
            return 0, None, None, None
        wall = sum(r.get("s") or 0.0 for r in records)
        cpu_values = [r.get("cpu_time") for r in records if r.get("cpu_time") is not None]
        rss_values = [r.get("max_rss") for r in records if r.get("max_rss") is not None]
        return len(records), wall, (sum(cpu_values) if cpu_values else None), (max(rss_values) if rss_values else None)

    train_gpus, eval_gpus, data_gpus = results.gpus("train"), results.gpus("eval"), results.gpus("data")
    for name, run in results.runs.items():
        summary = results.summaries.get(name) or {}
        n, wall, cpu, rss = many([bdir / "train" / f"{name}.tsv"])
        add(name, "train", n, 1, wall, number(summary.get("wall_seconds")), cpu, rss, train_gpus, paper.paper_cost_hours(run))
        ref = bdir / "train" / f"{name}-ref_logps.tsv"
        if run["objective"] == "sft" and ref.is_file():
            n, wall, cpu, rss = many([ref])
            add(name, "DPO reference log-probs", n, 1, wall, None, cpu, rss, train_gpus, None)
    inter = results.intermediate_benchmarks
    for name in ["student", *results.runs]:
        steps = [0] if name == "student" else results.checkpoint_steps(name)
        ckpts = ["base"] if name == "student" else [f"step-{s}" for s in steps]
        paths = [bdir / "eval" / name / c / f"{b}.tsv" for c in ckpts for b in inter]
        if not paths:
            continue
        n, wall, cpu, rss = many(paths)
        paper_hours = paper.COST_HOURS["eval-intermediate"] * len(ckpts) if inter == ["math500"] else None
        add(name, "eval: every checkpoint" if name != "student" else "eval: untrained student", n, len(paths), wall, None, cpu, rss, eval_gpus, paper_hours)
    final = results.final_benchmarks
    paper_final = paper.COST_HOURS["eval-final"] if set(final) == set(paper.BENCHMARKS) else None
    for name in results.runs:
        for ckpt in results.final_checkpoints:
            n, wall, cpu, rss = many([bdir / "eval" / name / ckpt / f"{b}.tsv" for b in final])
            add(name, f"eval: {ckpt} on final benchmarks", n, len(final), wall, None, cpu, rss, eval_gpus, paper_final)
    for ref in results.reference_models:
        run = REFERENCE_PREFIX + ref["name"]
        n, wall, cpu, rss = many([bdir / "eval" / run / f"{b}.tsv" for b in final])
        add(run, "eval: reference on final benchmarks", n, len(final), wall, None, cpu, rss, eval_gpus, paper_final)
    # everything else Snakemake benchmarked: data, model, best-checkpoint selection, report
    other = []
    if bdir.is_dir():
        for group in ("data", "model"):
            other += sorted((bdir / group).rglob("*.tsv")) if (bdir / group).is_dir() else []
        other += sorted(bdir.glob("eval/*/select_best.tsv"))
        other += sorted(bdir.glob("report/*.tsv"))
    for path in other:
        n, wall, cpu, rss = many([path])
        rel = path.relative_to(bdir).with_suffix("")
        stage = "verify" if "verify" in rel.parts else "data"
        gpus = results.gpus(stage) if stage == "verify" else data_gpus
        add("/".join(rel.parts[1:]), rel.parts[0], n, None, wall, None, cpu, rss, gpus, None)
    rows.append(["Total (sum over jobs)", "", "", duration(total["wall"]), "", "", "", "", f"{total['gpu_hours']:.2f}", "", ""])
    data.append({"job": "total", "kind": "", "wall_seconds": total["wall"], "gpu_hours": total["gpu_hours"]})
    notes.add(
        "Wall (benchmark): Snakemake benchmark: files (sum over the group's jobs); Wall (trainer): summary.json wall_seconds. "
        "GPU-hours = wall hours x the GPUs the config gives that stage (resources.*.gpu); the benchmark files record no GPU use."
    )
    notes.add(
        f"Paper: one {paper.PAPER_HARDWARE} node (SFT 3 ep 8 h, SFT 5 ep 13 h, DPO 5 h 10 min, SimPO 4 h 50 min, "
        "REDI 4 h 10 min per epoch; MATH-500 x 4 samples 40 min per checkpoint; five benchmarks x 16 samples 20 h per model), "
        "shown beside the same kind of job at any scale; n/a = the paper gives no such cost."
    )
    return Table(name="cost", title=TABLES["cost"], columns=columns, rows=rows, notes=notes.render(), data=_frame(data),
                 align=["l", "l"] + ["r"] * 9)


def build_tables(results: Results) -> list[Table]:
    return [
        table1(results),
        table2(results),
        table3(results),
        table4(results),
        sweep_table(results),
        curation_table(results),
        verification_table(results),
        cost_table(results),
    ]
