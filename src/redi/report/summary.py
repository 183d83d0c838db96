"""``reports/summary.md``: what happened, in words computed from the results (nothing hard-coded).

Two accuracies are called different only when the paired problem-level difference
(:func:`redi.eval.metrics.paired_difference`: per problem, over the same problems) lies more than
``report.significance_sems`` (default 2, about 95 %) paired standard errors from 0; otherwise the
summary says they are indistinguishable at this sample size. The paper's SEM (spread over sample
indices) is shown beside accuracies, labelled, and never used for a verdict. Every accuracy
names its evaluation (benchmark, samples per problem, intermediate or final).
"""

from __future__ import annotations

import html
from pathlib import Path

from redi.data.funnel import funnel_text
from redi.data.student_negatives import negatives_of
from redi.eval.benchmarks import display_name
from redi.report.collect import Results, number, peak_and_final
from redi.report.layout import FAMILY_LABEL, family, run_label
from redi.report.paper_lookup import paper_setting
from redi.report.render import MISSING
from redi.report.tables.accuracy import Metric, ablation_entries
from redi.train.collapse import VERDICTS, CollapseRule, verdict_text
from redi.train.objectives import OBJECTIVES, OWN_NEGATIVES_LABEL

OBJECTIVE_LABEL = {name: objective.label for name, objective in OBJECTIVES.items()}


def _fmt(value, sem, tag: str = "") -> str:
    if value is None:
        return MISSING
    text = f"{100 * value:.1f}%" + (f" ± {100 * sem:.1f}" if sem is not None else " ± n/a")
    return text + (f" ({tag})" if tag else "")


def eval_tag(results: Results, kind: str, benches: list[str] | None = None, n: int | None = None) -> str:
    """Which evaluation a number is: ``MATH-500, 8 samples/problem, final``."""
    section = results.evaluation.get(kind, {})
    benches = benches if benches is not None else list(section.get("benchmarks", []))
    n = n if n is not None else section.get("n_samples")
    names = ", ".join(display_name(results.config, b) for b in benches)
    return f"{names}{' average' if len(benches) > 1 else ''}, {n} samples/problem, {kind}"


def paired_text(paired: dict | None, k: float) -> str:
    """``+1.2 points [-0.4, +2.8], indistinguishable`` (paired problem-level interval)."""
    if paired is None:
        return "no paired statistic (a per-problem score is missing)"
    verdict = "a difference" if paired["significant"] else "indistinguishable at this sample size"
    return (
        f"{100 * paired['diff']:+.1f} points [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}], "
        f"± {k:g} paired SEs over {paired['n_problems']} problems: {verdict}"
    )


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
    """The summary's markdown: the answer, setting, what ran, data, SFT, stage 2, stability,
    paper, provenance."""
    lines = ["# REDI reproduction: what happened", ""]
    lines += _answer_section(results)
    lines += _setting_section(results)
    lines += _recorded_section(results)
    lines += _data_section(results)
    lines += _sft_section(results)
    lines += _stage2_section(results)
    lines += _stability_section(results)
    lines += _paper_section(results, tables)
    lines += provenance_lines(results)
    lines += _problems_section(results)
    lines.append(
        "Tables: [tables/](tables/) (markdown, LaTeX, CSV, HTML; start with "
        "[the headline table](tables/headline.md)); figures: [figures/](figures/) (PNG, PDF); completions: "
        f"[samples.html](samples.html). {MISSING} marks anything not run or not evaluated yet."
    )
    return "\n".join(lines) + "\n"


# ---- the answer ------------------------------------------------------------------------------


def _best_of(rows, keep) -> object | None:
    scored = [r for r in rows if keep(r) and r.score is not None]
    return max(scored, key=lambda r: r.score) if scored else None


