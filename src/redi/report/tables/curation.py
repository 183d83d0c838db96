"""The curation funnel table, from ``results/data/curation_report.json`` (``redi.data.curate``)."""

from __future__ import annotations

from redi import paper
from redi.data.funnel import BRANCHES, funnel
from redi.report.collect import Results, number
from redi.report.layout import TABLES
from redi.report.paper_lookup import paper_setting
from redi.report.render import MISSING, Table
from redi.report.tables.common import NA, Notes, frame

COLUMNS = ["Branch", "Step", "Kept", "Dropped", "Expected (config)", "Paper", "Match", "Drop reasons"]
FINAL = (("sft", "final D_SFT (examples)"), ("pref", "final D_Pref (pairs)"))


def _reasons(reasons) -> str:
    if not isinstance(reasons, dict) or not reasons:
        return ""
    return "; ".join(f"{k}: {int(v):,}" for k, v in reasons.items() if isinstance(v, (int, float)))


def _count(value) -> str:
    return f"{int(value):,}" if value is not None else NA


def _match_text(match, kept, expected) -> str:
    if match is None:
        return NA
    if match:
        return "yes"
    return f"NO ({int(kept - expected):+,})" if kept is not None and expected is not None else "NO"


def _missing_report(results: Results, notes: Notes, rows: list, data: list) -> None:
    notes.miss(str(results.results / "data" / "curation_report.json"))
    for quantity, value in paper.CURATION_EXPECTED.items():
        rows.append(["", quantity, MISSING, MISSING, NA, f"{value:,}", MISSING, ""])
        data.append(
            {
                "step": quantity,
                "kept": None,
                "dropped": None,
                "expected": None,
                "paper": value,
                "match": None,
                "status": "missing",
            }
        )


def _step_rows(report: dict, notes: Notes, rows: list, data: list, with_paper: bool) -> None:
    comparisons = {
        item["at_step"]: item for item in report.get("expected") or [] if isinstance(item, dict) and item.get("at_step")
    }
    labels = dict(BRANCHES)
    for st in funnel(report):
        name, kept, dropped = st["step"], st["kept"], st["dropped"]
        comp = comparisons.get(name, {})
        expected, match = comp.get("expected"), comp.get("match")
        paper_count = comp.get("paper") if with_paper else None
        rows.append(
            [
                labels[st["branch"]],
                f"{name} ({comp['quantity']})" if comp and comp.get("quantity") else name,
                f"{kept:,}" if kept is not None else notes.miss(f"count of curation step '{name}'"),
                f"{dropped:,}" if dropped is not None else "",
                _count(expected),
                _count(paper_count),
                _match_text(match, kept, expected),
                _reasons(st["reasons"]),
            ]
        )
        data.append(
            {
                "branch": st["branch"],
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
    for key, label in FINAL:
        value = number(final.get(key))
        value = int(value) if value is not None else None
        rows.append(
            [labels[key], label, f"{value:,}" if value is not None else notes.miss(f"final {key} count"), "", NA, NA,
             NA, ""]
        )  # fmt: skip
        data.append({"branch": key, "step": label, "quantity": key, "kept": value,
                     "status": "ok" if value is not None else "missing"})  # fmt: skip
    if not report.get("steps"):
        notes.add("The curation report lists no steps.")


def _paper_counts_note() -> str:
    corpus = paper.CORPUS.rsplit("/", 1)[-1]
    expected = paper.CURATION_EXPECTED
    return (
        f"Paper counts are for {corpus} ({expected['sft']:,} SFT examples; "
        f"{expected['pairs_before_length_filter']:,} pairs before the length filter); this corpus is not that one."
    )


def curation_table(results: Results) -> Table:
    """The curation funnel: rows kept after every step, what was dropped and why, and the
    expected counts (config and paper) at the step where they are defined (``expected[].at_step``)."""
    notes = Notes(results.settings.max_listed_missing)
    rows, data = [], []
    with_paper = bool(paper_setting(results.config))
    if results.curation is None:
        _missing_report(results, notes, rows, data)
    else:
        _step_rows(results.curation, notes, rows, data, with_paper)
    if not with_paper:
        notes.add(_paper_counts_note() + " Paper counts are therefore not shown beside ours.")
    notes.add(
        "Two branches: the shared steps, then the SFT branch (D_SFT) and the pair branch (D_Pref), each from the last "
        "shared step; Dropped = kept at the step before in the same branch minus kept here."
    )
    notes.add(
        "Expected (config): curation.expected; Match compares it with our count at that step; n/a = no expectation "
        "given."
    )
    return Table(
        name="curation",
        title=TABLES["curation"],
        columns=COLUMNS,
        rows=rows,
        notes=notes.render(),
        data=frame(data),
        align=["l", "l", "r", "r", "r", "r", "l", "l"],
    )
