"""Where the teacher corpus comes from: the Hugging Face hub, or a local copy.

``load_corpus`` streams record batches so a multi-GB corpus (OpenR1-Math-Raw) is never loaded
whole: parquet via ``pyarrow.dataset``, save_to_disk datasets memory-mapped via ``datasets``.

Corpus text is untrusted. :meth:`Corpus.iter_records` (what normalisation reads) never fails on
one bad row: a JSON-lines row that is not valid JSON or not an object, or a parquet row whose
text is not valid UTF-8, comes back as an :class:`Unreadable` record (normalisation rejects it
with its reason) and the rows around it are read as usual. JSON lines are parsed one line at a
time, so one row with an unexpected type (a number where the others have text) does not stop
the file; bytes that are not UTF-8 survive as lone surrogates and are rejected per row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redi.files import write_text_atomic

log = logging.getLogger(__name__)

LOCAL_HINT = (
    "If the hub is unreachable (offline machine, firewall, no credentials), download the dataset "
    "on another machine and point the config at the copy: set `corpus.source: local` and "
    "`corpus.local_path: /path/to/copy` (a directory of parquet/jsonl files, a single "
    ".parquet/.jsonl file, or a `save_to_disk` dataset directory)."
)


def hub_cache_dir(name: str, root: str = "resources/corpus") -> str:
    """Where the workflow caches a hub dataset: ``open-r1/X`` -> ``resources/corpus/open-r1__X``."""
    return f"{root}/{name.replace('/', '__')}"


def download_hub(name: str, revision: str | None, split: str, out_dir) -> dict:
    """Download ``name``@``revision`` split ``split`` with ``datasets`` and ``save_to_disk`` it.

    Any failure (connection, offline mode, missing revision) raises ``RuntimeError`` whose
    message says how to use a local copy instead.
    """
    out_dir = Path(out_dir)
    # resolve the revision first and load that commit, so the record names what was downloaded
    # even if the branch moves meanwhile
    commit = _hub_commit(name, revision)
    try:
        import datasets

        ds = datasets.load_dataset(name, revision=commit or revision, split=split)
    except Exception as exc:  # noqa: BLE001 - every failure gets the same actionable message
        error = RuntimeError(
            f"Could not load {name!r} (revision {revision!r}, split {split!r}) from the Hugging "
            f"Face hub: {type(exc).__name__}: {exc}\n{LOCAL_HINT}"
        )
        log.error("%s", error)  # the job's log says why, not only its stderr
        raise error from exc
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    ds.save_to_disk(str(out_dir))
    from redi.provenance import content_hash

    info = {"name": name, "revision": revision, "commit": commit, "split": split,
            "rows": len(ds), "columns": ds.column_names,
            # what was really downloaded: a revision such as "main" moves; hashed once here
            "sha256": content_hash(out_dir)}  # fmt: skip
    write_text_atomic(out_dir / "redi_download.json", json.dumps(info, indent=1) + "\n")
    log.info("download: %s", info)
    return info


def _hub_commit(name: str, revision: str | None) -> str | None:
    """The commit ``revision`` of hub dataset ``name`` resolves to (``huggingface_hub``), or None
    where it cannot be asked (a local repository path, offline mode)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(name, revision=revision, timeout=30).sha
    except Exception as exc:  # noqa: BLE001 - provenance only; the download itself succeeded
        log.info("no hub commit for %s@%s: %s", name, revision, type(exc).__name__)
        return None


@dataclass(frozen=True)
class Unreadable:
    """A corpus row that could not be read as a record; normalisation rejects it with ``reason``."""

    reason: str  # "invalid_json" | "not_a_json_object" | "text_not_utf8"
    detail: str = ""


def _parse_json_line(line: bytes) -> dict | Unreadable:
    # surrogateescape: bytes that are not UTF-8 become lone surrogates, rejected per row later
    text = line.decode("utf-8", errors="surrogateescape")
    try:
        value = json.loads(text)
    except ValueError as exc:
        return Unreadable("invalid_json", str(exc)[:200])
    if not isinstance(value, dict):
        return Unreadable("not_a_json_object", f"a JSON {type(value).__name__}")
    return value


def _dotted_names(record: dict, names: set[str]) -> None:
    for key, value in record.items():
        names.add(key)
        if isinstance(value, dict):
            names.update(f"{key}.{sub}" for sub in value)


