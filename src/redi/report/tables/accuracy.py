"""Tables 1-4: pass@1 ± SEM (Tables 1-2) and pass@k (Tables 3-4) per model and benchmark, with
the benchmark average and the paper's value beside ours.

Every number comes from ``metrics.json`` through :mod:`redi.eval.metrics` (the average and its
SEM: :func:`~redi.eval.metrics.benchmark_average`); this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass

from redi import paper
from redi.eval.benchmarks import display_name
from redi.eval.metrics import benchmark_average
from redi.fmt import format_number
from redi.report import paper_lookup
from redi.report.collect import REFERENCE_PREFIX, Results, number, step_of
from redi.report.layout import TABLES
from redi.report.render import MISSING, Table, pct, pm, signed
from redi.report.tables.common import NA, Notes, frame, p100, setting_note
from redi.train.objectives import run_label

AVG = "avg"


@dataclass(frozen=True)
class Metric:
    """What a table shows: ``pass1`` (pass@1 ± SEM) or ``passk`` (pass@k, no SEM)."""

    kind: str
    k: int = 1

    @property
    def name(self) -> str:
        return "pass@1" if self.kind == "pass1" else f"pass@{self.k}"

    @property
    def comparable(self) -> bool:
        """The paper reports this metric (pass@1, or pass@16)."""
        return self.kind == "pass1" or self.k == paper.PASSK_K

    def of(self, metrics: dict) -> tuple[float | None, float | None]:
        """(value, sem) of one evaluation's metrics (fractions)."""
        if self.kind == "pass1":
            return number(metrics.get("pass@1")), number(metrics.get("sem"))
        curve = metrics.get("pass@k") or {}
        return number(curve.get(str(self.k), curve.get(self.k))), None

    def of_average(self, found: dict[str, dict]) -> tuple[float | None, float | None]:
        """(value, sem) of the average over ``{benchmark: metrics}``
        (:func:`redi.eval.metrics.benchmark_average`, the paper's Avg column and its SEM)."""
        average = benchmark_average([{**m, "benchmark": b} for b, m in found.items()])
        if self.kind == "pass1":
            return average["pass@1"], average["sem"]
        return average["pass@k"].get(str(self.k)), None


@dataclass(frozen=True)
class Layout:
    """The column groups of one table."""

    name: str
    benches: list[str]
    metric: Metric
    with_paper: bool  # paper and Δ columns beside each value
    with_avg: bool  # an average column group
    show_config: bool  # a Configuration column
    problems: dict  # benchmark -> set of problem counts over rows

    @property
    def paper_avg(self) -> bool:
        """The paper's Avg is comparable: pass@1 over exactly the paper's five benchmarks."""
        return self.metric.kind == "pass1" and set(self.benches) == set(paper.BENCHMARKS)


def accuracy_table(
    results: Results, name: str, title: str, entries: list[dict], benches: list[str], kind: str = "pass1"
) -> Table:
    """A wide table, one row per (model, checkpoint), one column group per benchmark (+ Avg).

    ``entries``: dicts with ``label``, ``run``, ``ckpt``, ``paper_key`` and optional ``config``.
    ``kind``: ``pass1`` (pass@1 ± SEM) or ``passk`` (pass@k, k = 16 when available).
    """
    notes = Notes(results.settings.max_listed_missing)
    setting_note(results, notes)
    layout = _layout(results, name, entries, benches, kind)
    if kind == "passk":
        title = title.replace("pass@k", f"{layout.metric.name} (%)")
    rows, data = [], []
    for entry in entries:
        row, records = _entry_row(results, layout, entry, notes)
        rows.append(row)
        data += records
    _metric_notes(layout, notes)
    columns = _columns(layout, results.config)
    n_text = 3 if layout.show_config else 2
    align = ["l"] * n_text + ["r"] * (len(columns) - n_text)
    return Table(
        name=name, title=title, columns=columns, rows=rows, notes=notes.render(), data=frame(data), align=align
    )


# ---- steps of accuracy_table ---------------------------------------------------------------


def _layout(results: Results, name: str, entries: list[dict], benches: list[str], kind: str) -> Layout:
    metric = Metric(kind, _choose_k(results, entries, benches) if kind == "passk" else 1)
    with_paper = (
        metric.comparable and any(e.get("paper_key") for e in entries) and any(b in paper.BENCHMARKS for b in benches)
    )
    problems = {
        bench: {
            int(m["n_problems"])
            for e in entries
            if (m := results.eval(e["run"], e["ckpt"], bench)) and m.get("n_problems") is not None
        }
        for bench in benches
    }
    show_config = any(e.get("config") for e in entries)
    return Layout(name, list(benches), metric, with_paper, len(benches) > 1, show_config, problems)