def _answer_section(results: Results) -> list[str]:
    """The first lines: did REDI beat SFT, the control, DPO and SimPO, in plain words."""
    from redi import paper
    from redi.report.headline import headline_rows, word

    lines = ["## The answer", ""]
    k = results.settings.significance_sems
    rows = headline_rows(results)
    start = results.stage2_start
    if not rows:
        return lines + ["- No stage-2 run is configured from the start model, so there is nothing to compare.", ""]
    tag = eval_tag(results, "final")
    benches = results.final_benchmarks
    by_run = {r.run: r for r in rows}
    redi = _best_of(rows, lambda r: results.stage2[r.run]["objective"] == "redi" and r.control != r.run)
    if redi is None:
        lines.append(f"- No REDI run (alpha > 0) has its final evaluation yet ({MISSING}).")
    else:
        ref = (redi.run, redi.ckpt)
        lines.append(
            f"- **Did REDI beat SFT?** The best REDI run `{redi.run}` ({redi.label}) scores {100 * redi.score:.1f}% "
            f"({tag}, {redi.ckpt} checkpoint): {word(redi.vs_start)} its SFT start `{start}` "
            f"({paired_text(redi.vs_start, k)})."
        )
        if redi.control in by_run:
            lines.append(
                f"- **Against the α = 0 control** `{redi.control}` (positives only, same learning rate, batch, "
                f"length, seed and pairs): {word(redi.vs_control)} it ({paired_text(redi.vs_control, k)})."
            )
        source = negatives_of(results.stage2[redi.run])
        for fam_objective, name in (("dpo", "DPO"), ("simpo", "SimPO")):
            other = _best_of(
                rows,
                lambda r, o=fam_objective: results.stage2[r.run]["objective"] == o
                and negatives_of(results.stage2[r.run]) == source,
            )
            if other is None:
                continue
            paired = results.paired(ref, (other.run, other.ckpt), benches)
            lines.append(
                f"- **Against {name}** (its best run `{other.run}`, {100 * other.score:.1f}%"
                f"{'' if source == 'teacher' else ', the same negatives'}): REDI is {word(paired)} it "
                f"({paired_text(paired, k)})."
            )
    twins = [r for r in rows if r.teacher_twin]
    if twins:
        lines.append(
            "- **Own negatives vs the teacher's** (the same run on the teacher's pairs): "
            + "; ".join(
                f"`{r.run}` is {word(r.vs_teacher_twin)} `{r.teacher_twin}` ({paired_text(r.vs_teacher_twin, k)})"
                for r in twins
            )
            + "."
        )
    fell = _first_checkpoint_drops(results, rows)
    negatives = [r.run for r in rows if not r.is_control]
    if fell and set(fell) >= set(negatives):
        steps = sorted({s for s in fell.values()})
        lines.append(
            f"- Every run that uses negatives ({len(negatives)}) fell below its start at its first checkpoint "
            f"(step {', '.join(map(str, steps))}; {eval_tag(results, 'intermediate')})."
        )
    elif fell:
        lines.append(
            "- Below their start at their first checkpoint: "
            + ", ".join(f"`{r}` (step {s})" for r, s in fell.items())
            + f" ({eval_tag(results, 'intermediate')})."
        )
    by_objective: dict[str, set] = {}
    for run in results.stage2.values():
        base = paper.LEARNING_RATE.get(run["objective"])
        if base and run.get("learning_rate"):
            by_objective.setdefault(run["objective"], set()).add((float(run["learning_rate"]), float(base)))
    if by_objective:
        parts = []
        for objective, pairs in by_objective.items():
            label = OBJECTIVE_LABEL.get(objective, objective)
            parts += [f"{label} {lr:g} = {lr / base:g}x the paper's {base:g}" for lr, base in sorted(pairs)]
        lines.append("- Stage-2 learning rates: " + "; ".join(parts) + ".")
    lines.append(
        f"- How to read these: intervals are ± {k:g} paired standard errors (≈ 95 %) of the per-problem "
        "difference between two models over the same problems; the paper's SEM (± beside single accuracies) "
        "measures only the spread over sample indices and is never used for a verdict."
    )
    lines += ["", "![headline figure](figures/fig_headline.png)", ""]
    return lines


