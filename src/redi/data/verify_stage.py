"""Re-verification of every teacher generation with bounded Math-Verify (scatter / gather).

``verify_shard`` handles the canonical rows of its contiguous ``row_index`` range
(:func:`shard_range`; it reads only the row groups that hold them): for each
generation it compares the final answer segment (text after the last ``</think>``; none ->
``no_answer``) against the gold ``answer`` with :func:`redi.verify.verify_many_timed`.
``gather`` joins the shards back onto the canonical table (``label_recomputed``,
``verify_status``) and writes a JSON report with agreement rates per source.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter, defaultdict

from redi.data.io import iter_parquet_batches, read_kv_meta
from redi.data.schemas import META_NORMALIZE, META_VERIFY, canonical_schema, shard_schema, verified_schema
from redi.files import atomic_path, write_json_atomic
from redi.verify import STATUSES, final_answer_segment, verify_many_timed

log = logging.getLogger(__name__)


#: generations verified (and written) per chunk: a shard's memory is this many answer segments
#: and results, whatever the shard's size
VERIFY_CHUNK = 8192
#: canonical rows per read batch of the streaming passes (verify_shard, gather)
READ_BATCH_ROWS = 1024


def _row_index_stats(pf) -> tuple[list[tuple[int, int] | None], int]:
    """Per row group ``(min, max)`` of ``row_index`` from the parquet footer (None where a writer
    left no statistics), and the number of row indices (``max + 1``; 0 for an empty table)."""
    col = pf.schema_arrow.get_field_index("row_index")
    stats, top = [], -1
    for i in range(pf.metadata.num_row_groups):
        rg = pf.metadata.row_group(i)
        st = rg.column(col).statistics if rg.num_rows else None
        if st is not None and st.has_min_max:
            stats.append((int(st.min), int(st.max)))
            top = max(top, int(st.max))
        else:
            stats.append(None)
            if rg.num_rows:
                top = max(top, max(pf.read_row_group(i, columns=["row_index"]).column(0).to_pylist()))
    return stats, top + 1


def shard_range(n_row_indices: int, shard_index: int, n_shards: int) -> tuple[int, int]:
    """Shard ``shard_index`` of ``n_shards`` verifies the rows with ``lo <= row_index < hi``:
    contiguous, equal ranges of the corpus' row indices, so a shard reads only the row groups
    that hold its range (with ``row_index % n`` every shard decoded every trace)."""
    return n_row_indices * shard_index // n_shards, n_row_indices * (shard_index + 1) // n_shards


def _shard_items(canonical_path, shard_index: int, n_shards: int):
    """``(row_index, gen_index, gold, final answer segment)`` of the shard's rows, in row order.
    Row groups outside the shard's range are skipped by their footer statistics; a read batch
    is filtered to the shard's rows before any text becomes a Python string."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(canonical_path))
    stats, n_idx = _row_index_stats(pf)
    lo, hi = shard_range(n_idx, shard_index, n_shards)
    for g, st in enumerate(stats):
        if st is not None and (st[1] < lo or st[0] >= hi):
            continue
        cols = ["row_index", "answer", "generations"]
        for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=[g], columns=cols):
            ri_all = batch.column("row_index").to_numpy(zero_copy_only=False)
            mask = (ri_all >= lo) & (ri_all < hi)
            if not np.any(mask):
                continue
            mine = batch if np.all(mask) else batch.filter(pa.array(mask))
            gens_col = mine.column("generations")
            answers = mine.column("answer").to_pylist()
            for k, ri in enumerate(mine.column("row_index").to_pylist()):
                for gi, gen in enumerate(gens_col[k].as_py() or []):
                    yield ri, gi, answers[k], final_answer_segment(gen)


