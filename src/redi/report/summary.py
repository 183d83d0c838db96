"""``reports/summary.md``: what happened, in words computed from the results (nothing hard-coded).

Two accuracies are called different only when they differ by more than ``report.significance_sems``
(default 2) combined SEMs (sqrt(a^2 + b^2)); otherwise the summary says they are indistinguishable
at this sample size.
"""

from __future__ import annotations

import html
import math

from redi.eval.benchmarks import display_name
from redi.report.collect import Results, number, peak_and_final
from redi.report.layout import FAMILY_LABEL, family, run_label
from redi.report.paper_lookup import paper_setting
from redi.report.render import MISSING
from redi.report.tables.accuracy import Metric, ablation_entries
from redi.train.collapse import CollapseRule


def _fmt(value, sem) -> str:
    if value is None:
        return MISSING
    return f"{100 * value:.1f}%" + (f" ± {100 * sem:.1f}" if sem is not None else " ± n/a")


def compare(a: tuple, b: tuple, sems: float) -> tuple[float, float | None, bool | None]:
    """(difference in points, combined SEM in points, significant at 2 SEM) of (value, sem) pairs."""
    diff = 100 * (a[0] - b[0])
    if a[1] is None or b[1] is None:
        return diff, None, None
    combined = 100 * math.sqrt(a[1] ** 2 + b[1] ** 2)
    return diff, combined, abs(diff) > sems * combined if combined > 0 else diff != 0


def _verdict(diff, combined, significant, sems: float) -> str:
    if significant is None:
        return f"{diff:+.1f} points (no SEM available)"
    word = "more than" if significant else "within"
    return f"{diff:+.1f} points, {word} {sems:g} combined SEMs ({sems * combined:.1f})"


def _final_score(results: Results, run: str, ckpt: str):
    """(pass@1, sem) over the final benchmarks, averaged as the tables' Avg column (None if any
    benchmark is missing)."""
    found = {b: results.eval(run, ckpt, b) for b in results.final_benchmarks}
    if not found or any(m is None for m in found.values()):
        return None
    if len(found) == 1:
        return Metric("pass1").of(next(iter(found.values())))
    return Metric("pass1").of_average(found)


def build_summary(results: Results, tables=None) -> str:
    """The summary's markdown: setting, data, SFT, stage 2, stability, paper, provenance."""
    lines = _setting_section(results)
    lines += _data_section(results)
    lines += _sft_section(results)
    lines += _stage2_section(results)
    lines += _stability_section(results)
    lines += _paper_section(results, tables)
    lines += provenance_lines(results)
    lines += _problems_section(results)
    lines.append(
        "Tables: `tables/` (markdown, LaTeX, CSV, HTML); figures: `figures/` (PNG, PDF). "
        f"{MISSING} marks anything not run or not evaluated yet."
    )
    return "\n".join(lines) + "\n"


def _setting_section(results: Results) -> list[str]:
    lines = ["# REDI reproduction: what happened", ""]
    setting = paper_setting(results.config)
    corpus = results.config.get("corpus", {}).get("source", "synthetic")
    student = results.config.get("student", {})
    lines.append(
        f"Setting: corpus `{corpus}`, student "
        f"`{student.get('hub_name') or student.get('local_path') or student.get('kind')}`"
        + (
            " — the paper's setting: our numbers are compared with the paper's."
            if setting
            else " — not the paper's setting: there is no paper counterpart, and no paper number is compared."
        )
    )
    benches = ", ".join(display_name(results.config, b) for b in results.final_benchmarks)
    n_final = results.evaluation.get("final", {}).get("n_samples")
    n_inter = results.evaluation.get("intermediate", {}).get("n_samples")
    lines.append(
        f"Final benchmarks: {benches} (pass@1 over {n_final} samples ± SEM); intermediate: "
        f"{', '.join(display_name(results.config, b) for b in results.intermediate_benchmarks)} ({n_inter} samples)."
    )
    lines.append("")
    return lines