def _first_checkpoint_drops(results: Results, rows) -> dict:
    """run -> step of its first evaluated checkpoint when that is significantly below step 0."""
    out = {}
    benches = results.intermediate_benchmarks[:1]
    if not benches:
        return out
    bench = benches[0]
    for row in rows:
        points = [p for p in results.curve(row.run, bench) if p["metrics"] is not None]
        if len(points) < 2 or points[0]["step"] != 0:
            continue
        paired = _point_paired(results, points[1], points[0], bench)
        if paired is not None and paired["high"] < 0:
            out[row.run] = points[1]["step"]
    return out


def _point_paired(results: Results, a: dict, b: dict, bench: str) -> dict | None:
    from redi.eval.metrics import paired_difference

    sa, sb = results.point_scores(a, bench), results.point_scores(b, bench)
    if sa is None or sb is None:
        return None
    return paired_difference([sa], [sb], results.settings.significance_sems)


def _recorded_section(results: Results) -> list[str]:
    """Where the config and what the runs recorded disagree (labels use the recorded values)."""
    if not results.disagreements and not results.unconfigured:
        return []
    lines = ["## What ran differs from the config"]
    if results.disagreements:
        lines.append(
            "- **The config disagrees with what these runs recorded** (`results/train/{run}/summary.json`); every "
            "label, column and family uses the recorded values:"
        )
        for run, found in results.disagreements.items():
            lines.append(f"- `{run}`: " + "; ".join(found) + ".")
    if results.unconfigured:
        lines.append(
            "- Trained runs that the config does not define (not reported): "
            + ", ".join(f"`{r}`" for r in results.unconfigured)
            + "."
        )
    lines.append("")
    return lines


def _setting_section(results: Results) -> list[str]:
    lines = ["## Setting"]
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
        f"Final benchmarks: {benches} (pass@1 over {n_final} samples ± the paper's SEM); intermediate: "
        f"{', '.join(display_name(results.config, b) for b in results.intermediate_benchmarks)} ({n_inter} samples)."
    )
    shared = [b for b in results.intermediate_benchmarks if b in results.final_benchmarks]
    halves = _recorded_halves(results, shared)
    if "best" in results.final_checkpoints and shared and halves is None:
        lines.append(
            f"Selection: **mixed** — some evaluations of {', '.join(display_name(results.config, b) for b in shared)} "
            "used one half of the problems (`evaluation.held_out_selection`) and some used all of them: they come "
            "from two configs and their numbers are not comparable; rerun the evaluations with one setting."
        )
    elif "best" in results.final_checkpoints and shared and halves:
        lines.append(
            "Selection: each run's best checkpoint is selected on one half of "
            f"{', '.join(display_name(results.config, b) for b in shared)} and reported on the other, disjoint half "
            f"({halves}; `evaluation.held_out_selection`), so the reported best is not biased upward by its own "
            "selection; the paper selects and reports on the same MATH-500 problems."
        )
    elif "best" in results.final_checkpoints and shared:
        lines.append(
            f"Selection: each run's best checkpoint is selected on "
            f"{', '.join(display_name(results.config, b) for b in shared)} "
            f"({n_inter} samples) and then reported on the same problems ({n_final} samples), as the paper's protocol "
            "does (it selects on MATH-500 x4 and reports x16): the reported best is biased upward by the selection. "
            "For a held-out selection split set `evaluation.held_out_selection: true`."
        )
    lines.append("")
    return lines


def _recorded_halves(results: Results, benches: list[str]) -> str | None:
    """What the recorded evaluations of ``benches`` say about the held-out split (each
    metrics.json's ``split`` and ``n_problems``, not today's config): e.g. ``"selection 6
    problems, report 6 problems"`` when every one was split, ``""`` when none was, None when
    some were and some were not (evaluations from two configs)."""
    counts: dict[str, set] = {}
    for (_run, _ckpt, bench), m in results.evals.items():
        if bench in benches and m:
            counts.setdefault(m.get("split") or "", set()).add(int(m.get("n_problems") or 0))
    if "" in counts:
        return "" if len(counts) == 1 else None
    return ", ".join(f"{part} {'/'.join(str(n) for n in sorted(ns))} problems" for part, ns in sorted(counts.items()))


