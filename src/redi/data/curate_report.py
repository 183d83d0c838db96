"""The curation report: the JSON dict (``curation_report.json``) and its markdown rendering.

Assembled from what :func:`redi.data.curate.curate` computed (the funnel's steps, the selected
and final sets, token lengths, decontamination hits); nothing here re-derives a count. The
paper's counts come from :data:`redi.paper.CURATION_EXPECTED`.
"""

from __future__ import annotations

from redi import paper
from redi.data.config import CurationConfig
from redi.data.normalize import LABEL_FIELDS


def _mean(values: list[int]):
    return round(sum(values) / len(values), 1) if values else None


def token_stats(sft_sel, pref_sel, prompt_len: dict, resp_len: dict) -> dict:
    """Token statistics of the selected sets (before the length filter), student tokenizer."""
    sft_resp = [resp_len[(r["row_index"], i)] for r, i in sft_sel]
    chosen = [resp_len[(r["row_index"], i)] for r, i, _ in pref_sel]
    rejected = [resp_len[(r["row_index"], j)] for r, _, j in pref_sel]
    return {
        "sft_response_tokens_mean": _mean(sft_resp),
        "sft_response_tokens_max": max(sft_resp) if sft_resp else None,
        "pref_chosen_tokens_mean": _mean(chosen),
        "pref_rejected_tokens_mean": _mean(rejected),
        "prompt_tokens_max": max(prompt_len.values()) if prompt_len else None,
    }


def expected_counts(cfg: CurationConfig, n_sft_selected: int, n_pairs_selected: int) -> list[dict]:
    """Our counts after selection beside the configured and the paper's expectations."""
    out = []
    for key, actual, at in (
        ("sft", n_sft_selected, "select_sft"),
        ("pairs_before_length_filter", n_pairs_selected, "select_pref"),
    ):
        exp = getattr(cfg.expected, key)
        match = None if exp is None else int(exp) == actual
        out.append({"quantity": key, "at_step": at, "expected": exp, "actual": actual, "match": match,
                    "paper": paper.CURATION_EXPECTED[key]})  # fmt: skip
    return out


def source_counts(origins: dict[int, tuple[int, int]], selected: tuple, final: tuple) -> dict:
    """What each source contributed (a corpus mixed with new teacher traces).

    ``origins``: ``row_index -> (corpus generations, teacher generations)`` (a row's corpus
    traces come first, :mod:`redi.teacher.corpus`); ``selected`` / ``final`` as in
    :func:`build_report`. Counts the generations of each source, the D_SFT examples by the source
    of their trace, and the D_Pref pairs by the sources of (chosen, rejected); a pair with a
    teacher trace is a new pair."""

    def origin(row: dict, gen: int) -> str:
        return "corpus" if gen < origins.get(row["row_index"], (0, 0))[0] else "teacher"

    def counts(sft, pref) -> dict:
        by_sft, by_pair = {"corpus": 0, "teacher": 0}, {}
        for row, i in sft:
            by_sft[origin(row, i)] += 1
        for row, i, j in pref:
            key = f"{origin(row, i)}/{origin(row, j)}"
            by_pair[key] = by_pair.get(key, 0) + 1
        new = sum(v for k, v in by_pair.items() if "teacher" in k)
        return {"sft": by_sft, "pairs": dict(sorted(by_pair.items())), "new_pairs": new}

    return {
        "generations": {"corpus": sum(c for c, _ in origins.values()), "teacher": sum(t for _, t in origins.values())},
        "rows_with_teacher_traces": sum(1 for _, t in origins.values() if t),
        "selected": counts(*selected),
        "final": counts(*final),
    }


def _source_lines(sources: dict | None) -> list[str]:
    if not sources:
        return []
    gens = sources["generations"]
    lines = [
        "",
        "## Sources (corpus and new teacher traces)",
        "",
        f"Generations: corpus {gens['corpus']:,}, teacher {gens['teacher']:,} "
        f"({sources['rows_with_teacher_traces']:,} rows with teacher traces).",
        "",
        "| set | at | from corpus | from teacher |",
        "|---|---|---:|---:|",
    ]
    for at in ("selected", "final"):
        sft = sources[at]["sft"]
        lines.append(f"| D_SFT | {at} | {sft['corpus']:,} | {sft['teacher']:,} |")
    for at in ("selected", "final"):
        pairs = sources[at]["pairs"]
        old = pairs.get("corpus/corpus", 0)
        lines.append(f"| D_Pref (chosen/rejected: {', '.join(f'{k} {v:,}' for k, v in pairs.items()) or '—'}) "
                     f"| {at} | {old:,} | {sources[at]['new_pairs']:,} new |")  # fmt: skip
    return lines


