"""Small file helpers and the Arrow schemas of the data stage's files (see docs/design.md)."""

from __future__ import annotations

import json
from pathlib import Path

META_NORMALIZE = "redi.normalize"
META_VERIFY = "redi.verify"


def canonical_schema():
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
    import pyarrow as pa

    return (
        canonical_schema()
        .append(pa.field("label_recomputed", pa.list_(pa.bool_())))
        .append(pa.field("verify_status", pa.list_(pa.string())))
    )


def shard_schema():
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


def read_kv_meta(path, key: str) -> dict | None:
    """A JSON value stored in a parquet file's footer key-value metadata, or None."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(str(path)).metadata or {}
    raw = meta.get(key.encode())
    return json.loads(raw) if raw else None


def mkparent(path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


class JsonlWriter:
    """Append-only JSON-lines writer (one object per line, UTF-8, no ASCII escaping)."""

    def __init__(self, path):
        self.path = mkparent(path)
        self._fh = open(self.path, "w", encoding="utf-8")
        self.count = 0

    def write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_json(path, obj) -> None:
    mkparent(path).write_text(
        json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