def verify_shard(
    canonical_path,
    shard_index: int,
    n_shards: int,
    out_path,
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
    chunk: int = VERIFY_CHUNK,
) -> dict:
    """Verify one shard; writes the shard parquet (``row_index, gen_index, mv_recomputed,
    status, extracted, seconds``) and returns a summary.

    Streams: the canonical table is read in batches of ``READ_BATCH_ROWS`` rows and
    the shard's generations are verified and written ``chunk`` at a time, so the job's memory
    does not grow with the corpus or the shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard_index, n_shards = int(shard_index), int(n_shards)
    if not 0 <= shard_index < n_shards:
        raise ValueError(f"shard_index {shard_index} not in [0, {n_shards})")
    schema = shard_schema()
    statuses: Counter = Counter()
    n_items = n_correct = n_rows = 0
    last_row = None  # rows come in row order: count them without keeping them
    wall = 0.0

    def flush(keys, pairs, writer) -> None:
        nonlocal n_items, n_correct, wall
        t0 = time.monotonic()
        timed = verify_many_timed(pairs, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb)
        wall += time.monotonic() - t0
        table = pa.Table.from_pydict(
            {
                "row_index": [k[0] for k in keys],
                "gen_index": [k[1] for k in keys],
                "mv_recomputed": [v.correct for v, _ in timed],
                "status": [v.status for v, _ in timed],
                "extracted": [v.extracted for v, _ in timed],
                "seconds": [s for _, s in timed],
            },
            schema=schema,
        )
        writer.write_table(table)
        statuses.update(v.status for v, _ in timed)
        n_items += len(pairs)
        n_correct += sum(v.correct for v, _ in timed)

    with atomic_path(out_path) as tmp_out:
        writer = pq.ParquetWriter(str(tmp_out), schema)
        try:
            keys: list[tuple[int, int]] = []
            pairs: list[tuple[str, str | None]] = []
            for ri, gi, gold, segment in _shard_items(canonical_path, shard_index, n_shards):
                keys.append((ri, gi))
                pairs.append((gold, segment))
                n_rows += ri != last_row
                last_row = ri
                if len(pairs) >= chunk:
                    flush(keys, pairs, writer)
                    keys, pairs = [], []
            if pairs or n_items == 0:
                flush(keys, pairs, writer)  # an empty shard still gets its (empty) table
        finally:
            writer.close()
    summary = {
        "shard": f"{shard_index}-of-{n_shards}",
        "items": n_items,
        "rows": n_rows,
        "correct": n_correct,
        "status": dict(sorted(statuses.items())),
        "wall_seconds": round(wall, 3),
        "items_per_second": round(n_items / wall, 1) if wall > 0 else None,
        "workers": workers,
        "timeout_s": timeout_s,
    }
    log.info("verify_shard: %s", summary)
    return summary


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


class _Results:
    """Every shard's results in compact arrays sorted by (row_index, gen_index): ~22 bytes per
    generation (26 MB for OpenR1-Math-Raw's 1.2M traces), never the Python objects per item.
    :meth:`rows` gives each row's ``[start, end)`` in them; ``status_names`` decodes
    ``status``; ``seconds`` is in shard order (unsorted)."""

    def __init__(self, shard_paths):
        import numpy as np

        cols = ["row_index", "gen_index", "mv_recomputed", "status", "seconds"]
        parts: dict[str, list] = {c: [] for c in cols}
        source: list = []
        self.status_names: list[str] = []
        codes: dict[str, int] = {}
        for k, sp in enumerate(shard_paths):
            for batch in iter_parquet_batches(sp, 65536, cols):
                for c in ("row_index", "gen_index", "seconds"):
                    parts[c].append(batch.column(c).to_numpy(zero_copy_only=False))
                ok = batch.column("mv_recomputed").fill_null(False).to_numpy(zero_copy_only=False)
                parts["mv_recomputed"].append(ok.astype(bool))
                st = [codes.setdefault(x, len(codes)) for x in batch.column("status").to_pylist()]
                parts["status"].append(np.asarray(st, dtype=np.int16))
                source.append(np.full(batch.num_rows, k, dtype=np.int32))
        self.status_names = list(codes)
        cat = {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in parts.items()}
        ri = cat["row_index"].astype(np.int64)
        gi = cat["gen_index"].astype(np.int64)
        order = np.lexsort((gi, ri))
        self.ri, self.gi = ri[order], gi[order]
        self.ok, self.status = cat["mv_recomputed"].astype(bool)[order], cat["status"].astype(np.int16)[order]
        self.seconds = cat["seconds"].astype(np.float64)
        dup = np.flatnonzero((self.ri[1:] == self.ri[:-1]) & (self.gi[1:] == self.gi[:-1]))
        if dup.size:
            i = int(dup[0]) + 1
            sp = shard_paths[int((np.concatenate(source) if source else np.zeros(0, np.int32))[order][i])]
            raise ValueError(f"{sp}: duplicate result for row {int(self.ri[i])} generation {int(self.gi[i])}")

    def rows(self, row_indices):
        """(start, end) into the sorted arrays for each row index (end == start: none)."""
        import numpy as np

        ri = np.asarray(row_indices, dtype=np.int64)
        return np.searchsorted(self.ri, ri, "left"), np.searchsorted(self.ri, ri, "right")


def _canonical_columns(batch, schema, n: int) -> list:
    """The batch's columns in canonical order and types (a column the file lacks is null, as
    ``Table.from_pylist`` fills a missing key)."""
    import pyarrow as pa

    names = batch.schema.names
    out = []
    for f in schema:
        if f.name in names:
            col = batch.column(f.name)
            out.append(col if col.type == f.type else col.cast(f.type))
        else:
            out.append(pa.nulls(n, f.type))
    return out


class _Join:
    """Labels one canonical batch with the shard results and counts, per source, what the
    agreement report needs; remembers how many generations had no result (and the first)."""

    #: canonical columns read as Python values (the generations stay Arrow data)
    SMALL = ("row_index", "source", "label_mv", "label_llama")

    def __init__(self, results: _Results):
        self.results = results
        self.per_source: dict[str, Counter] = defaultdict(Counter)
        self.n_missing = 0
        self.first_missing: tuple[int, int] | None = None
        self.n_rows = 0

    def labels(self, batch) -> tuple[list[list[bool]], list[list[str]]]:
        """``label_recomputed`` and ``verify_status`` of every row of ``batch`` (a generation
        without a result: ``False`` / ``"missing"``), counted into :attr:`per_source`."""
        import pyarrow.compute as pc

        n = batch.num_rows
        meta = {c: (batch.column(c).to_pylist() if c in batch.schema.names else [None] * n) for c in self.SMALL}
        n_gens = pc.list_value_length(batch.column("generations")).fill_null(0).to_pylist()
        starts, ends = self.results.rows(meta["row_index"])
        rec_col, stat_col = [], []
        for k in range(n):
            rec, stat = self._row(meta["row_index"][k], int(starts[k]), int(ends[k]), n_gens[k])
            rec_col.append(rec)
            stat_col.append(stat)
            _count_row(self.per_source[meta["source"][k]], rec, stat, meta["label_mv"][k], meta["label_llama"][k])
        self.n_rows += n
        return rec_col, stat_col

    def _row(self, ri: int, start: int, end: int, n_gen: int) -> tuple[list[bool], list[str]]:
        """One row's labels and statuses from its results ``[start, end)`` of the sorted arrays."""
        results = self.results
        have = dict(zip(results.gi[start:end].tolist(), range(start, end)))
        rec, stat = [], []
        for gi in range(n_gen):
            j = have.get(gi)
            if j is None:
                self.n_missing += 1
                if self.first_missing is None:
                    self.first_missing = (ri, gi)
                rec.append(False)
                stat.append("missing")
                continue
            rec.append(bool(results.ok[j]))
            stat.append(results.status_names[int(results.status[j])])
        return rec, stat


