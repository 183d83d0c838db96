"""Label verification: agreement of the recomputed Math-Verify labels with the corpus' own labels,
from ``results/data/verification_report.json`` (``redi.data.verify_stage.gather``)."""

from __future__ import annotations

from redi.report.collect import Results, number
from redi.report.layout import TABLES
from redi.report.render import MISSING, Table
from redi.report.tables.common import NA, Notes, frame


def _rate(value) -> str:
    value = number(value)
    return NA if value is None else f"{100 * value:.2f}%"


def verification_table(results: Results) -> Table:
    """Agreement of the recomputed Math-Verify labels with the corpus labels (overall and per
    source), from ``verification_report.json`` (``redi.data.verify_stage.gather``)."""
    notes = Notes(results.settings.max_listed_missing)
    report = results.verification
    columns = [
        "Source",
        "Rows",
        "Generations",
        "Recomputed positive",
        "Corpus MV positive",
        "Agreement with MV",
        "MV true / ours false",
        "MV false / ours true",
        "Llama positive",
        "Agreement with Llama",
        "Verifier status",
    ]
    rows, data = [], []
    if report is None:
        rows.append(
            ["(all)"]
            + [notes.miss(str(results.results / "data" / "verification_report.json"))]
            + [MISSING] * (len(columns) - 2)
        )
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
                    f"{int(stats['mv_true_recomputed_false']):,}"
                    if number(stats.get("mv_true_recomputed_false")) is not None
                    else NA,
                    f"{int(stats['mv_false_recomputed_true']):,}"
                    if number(stats.get("mv_false_recomputed_true")) is not None
                    else NA,
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
    notes.add(
        "Recomputed = our bounded Math-Verify label; MV / Llama = the corpus' own labels; n/a = the corpus has no such "
        "label."
    )
    return Table(
        name="verification",
        title=TABLES["verification"],
        columns=columns,
        rows=rows,
        notes=notes.render(),
        data=frame(data),
        align=["l"] + ["r"] * 9 + ["l"],
    )