def build_report(cfg: CurationConfig, paths: dict, steps: list[dict], selected: tuple, final: tuple,
                 lengths: tuple, hits: list[dict], rejects_count: int, meta: dict | None) -> dict:  # fmt: skip
    """The report dict. ``paths``: ``verified``, ``tokenizer``, ``rejects``; ``selected`` /
    ``final``: (D_SFT items, D_Pref items) after selection / after the last step; ``lengths``:
    (prompt tokens by row_index, response tokens by (row_index, gen_index)); ``meta``: the
    normalise summary or None."""
    (sft_sel, pref_sel), (sft, pref) = selected, final
    return {
        "verified": str(paths["verified"]),
        "tokenizer": str(paths["tokenizer"]),
        "cfg": cfg.to_dict(),
        "steps": steps,
        "final": {"sft": len(sft), "pref": len(pref)},
        "expected": expected_counts(cfg, len(sft_sel), len(pref_sel)),
        "token_stats": token_stats(sft_sel, pref_sel, *lengths),
        "contaminated": hits,
        "rejects": str(paths["rejects"]),
        "rejects_count": rejects_count,
        "normalize": meta,
        "label_lists": {
            "schema": (meta or {}).get("schema"),
            "corpus": (meta or {}).get("label_lists"),
            "by_schema": LABEL_FIELDS,
            "rule_reads": cfg.rule_lists,
        },
    }


# the steps each curated set goes through, in order (a step absent from a run is skipped)
_SET_STEPS = {
    "sft": ("select_sft", "disputed_sft", "length_filter_sft", "decontaminate_sft"),
    "pref": ("select_pref", "disputed_pref", "length_filter_pref", "decontaminate_pref"),
}
_COMMON_STEPS = ("corpus", "normalize", "input (verified rows)", "valid_only", "exclude_sources", "label_lists")


def empty_message(name: str, steps: list[dict], which: str, report_md, rejects_path) -> str:
    """Why a curated set is empty: the first step that kept nothing, and the funnel."""
    path = [s for s in steps if s["step"] in _COMMON_STEPS + _SET_STEPS[which]]
    culprit = next((s for s in path if s.get("kept") == 0), path[-1])
    reasons = culprit.get("reasons") or {}
    funnel = " -> ".join(f"{s['step']} {s.get('kept')}" for s in path)
    return (
        f"curation: {name} is empty: step '{culprit['step']}' removed every remaining row"
        + (f" (reasons: {reasons})" if reasons else "")
        + f". Rows kept after each step: {funnel}. Report: {report_md}; one line per dropped row "
        f"in {rejects_path}. Nothing was written for training."
    )


def _label_list_lines(info: dict | None, rule: str) -> list[str]:
    """Which label lists each schema has, which ones ``rule`` reads, and this corpus' counts."""
    if not info:
        return []
    corpus = info.get("corpus") or {}
    lines = [
        "",
        "## Label lists",
        "",
        f"`label_rule: {rule}` reads {', '.join(f'`{c}`' for c in info['rule_reads'])}; a row without "
        "one of them is dropped at `label_lists`, lists the rule does not read are never required.",
        "",
        "| schema | label list | corpus field | read by the rule | rows with it (this corpus) |",
        "|---|---|---|---|---:|",
    ]
    for schema, fields in info["by_schema"].items():
        for col, field in fields.items():
            here = corpus.get(col) if schema == info.get("schema") else None
            count = f"{here['rows_with_list']:,} of {here['canonical_rows']:,}" if here else ""
            mark = " (this corpus)" if schema == info.get("schema") else ""
            read = "yes" if col in info["rule_reads"] else "no"
            lines.append(f"| {schema}{mark} | `{col}` | `{field}` | {read} | {count} |")
    return lines