def _count_row(c: Counter, rec: list[bool], stat: list[str], label_mv, label_llama) -> None:
    """Add one row to its source's counts: generations, recomputed positives, statuses, and
    agreement with each corpus label list (a list missing or of another length is skipped:
    curation drops such rows)."""
    c["rows"] += 1
    for gi, r in enumerate(rec):
        c["generations"] += 1
        c["recomputed_true"] += r
        c[f"status_{stat[gi]}"] += 1
        for name, labels in (("mv", label_mv), ("llama", label_llama)):
            if labels is None or len(labels) != len(rec):  # curation drops such rows
                continue
            c[f"{name}_compared"] += 1
            c[f"{name}_true"] += labels[gi]
            c[f"{name}_agree"] += labels[gi] == r
            if labels[gi] and not r:
                c[f"{name}_true_recomputed_false"] += 1
            if r and not labels[gi]:
                c[f"{name}_false_recomputed_true"] += 1


def _write_verified(canonical_path, out_path, join: _Join, shard_paths: list[str], normalize_meta) -> None:
    """Stream the canonical table through ``join`` into the verified parquet (its key-value
    metadata: the normalisation summary and the shard list). Nothing is written when a
    generation has no result (``ValueError`` naming the count, the first one and the shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_schema, canon_schema = verified_schema(), canonical_schema()
    with atomic_path(out_path) as tmp_out:
        writer = pq.ParquetWriter(str(tmp_out), out_schema)
        try:
            for batch in iter_parquet_batches(canonical_path, READ_BATCH_ROWS):
                rec_col, stat_col = join.labels(batch)
                columns = _canonical_columns(batch, canon_schema, batch.num_rows)
                columns += [pa.array(rec_col, type=out_schema.field("label_recomputed").type),
                            pa.array(stat_col, type=out_schema.field("verify_status").type)]  # fmt: skip
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=out_schema))
            if join.first_missing is not None:
                ri, gi = join.first_missing
                raise ValueError(
                    f"{join.n_missing} generations have no verification result (first: row {ri} "
                    f"gen {gi}); are all shards listed? got {len(shard_paths)} shard files"
                )
            if normalize_meta is not None:
                writer.add_key_value_metadata({META_NORMALIZE: json.dumps(normalize_meta)})
            writer.add_key_value_metadata({META_VERIFY: json.dumps({"shards": [str(s) for s in shard_paths]})})
        finally:
            writer.close()


def _summarise(c: Counter) -> dict:
    """One source's (or the total's) report entry from its counts."""
    out = {
        "rows": c["rows"],
        "generations": c["generations"],
        "recomputed_positive_rate": _rate(c["recomputed_true"], c["generations"]),
        "status": {s: c[f"status_{s}"] for s in STATUSES if c[f"status_{s}"]},
    }
    for name in ("mv", "llama"):
        if c[f"{name}_compared"]:
            out[f"{name}_positive_rate"] = _rate(c[f"{name}_true"], c[f"{name}_compared"])
            out[f"agreement_with_{name}"] = _rate(c[f"{name}_agree"], c[f"{name}_compared"])
            out[f"{name}_true_recomputed_false"] = c[f"{name}_true_recomputed_false"]
            out[f"{name}_false_recomputed_true"] = c[f"{name}_false_recomputed_true"]
        else:
            out[f"agreement_with_{name}"] = None
    return out


def _seconds_summary(seconds) -> dict:
    """Mean, p50, p99, max and total of the per-item verification seconds (a numpy array: no
    Python float per item)."""
    import numpy as np

    secs = np.sort(seconds)
    return {
        "mean": round(statistics.fmean(secs), 6) if secs.size else None,
        "p50": float(secs[len(secs) // 2]) if secs.size else None,
        "p99": float(secs[min(len(secs) - 1, int(len(secs) * 0.99))]) if secs.size else None,
        "max": float(secs[-1]) if secs.size else None,
        "total": round(float(sum(secs)), 3),
    }


def _agreement_report(join: _Join, normalize_meta) -> dict:
    """The gather report: totals, per-source agreement with the corpus labels, timing."""
    total = Counter()
    for c in join.per_source.values():
        total.update(c)
    return {
        "rows": join.n_rows,
        "generations": total["generations"],
        "overall": _summarise(total),
        "per_source": {s: _summarise(c) for s, c in sorted(join.per_source.items())},
        "seconds_per_item": _seconds_summary(join.results.seconds),
        "notes": (
            "agreement_with_mv compares our recomputed Math-Verify label with the corpus' own "
            "Math-Verify label (re-parsed answer for Raw, correctness_math_verify for flat); "
            "agreement_with_llama compares it with the Llama judge label."
        ),
        "normalize": normalize_meta,
    }


def gather(shard_paths, canonical_path, out_path, report_path) -> dict:
    """Join shard results onto the canonical table -> verified parquet; write the agreement
    report (JSON) and return it. Fails (``ValueError``) if any generation has no verification
    result.

    Streams: the shard results are held as compact arrays (:class:`_Results`) and the canonical
    table is read and written ``READ_BATCH_ROWS`` rows at a time; the generation texts are
    passed through as Arrow data, never converted to Python strings."""
    shard_paths = [str(s) for s in shard_paths]
    join = _Join(_Results(shard_paths))
    normalize_meta = read_kv_meta(canonical_path, META_NORMALIZE)
    _write_verified(canonical_path, out_path, join, shard_paths, normalize_meta)
    report = _agreement_report(join, normalize_meta)
    write_json_atomic(report_path, report)
    log.info("gather: %d rows, overall agreement with mv %s", join.n_rows, report["overall"].get("agreement_with_mv"))
    return report