def _data_section(results: Results) -> list[str]:
    """Curation funnel and label verification."""
    lines = ["## Data"]
    if results.curation is None:
        lines.append(f"- Curation report: {MISSING} (results/data/curation_report.json not produced yet).")
    else:
        for branch in funnel_text(results.curation):
            lines.append(f"- Curation funnel, {branch}.")
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
    for source, rep in results.own_negatives.items():
        lines.append(own_negatives_text(source, rep))
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


def own_negatives_text(source: str, report: dict) -> str:
    """One line on the pairs with the student's own negatives (``results/data/SOURCE-negatives/report.json``,
    ``redi.data.student_negatives``): what was sampled, where each pair's rejected trace came from,
    and why problems have no student negative."""
    s = report.get("student_samples") or {}
    origin = "; ".join(f"{k} {int(v):,}" for k, v in (report.get("pairs_by_rejected_origin") or {}).items())
    drops = "; ".join(f"{k}: {int(v):,}" for k, v in (report.get("problems_without_student_negative") or {}).items())
    return (
        f"- Own negatives (`negatives: {source}`): {int(s.get('samples', 0)):,} samples of the stage-2 start model on "
        f"{int(report.get('problems', 0)):,} pair problems ({int(s.get('correct', 0)):,} correct, "
        f"{int(s.get('truncated', 0)):,} truncated); {int(report.get('pairs', 0)):,} pairs, rejected trace from: "
        f"{origin or 'none'}; problems without a student negative: {drops or 'none'} "
        f"(results/data/{source}-negatives/report.md)."
    )


def _sft_section(results: Results) -> list[str]:
    """Untrained student -> every SFT run's last and best intermediate checkpoint; a note when
    the best is the last one and accuracy was still rising."""
    lines = ["## Stage 1 (SFT)"]
    tag = eval_tag(results, "intermediate")
    for bench in results.intermediate_benchmarks:
        tag = eval_tag(results, "intermediate", [bench])
        base = results.eval("student", "base", bench)
        for name in results.sft:
            points = [p for p in results.intermediate(name, bench) if p["metrics"] is not None]
            start = _fmt(number(base.get("pass@1")), number(base.get("sem"))) if base else MISSING
            if points:
                last = points[-1]
                best = max(points, key=lambda p: (float(p["metrics"]["pass@1"]), p["step"]))
                lines.append(
                    f"- `{name}` ({tag}): untrained student {start} → "
                    f"last checkpoint (step {last['step']}) "
                    f"{_fmt(number(last['metrics']['pass@1']), number(last['metrics'].get('sem')))}; "
                    f"best step {best['step']} "
                    f"{_fmt(number(best['metrics']['pass@1']), number(best['metrics'].get('sem')))}."
                )
                if best is last and len(points) > 1:
                    paired = _point_paired(results, last, points[-2], bench)
                    lines.append(
                        f"- `{name}`'s best checkpoint is its last one, so accuracy may still have been rising "
                        f"(last minus the one before: {paired_text(paired, results.settings.significance_sems)}): SFT "
                        "may not have converged, and more epochs could move the stage-2 start."
                    )
            else:
                shown = display_name(results.config, bench)
                lines.append(f"- `{name}` on {shown}: no checkpoint evaluated yet ({MISSING}).")
    lines.append("")
    return lines