def _data_section(results: Results) -> list[str]:
    """Curation funnel and label verification."""
    lines = ["## Data"]
    if results.curation is None:
        lines.append(f"- Curation report: {MISSING} (results/data/curation_report.json not produced yet).")
    else:
        steps = [st for st in results.curation.get("steps") or [] if number(st.get("kept")) is not None]
        if steps:
            lines.append("- Curation funnel: " + " → ".join(f"{st['step']} {int(st['kept']):,}" for st in steps) + ".")
        final = results.curation.get("final") or {}
        if final:
            lines.append(
                f"- Curated: {final.get('sft', MISSING):,} SFT examples, {final.get('pref', MISSING):,} preference "
                "pairs."
            )
        for comp in results.curation.get("expected") or []:
            if comp.get("expected") is not None:
                verdict = "matches" if comp.get("match") else "does NOT match"
                lines.append(
                    f"- {comp['quantity']}: {comp['actual']:,} {verdict} the expected {comp['expected']:,} (paper "
                    f"{comp.get('paper', MISSING):,})."
                )
    if results.verification is not None:
        overall = results.verification.get("overall") or {}
        agree = number(overall.get("agreement_with_mv"))
        if agree is not None:
            lines.append(
                f"- Recomputed Math-Verify labels agree with the corpus' Math-Verify labels on {100 * agree:.2f}% of "
                "generations."
            )
    lines.append("")
    return lines


def _sft_section(results: Results) -> list[str]:
    """Untrained student -> every SFT run's last and best intermediate checkpoint."""
    lines = ["## Stage 1 (SFT)"]
    for bench in results.intermediate_benchmarks:
        base = results.eval("student", "base", bench)
        for name in results.sft:
            points = [p for p in results.intermediate(name, bench) if p["metrics"] is not None]
            start = _fmt(number(base.get("pass@1")), number(base.get("sem"))) if base else MISSING
            if points:
                last = points[-1]
                best = max(points, key=lambda p: float(p["metrics"]["pass@1"]))
                lines.append(
                    f"- `{name}` on {display_name(results.config, bench)}: untrained student {start} → "
                    f"last checkpoint (step {last['step']}) "
                    f"{_fmt(number(last['metrics']['pass@1']), number(last['metrics'].get('sem')))}; "
                    f"best step {best['step']} "
                    f"{_fmt(number(best['metrics']['pass@1']), number(best['metrics'].get('sem')))}."
                )
            else:
                shown = display_name(results.config, bench)
                lines.append(f"- `{name}` on {shown}: no checkpoint evaluated yet ({MISSING}).")
    lines.append("")
    return lines


def _stage2_section(results: Results) -> list[str]:
    """Stage-2 runs ranked on the final benchmarks; best run vs runner-up, start and control."""
    lines = [f"## Stage 2 (from `{results.stage2_start}`)"]
    k = results.settings.significance_sems
    entries = ablation_entries(results)
    scored = []
    for entry in entries:
        score = _final_score(results, entry["run"], entry["ckpt"])
        if score is not None and score[0] is not None:
            scored.append((entry, score))
    missing = [e for e in entries if all(e is not s[0] for s in scored)]
    if not results.stage2:
        lines.append("- No stage-2 runs are configured.")
    elif not [s for s in scored if s[0]["run"] in results.stage2]:
        lines.append(f"- No stage-2 run has its final evaluation yet ({MISSING}).")
    else:
        metric = "pass@1" if len(results.final_benchmarks) == 1 else "average pass@1"
        ranking = sorted(scored, key=lambda s: -s[1][0])
        lines.append(
            f"Ranking by {metric} on the final benchmarks ({results.reported_checkpoint('')} checkpoint of each "
            f"stage-2 run; the start at its {results.start_checkpoint()} model):"
        )
        lines.append("")
        for rank, (entry, score) in enumerate(ranking, 1):
            lines.append(f"{rank}. `{entry['label']}` ({entry.get('config')}): {_fmt(*score)}")
        lines.append("")
        stage2_scored = [s for s in ranking if s[0]["run"] in results.stage2]
        top_entry, top = stage2_scored[0]
        spec = results.stage2[top_entry["run"]]
        among = " (among the evaluated ones)" if any(e["run"] in results.stage2 for e in missing) else ""
        lines.append(
            f"- Best stage-2 run{among}: `{top_entry['run']}` — {FAMILY_LABEL[family(spec)]}, {run_label(spec)}: "
            f"{_fmt(*top)}."
        )
        if len(stage2_scored) > 1:
            second_entry, second = stage2_scored[1]
            lines.append(f"- Versus the runner-up `{second_entry['run']}`: {_verdict(*compare(top, second, k), k)}.")
        start_scored = [s for s in scored if s[0]["run"] == results.stage2_start]
        if start_scored:
            lines.append(
                f"- Versus the start model `{results.stage2_start}`: "
                f"{_verdict(*compare(top, start_scored[0][1], k), k)}."
            )
        controls = [s for s in stage2_scored if family(results.stage2[s[0]["run"]]) == "control"]
        if controls:
            control_entry, control = controls[0]
            lines.append(
                f"- The alpha = 0 control `{control_entry['run']}` (positives only) scores {_fmt(*control)}; "
                + "; ".join(
                    f"`{e['run']}` vs control: {_verdict(*compare(s, control, k), k)}"
                    for e, s in stage2_scored
                    if e["run"] != control_entry["run"] and family(results.stage2[e["run"]]) != "control"
                )
                + "."
            )
        best_by_family = {}
        for entry, score in stage2_scored:
            best_by_family.setdefault(family(results.stage2[entry["run"]]), (entry, score))
        if len(best_by_family) > 1:
            lines.append(
                "- Best objective family: "
                + ", ".join(f"{FAMILY_LABEL[f]} {_fmt(*s)} (`{e['run']}`)" for f, (e, s) in best_by_family.items())
                + "."
            )
    if missing and results.stage2:
        lines.append(
            f"- Not evaluated yet ({MISSING}): " + ", ".join(f"`{e['run']}/{e['ckpt']}`" for e in missing) + "."
        )
    lines.append("")
    return lines


