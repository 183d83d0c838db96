"""Re-verification of every teacher generation with bounded Math-Verify (scatter / gather).

``verify_shard`` handles canonical rows with ``row_index % n_shards == shard_index``: for each
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

from redi.data.io import read_kv_meta
from redi.data.schemas import META_NORMALIZE, META_VERIFY, shard_schema, verified_schema
from redi.files import atomic_path, write_json_atomic, write_parquet_atomic
from redi.verify import STATUSES, final_answer_segment, verify_many_timed

log = logging.getLogger(__name__)


def verify_shard(
    canonical_path,
    shard_index: int,
    n_shards: int,
    out_path,
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
) -> dict:
    """Verify one shard; writes the shard parquet (``row_index, gen_index, mv_recomputed,
    status, extracted, seconds``) and returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard_index, n_shards = int(shard_index), int(n_shards)
    if not 0 <= shard_index < n_shards:
        raise ValueError(f"shard_index {shard_index} not in [0, {n_shards})")
    keys: list[tuple[int, int]] = []
    pairs: list[tuple[str, str | None]] = []
    pf = pq.ParquetFile(str(canonical_path))
    for batch in pf.iter_batches(batch_size=4096, columns=["row_index", "answer", "generations"]):
        for row in batch.to_pylist():
            ri = row["row_index"]
            if ri % n_shards != shard_index:
                continue
            for gi, gen in enumerate(row["generations"] or []):
                keys.append((ri, gi))
                pairs.append((row["answer"], final_answer_segment(gen)))
    t0 = time.monotonic()
    timed = verify_many_timed(pairs, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb)
    wall = time.monotonic() - t0
    table = pa.Table.from_pydict(
        {
            "row_index": [k[0] for k in keys],
            "gen_index": [k[1] for k in keys],
            "mv_recomputed": [v.correct for v, _ in timed],
            "status": [v.status for v, _ in timed],
            "extracted": [v.extracted for v, _ in timed],
            "seconds": [s for _, s in timed],
        },
        schema=shard_schema(),
    )
    write_parquet_atomic(table, out_path)
    statuses = Counter(v.status for v, _ in timed)
    summary = {
        "shard": f"{shard_index}-of-{n_shards}",
        "items": len(pairs),
        "rows": len({k[0] for k in keys}),
        "correct": sum(v.correct for v, _ in timed),
        "status": dict(sorted(statuses.items())),
        "wall_seconds": round(wall, 3),
        "items_per_second": round(len(pairs) / wall, 1) if wall > 0 else None,
        "workers": workers,
        "timeout_s": timeout_s,
    }
    log.info("verify_shard: %s", summary)
    return summary


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def gather(shard_paths, canonical_path, out_path, report_path) -> dict:
    """Join shard results onto the canonical table -> verified parquet; write the agreement
    report (JSON). Fails if any generation has no verification result."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard_paths = [str(s) for s in shard_paths]
    results: dict[int, dict[int, tuple[bool, str]]] = defaultdict(dict)
    seconds: list[float] = []
    for sp in shard_paths:
        t = pq.read_table(str(sp), columns=["row_index", "gen_index", "mv_recomputed", "status", "seconds"])
        for ri, gi, ok, st, sec in zip(*(t.column(c).to_pylist() for c in t.column_names)):
            if gi in results[ri]:
                raise ValueError(f"{sp}: duplicate result for row {ri} generation {gi}")
            results[ri][gi] = (bool(ok), st)
            seconds.append(sec)

    out_schema = verified_schema()
    normalize_meta = read_kv_meta(canonical_path, META_NORMALIZE)
    per_source: dict[str, Counter] = defaultdict(Counter)
    missing: list[tuple[int, int]] = []
    n_rows = 0
    with atomic_path(out_path) as tmp_out:
        writer = pq.ParquetWriter(str(tmp_out), out_schema)
        try:
            pf = pq.ParquetFile(str(canonical_path))
            for batch in pf.iter_batches(batch_size=2048):
                rows = batch.to_pylist()
                for row in rows:
                    ri = row["row_index"]
                    res = results.get(ri, {})
                    rec, stat = [], []
                    for gi in range(len(row["generations"])):
                        if gi not in res:
                            missing.append((ri, gi))
                            rec.append(False)
                            stat.append("missing")
                            continue
                        rec.append(res[gi][0])
                        stat.append(res[gi][1])
                    row["label_recomputed"] = rec
                    row["verify_status"] = stat
                    c = per_source[row["source"]]
                    c["rows"] += 1
                    for gi, r in enumerate(rec):
                        c["generations"] += 1
                        c["recomputed_true"] += r
                        c[f"status_{stat[gi]}"] += 1
                        for name, labels in (("mv", row["label_mv"]), ("llama", row["label_llama"])):
                            if labels is None or len(labels) != len(rec):  # curation drops such rows
                                continue
                            c[f"{name}_compared"] += 1
                            c[f"{name}_true"] += labels[gi]
                            c[f"{name}_agree"] += labels[gi] == r
                            if labels[gi] and not r:
                                c[f"{name}_true_recomputed_false"] += 1
                            if r and not labels[gi]:
                                c[f"{name}_false_recomputed_true"] += 1
                n_rows += len(rows)
                writer.write_table(pa.Table.from_pylist(rows, schema=out_schema))
            if missing:
                raise ValueError(
                    f"{len(missing)} generations have no verification result (first: row {missing[0][0]} "
                    f"gen {missing[0][1]}); are all shards listed? got {len(shard_paths)} shard files"
                )
            if normalize_meta is not None:
                writer.add_key_value_metadata({META_NORMALIZE: json.dumps(normalize_meta)})
            writer.add_key_value_metadata({META_VERIFY: json.dumps({"shards": [str(s) for s in shard_paths]})})
        finally:
            writer.close()

    total = Counter()
    for c in per_source.values():
        total.update(c)

    def summarise(c: Counter) -> dict:
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

    secs = sorted(seconds)
    report = {
        "rows": n_rows,
        "generations": total["generations"],
        "overall": summarise(total),
        "per_source": {s: summarise(c) for s, c in sorted(per_source.items())},
        "seconds_per_item": {
            "mean": round(statistics.fmean(secs), 6) if secs else None,
            "p50": secs[len(secs) // 2] if secs else None,
            "p99": secs[min(len(secs) - 1, int(len(secs) * 0.99))] if secs else None,
            "max": secs[-1] if secs else None,
            "total": round(sum(secs), 3),
        },
        "notes": (
            "agreement_with_mv compares our recomputed Math-Verify label with the corpus' own "
            "Math-Verify label (re-parsed answer for Raw, correctness_math_verify for flat); "
            "agreement_with_llama compares it with the Llama judge label."
        ),
        "normalize": normalize_meta,
    }
    write_json_atomic(report_path, report)
    log.info(
        "gather: %d rows, overall agreement with mv %s", n_rows, report["overall"].get("agreement_with_mv")
    )
    return report