def _columns(layout: Layout, config: dict) -> list[str]:
    columns = ["Model"] + (["Configuration"] if layout.show_config else []) + ["Checkpoint", "Samples"]
    for bench in layout.benches + ([AVG] if layout.with_avg else []):
        label = "Avg" if bench == AVG else display_name(config, bench)
        columns.append(label + _problems_suffix(layout, bench))
        if layout.with_paper:
            columns += [f"{label} paper", f"{label} Δ"]
    return columns


def _problems_suffix(layout: Layout, bench: str) -> str:
    counts = layout.problems.get(bench, set())
    return f" ({next(iter(counts))} problems)" if bench != AVG and len(counts) == 1 else ""


def _entry_row(results: Results, layout: Layout, entry: dict, notes: Notes) -> tuple[list[str], list[dict]]:
    """The display row of one (model, checkpoint) and its tidy records (benchmarks, then avg)."""
    run, ckpt = entry["run"], entry["ckpt"]
    found = {b: results.eval(run, ckpt, b) for b in layout.benches}
    present = [m for m in found.values() if m]
    ckpt_text, step = _ckpt_label(results, run, ckpt, present[0] if present else None)
    samples = sorted({int(m["n_samples"]) for m in present if m.get("n_samples") is not None})
    row = [entry["label"]] + ([entry.get("config") or ""] if layout.show_config else [])
    row += [ckpt_text, ", ".join(str(s) for s in samples) if samples else MISSING]
    base = {"table": layout.name, "model": entry["label"], "run": run, "checkpoint": ckpt, "step": step}
    records = []
    for bench in layout.benches:
        metrics = found[bench]
        value, sem = layout.metric.of(metrics) if metrics else (None, None)
        if metrics is None:
            shown = notes.miss(f"{run}/{ckpt}/{bench}")
        elif layout.metric.kind == "passk" and value is None:
            shown = notes.miss(f"{run}/{ckpt}/{bench} ({layout.metric.name})")
        else:
            shown = _shown(layout, value, sem)
        extra = {
            "n_problems": metrics.get("n_problems") if metrics else None,
            "n_samples": metrics.get("n_samples") if metrics else None,
            "source": str(results.eval_path(run, ckpt, bench)),
        }
        records.append(_cell(row, layout, base, entry, bench, shown, value, sem, extra))
    if layout.with_avg:
        complete = len(present) == len(layout.benches)
        value, sem = layout.metric.of_average(found) if complete else (None, None)
        shown = (
            _shown(layout, value, sem)
            if value is not None
            else notes.miss(f"{run}/{ckpt} average (needs every benchmark)")
        )
        if value is not None and layout.metric.kind == "pass1":
            notes.add(_AVG_SEM_NOTE if sem is not None else _AVG_NO_SEM_NOTE)
        extra = {"n_problems": None, "n_samples": samples[0] if len(samples) == 1 else None, "source": ""}
        records.append(_cell(row, layout, base, entry, AVG, shown, value, sem, extra))
    return row, records


def _shown(layout: Layout, value, sem) -> str:
    return pm(value, sem) if layout.metric.kind == "pass1" else pct(value)


def _cell(
    row: list[str], layout: Layout, base: dict, entry: dict, bench: str, shown: str, value, sem, extra: dict
) -> dict:
    """Append one value (and its paper / Δ cells) to ``row``; return its tidy record. The one
    builder for a benchmark and for the average."""
    row.append(shown)
    paper_value = paper_sem = diff = None
    if layout.with_paper:
        if bench in paper.BENCHMARKS or (bench == AVG and layout.paper_avg):
            paper_value, paper_sem = paper_lookup.lookup(entry.get("paper_key"), bench, layout.metric.kind)
        cells, diff = _paper_cells(value, paper_value, paper_sem)
        row += cells
    return {
        **base,
        "benchmark": bench,
        "metric": layout.metric.name,
        "n_problems": extra["n_problems"],
        "n_samples": extra["n_samples"],
        "value_pct": p100(value),
        "sem_pct": p100(sem),
        "paper_pct": paper_value,
        "paper_sem_pct": paper_sem,
        "diff_pct": diff,
        "status": "ok" if value is not None else "missing",
        "source": extra["source"],
    }


def _paper_cells(value, paper_value, paper_sem) -> tuple[list[str], float | None]:
    """The 'paper' and 'Δ' cells beside one of our values (a fraction; paper in %)."""
    if paper_value is None:
        return [NA, NA], None
    diff = 100 * value - paper_value if value is not None else None
    paper_text = f"{paper_value:.1f}" + (f" ± {paper_sem:.1f}" if paper_sem is not None else "")
    return [paper_text, signed(diff)], diff