def _stability_section(results: Results) -> list[str]:
    """The collapse rule, flagged runs, and finals significantly below their peak."""
    lines = ["## Stability (intermediate accuracy and collapse)"]
    k = results.settings.significance_sems
    collapsed, suspect, unknown = [], [], []
    for name in results.stage2:
        found = results.collapse_assessment(name)
        if found is None:
            unknown.append(f"`{name}`")
        elif found.verdict in ("collapse", "suspect"):
            text = f"`{name}` (step {found.step}: " + "; ".join(found.reasons) + ")"
            (collapsed if found.collapsed else suspect).append(text)
    lines.append("- Rule: " + CollapseRule().text())
    if collapsed:
        lines.append("- Collapse flagged: " + ", ".join(collapsed) + ".")
    elif results.stage2:
        lines.append("- No stage-2 run flagged a collapse.")
    if suspect:
        lines.append("- Suspect (one signal only): " + ", ".join(suspect) + ".")
    if unknown:
        lines.append(f"- Not trained yet ({MISSING}): " + ", ".join(unknown) + ".")
    for bench in results.intermediate_benchmarks:
        drops = []
        for name in results.stage2:
            peak, final = peak_and_final(results.curve(name, bench))
            if peak is None or final is None or peak is final:
                continue
            p = (number(peak["metrics"]["pass@1"]), number(peak["metrics"].get("sem")))
            f = (number(final["metrics"]["pass@1"]), number(final["metrics"].get("sem")))
            diff, combined, significant = compare(f, p, k)
            if significant:
                drops.append(f"`{name}` {_fmt(*p)} at step {peak['step']} → {_fmt(*f)} at step {final['step']}")
        if drops:
            lines.append(
                f"- Final below peak by more than {k:g} combined SEMs on {display_name(results.config, bench)}: "
                + "; ".join(drops)
                + "."
            )
        elif results.stage2:
            lines.append(
                f"- On {display_name(results.config, bench)}, no stage-2 run ended more than {k:g} combined SEMs "
                "below its peak."
            )
    lines.append("")
    return lines


def _paper_section(results: Results, tables) -> list[str]:
    """Mean |ours - paper| over the cells with a paper value (paper setting only)."""
    lines = []
    if tables is not None and paper_setting(results.config):
        lines.append("## Against the paper")
        by_name = {t.name: t for t in tables}
        for name, what in (("table1_final", "pass@1 (Tables 1-2)"), ("table4_passk_final", "pass@16 (Tables 3-4)")):
            table = by_name.get(name)
            diffs = []
            if table is not None and table.data is not None and "diff_pct" in table.data.columns:
                diffs = [float(d) for d in table.data["diff_pct"].tolist() if d is not None and d == d]
            if diffs:
                mean_abs = sum(abs(d) for d in diffs) / len(diffs)
                lines.append(
                    f"- {what}: {len(diffs)} cells with a paper value; mean |ours - paper| = {mean_abs:.1f} points "
                    f"(largest {max(diffs, key=abs):+.1f})."
                )
            else:
                lines.append(f"- {what}: no cell with a paper counterpart is evaluated yet ({MISSING}).")
        lines.append("")
    return lines