def _dispute_lines(steps: list[dict]) -> list[str]:
    """What the second verifier disputes (steps ``disputed_sft`` / ``disputed_pref``)."""
    by = {s["step"]: s for s in steps if s["step"] in ("disputed_sft", "disputed_pref")}
    if not by:
        return []
    any_step = next(iter(by.values()))
    col, drop = any_step.get("verifier"), any_step.get("drop_disputed")
    parts = []
    for name, what in (("disputed_pref", "pairs whose rejected trace `{col}` calls correct"),
                       ("disputed_sft", "SFT examples whose trace `{col}` calls wrong")):  # fmt: skip
        s = by.get(name)
        if s is not None:
            seen = s["kept"] + s.get("dropped", 0)
            unknown = f", {s['no_second_label']:,} without that label" if s.get("no_second_label") else ""
            parts.append(f"{s['disputed']:,} of {seen:,} " + what.format(col=col) + unknown)
    verdict = "dropped (`drop_disputed: true`)" if drop else "kept, as the paper's rule does (`drop_disputed: false`)"
    return ["", "Disputed by a second verifier: " + "; ".join(parts) + f" - {verdict}."]


def render_markdown(report: dict) -> str:
    """The curation report as markdown (``curation_report.md``), from :func:`build_report`'s dict."""
    lines = ["# Curation report", ""]
    cfg = report["cfg"]
    lines += [
        f"- verified corpus: `{report['verified']}`",
        f"- student tokenizer: `{report['tokenizer']}`",
        f"- label rule: `{cfg['label_rule']}`; shuffle seed {cfg['shuffle_seed']}; excluded sources "
        f"{cfg['exclude_sources']}",
        f"- length limits: prompt <= {cfg['max_prompt_length']}, response <= {cfg['max_response_length']} tokens",
        f"- decontamination: {cfg['decontaminate']}",
        "",
        "## Expected vs actual",
        "",
        "| quantity | at step | expected (config) | actual | match | paper |",
        "|---|---|---:|---:|---|---:|",
    ]
    for c in report["expected"]:
        exp = "—" if c["expected"] is None else f"{c['expected']:,}"
        match = "—" if c["match"] is None else ("yes" if c["match"] else "**NO**")
        lines.append(
            f"| {c['quantity']} | {c['at_step']} | {exp} | {c['actual']:,} | {match} | {c['paper']:,} |"
        )
    lines += _label_list_lines(report.get("label_lists"), cfg["label_rule"])
    lines += _source_lines(report.get("sources"))
    lines += ["", "## Steps", "", "| step | kept | dropped | reasons |", "|---|---:|---:|---|"]
    for s in report["steps"]:
        kept = "—" if s.get("kept") is None else f"{s['kept']:,}"
        dropped = "" if "dropped" not in s else f"{s['dropped']:,}"
        reasons = "; ".join(f"{k}: {v:,}" for k, v in s.get("reasons", {}).items())
        lines.append(f"| {s['step']} | {kept} | {dropped} | {reasons} |")
    lines += _dispute_lines(report["steps"])
    notes = next((s.get("notes") for s in report["steps"] if s["step"] == "normalize"), None)
    if notes:
        lines += [
            "",
            "Normalisation notes (nothing dropped): "
            + "; ".join(f"{k}: {v:,}" for k, v in notes.items())
            + ". Rows with the same problem are kept, as in the paper.",
        ]
    spelled = next((s["control_token_texts"] for s in report["steps"] if s.get("control_token_texts")), None)
    if spelled:  # counted by the length filter's tokenizer pass (redi.data.curate.TokenCounter)
        lines += ["", "control_token_texts: texts that spell a special token of the student's tokenizer, "
                  "kept and encoded as plain text: " + "; ".join(f"{k}: {v:,}" for k, v in spelled.items()) + "."]
    lines += [
        "",
        f"**Final:** D_SFT {report['final']['sft']:,} examples, D_Pref {report['final']['pref']:,} pairs.",
        "",
        f"Every dropped row has a line (with `step` and `reason`) in `{report['rejects']}` "
        f"({report['rejects_count']:,} lines).",
        "",
        "## Token statistics (student tokenizer)",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in report["token_stats"].items()]
    if report["contaminated"]:
        lines += [
            "",
            "## Decontamination hits",
            "",
            "| set | row_index | benchmark | index | n-gram |",
            "|---|---:|---|---:|---|",
        ]
        for c in report["contaminated"][:200]:
            lines.append(
                f"| {c['set']} | {c['row_index']} | {c['benchmark']} | {c['benchmark_index']} | `{c['ngram']}` |"
            )
        if len(report["contaminated"]) > 200:
            lines.append(f"| … {len(report['contaminated']) - 200} more in the JSON report | | | | |")
    return "\n".join(lines) + "\n"


__all__ = ["build_report", "empty_message", "render_markdown", "source_counts", "token_stats"]
