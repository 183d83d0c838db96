"""Schema normalisation: Raw / 220k-flat / MV-only corpora -> one canonical table.

Detected input schemas (first match wins):

``raw``      OpenR1-Math-Raw: ``correctness`` struct with ``llama_verification`` and
             ``math_verify_reparsed_answer``; ``problem_is_valid``; ``generations``.
``flat``     OpenR1-Math-220k: ``correctness_llama``, ``correctness_math_verify``,
             ``is_reasoning_complete`` (no ``problem_is_valid``: it becomes null).
``mv_only``  only ``correctness_math_verify`` (``label_llama`` becomes null).

Canonical columns: see ``docs/design.md`` and :func:`redi.data.schemas.canonical_schema`.
``label_mv`` is the corpus' Math-Verify label on the re-parsed answer (Raw) or
``correctness_math_verify`` (flat schemas). ``source`` missing -> ``"unknown"``.
:data:`LABEL_FIELDS` says which corpus field fills each canonical label list, per schema.

Malformed rows never vanish: each goes to the rejects file (JSON lines with ``row_index``,
``step`` = ``"normalize"``, ``reason``, ``detail``) and is counted; the counts are also stored in
the canonical parquet's footer metadata (key ``redi.normalize``) so curation can report them.

Label lists are never required here: which lists a row needs depends on the
curation ``label_rule``, so a null or unusable list becomes null in the canonical table and is
counted (``notes.<label>_null``, ``notes.<label>_not_a_list_set_null``,
``notes.<label>_not_bool_set_null``); curation drops the row only when its rule reads that list
(OpenR1-Math-220k has ``correctness_llama = null`` on the ~88 % of rows Math-Verify alone
decided). A list whose length differs from the generations is kept as it is and judged by
curation the same way. Null elements inside a list are read as ``False`` (and counted); any other
non-boolean element makes the list unusable (``bool("no")`` would be ``True``).
``is_reasoning_complete`` and ``finish_reasons`` (220k) are kept when they have one entry per
generation (else set null, counted); curation reads them to keep truncated traces out of D_SFT
and D_Pref. Text that is not
valid UTF-8 (a JSON-lines row with undecodable bytes or lone ``\\ud800`` escapes) rejects the
row (``text_not_utf8``); control characters and NUL are valid text and are kept verbatim.

The normalise footer (``redi.normalize``) also records ``has_problem_is_valid`` (whether the
corpus has that column: curation drops null validity only where it has) and ``label_lists``
(for each canonical list: the corpus field and how many rows have it).

Rows with the same problem text are all kept, as the paper keeps the corpus rows as they are;
they are counted (``notes.duplicate_problem_rows``: rows whose problem was seen in an earlier
row) and shown in the curation report. A corpus of which no row survives gives an empty
table; curation then stops and names this step.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from redi.data.io import JsonlWriter
from redi.data.schemas import META_NORMALIZE, canonical_schema
from redi.data.sources import Unreadable, load_corpus
from redi.files import atomic_path
from redi.ids import problem_id

log = logging.getLogger(__name__)

SCHEMAS: dict[str, list[str]] = {
    "raw": [
        "problem",
        "answer",
        "generations",
        "problem_is_valid",
        "correctness.llama_verification",
        "correctness.math_verify_reparsed_answer",
    ],
    "flat": [
        "problem",
        "answer",
        "generations",
        "correctness_llama",
        "correctness_math_verify",
        "is_reasoning_complete",
    ],
    "mv_only": ["problem", "answer", "generations", "correctness_math_verify"],
}


# canonical label list -> the corpus field it is read from, per schema (one home: normalise
# fills them, the curation report prints them, and curation names them when a rule lacks one)
LABEL_FIELDS: dict[str, dict[str, str]] = {
    "raw": {
        "label_llama": "correctness.llama_verification",
        "label_mv": "correctness.math_verify_reparsed_answer",
    },
    "flat": {"label_llama": "correctness_llama", "label_mv": "correctness_math_verify"},
    "mv_only": {"label_mv": "correctness_math_verify"},
}


def _field(row: dict, dotted: str):
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _available_columns(schema) -> set[str]:
    import pyarrow as pa

    cols = set()
    for f in schema:
        cols.add(f.name)
        if pa.types.is_struct(f.type):
            for sub in f.type:
                cols.add(f"{f.name}.{sub.name}")
    return cols


def detect_schema(schema, path="<corpus>") -> str:
    """Name of the first matching input schema; ValueError listing what each one misses.

    ``schema``: a pyarrow schema, or a set of column names (``parent.child`` for struct fields,
    as :meth:`redi.data.sources.Corpus.columns` gives)."""
    have = set(schema) if isinstance(schema, (set, frozenset)) else _available_columns(schema)
    missing = {}
    for name, required in SCHEMAS.items():
        miss = [c for c in required if c not in have]
        if not miss:
            return name
        missing[name] = miss
    detail = "; ".join(f"{name}: missing {miss}" for name, miss in missing.items())
    raise ValueError(
        f"{path}: the corpus matches none of the known schemas ({detail}). "
        f"Columns present: {sorted(c for c in have if '.' not in c)}"
    )


def _labels(value, name: str, counters: Counter) -> list[bool] | None:
    """A label list as booleans, or None (counted) when it is null or unusable. Never rejects:
    whether the row needs this list is the curation rule's business."""
    if value is None:
        counters[f"{name}_null"] += 1
        return None
    if not isinstance(value, (list, tuple)):
        counters[f"{name}_not_a_list_set_null"] += 1
        return None
    out = []
    nulls = 0
    for v in value:
        if v is None:
            nulls += 1
        elif not isinstance(v, (bool, int)) or v not in (0, 1):
            counters[f"{name}_not_bool_set_null"] += 1
            return None
        out.append(bool(v))
    counters["null_label_elements_as_false"] += nulls
    return out


