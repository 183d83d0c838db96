"""``reports/samples.html``: one static page to read the completions behind every number.

Per evaluation (run, checkpoint, benchmark) the page holds each problem's samples from its
``samples.parquet`` (text, extracted answer, correct, status, finish reason, length) and the
problem with its gold answer (``evaluation.benchmarks`` files, :func:`redi.eval.benchmarks.
load_benchmark`). In the browser: pick a run, checkpoint and benchmark; filter by correct /
wrong / truncated / no answer; click a problem to see it across every run side by side (each at
its reported checkpoint, and at every checkpoint of the selected run). No server, no external
script: the data is one JSON block in the page.

Size bounds (a paper-size run has 16 samples x 1,560 problems per evaluation, traces of
thousands of tokens): ``SAMPLES_PER_PROBLEM`` samples per problem and evaluation, ``MAX_CHARS``
characters per completion (its beginning and its end; the cut is marked), and
``MAX_TOTAL_CHARS`` in all: evaluations are added in the order reported checkpoints, the
collapsed or suspect runs' checkpoints, then the rest, and those past the budget are named in
the page's notes. The page's header states the bounds.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from redi.report.collect import Results

SAMPLES_PER_PROBLEM = 4  # samples kept per problem and evaluation (the first by sample index)
MAX_CHARS = 4000  # characters kept per completion: its first quarter and its end (a collapse shows at the end)
MAX_TOTAL_CHARS = 40_000_000  # the page's completions in all; evaluations past it are named, not shown
COLUMNS = ["problem_id", "sample_index", "text", "extracted", "correct", "status", "finish_reason", "length"]


def _kind(row: dict) -> str:
    """One of the page's filters: correct | truncated | no_answer | wrong."""
    if row.get("correct"):
        return "correct"
    if str(row.get("finish_reason")) == "length":
        return "truncated"
    if str(row.get("status")) in ("no_answer", "no_think_close") or not row.get("extracted"):
        return "no_answer"
    return "wrong"


def collect_samples(results: Results) -> dict:
    """``{"evals": [...], "problems": {bench: {pid: [problem, gold]}}, "notes": [...]}`` for the
    page; an evaluation without ``samples.parquet`` is named in ``notes``."""
    import pandas as pd

    from redi.eval.benchmarks import benchmark_paths, load_benchmark

    evals, problems, notes = [], {}, []
    flagged = set()
    for name in results.stage2:
        found = results.collapse_assessment(name)
        if found is not None and found.verdict in ("collapsed", "suspect"):
            flagged.add(name)

    def order(item):
        (run, ckpt, bench), _metrics = item
        reported = ckpt == results.reported_checkpoint(run) or run.startswith("reference-") or ckpt == "base"
        return (0 if reported else 1 if run in flagged else 2, run, ckpt, bench)

    budget = MAX_TOTAL_CHARS
    for (run, ckpt, bench), metrics in sorted(results.evals.items(), key=order):
        if budget <= 0:
            notes.append(f"{run}/{ckpt}/{bench}: not shown (the page's size bound)")
            continue
        path = results.eval_path(run, ckpt, bench).with_name("samples.parquet")
        if not path.is_file():
            notes.append(f"{run}/{ckpt}/{bench}: no samples.parquet")
            continue
        frame = pd.read_parquet(path)
        frame = frame[frame["sample_index"] < SAMPLES_PER_PROBLEM].sort_values(["problem_id", "sample_index"])
        rows = {}
        for rec in frame.to_dict("records"):
            text = str(rec.get("text") or "")
            if len(text) > MAX_CHARS:
                head = MAX_CHARS // 4
                cut = f" [... {len(text) - MAX_CHARS:,} characters cut ...] "
                text = text[:head] + cut + text[-(MAX_CHARS - head) :]
            budget -= len(text)
            sample = [int(rec["sample_index"]), text, str(rec.get("extracted") or ""), _kind(rec)]
            rows.setdefault(str(rec["problem_id"]), []).append(sample + [int(rec.get("length") or 0)])
        step = metrics.get("step")
        evals.append(
            {"run": run, "ckpt": ckpt, "bench": bench, "step": step, "n_samples": metrics.get("n_samples"),
             "pass1": metrics.get("pass@1"), "reported": ckpt == results.reported_checkpoint(run), "rows": rows}
        )  # fmt: skip
        if bench not in problems:
            files = benchmark_paths(results.evaluation.get("benchmarks", {}))
            source = metrics.get("benchmark_path") or files.get(bench)
            problems[bench] = {}
            if source and Path(source).is_file():
                try:
                    problems[bench] = {p.problem_id: [p.problem, p.gold] for p in load_benchmark(source)}
                except (ValueError, OSError, KeyError) as error:
                    notes.append(f"{bench}: problems not readable from {source} ({error})")
            else:
                notes.append(f"{bench}: benchmark file {source} not found (problem texts not shown)")
    return {"evals": evals, "problems": problems, "notes": notes}


def samples_page(results: Results) -> str:
    """The page's HTML (see module doc)."""
    data = collect_samples(results)
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    header = (
        f"Completions of every evaluation: up to {SAMPLES_PER_PROBLEM} samples per problem, up to {MAX_CHARS:,} "
        "characters each (beginning and end). Click a problem to compare it across runs."
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>REDI samples browser</title>'
        f"<style>{_CSS}</style></head><body><h2>Samples browser</h2><p class=note>{html.escape(header)}</p>"
        '<div id=controls><label>Run <select id=run></select></label> <label>Checkpoint <select id=ckpt></select>'
        "</label> <label>Benchmark <select id=bench></select></label> <label>Show <select id=kind>"
        "<option value=all>all</option><option value=correct>correct</option><option value=wrong>wrong</option>"
        "<option value=truncated>truncated</option><option value=no_answer>no answer</option></select></label>"
        ' <input id=search placeholder="problem text or id"></div><div id=summary></div>'
        '<div id=list></div><div id=compare></div>'
        f'<script id=data type="application/json">{blob}</script><script>{_JS_PATH.read_text()}</script>'
        "</body></html>\n"
    )


def write_samples_page(results: Results, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(samples_page(results), encoding="utf-8")
    return path


_CSS = (
    "body{font-family:sans-serif;font-size:13px;margin:1em}#controls{margin:.5em 0}"
    "select,input{margin-right:.8em}"
    ".problem{border:1px solid #ccc;margin:.4em 0;padding:.4em;cursor:pointer}.problem h4{margin:.1em 0}"
    ".sample{white-space:pre-wrap;font-family:monospace;font-size:12px;margin:.3em 0;padding:.3em;"
    "border-left:4px solid}"
    ".correct{border-color:#2a2}.wrong{border-color:#c22}.truncated{border-color:#e90}.no_answer{border-color:#888}"
    ".note{color:#555}#compare table{border-collapse:collapse}#compare td{vertical-align:top;border:1px solid #ddd;"
    "padding:.3em;max-width:30em}"
)

#: The page's script (``redi/assets/samples_browser.js``, package data), inlined into the page.
_JS_PATH = Path(__file__).resolve().parents[1] / "assets" / "samples_browser.js"
