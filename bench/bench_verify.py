"""Verification throughput (items/s): our bounded Math-Verify against a plain loop.

Variants, each timed in a fresh process (no parse caches inherited), on the same items:

* ``plain_loop``: one process, ``math_verify.parse`` / ``verify`` in a Python loop (no bounds);
* ``verify_many_w1`` / ``verify_many_w2``: ``redi.verify.verify_many`` with 1 and 2 worker
  processes (pool start-up included: it is part of every call);
* ``stage_2_shards``: the pipeline's sharded stage as the demo config runs it
  (``verify: {shards: 2, workers: 1}``): two concurrent processes, each
  ``redi.data.verify_stage.verify_shard`` on its half of a canonical parquet (read, verify, write);
  time = first start to last end.

Item sets: ``corpus`` (final answers of the synthetic teacher traces, as the pipeline sees them;
many repeated answers) and ``distinct`` (all-distinct fractions, half wrong: no cache hits).
"""

from __future__ import annotations

import logging
import threading
import time

from benchlib import interleaved, median, ratio, rnd, run_worker

VARIANTS = ("plain_loop", "verify_many_w1", "verify_many_w2", "stage_2_shards")


def _corpus_rows(n_items: int, seed: int = 0) -> list[dict]:
    from redi.data.synthetic import generate

    rows, _ = generate({"seed": seed, "n_train_problems": max(200, n_items), "n_test_problems": 1, "malformed_rows": 0})
    out, total = [], 0
    for i, r in enumerate(rows):
        gens = list(r["generations"])[: n_items - total]
        out.append({"row_index": i, "answer": r["answer"], "generations": gens})
        total += len(gens)
        if total >= n_items:
            break
    return out


def _distinct_rows(n_items: int) -> list[dict]:
    """All-distinct answers (no parse cache hits): fractions, half of them wrong."""
    return [
        {
            "row_index": k,
            "answer": f"\\frac{{{k}}}{{{k + 1}}}",
            "generations": [
                f"<think>\nwork\n</think>\n\nTherefore, the final answer is: "
                f"$\\boxed{{\\frac{{{2 * k}}}{{{2 * k + 2 + (k % 2)}}}}}$. I hope it is correct"
            ],
        }
        for k in range(1, n_items + 1)
    ]


def _rows(which: str, n_items: int) -> list[dict]:
    return _corpus_rows(n_items) if which == "corpus" else _distinct_rows(n_items)


def _items(rows):
    from redi.verify import final_answer_segment

    return [(r["answer"], final_answer_segment(g)) for r in rows for g in r["generations"]]


def plain_loop(items) -> list[bool]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    out = []
    for gold, answer in items:
        if answer is None:
            out.append(False)
            continue
        g = parse("\\boxed{" + gold + "}", cfg)
        p = parse(answer, cfg)
        out.append(bool(g and p and verify(g, p)))
    return out


def measure(variant: str, which: str, n_items: int) -> dict:
    """One timed run of ``variant`` in this fresh process."""
    import resource

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from redi.verify import verify_many

    items = _items(_rows(which, n_items))
    plain_loop([("1", "\\boxed{1}")])  # import + parser warm-up outside the timing

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped pool workers
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    if variant == "plain_loop":
        out = plain_loop(items)
    else:
        out = [v.correct for v in verify_many(items, workers=int(variant[-1]))]
    dt = time.perf_counter() - t0
    return {
        "variant": variant,
        "items": len(items),
        "seconds": rnd(dt, 4),
        "cpu_seconds": rnd(cpu() - c0, 3),
        "correct": out,
    }


def write_canonical(path: str, which: str, n_items: int) -> dict:
    import pandas as pd

    rows = _rows(which, n_items)
    pd.DataFrame(rows).to_parquet(path)
    return {"rows": len(rows), "items": sum(len(r["generations"]) for r in rows)}