def _per_generation(value, n: int, name: str, counters: Counter, cast):
    """A per-generation list (``is_reasoning_complete``, ``finish_reasons``) or None."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != n:
        counters[f"{name}_set_null"] += 1
        return None
    return [None if x is None else cast(x) for x in value]


def _canonical_row(
    row: dict, row_index: int, schema_name: str, counters: Counter
) -> tuple[dict | None, str | None, str]:
    """Returns (canonical row, reject reason, detail)."""
    problem = row.get("problem")
    if not isinstance(problem, str):
        return None, "problem_not_string", f"type {type(problem).__name__}"
    if not problem.strip():
        return None, "problem_empty", ""
    answer = row.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return None, "answer_missing", ""
    if isinstance(answer, (dict, list, tuple)):
        return None, "answer_not_string", f"type {type(answer).__name__}"
    if not isinstance(answer, str):
        answer = str(answer)
    gens = row.get("generations")
    if gens is None:
        return None, "generations_none", ""
    if not isinstance(gens, (list, tuple)):
        return None, "generations_not_a_list", f"type {type(gens).__name__}"
    if len(gens) == 0:
        return None, "generations_empty", ""
    if any(not isinstance(g, str) for g in gens):
        return None, "generation_not_string", ""
    # empty traces are kept as they are (paper), but counted
    counters["empty_generation_strings"] += sum(not g.strip() for g in gens)
    texts = [problem, answer, *gens, row.get("source"), row.get("problem_is_valid")]
    if not all(_is_utf8(t) for t in texts if isinstance(t, str)):
        return None, "text_not_utf8", "a text field holds bytes that are not valid UTF-8"
    n = len(gens)

    fields = LABEL_FIELDS[schema_name]
    labels = {
        name: _labels(_field(row, fields[name]), name, counters) if name in fields else None
        for name in ("label_llama", "label_mv")
    }
    complete = _per_generation(row.get("is_reasoning_complete"), n, "is_reasoning_complete", counters, bool)
    finish = _per_generation(row.get("finish_reasons"), n, "finish_reasons", counters, str)

    validity = row.get("problem_is_valid")
    source = row.get("source")
    return (
        {
            "problem_id": problem_id(problem),
            "row_index": row_index,
            "source": str(source) if source is not None else "unknown",
            "problem": problem,
            "answer": answer,
            "problem_is_valid": None if validity is None else str(validity),
            "generations": list(gens),
            "label_llama": labels["label_llama"],
            "label_mv": labels["label_mv"],
            "is_reasoning_complete": complete,
            "finish_reasons": finish,
            "schema": schema_name,
        },
        None,
        "",
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def normalize(input_path, output_path, rejects_path, *, batch_size: int = 2048) -> dict:
    """Normalise a corpus (file or directory, see :func:`redi.data.sources.load_corpus`) into the
    canonical parquet ``output_path``; malformed rows go to ``rejects_path`` (JSON lines).

    Returns a summary: schema, input/output/rejected row counts, reject reasons.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = load_corpus(input_path)
    columns = corpus.columns()
    schema_name = detect_schema(columns, corpus.path)
    log.info("%s: detected schema %r", corpus.path, schema_name)
    out_schema = canonical_schema()
    counters: Counter = Counter()
    reasons: Counter = Counter()
    row_index = 0
    n_out = 0
    with_list: Counter = Counter()  # canonical rows that have each label list
    seen: set[str] = set()  # problem ids of the rows kept so far (duplicates are counted)
    with atomic_path(output_path) as tmp_out, JsonlWriter(rejects_path) as rejects:
        writer = pq.ParquetWriter(str(tmp_out), out_schema)
        try:
            for batch in corpus.iter_records(batch_size=batch_size):
                out_rows = []
                for row in batch:
                    if isinstance(row, Unreadable):
                        canon, reason, detail, row = None, row.reason, row.detail, {}
                    else:
                        canon, reason, detail = _canonical_row(row, row_index, schema_name, counters)
                    if canon is None:
                        reasons[reason] += 1
                        problem, source = row.get("problem"), row.get("source")
                        rejects.write(
                            {
                                "row_index": row_index,
                                "problem_id": problem_id(problem) if isinstance(problem, str) else None,
                                "source": source if isinstance(source, str) and _is_utf8(source) else None,
                                "step": "normalize",
                                "reason": reason,
                                "detail": detail,
                            }
                        )
                    else:
                        if canon["problem_id"] in seen:
                            counters["duplicate_problem_rows"] += 1
                        seen.add(canon["problem_id"])
                        out_rows.append(canon)
                        for name in LABEL_FIELDS[schema_name]:
                            with_list[name] += canon[name] is not None
                    row_index += 1
                if out_rows:
                    writer.write_table(pa.Table.from_pylist(out_rows, schema=out_schema))
                    n_out += len(out_rows)
            summary = {
                "input": str(input_path),
                "input_kind": corpus.kind,
                "schema": schema_name,
                "input_rows": row_index,
                "canonical_rows": n_out,
                "rejected_rows": sum(reasons.values()),
                "reject_reasons": dict(sorted(reasons.items())),
                "notes": dict(sorted(counters.items())),
                # curation drops null validity only in corpora that have the column
                "has_problem_is_valid": "problem_is_valid" in columns,
                "label_lists": {
                    name: {"field": field, "rows_with_list": with_list[name], "canonical_rows": n_out}
                    for name, field in LABEL_FIELDS[schema_name].items()
                },
                "rejects_path": str(rejects_path),
            }
            writer.add_key_value_metadata({META_NORMALIZE: json.dumps(summary)})
        finally:
            writer.close()
    log.info("normalize: %s", summary)
    if n_out == 0:
        log.error("normalize kept no rows (%s); curation will stop", summary["reject_reasons"])
    return summary


def read_canonical(path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    return pq.read_table(str(path), columns=columns)


def canonical_rows(path) -> list[dict]:
    return read_canonical(path).to_pylist()


__all__ = ["LABEL_FIELDS", "SCHEMAS", "detect_schema", "normalize", "problem_id", "read_canonical", "canonical_rows"]