_AVG_SEM_NOTE = "Avg SEM: the paper's rule on the per-sample-index averages over benchmarks."
_AVG_NO_SEM_NOTE = (
    "Avg SEM n/a: the paper's rule needs every benchmark's per-sample scores over the same "
    "number of samples (at least 2)."
)


def _metric_notes(layout: Layout, notes: Notes) -> None:
    metric = layout.metric
    if metric.kind == "pass1":
        notes.add(
            "pass@1 in % averaged over the samples per problem; ± is the paper's SEM (std over sample indices / "
            "sqrt(samples))."
        )
    else:
        notes.add(f"{metric.name} in %: unbiased estimator 1 - C(n-c,k)/C(n,k) per problem, averaged; n = Samples.")
        if metric.k != paper.PASSK_K:
            notes.add(
                f"Fewer than {paper.PASSK_K} samples per problem: pass@{metric.k} is shown and the paper's pass@16 is "
                "not compared."
            )
    if layout.with_paper:
        notes.add(
            "paper = the paper's value (Tables 1-4 of arXiv 2505.24850); Δ = ours - paper in points; n/a = no paper "
            "row for this model/benchmark."
        )
    mixed = [b for b in layout.benches if len(layout.problems[b]) > 1]
    if mixed:
        notes.add(f"Evaluated on different numbers of problems across rows: {', '.join(mixed)} (evaluation.*.limit?).")


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


# ---- rows ----------------------------------------------------------------------------------


def _reference_entries(results: Results) -> list[dict]:
    return [
        {
            "label": ref.get("hub_name") or ref["name"],
            "run": REFERENCE_PREFIX + ref["name"],
            "ckpt": "final",
            "paper_key": paper_lookup.reference_key(ref),
            "config": "reference model",
        }
        for ref in results.reference_models
    ]


def final_entries(results: Results) -> list[dict]:
    """Table 1 / 4 rows: reference models, then every run at every final checkpoint."""
    entries = _reference_entries(results)
    for name, run in results.runs.items():
        key = paper_lookup.paper_key(run, results.runs, results.config)
        if run["objective"] == "sft":
            config = "SFT, {} epochs, LR {}".format(run.get("epochs"), format_number(run["learning_rate"]))
        else:
            config = run_label(run)
            if run.get("start") != results.stage2_start:
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
                "paper_key": paper_lookup.paper_key(run, results.runs, results.config),
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
                "paper_key": paper_lookup.paper_key(run, results.runs, results.config),
                "config": run_label(run),
            }
        )
    return entries


def table1(results: Results) -> Table:
    n = results.evaluation.get("final", {}).get("n_samples")
    title = f"{TABLES['table1_final']} (%) over {n} samples ± SEM"
    return accuracy_table(results, "table1_final", title, final_entries(results), results.final_benchmarks)


def _same_rows(results: Results) -> bool:
    """The ablation lists exactly the final table's models (one SFT run, every stage-2 run from
    it, no reference model, one final checkpoint): its table would repeat Table 1 / 4."""
    key = lambda entries: {(e["run"], e["ckpt"]) for e in entries}  # noqa: E731
    return bool(results.stage2) and key(ablation_entries(results)) == key(final_entries(results))


def _deduplicated(table: Table, same_as: str) -> Table:
    """The table without its rows (its CSV keeps them), and a note naming the table it repeats."""
    table.notes.insert(
        0,
        f"Same models and checkpoints as {same_as} (one SFT run, every stage-2 run from it, no reference model): "
        f"see {same_as}; this table's CSV holds the same numbers.",
    )
    table.rows = []
    return table


def table2(results: Results) -> Table:
    title = f"{TABLES['table2_ablation']} (%, ± SEM; all from {results.stage2_start})"
    table = accuracy_table(results, "table2_ablation", title, ablation_entries(results), results.final_benchmarks)
    if not results.stage2:
        table.notes.insert(0, "No stage-2 runs are configured.")
    return _deduplicated(table, "Table 1 (table1_final)") if _same_rows(results) else table


def table3(results: Results) -> Table:
    title = f"{TABLES['table3_passk_ablation']} (from {results.stage2_start})"
    entries = ablation_entries(results)
    table = accuracy_table(results, "table3_passk_ablation", title, entries, results.final_benchmarks, "passk")
    return _deduplicated(table, "Table 4 (table4_passk_final)") if _same_rows(results) else table


def table4(results: Results) -> Table:
    title = TABLES["table4_passk_final"]
    return accuracy_table(
        results, "table4_passk_final", title, final_entries(results), results.final_benchmarks, "passk"
    )