def _stage2_section(results: Results) -> list[str]:
    """Stage-2 runs ranked on the final benchmarks; best run vs runner-up, start and control,
    each by the paired problem-level difference."""
    lines = [f"## Stage 2 (from `{results.stage2_start}`)"]
    k = results.settings.significance_sems
    benches = results.final_benchmarks
    entries = ablation_entries(results)
    scored = []
    for entry in entries:
        score = _final_score(results, entry["run"], entry["ckpt"])
        if score is not None and score[0] is not None:
            scored.append((entry, score))
    missing = [e for e in entries if all(e is not s[0] for s in scored)]
    tag = eval_tag(results, "final")
    if not results.stage2:
        lines.append("- No stage-2 runs are configured.")
    elif not [s for s in scored if s[0]["run"] in results.stage2]:
        lines.append(f"- No stage-2 run has its final evaluation yet ({MISSING}).")
    else:
        metric = "pass@1" if len(benches) == 1 else "average pass@1"
        ranking = sorted(scored, key=lambda s: -s[1][0])
        lines.append(
            f"Ranking by {metric} ({tag}; {results.reported_checkpoint('')} checkpoint of each stage-2 run, the start "
            f"at its {results.start_checkpoint()} model; ± the paper's SEM):"
        )
        lines.append("")
        for rank, (entry, score) in enumerate(ranking, 1):
            lines.append(f"{rank}. `{entry['label']}` ({entry.get('config')}): {_fmt(*score)}")
        lines.append("")
        stage2_scored = [s for s in ranking if s[0]["run"] in results.stage2]
        top_entry, top = stage2_scored[0]
        ref = (top_entry["run"], top_entry["ckpt"])
        spec = results.stage2[top_entry["run"]]
        among = " (among the evaluated ones)" if any(e["run"] in results.stage2 for e in missing) else ""
        lines.append(
            f"- Best stage-2 run{among}: `{top_entry['run']}` — {FAMILY_LABEL[family(spec)]}, {run_label(spec)}: "
            f"{_fmt(*top)}."
        )
        if len(stage2_scored) > 1:
            second_entry, _second = stage2_scored[1]
            paired = results.paired(ref, (second_entry["run"], second_entry["ckpt"]), benches)
            lines.append(f"- Versus the runner-up `{second_entry['run']}`: {paired_text(paired, k)}.")
        start_scored = [s for s in scored if s[0]["run"] == results.stage2_start]
        if start_scored:
            paired = results.paired(ref, (results.stage2_start, start_scored[0][0]["ckpt"]), benches)
            lines.append(f"- Versus the start model `{results.stage2_start}`: {paired_text(paired, k)}.")
            lines += _same_checkpoint_lines(results, start_scored[0][0]["ckpt"])
        from redi.report.headline import headline_rows

        against = [r for r in headline_rows(results) if r.control and not r.is_control]
        if against:
            lines.append(
                "- Against the alpha = 0 control trained with the same settings (positives only): "
                + "; ".join(f"`{r.run}` vs `{r.control}`: {paired_text(r.vs_control, k)}" for r in against)
                + "."
            )
        best_by_family = {}  # (family, negatives source) -> its best run: families compare on the same pairs
        for entry, score in stage2_scored:
            spec = results.stage2[entry["run"]]
            best_by_family.setdefault((family(spec), negatives_of(spec)), (entry, score))
        if len(best_by_family) > 1:
            lines.append(
                "- Best objective family: "
                + ", ".join(
                    f"{FAMILY_LABEL[f]}{'' if n == 'teacher' else f' ({OWN_NEGATIVES_LABEL[n]})'} {_fmt(*s)} "
                    f"(`{e['run']}`)"
                    for (f, n), (e, s) in best_by_family.items()
                )
                + "."
            )
    if missing and results.stage2:
        lines.append(
            f"- Not evaluated yet ({MISSING}): " + ", ".join(f"`{e['run']}/{e['ckpt']}`" for e in missing) + "."
        )
    lines.append("")
    return lines