def shard(canonical: str, index: int, n_shards: int, out: str) -> dict:
    """One shard of the pipeline's verification stage, timed with wall-clock stamps."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("redi").setLevel(logging.WARNING)
    import pyarrow.parquet as pq

    from redi.data.verify_stage import verify_shard

    plain_loop([("1", "\\boxed{1}")])  # import + parser warm-up outside the timing, as in measure()
    t0 = time.time()
    summary = verify_shard(canonical, index, n_shards, out, timeout_s=5.0, workers=1)
    t1 = time.time()
    t = pq.read_table(out, columns=["row_index", "gen_index", "mv_recomputed"]).to_pylist()
    return {"start": t0, "end": t1, "items": summary["items"], "verdicts": t}


def _stage(canonical: str, tmp: str, n_shards: int = 2) -> dict:
    results: list = [None] * n_shards

    def go(i):
        results[i] = run_worker(
            "bench_verify:shard",
            {"canonical": canonical, "index": i, "n_shards": n_shards, "out": f"{tmp}/shard-{i}.parquet"},
            timeout=1800,
        )

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n_shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"variant": "stage_2_shards", "error": "; ".join(errors)}
    verdicts = sorted((v["row_index"], v["gen_index"], v["mv_recomputed"]) for r in results for v in r["verdicts"])
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "variant": "stage_2_shards",
        "items": sum(r["items"] for r in results),
        "seconds": rnd(span, 4),
        "correct": [bool(v[2]) for v in verdicts],
    }


def run(quick: bool, repeats: int, log=print, workdir: str = "/tmp") -> dict:
    import os
    import tempfile

    n_items = 200 if quick else 2000
    out = {
        "items_requested": n_items,
        "repeats": repeats,
        "note": "seconds exclude interpreter start-up and imports; verify_many includes its pool start-up; "
        "stage_2_shards is two concurrent verify_shard processes (parquet read + verify + write)",
    }
    for which in ("corpus", "distinct"):
        with tempfile.TemporaryDirectory(prefix="bench-verify-", dir=workdir) as tmp:
            canonical = os.path.join(tmp, "canonical.parquet")
            info = run_worker("bench_verify:write_canonical", {"path": canonical, "which": which, "n_items": n_items})
            variants = {
                v: (
                    lambda v=v, which=which: run_worker(
                        "bench_verify:measure", {"variant": v, "which": which, "n_items": n_items}, timeout=1800
                    )
                )
                for v in VARIANTS
                if v != "stage_2_shards"
            }
            variants["stage_2_shards"] = lambda canonical=canonical, tmp=tmp: _stage(canonical, tmp)
            log(f"  {which} items ({info.get('items')}): {', '.join(variants)}")
            runs = interleaved(variants, repeats, log)
        ref = runs["plain_loop"][0].get("correct")
        res: dict = {"items": info.get("items"), "variants": {}}
        plain_s = median([r.get("seconds") for r in runs["plain_loop"]])
        for v, rs in runs.items():
            secs = median([r.get("seconds") for r in rs])
            n = next((r["items"] for r in rs if "items" in r), None)
            last = next((r for r in reversed(rs) if "correct" in r), {})
            res["variants"][v] = {
                "seconds_median": rnd(secs, 3),
                "seconds_all": [r.get("seconds") for r in rs],
                "items_per_s": rnd(n / secs, 1) if secs and n else None,
                "speedup_vs_plain_loop": ratio(plain_s, secs),
                "cpu_ms_per_item": (
                    rnd(1000 * median([r.get("cpu_seconds") for r in rs]) / n, 3)
                    if n and any(r.get("cpu_seconds") for r in rs)
                    else None
                ),
                "agrees_with_plain_loop": (
                    rnd(sum(a == b for a, b in zip(last.get("correct", []), ref or [])) / n, 4) if ref and n else None
                ),
                "errors": [r["error"] for r in rs if "error" in r],
            }
        out[which] = res
    return out


def compare_versions(before_src: str, *, repeats: int = 3, n_items: int = 2000, log=print) -> dict:
    """``verify_many`` throughput of this checkout against another ``src/`` tree (e.g. the
    commit before a scoring change, exported with ``git show``), interleaved run by run in
    fresh processes on the same items, so machine load hits both alike (the scoring rules' "within
    10 %" check). Returns medians per item set and variant, and after/before ratios."""
    from benchlib import REPO

    versions = {"before": before_src, "after": str(REPO / "src")}
    out: dict = {"before_src": before_src, "repeats": repeats, "items_requested": n_items, "sets": {}}
    for which in ("corpus", "distinct"):
        res: dict = {}
        for variant in ("verify_many_w1", "verify_many_w2"):
            runs: dict = {v: [] for v in versions}
            for r in range(repeats):
                for name, src in versions.items():
                    rec = run_worker(
                        "bench_verify:measure",
                        {"variant": variant, "which": which, "n_items": n_items},
                        timeout=1800,
                        env={"PYTHONPATH": src},
                    )
                    rec.pop("correct", None)
                    runs[name].append(rec)
                    log(f"  {which} {variant} {name} run {r}: {rec.get('seconds')} s")
            entry = {}
            for name, rs in runs.items():
                secs = median([x.get("seconds") for x in rs])
                n = next((x["items"] for x in rs if "items" in x), None)
                entry[name] = {
                    "seconds_all": [x.get("seconds") for x in rs],
                    "seconds_median": rnd(secs, 3),
                    "items_per_s": rnd(n / secs, 1) if secs and n else None,
                }
            b, a = entry["before"]["items_per_s"], entry["after"]["items_per_s"]
            entry["after_over_before"] = rnd(a / b, 3) if a and b else None
            res[variant] = entry
        out["sets"][which] = res
    return out


def compare_markdown(doc: dict) -> str:
    lines = [
        f"`verify_many` throughput, this checkout vs `{doc['before_src']}` "
        f"({doc['repeats']} interleaved runs each, medians; fresh process per run).",
        "",
        "| items | variant | before items/s | after items/s | after/before |",
        "|---|---|---|---|---|",
    ]
    for which, res in doc["sets"].items():
        for variant, e in res.items():
            lines.append(
                f"| {which} ({doc['items_requested']}) | {variant} | {e['before']['items_per_s']} | "
                f"{e['after']['items_per_s']} | {e['after_over_before']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import json
    import sys
    from pathlib import Path

    ap = argparse.ArgumentParser(description="compare verify_many throughput with another src/ tree")
    ap.add_argument("--before-src", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--out", required=True, help="path stem: writes <out>.json and <out>.md")
    args = ap.parse_args()
    doc = compare_versions(args.before_src, repeats=args.repeats, n_items=args.items,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    Path(args.out + ".json").write_text(json.dumps(doc, indent=1))
    Path(args.out + ".md").write_text(compare_markdown(doc) + "\n")
    print(compare_markdown(doc))
