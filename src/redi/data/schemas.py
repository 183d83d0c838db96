"""The Arrow schemas of the data stage's parquet files and their footer metadata keys.

Columns and meanings: ``docs/design.md`` (the file contract between stages). Every writer of
these files builds its table with the schema here, so the types cannot drift between writers
(a list column of nulls stays ``list<bool>``, not ``list<null>``).
"""

from __future__ import annotations

# footer key-value metadata: the normalise summary (copied onto verified.parquet) and the shards
META_NORMALIZE = "redi.normalize"
META_VERIFY = "redi.verify"


def raw_schema():
    """A corpus in the Open-R1 Raw layout as the teacher stage writes it (``redi.teacher.corpus``):
    the real Raw columns and types (``tests/fixtures/openr1/raw.parquet``: ``generations``,
    ``generations_count``, the ``correctness`` struct of label lists) plus the per-generation
    ``finish_reasons`` and ``is_reasoning_complete`` of OpenR1-Math-220k, so truncated traces
    stay labelled as such through normalisation."""
    import pyarrow as pa

    lb = pa.list_(pa.bool_())
    correctness = pa.struct(
        [("llama_verification", lb), ("math_verify_answer", lb), ("math_verify_reparsed_answer", lb)]
    )
    return pa.schema(
        [
            ("problem", pa.string()),
            ("answer", pa.string()),
            ("problem_is_valid", pa.string()),
            ("source", pa.string()),
            ("synthetic", pa.bool_()),
            ("generations", pa.list_(pa.string())),
            ("generations_count", pa.int64()),
            ("correctness", correctness),
            ("finish_reasons", pa.list_(pa.string())),
            ("is_reasoning_complete", lb),
        ]
    )


def canonical_schema():
    """``results/data/canonical.parquet``: one row per corpus row that normalised."""
    import pyarrow as pa

    lb = pa.list_(pa.bool_())
    return pa.schema(
        [
            ("problem_id", pa.string()),
            ("row_index", pa.int64()),
            ("source", pa.string()),
            ("problem", pa.string()),
            ("answer", pa.string()),
            ("problem_is_valid", pa.string()),
            ("generations", pa.list_(pa.string())),
            ("label_llama", lb),
            ("label_mv", lb),
            ("is_reasoning_complete", lb),
            ("finish_reasons", pa.list_(pa.string())),
            ("schema", pa.string()),
        ]
    )


def verified_schema():
    """``results/data/verified.parquet``: canonical + our re-verification per generation."""
    import pyarrow as pa

    return (
        canonical_schema()
        .append(pa.field("label_recomputed", pa.list_(pa.bool_())))
        .append(pa.field("verify_status", pa.list_(pa.string())))
    )


def shard_schema():
    """``results/data/verify/shard-*.parquet``: one row per (row, generation) verified."""
    import pyarrow as pa

    return pa.schema(
        [
            ("row_index", pa.int64()),
            ("gen_index", pa.int32()),
            ("mv_recomputed", pa.bool_()),
            ("status", pa.string()),
            ("extracted", pa.string()),
            ("seconds", pa.float64()),
        ]
    )


__all__ = ["META_NORMALIZE", "META_VERIFY", "canonical_schema", "raw_schema", "shard_schema", "verified_schema"]
