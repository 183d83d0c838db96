"""Verification throughput: redi.verify.verify_many (1 and 2 worker processes) against a plain
single-process loop over math_verify parse/verify, on the same items from the synthetic corpus.

    .venv/bin/python bench/bench_verify.py [--items 2000] [--repeats 1]

Prints JSON. Pool start-up is included in verify_many's time (it is part of every call).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time


def corpus_items(n: int, seed: int = 0) -> list[tuple[str, str | None]]:
    from redi.data.synthetic import generate
    from redi.verify import final_answer_segment

    rows, _ = generate(
        {"seed": seed, "n_train_problems": max(200, n), "n_test_problems": 1, "malformed_rows": 0}
    )
    items = [(r["answer"], final_answer_segment(g)) for r in rows for g in r["generations"]]
    return items[:n]


def distinct_items(n: int) -> list[tuple[str, str]]:
    """All-distinct answers (no parse cache hits): fractions, half of them wrong."""
    return [
        (
            f"\\frac{{{k}}}{{{k + 1}}}",
            f"Therefore, the final answer is: $\\boxed{{\\frac{{{2 * k}}}{{{2 * k + 2 + (k % 2)}}}}}$. I hope it is correct",
        )
        for k in range(1, n + 1)
    ]


def get_items(which: str, n: int):
    return corpus_items(n) if which == "corpus" else distinct_items(n)


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


VARIANTS = ("plain_loop", "verify_many_w1", "verify_many_w2")


def run_variant(name: str, n_items: int, which: str) -> dict:
    """One timed run in this (fresh) process: no answer caches inherited from other variants."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from redi.verify import verify_many

    items = get_items(which, n_items)
    plain_loop([("1", "\\boxed{1}")])  # import + parser warm-up outside the timing
    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped pool workers
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    if name == "plain_loop":
        out = plain_loop(items)
    else:
        out = [v.correct for v in verify_many(items, workers=int(name[-1]))]
    dt = time.perf_counter() - t0
    return {"seconds": dt, "cpu_seconds": cpu() - c0, "correct": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per variant; best time is kept")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument(
        "--set", dest="which", choices=("corpus", "distinct"), default="corpus", help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.items, args.which)))
        return
    out = {
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "note": "each run in a fresh process (best of --repeats); verify_many time includes pool start-up",
    }
    for which in ("corpus", "distinct"):
        out[which] = bench_set(which, args)
    out["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


def bench_set(which: str, args) -> dict:
    items = get_items(which, args.items)
    results: dict = {"items": len(items), "distinct_pairs": len(set(items)), "runs": {}}
    reference = None
    for name in VARIANTS:
        times, cpus = [], []
        for _ in range(args.repeats):
            proc = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--items", str(args.items), "--set", which],
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            times.append(res["seconds"])
            cpus.append(res["cpu_seconds"])
            out = res["correct"]
        if reference is None:
            reference = out
        best = min(times)
        results["runs"][name] = {
            "seconds_best": round(best, 3),
            "seconds_all": [round(t, 3) for t in times],
            "items_per_s": round(len(items) / best, 1),
            "cpu_ms_per_item_best": round(1000 * min(cpus) / len(items), 3),
            "agrees_with_plain_loop": sum(a == b for a, b in zip(out, reference)) / len(items),
            "correct_fraction": sum(out) / len(items),
        }
    return results


if __name__ == "__main__":
    main()
