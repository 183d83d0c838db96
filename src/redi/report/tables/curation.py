"""The curation funnel table, from ``results/data/curation_report.json`` (``redi.data.curate``)."""

from __future__ import annotations

from redi import paper
from redi.report.collect import Results, number
from redi.report.layout import TABLES
from redi.report.paper_lookup import paper_setting
from redi.report.render import MISSING, Table
from redi.report.tables.common import NA, Notes, frame

COLUMNS = ["Step", "Kept", "Dropped", "Expected (config)", "Paper", "Match", "Drop reasons"]
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
        rows.append([quantity, MISSING, MISSING, NA, f"{value:,}", MISSING, ""])
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


def _step_rows(report: dict, notes: Notes, rows: list, data: list) -> None:
    comparisons = {
        item["at_step"]: item for item in report.get("expected") or [] if isinstance(item, dict) and item.get("at_step")
    }
    for step in report.get("steps") or []:
        name = str(step.get("step"))
        kept, dropped = number(step.get("kept")), number(step.get("dropped"))
        comp = comparisons.get(name, {})
        expected, paper_count, match = comp.get("expected"), comp.get("paper"), comp.get("match")
        rows.append(
            [
                f"{name} ({comp['quantity']})" if comp and comp.get("quantity") else name,
                f"{int(kept):,}" if kept is not None else notes.miss(f"count of curation step '{name}'"),
                f"{int(dropped):,}" if dropped is not None else "",
                _count(expected),
                _count(paper_count),
                _match_text(match, kept, expected),
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
    for key, label in FINAL:
        value = number(final.get(key))
        rows.append(
            [label, f"{int(value):,}" if value is not None else notes.miss(f"final {key} count"), "", NA, NA, NA, ""]
        )
        data.append({"step": label, "quantity": key, "kept": value, "status": "ok" if value is not None else "missing"})
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
    if results.curation is None:
        _missing_report(results, notes, rows, data)
    else:
        _step_rows(results.curation, notes, rows, data)
    if not paper_setting(results.config):
        notes.add(_paper_counts_note())
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
        align=["l", "r", "r", "r", "r", "l", "l"],
    )