def _same_checkpoint_lines(results: Results, start_ckpt: str) -> list[str]:
    """When the start model's final evaluation is the same checkpoint as its last intermediate one,
    say so, with both numbers and their paired difference (two samples of one model)."""
    start = results.stage2_start
    summary = results.summaries.get(start) or {}
    out = []
    for bench in results.intermediate_benchmarks:
        if bench not in results.final_benchmarks:
            continue
        final = results.eval(start, start_ckpt, bench)
        points = [p for p in results.intermediate(start, bench) if p["metrics"] is not None]
        if final is None or not points or number(final.get("step")) != number(summary.get("steps", points[-1]["step"])):
            continue
        last = points[-1]
        if last["step"] != number(final.get("step")):
            continue
        from redi.eval.metrics import paired_difference

        a, b = results.problem_scores(start, start_ckpt, bench), results.point_scores(last, bench)
        paired = paired_difference([a], [b], results.settings.significance_sems) if a and b else None
        as_final = _fmt(number(final.get("pass@1")), number(final.get("sem")), eval_tag(results, "final", [bench]))
        m = last["metrics"]
        as_inter = _fmt(number(m.get("pass@1")), number(m.get("sem")), eval_tag(results, "intermediate", [bench]))
        out.append(
            f"- `{start}` {start_ckpt} is its step-{last['step']} checkpoint, evaluated twice: {as_final} and "
            f"{as_inter}; two samples of one model ({paired_text(paired, results.settings.significance_sems)})."
        )
    return out


def _stability_section(results: Results) -> list[str]:
    """The collapse rule, each run's verdict, and finals significantly below their peak."""
    lines = ["## Stability (intermediate accuracy and collapse)"]
    k = results.settings.significance_sems
    lines.append("- Rule: " + CollapseRule().text())
    verdicts: dict[str, list[str]] = {}
    for name in results.stage2:
        found = results.collapse_assessment(name)
        text = f"`{name}` ({verdict_text(found)}" + ("".join(f"; {r}" for r in found.reasons) if found else "") + ")"
        verdicts.setdefault(found.verdict if found else "unknown", []).append(text)
    for verdict in VERDICTS:
        if verdict in verdicts:
            what = " (not trained yet)" if verdict == "unknown" else ""
            lines.append(f"- **{verdict}**{what}: " + ", ".join(verdicts[verdict]) + ".")
    for bench in results.intermediate_benchmarks:
        drops = []
        for name in results.stage2:
            peak, final = peak_and_final(results.curve(name, bench))
            if peak is None or final is None or peak is final:
                continue
            paired = _point_paired(results, final, peak, bench)
            if paired is not None and paired["high"] < 0:
                p = (number(peak["metrics"]["pass@1"]), number(peak["metrics"].get("sem")))
                f = (number(final["metrics"]["pass@1"]), number(final["metrics"].get("sem")))
                drops.append(
                    f"`{name}` {_fmt(*p)} at step {peak['step']} → {_fmt(*f)} at step {final['step']} "
                    f"({paired_text(paired, k)})"
                )
        tag = eval_tag(results, "intermediate", [bench])
        if drops:
            lines.append(f"- Final below peak (step 0 included; {tag}): " + "; ".join(drops) + ".")
        elif results.stage2:
            lines.append(f"- No stage-2 run ended significantly below its peak ({tag}, paired per-problem difference).")
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


def markdown_to_html(text: str, title: str = "Summary", base: str | Path | None = None) -> str:
    """The summary's markdown as an HTML page (Python-Markdown, the ``markdown`` package: bold,
    code, lists, links, images). Images with a path relative to ``base`` that exists there are
    embedded as ``data:`` URIs, so the page shows them inside the Snakemake report too; relative
    links stay relative (they work beside ``reports/``)."""
    import base64
    import re

    import markdown

    body = markdown.markdown(text, extensions=["sane_lists"], output_format="html")
    if base is not None:
        root = Path(base)

        def embed(match):
            path = root / html.unescape(match.group(1))
            if not path.is_file():
                return match.group(0)
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return f'src="data:image/png;base64,{data}"'

        body = re.sub(r'src="([^":]+\.png)"', embed, body)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;font-size:14px;margin:1em;max-width:60em}"
        "img{max-width:100%}</style></head><body>"
        + body
        + "</body></html>\n"
    )
