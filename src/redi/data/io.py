"""Reading and writing the data stage's files: parquet footer metadata and JSON lines.

Writes are atomic (``redi.files``): a reader sees the previous file or the whole new one.
Arrow schemas: :mod:`redi.data.schemas`.
"""

from __future__ import annotations

import contextlib
import json

from redi.files import atomic_write


def iter_parquet_batches(path, batch_size: int = 1024, columns: list[str] | None = None):
    """``pyarrow.RecordBatch`` es of a parquet file in row order, at most ``batch_size`` rows each,
    read one row group at a time: one ``iter_batches`` reader over many row groups keeps memory
    it has finished with (pyarrow 20-22: RSS grows with the file, ~1 GB after 1.3 GB of text,
   ), a reader per row group does not. A batch never spans two row groups."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    for i in range(pf.num_row_groups):
        yield from pf.iter_batches(batch_size=batch_size, row_groups=[i], columns=columns)


def read_kv_meta(path, key: str) -> dict | None:
    """A JSON value stored in a parquet file's footer key-value metadata, or None."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(str(path)).metadata or {}
    raw = meta.get(key.encode())
    return json.loads(raw) if raw else None


class JsonlWriter:
    """JSON-lines writer (one object per line, UTF-8, no ASCII escaping), atomic: the lines go
    to a temporary file that :meth:`close` (or leaving the ``with`` block normally) renames onto
    ``path``; leaving the block by an exception discards them and leaves ``path`` as it was."""

    def __init__(self, path):
        self.path = path
        self._stack = contextlib.ExitStack()
        self._fh = self._stack.enter_context(atomic_write(path))
        self.count = 0

    def write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.__exit__(*exc)


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


__all__ = ["JsonlWriter", "iter_parquet_batches", "read_jsonl", "read_kv_meta"]