def _problems_section(results: Results) -> list[str]:
    if not results.problems:
        return []
    return ["## Problems reading results", *(f"- {p}" for p in results.problems), ""]


def provenance_lines(results: Results) -> list[str]:
    """The code/library/data versions behind the results, printed once; results whose version
    (``redi.provenance.version_key``) differs from the most common one are named, by table."""
    from redi.provenance import compatible, describe, version_key

    found = {}  # label -> provenance
    for run, summary in results.summaries.items():
        if summary and summary.get("provenance"):
            found[f"train/{run}"] = summary["provenance"]
    for (run, ckpt, bench), metrics in results.evals.items():
        if metrics.get("provenance"):
            found[f"eval/{run}/{ckpt}/{bench}"] = metrics["provenance"]
    lines = ["## Provenance"]
    missing = len(results.summaries) - sum(1 for s in results.summaries.values() if s and s.get("provenance"))
    if not found:
        return lines + [
            f"- No result records its provenance ({MISSING}; written by this version's training and evaluation).",
            "",
        ]
    keys: dict = {}
    for label, prov in found.items():
        keys.setdefault(version_key(prov), []).append(label)
    # the majority: the key most results agree with (a record without a corpus agrees with any)
    main_key, main_labels = max(
        keys.items(),
        key=lambda kv: (
            sum(len(labs) for k, labs in keys.items() if compatible(k, kv[0])),
            kv[0] is not None and kv[0][3] is not None,
        ),
    )
    others = {k: labs for k, labs in keys.items() if not compatible(k, main_key)}
    agreeing = len(found) - sum(len(labs) for labs in others.values())
    main = found[main_labels[0]]
    lines.append(f"- {agreeing} of {len(found)} results: {describe(main)}.")
    corpus = (main.get("data") or {}).get("corpus") or {}
    if corpus:
        lines.append(
            f"- Corpus: `{corpus.get('path')}` "
            + (
                f"(hub {corpus['hub']}@{corpus.get('revision')})"
                if corpus.get("hub")
                else f"(sha256 {corpus.get('sha256')})"
            )
            + "."
        )
    if others:
        lines.append("- **Results from other code/data versions** (compare with care; they sit in the same tables):")
        for _key, labels in others.items():
            tables = sorted(
                {
                    "training/sweep"
                    if lab.startswith("train/")
                    else ("intermediate/sweep" if "/step-" in lab else "final tables")
                    for lab in labels
                }
            )
            lines.append(
                f"- Other version: {', '.join(f'`{lab}`' for lab in sorted(labels))} ({', '.join(tables)}): "
                f"{describe(found[labels[0]])}."
            )
    else:
        lines.append("- Every result with a provenance record came from the same code, libraries and data.")
    if missing > 0:
        lines.append(f"- {missing} training summaries have no provenance record (older code or not trained yet).")
    lines.append("")
    return lines


def markdown_to_html(text: str, title: str = "Summary") -> str:
    """A minimal rendering of the summary's markdown (headings, lists, paragraphs) for the report."""
    out, in_list, in_olist = [], False, False
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)

    def close():
        nonlocal in_list, in_olist
        if in_list:
            out.append("</ul>")
        if in_olist:
            out.append("</ol>")
        in_list = in_olist = False

    for line in text.splitlines():
        if line.startswith("#"):
            close()
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                close()
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(line[2:])}</li>")
        elif re.match(r"\d+\. ", line):
            if not in_olist:
                close()
                out.append("<ol>")
                in_olist = True
            out.append(f"<li>{inline(line.split('. ', 1)[1])}</li>")
        elif not line.strip():
            close()
        else:
            close()
            out.append(f"<p>{inline(line)}</p>")
    close()
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;font-size:14px;margin:1em;max-width:60em}</style></head><body>"
        + "\n".join(out)
        + "</body></html>\n"
    )