@dataclass
class Corpus:
    """A streamable corpus: ``schema``, ``num_rows``, ``iter_batches()`` in stable row order."""

    path: Path
    kind: str  # "parquet" | "jsonl" | "save_to_disk"
    files: list[Path] = field(default_factory=list)
    _table: object = None  # pyarrow Table for in-memory kinds

    @property
    def schema(self):
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(self.files[0])
        return self._load_table().schema

    @property
    def num_rows(self) -> int:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        return self._load_table().num_rows

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def _load_table(self):
        if self._table is None:
            import pyarrow as pa

            if self.kind == "jsonl":
                import pyarrow.json as pj

                tables = [pj.read_json(f) for f in self.files]
                self._table = (
                    pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
                )
            elif self.kind == "save_to_disk":
                import datasets

                ds = datasets.load_from_disk(str(self.path))
                if isinstance(ds, datasets.DatasetDict):
                    if "train" not in ds:
                        raise ValueError(f"{self.path}: DatasetDict without a 'train' split ({list(ds)})")
                    ds = ds["train"]
                if ds._indices is not None:  # noqa: SLF001
                    ds = ds.flatten_indices()
                self._table = ds.data.table
        return self._table

    def columns(self) -> set[str]:
        """Every column name, with ``parent.child`` for the fields of struct (object) columns:
        the union over all files (parquet: their footers; JSON lines: every row)."""
        if self.kind == "jsonl":
            names: set[str] = set()
            for batch in self.iter_records():
                for record in batch:
                    if isinstance(record, dict):
                        _dotted_names(record, names)
            return names
        import pyarrow as pa

        if self.kind == "parquet":
            import pyarrow.parquet as pq

            schemas = [pq.read_schema(f) for f in self.files]
        else:
            schemas = [self.schema]
        names = set()
        for schema in schemas:
            for f in schema:
                names.add(f.name)
                if pa.types.is_struct(f.type):
                    names.update(f"{f.name}.{sub.name}" for sub in f.type)
        return names

    def iter_records(self, batch_size: int = 2048) -> Iterator[list[dict | Unreadable]]:
        """Lists of row dicts in corpus row order; a row that cannot be read is an
        :class:`Unreadable` in its place (never an exception)."""
        if self.kind == "jsonl":
            records: list[dict | Unreadable] = []
            for f in self.files:
                with open(f, "rb") as fh:
                    for line in fh:
                        if not line.strip():
                            continue  # blank lines are not rows
                        records.append(_parse_json_line(line))
                        if len(records) >= batch_size:
                            yield records
                            records = []
            if records:
                yield records
            return
        for batch in self.iter_batches(batch_size=batch_size):
            try:
                yield batch.to_pylist()
            except UnicodeDecodeError:  # a string column holds bytes that are not UTF-8
                rows: list[dict | Unreadable] = []
                for i in range(batch.num_rows):
                    try:
                        rows.append(batch.slice(i, 1).to_pylist()[0])
                    except UnicodeDecodeError as exc:
                        rows.append(Unreadable("text_not_utf8", str(exc)[:200]))
                yield rows

    def iter_batches(self, batch_size: int = 2048, columns: list[str] | None = None) -> Iterator:
        """Yields ``pyarrow.RecordBatch`` in corpus row order."""
        if self.kind == "parquet":
            from redi.data.io import iter_parquet_batches  # a reader per row group: bounded memory

            for f in self.files:
                yield from iter_parquet_batches(f, batch_size=batch_size, columns=columns)
        else:
            table = self._load_table()
            if columns is not None:
                table = table.select(columns)
            yield from table.to_batches(max_chunksize=batch_size)


def _is_save_to_disk(p: Path) -> bool:
    return (
        (p / "dataset_info.json").exists()
        or (p / "state.json").exists()
        or (p / "dataset_dict.json").exists()
    )


def load_corpus(path) -> Corpus:
    """Open a local corpus: a directory of parquet or jsonl files (searched recursively, read
    in sorted path order; row_index counts across files in that order), a
    single ``.parquet``/``.jsonl``/``.json`` (lines) file, or a ``save_to_disk`` directory."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"corpus path does not exist: {p}")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".parquet":
            return Corpus(p, "parquet", [p])
        if suffix in (".jsonl", ".json"):
            return Corpus(p, "jsonl", [p])
        raise ValueError(f"{p}: unsupported corpus file type {suffix!r} (use .parquet or .jsonl)")
    if _is_save_to_disk(p):
        return Corpus(p, "save_to_disk")
    parquet = sorted(x for x in p.rglob("*.parquet") if x.is_file())
    jsonl = sorted(x for x in p.rglob("*.jsonl") if x.is_file())
    if parquet and jsonl:
        raise ValueError(f"{p}: mixes parquet and jsonl files; keep one format per corpus directory")
    if parquet:
        return Corpus(p, "parquet", parquet)
    if jsonl:
        return Corpus(p, "jsonl", jsonl)
    raise ValueError(f"{p}: no .parquet or .jsonl files and not a save_to_disk dataset")
