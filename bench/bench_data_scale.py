"""The data stage at OpenR1-Math-Raw's scale: time and peak memory of every data job.

A synthetic corpus with the real corpus' proportions is built at a fraction of full size
(``FULL``: 516k problems, 2-6 generations each, ~1.2M traces; trace length lognormal with a
median of ~4k tokens, a mean of ~5.4k and ~4 % past 16k tokens, ~24 GB of text at full size).
Problems, answers, labels, invalid rows, the excluded source, truncated traces and malformed
rows come from the project's synthetic generator (:mod:`redi.data.synthetic`); each trace is
padded inside its ``<think>`` block with reasoning-like filler up to its drawn length (filler
paragraphs are drawn from a pool, so the text compresses somewhat better than real traces).

Then the stage runs as the workflow runs it, one job per fresh process: ``normalize`` ->
``verify_shard`` x ``shards`` (``workers`` verification processes each) -> ``gather`` ->
``curate`` (the paper's rules; length filter with Qwen2.5's real tokenizer, 151,643-token BPE,
built offline by ``tests/qwen_real.py``; decontamination on against the five shipped
benchmarks). Per job: wall time, CPU time (user + system of the job and its reaped workers,
``os.wait4``), peak RSS of the largest process (``ru_maxrss``, what GNU ``time -v`` reports)
and the sampled peak PSS of the job's whole process tree (parent + verification workers, every
0.2 s; PSS counts the pages forked workers share with the parent once). The shard count is
the same at every scale, so a shard's input grows with the corpus: a job whose peak is flat
across scales is bounded by its batch, not by the corpus.

The extrapolation to full size (:func:`extrapolate`) puts each job's CPU seconds and peak RSS on
the line through the two scales (a fixed part and a part per corpus fraction) and runs the paper
config's 32 shards x 8 workers (``config/paper.yaml``) 4 at a time on a 32-core node, and
curation with the paper config's 32 threads (``resources.curate``): its tokenisation (timed
inside the job, CPU and wall) divided over them at the parallel efficiency measured here with
``curate_threads`` threads, or 70 % if that is higher (a 2-core machine cannot show 32-thread
scaling), the rest of curation serial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import BENCH_DIR, REPO, loadavg, rnd, worker_env

# OpenR1-Math-Raw (the dataset card)
FULL = {"problems": 516_499, "traces": 1_209_403}
# generations per row: 2..6 with the corpus' mean of ~2.34 (1.2M / 516k)
GEN_COUNTS = (2, 3, 4, 5, 6)
GEN_WEIGHTS = (0.80, 0.09, 0.05, 0.035, 0.025)
# trace length in tokens: lognormal (median ~3.95k, mean ~5.4k, P(> 16k) ~ 4 %)
TOKENS_MEDIAN, TOKENS_SIGMA = 3950.0, 0.8
BLOCK = 5000  # rows per synthetic-generator call (see make_corpus)
ROW_GROUP_ROWS = 1000  # what `datasets` writes per parquet row group (its default writer batch)
PAPER = {"shards": 32, "workers": 8, "node_cores": 32, "curate_threads": 32}
ASSUMED_EFFICIENCY_32 = 0.70  # the tokenizer's parallel efficiency on 32 threads, at most
MB = 2**20


# ---------------------------------------------------------------------------------------------
# the corpus


def _filler_pool(rng, n: int = 4000) -> list[str]:
    words = ("we have so the value then consider let us check since therefore which gives "
             "compute the sum of both sides and divide by note that this means if then "
             "substitute into equation wait maybe I made a mistake let me recompute again "
             "alternatively factor expand simplify term terms square root modulo prime integer").split()  # fmt: skip
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.integers(6, 14)):
            k = rng.integers(5, 14)
            sent = " ".join(words[j] for j in rng.integers(0, len(words), size=k))
            a, b = rng.integers(2, 999, size=2)
            eq = f" ${a} \\cdot {b} = {a * b}$" if rng.random() < 0.25 else ""
            parts.append(f"{sent.capitalize()}{eq}.")
        out.append(" ".join(parts) + "\n\n")
    return out


def make_corpus(out_dir: str, fraction: float, seed: int = 0) -> dict:
    """Write ``<out_dir>/corpus/train-*.parquet`` (Raw layout, row groups of 1,000 rows) at
    ``fraction`` of OpenR1-Math-Raw; returns its statistics."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redi.data.synthetic import SynthConfig, generate, synthetic_corpus_schema

    n_rows = max(100, round(FULL["problems"] * fraction))
    # the generator's problem families hold ~10^4 distinct problems: blocks of BLOCK rows with
    # their own seeds, later blocks' problems made distinct by a suffix (what the stage does
    # per row does not depend on the problem's wording)
    rows = []
    for b in range(0, n_rows, BLOCK):
        syn = SynthConfig(seed=seed + b, n_train_problems=min(BLOCK, n_rows - b), n_test_problems=1,
                          min_generations=6, max_generations=6, malformed_rows=6 if b == 0 else 0)  # fmt: skip
        part, _ = generate(syn)
        if b:
            for row in part:
                row["problem"] = f"{row['problem']} (Set {b // BLOCK}.)"
        rows += part
    rng = np.random.default_rng(seed)
    pool = _filler_pool(rng)
    pool_chars = np.array([len(p) for p in pool])
    chars_per_token = 4.0  # the filler's characters per Qwen2.5 token (measured: 4.04)
    counts = rng.choice(GEN_COUNTS, size=len(rows), p=GEN_WEIGHTS)
    per_gen = ("generations", "is_reasoning_complete", "finish_reasons")
    n_traces, n_chars, over_16k = 0, 0, 0
    out = Path(out_dir) / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    files_rows = 100_000  # rows per file, as the hub's train-0000k-of-000n files split it
    writer, file_no = None, 0
    schema = synthetic_corpus_schema()
    for start in range(0, len(rows), ROW_GROUP_ROWS):
        chunk = rows[start : start + ROW_GROUP_ROWS]
        for k, row in enumerate(chunk):
            n = int(counts[start + k])
            for key in per_gen:
                if isinstance(row.get(key), list):
                    row[key] = row[key][:n]
            if isinstance(row.get("correctness"), dict):
                row["correctness"] = {a: (v[:n] if isinstance(v, list) else v) for a, v in row["correctness"].items()}
            gens = row.get("generations")
            if not isinstance(gens, list):
                continue
            padded = []
            for g in gens:
                tokens = float(rng.lognormal(np.log(TOKENS_MEDIAN), TOKENS_SIGMA))
                over_16k += tokens > 16_384
                target = int(tokens * chars_per_token)
                picks, have = [], len(g)
                while have < target:
                    j = int(rng.integers(0, len(pool)))
                    picks.append(pool[j])
                    have += int(pool_chars[j])
                padded.append(g.replace("<think>\n", "<think>\n" + "".join(picks), 1))
                n_traces += 1
                n_chars += have
            row["generations"] = padded
        if writer is None or start % files_rows == 0:
            if writer is not None:
                writer.close()
            writer = pq.ParquetWriter(str(out / f"train-{file_no:05d}.parquet"), schema)
            file_no += 1
        writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
        for k in range(len(chunk)):
            rows[start + k] = None  # release the padded texts as they are written
    writer.close()
    return {
        "fraction": fraction,
        "rows": n_rows,
        "traces": n_traces,
        "text_gb": rnd(n_chars / 1e9, 3),
        "mean_trace_chars": round(n_chars / max(1, n_traces)),
        "traces_over_16k_tokens": over_16k,
        "files": file_no,
        "corpus_bytes_on_disk": sum(f.stat().st_size for f in out.glob("*.parquet")),
    }


def build_tokenizer(out_dir: str) -> dict:
    """Qwen2.5-Math-1.5B's tokenizer (real 151,643-token BPE, from ``dashscope``) saved to
    ``out_dir``; the tests' builder, so no hub access is needed."""
    sys.path.insert(0, str(REPO / "tests"))
    from qwen_real import build_qwen_tokenizer

    tok = build_qwen_tokenizer(Path(out_dir))
    return {"vocab": len(tok)}


# ---------------------------------------------------------------------------------------------
# the jobs (each run in a fresh process by `measure_job`)


def _self_cpu() -> float:
    """CPU seconds of this process alone (not its verification workers)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return round(ru.ru_utime + ru.ru_stime, 2)


def job_normalize(work: str) -> dict:
    from redi.data.normalize import normalize

    w = Path(work)
    s = normalize(w / "corpus", w / "canonical.parquet", w / "normalize_rejects.jsonl")
    return {"canonical_rows": s["canonical_rows"], "rejected_rows": s["rejected_rows"], "self_cpu_s": _self_cpu()}


def job_verify_shard(work: str, shard: int, shards: int, workers: int) -> dict:
    from redi.data.verify_stage import verify_shard

    w = Path(work)
    (w / "verify").mkdir(exist_ok=True)
    s = verify_shard(w / "canonical.parquet", shard, shards, w / "verify" / f"shard-{shard}-of-{shards}.parquet",
                     timeout_s=5.0, workers=workers, memory_mb=2048)  # fmt: skip
    return {"items": s["items"], "rows": s["rows"], "self_cpu_s": _self_cpu()}


def job_gather(work: str, shards: int) -> dict:
    from redi.data.verify_stage import gather

    w = Path(work)
    paths = [w / "verify" / f"shard-{i}-of-{shards}.parquet" for i in range(shards)]
    r = gather(paths, w / "canonical.parquet", w / "verified.parquet", w / "verification_report.json")
    return {"rows": r["rows"], "generations": r["generations"], "self_cpu_s": _self_cpu()}


def _benchmarks() -> dict[str, str]:
    root = REPO / "data" / "benchmarks"
    return {p.stem: str(p) for p in sorted(root.glob("*.json"))}


def job_curate(work: str, tokenizer: str, threads: int = 1) -> dict:
    from redi.runtime import set_threads

    set_threads(threads)  # as workflow/scripts/data_curate.py: the tokenizer encodes on `threads`
    from redi.data import curate as curate_mod
    from redi.data.curate import curate

    # how much of the job is the tokenizer (the part that parallelises): the real method, timed
    spent, spent_wall = [0.0], [0.0]
    real = curate_mod.TokenCounter._lengths

    def timed(self, texts):
        t0, w0 = time.process_time(), time.perf_counter()
        try:
            return real(self, texts)
        finally:
            spent[0] += time.process_time() - t0
            spent_wall[0] += time.perf_counter() - w0

    curate_mod.TokenCounter._lengths = timed

    w = Path(work)
    cfg = {"decontaminate": {"enabled": True, "ngram": 8}}  # the paper's rules, decontamination on
    r = curate(w / "verified.parquet", tokenizer, w / "sft.jsonl", w / "pref.jsonl", w / "curation_report.json",
               w / "curation_report.md", w / "rejects.jsonl", cfg, _benchmarks())  # fmt: skip
    return {"sft": r["final"]["sft"], "pref": r["final"]["pref"], "self_cpu_s": _self_cpu(),
            "tokenize_cpu_s": round(spent[0], 2), "tokenize_wall_s": round(spent_wall[0], 2),
            "threads": threads}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# measurement


def _tree_rss(proc) -> int:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:  # PSS: pages shared by forked workers (copy-on-write) count once, split among them
            total += q.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def measure_job(target: str, kwargs: dict, threads: int = 1, src: str | None = None,
                tokenizer_threads: int = 1) -> dict:  # fmt: skip
    """Run ``bench_data_scale:<target>(**kwargs)`` in a fresh process: wall, CPU (user + system,
    the job and its reaped children), peak RSS of its largest process and of its process tree.
    ``tokenizer_threads`` > 1 lets Hugging Face tokenizers encode batches on that many threads
    (the curate job; benchlib's worker environment turns its parallelism off)."""
    extra = {"PYTHONPATH": src} if src else {}
    if tokenizer_threads > 1:
        extra |= {"TOKENIZERS_PARALLELISM": "true", "RAYON_NUM_THREADS": str(tokenizer_threads)}
    cmd = [sys.executable, str(BENCH_DIR / "run.py"), "--worker", f"bench_data_scale:{target}", json.dumps(kwargs)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                            env=worker_env(threads, extra))  # fmt: skip
    peak_tree = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.2):
            peak_tree[0] = max(peak_tree[0], _tree_rss(proc))

    out_chunks: dict[str, str] = {}

    def drain(name, stream):
        out_chunks[name] = stream.read()

    threads_ = [threading.Thread(target=sample, daemon=True)]
    threads_ += [threading.Thread(target=drain, args=(n, s), daemon=True) for n, s in
                 (("stdout", proc.stdout), ("stderr", proc.stderr))]  # fmt: skip
    for t in threads_:
        t.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    for t in threads_:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    res = {
        "job": target.removeprefix("job_"),
        "wall_s": rnd(wall, 2),
        "cpu_s": rnd(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mb": round(ru.ru_maxrss / 1024),  # KiB on Linux: the largest process
        "peak_tree_pss_mb": round(peak_tree[0] / MB) or None,  # sampled PSS sum over the tree
        "returncode": proc.returncode,
    }
    result = None
    for line in reversed((out_chunks.get("stdout") or "").splitlines()):
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
            break
    if result is None or proc.returncode != 0:
        res["error"] = f"exit {proc.returncode}"
        res["log_tail"] = (out_chunks.get("stderr") or "")[-2000:]
    else:
        res["output"] = result
    return res


def run_scale(work: Path, fraction: float, tokenizer: str, shards: int, workers: int, log=print,
              src: str | None = None, curate_threads: int = 1) -> dict:  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stats_path = work / "corpus_stats.json"
    if stats_path.exists() and (work / "corpus").is_dir():  # a kept corpus of the same fraction (--keep)
        stats = json.loads(stats_path.read_text())
    else:
        corpus = measure_job("make_corpus", {"out_dir": str(work), "fraction": fraction})
        if "error" in corpus:
            raise RuntimeError(f"corpus at {fraction}: {corpus['error']}\n{corpus.get('log_tail')}")
        stats = corpus["output"]
        stats_path.write_text(json.dumps(stats))
    log(f"  corpus 1/{round(1 / fraction)}: {stats} ({time.perf_counter() - t0:.0f} s)")
    jobs = [("job_normalize", {"work": str(work)}, 1)]
    jobs += [("job_verify_shard", {"work": str(work), "shard": i, "shards": shards, "workers": workers}, workers)
             for i in range(shards)]  # fmt: skip
    jobs += [("job_gather", {"work": str(work), "shards": shards}, 1),
             ("job_curate", {"work": str(work), "tokenizer": tokenizer, "threads": curate_threads},
              curate_threads)]  # fmt: skip
    out = {"fraction": fraction, "corpus": stats, "load_average_start": loadavg(), "jobs": []}
    for target, kw, threads in jobs:
        r = measure_job(target, kw, threads, src=src, tokenizer_threads=kw.get("threads", 1))
        if "shard" in kw:
            r["job"] = f"verify_shard {kw['shard']}-of-{kw['shards']}"
        err = f" ERROR {r['error']}: {r['log_tail'][-800:]}" if "error" in r else ""
        log(f"  {r['job']}: wall {r['wall_s']} s, CPU {r['cpu_s']} s, peak RSS {r['peak_rss_mb']} MB "
            f"(tree PSS {r['peak_tree_pss_mb']} MB){err}")
        out["jobs"].append(r)
        if "error" in r:
            break
    out["load_average_end"] = loadavg()
    out["disk_mb"] = {p.name: round(p.stat().st_size / MB, 1) for p in sorted(work.glob("*.*")) if p.is_file()}
    return out


def _job_kind(name: str) -> str:
    return "verify_shard" if name.startswith("verify_shard") else name


def _fit(f_s: float, y_s: float, f_l: float, y_l: float) -> tuple[float, float]:
    """(fixed, per unit fraction) of the line through two scales; the per-unit part >= 0."""
    slope = max(0.0, (y_l - y_s) / (f_l - f_s))
    return max(0.0, y_l - slope * f_l), slope


def extrapolate(small: dict, large: dict, shards: int) -> dict:
    """Full-size estimate from two scales. Per job kind: CPU seconds and peak RSS on the line
    through the two scales (a fixed part: start-up, imports, the tokenizer; a part per corpus
    fraction), at fraction 1 (verification: per shard, at 1/32 of the corpus). Wall time on one
    32-core node: normalise, gather and curate are one single-threaded process each (wall ~ CPU);
    the paper config's 32 shards x 8 workers run 4 at a time, a shard's wall being the larger of
    its parent's CPU (reading the canonical table) and its workers' CPU / 8."""
    f_s, f_l = small["fraction"], large["fraction"]
    by: dict[str, dict[float, dict]] = {}
    for res in (small, large):
        for j in res["jobs"]:
            k = _job_kind(j["job"])
            d = by.setdefault(k, {}).setdefault(res["fraction"], {"cpu": [], "self": [], "peak": 0, "tree": 0})
            d["cpu"].append(j["cpu_s"])
            d["self"].append((j.get("output") or {}).get("self_cpu_s", j["cpu_s"]))
            d["peak"] = max(d["peak"], j["peak_rss_mb"])
            d["tree"] = max(d["tree"], j.get("peak_tree_pss_mb") or 0)
    est: dict[str, dict] = {}
    for k, d in by.items():
        s, lg = d.get(f_s), d.get(f_l)
        if not s or not lg:
            continue
        peak_a, peak_b = _fit(f_s, s["peak"], f_l, lg["peak"])
        tree_a, tree_b = _fit(f_s, s["tree"], f_l, lg["tree"])
        if k == "verify_shard":
            n_paper, w_paper = PAPER["shards"], PAPER["workers"]
            per_job = lambda v: sum(v) / len(v)  # noqa: E731 - mean over the shards
            # a bench shard holds f/shards of the corpus; a paper shard 1/32 of it
            x_s, x_l, x_full = f_s / shards, f_l / shards, 1.0 / n_paper
            cpu_a, cpu_b = _fit(x_s, per_job(s["cpu"]), x_l, per_job(lg["cpu"]))
            # the parent reads only its shard's row groups (shard_range): its cost follows the shard
            par_a, par_b = _fit(x_s, per_job(s["self"]), x_l, per_job(lg["self"]))
            parent = par_a + par_b * x_full
            shard_cpu = cpu_a + cpu_b * x_full
            workers_cpu = max(0.0, shard_cpu - parent)
            shard_wall = max(parent, workers_cpu / w_paper)
            waves = -(-n_paper // (PAPER["node_cores"] // w_paper))
            peak = peak_a + peak_b * x_full * shards  # the peak line is per corpus fraction
            tree = (tree_a + tree_b * x_full * shards) * (w_paper + 1) / 3  # parent + 8 workers (bench: + 2)
            est[k] = {"cpu_s": round(shard_cpu * n_paper), "wall_s": round(shard_wall * waves),
                      "per_shard": {"cpu_s": round(shard_cpu), "parent_cpu_s": round(parent),
                                    "workers_cpu_s": round(workers_cpu), "wall_s": round(shard_wall)},
                      "peak_rss_mb": round(peak), "peak_tree_pss_mb": round(tree),
                      "how": f"{n_paper} shards x {w_paper} workers, {n_paper // waves} at a time ({waves} waves); "
                      "a shard's wall = max(parent CPU, workers' CPU / 8); tree PSS scaled from 2 to 8 "
                      "workers"}  # fmt: skip
        else:
            cpu_a, cpu_b = _fit(f_s, sum(s["cpu"]), f_l, sum(lg["cpu"]))
            cpu = cpu_a + cpu_b
            est[k] = {"cpu_s": round(cpu), "wall_s": round(cpu), "peak_rss_mb": round(peak_a + peak_b),
                      "peak_tree_pss_mb": round(tree_a + tree_b),
                      "how": "one single-threaded process: wall ~ CPU"}  # fmt: skip
            if k == "curate":
                est[k].update(_curate_on_threads(small, large, cpu))
        est[k]["peak_growth_mb_per_1pct_of_corpus"] = rnd(peak_b / 100, 2)
    total_wall = sum(e["wall_s"] for e in est.values())
    dominant = max(est, key=lambda k: est[k]["wall_s"]) if est else None
    return {
        "jobs": est,
        "total_wall_s": round(total_wall),
        "total_wall_min": rnd(total_wall / 60, 1),
        "dominant": dominant,
        "max_peak_rss_mb": max((e["peak_rss_mb"] for e in est.values()), default=None),
        "targets": {"curated_within_min": 30, "rss_per_job_gb": 8},
        "met": {"time": total_wall <= 30 * 60, "rss": all(e["peak_rss_mb"] <= 8 * 1024 for e in est.values())},
        "assumptions": "CPU seconds and peak RSS on the line through the two scales (fixed + per corpus "
        "fraction); the jobs run one after another except the shards; measured CPU (not wall) seconds are the "
        "basis because this machine is shared; a full-size node's cores are assumed as fast as these",
    }


def _curate_on_threads(small: dict, large: dict, cpu_full: float) -> dict:
    """Curation at full size with the paper config's 32 threads: the tokenizer's CPU (timed in
    the job, on the line through the two scales) over 32 threads at the parallel efficiency
    measured at the larger scale (tokenizer CPU / (threads x tokenizer wall)), capped at
    ``ASSUMED_EFFICIENCY_32``; the rest of the job serial."""
    outs = []
    for res in (small, large):
        j = next((x for x in res["jobs"] if x["job"] == "curate"), None)
        outs.append((res["fraction"], (j or {}).get("output") or {}))
    (f_s, o_s), (f_l, o_l) = outs
    if not o_s.get("tokenize_cpu_s") or not o_l.get("tokenize_cpu_s"):
        return {}
    tok_a, tok_b = _fit(f_s, o_s["tokenize_cpu_s"], f_l, o_l["tokenize_cpu_s"])
    tok_full = min(cpu_full, tok_a + tok_b)
    threads = int(o_l.get("threads") or 1)
    measured = o_l["tokenize_cpu_s"] / (threads * o_l["tokenize_wall_s"]) if o_l.get("tokenize_wall_s") else None
    eff = min(ASSUMED_EFFICIENCY_32, measured or ASSUMED_EFFICIENCY_32)
    n = PAPER["curate_threads"]
    wall = (cpu_full - tok_full) + tok_full / (n * eff)
    return {
        "wall_s": round(wall),
        "single_thread_wall_s": round(cpu_full),
        "tokenizer_cpu_s": round(tok_full),
        "tokenizer_share_of_cpu": rnd(tok_full / cpu_full, 3) if cpu_full else None,
        "tokenizer_threads_measured": threads,
        "tokenizer_efficiency_measured": rnd(measured, 3),
        "tokenizer_efficiency_used": rnd(eff, 3),
        "how": f"the paper config's {n} threads: the tokenizer's CPU / ({n} x {eff:.0%} efficiency; measured "
        f"{measured:.0%} on {threads} threads here), the rest serial"
        if measured
        else f"the paper config's {n} threads at an assumed {eff:.0%} efficiency, the rest serial",
    }


def flatness(small: dict, large: dict) -> list[dict]:
    """Per job kind: peak RSS at both scales and whether the larger is within 20 % of the smaller."""
    rows = []
    peaks: dict[str, dict[float, int]] = {}
    for res in (small, large):
        for j in res["jobs"]:
            k = _job_kind(j["job"])
            d = peaks.setdefault(k, {})
            d[res["fraction"]] = max(d.get(res["fraction"], 0), j["peak_rss_mb"])
    for k, d in peaks.items():
        a, b = d.get(small["fraction"]), d.get(large["fraction"])
        if a and b:
            rows.append({"job": k, "small_mb": a, "large_mb": b, "ratio": rnd(b / a, 3),
                         "flat_within_20pct": b <= 1.2 * a})  # fmt: skip
    return rows


def run(quick: bool, repeats: int, log=print, workdir: str | None = None, fractions=None, shards: int = 2,
        workers: int = 2, keep: bool = False, src: str | None = None,
        curate_threads: int | None = None) -> dict:  # fmt: skip
    """``curate_threads``: the curate job's threads (default: this machine's usable cores, as
    ``threads: auto`` gives the demo's curation)."""
    import shutil
    import tempfile

    curate_threads = curate_threads or len(os.sched_getaffinity(0))
    fractions = fractions or ([1 / 2000, 1 / 1000] if quick else [1 / 100, 1 / 20])
    root = Path(workdir or tempfile.mkdtemp(prefix="redi-data-scale-")) / "data_scale"
    root.mkdir(parents=True, exist_ok=True)
    tok_dir = root / "qwen-tokenizer"
    if not (tok_dir / "tokenizer_config.json").exists():
        r = measure_job("build_tokenizer", {"out_dir": str(tok_dir)})
        if "error" in r:
            raise RuntimeError(f"tokenizer: {r['error']}\n{r.get('log_tail')}")
    scales = []
    try:
        for f in fractions:
            log(f"== data stage at 1/{round(1 / f)} of OpenR1-Math-Raw")
            scales.append(run_scale(root / f"scale-{round(1 / f)}", f, str(tok_dir), shards, workers, log=log, src=src,
                                    curate_threads=curate_threads))  # fmt: skip
            if not keep:
                shutil.rmtree(root / f"scale-{round(1 / f)}" / "corpus", ignore_errors=True)
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root.parent, ignore_errors=True)
    out = {
        "benchmark": "data stage (normalize -> verify shards -> gather -> curate) on a synthetic corpus with "
        "OpenR1-Math-Raw's proportions, each job a fresh process",
        "full_size": FULL,
        "shards": shards,
        "workers": workers,
        "curate_threads": curate_threads,
        "tokenizer": "Qwen2.5-Math-1.5B (151,643 BPE + 22 added tokens; tests/qwen_real.py)",
        "scales": scales,
        "src": src or "src/ of this tree",
    }
    if len(scales) >= 2 and all(len(s["jobs"]) >= 3 + shards for s in scales[:2]):
        out["flatness"] = flatness(scales[0], scales[-1])
        out["extrapolation"] = extrapolate(scales[0], scales[-1], shards)
    return out


def render_md(res: dict) -> list[str]:
    """Markdown lines: per scale and job, wall / CPU / peak RSS; flatness; the extrapolation."""
    L = [res["benchmark"] + f"; {res['shards']} verification shards x {res['workers']} workers at every scale; "
         f"curation on {res.get('curate_threads', 1)} thread(s); tokenizer {res['tokenizer']}. "
         "Wall and CPU are under the machine's load (recorded per scale); "
         "peak RSS does not depend on it.", ""]  # fmt: skip
    for sc in res["scales"]:
        c = sc["corpus"]
        L.append(f"- 1/{round(1 / sc['fraction'])}: {c['rows']:,} rows, {c['traces']:,} traces, {c['text_gb']} GB of "
                 f"text (mean {c['mean_trace_chars']:,} characters, {c['traces_over_16k_tokens']:,} traces over 16k "
                 f"tokens); load average {sc['load_average_start']} -> {sc['load_average_end']}")  # fmt: skip
    scales = res["scales"]
    head = " | ".join(f"1/{round(1 / sc['fraction'])} wall s | CPU s | peak RSS MB | tree PSS MB" for sc in scales)
    L += ["", f"| job | {head} |", "|---|" + "---|" * 4 * len(scales)]
    names = [j["job"] for j in scales[0]["jobs"]]
    for name in names:
        cells = []
        for sc in scales:
            j = next((x for x in sc["jobs"] if x["job"] == name), None)
            if j is None:
                cells.append(" | ".join(["-"] * 4))
            else:
                tree = j.get("peak_tree_pss_mb") or "-"
                cells.append(f"{j['wall_s']} | {j['cpu_s']} | {j['peak_rss_mb']:,} | {tree}")
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    if res.get("flatness"):
        L += ["", "Peak RSS across scales (the criterion: the larger scale within 20 % of the smaller):", "",
              "| job | small MB | large MB | ratio | flat |", "|---|---|---|---|---|"]  # fmt: skip
        for f in res["flatness"]:
            L.append(f"| {f['job']} | {f['small_mb']:,} | {f['large_mb']:,} | {f['ratio']} | "
                     f"{'yes' if f['flat_within_20pct'] else '**no**'} |")  # fmt: skip
    ex = res.get("extrapolation")
    if ex:
        L += ["", f"Full size ({FULL['problems']:,} problems, {FULL['traces']:,} traces) on one 32-core node, paper "
              f"config ({PAPER['shards']} shards x {PAPER['workers']} workers): **{ex['total_wall_min']} min** wall "
              f"(target 30: {'met' if ex['met']['time'] else 'missed'}), largest job peak "
              f"**{ex['max_peak_rss_mb']:,} MB** per process (target 8 GB: {'met' if ex['met']['rss'] else 'missed'}); "
              f"dominated by `{ex['dominant']}`.", "",
              "| job | CPU s | wall s | peak RSS MB | tree PSS MB | growth MB per 1 % of the corpus | how |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
        for k, e in ex["jobs"].items():
            L.append(f"| {k} | {e['cpu_s']:,} | {e['wall_s']:,} | {e['peak_rss_mb']:,} | {e['peak_tree_pss_mb']:,} | "
                     f"{e['peak_growth_mb_per_1pct_of_corpus']} | {e['how']} |")  # fmt: skip
        cur = ex["jobs"].get("curate") or {}
        if cur.get("tokenizer_share_of_cpu") is not None:
            L += ["", f"Curation: its tokenisation is {cur['tokenizer_share_of_cpu']:.0%} of its CPU (every selected "
                  f"trace through Qwen2.5's tokenizer for the length filter); on one thread curate would take "
                  f"~{cur['single_thread_wall_s']:,} s, with the paper config's {PAPER['curate_threads']} threads "
                  f"~{cur['wall_s']:,} s."]  # fmt: skip
        L += ["", f"Assumptions: {ex['assumptions']}."]
    return L


def goal(res: dict) -> dict:
    """Issue 17: every job's peak flat across scales (within 20 %); the full-size estimate within
    30 min on a 32-core node and 8 GB per job."""
    out = {"goal": "data stage: peak RSS of every job flat across scales (within 20 %); full corpus curated in "
           "<= 30 min on one 32-core node with <= 8 GB per job (extrapolated)"}  # fmt: skip
    flat, ex = res.get("flatness"), res.get("extrapolation")
    if not flat or not ex:
        return {**out, "status": "not_measured"}
    bad = [f["job"] for f in flat if not f["flat_within_20pct"]]
    worst = max(flat, key=lambda f: f["ratio"])
    out["measured"] = (f"peak ratio large/small scale <= {worst['ratio']} ({worst['job']}); "
                       f"not flat: {', '.join(bad) or 'none'}; full size ~{ex['total_wall_min']} min, largest job "
                       f"{ex['max_peak_rss_mb']:,} MB (dominant: {ex['dominant']})")  # fmt: skip
    out["value"] = ex["total_wall_min"]
    out["status"] = "met" if not bad and ex["met"]["time"] and ex["met"]["rss"] else "missed"
    return out


def compare_md(before: dict, after: dict, title: str) -> str:
    """A before/after record (same corpora, same machine): per scale and job, peak RSS, CPU and
    wall of both, then the "after" run's full rendering."""
    L = [f"# {title}", "", "Before = the data stage of the commit before the streaming change (`--src` of a `git "
         "archive`), after = this tree; the same synthetic corpora, one run each, one after the other on the same "
         "(shared, loaded) machine. Peak RSS is the job's largest process; CPU = user + system of the job and its "
         "verification workers.", "",
         "| scale | job | peak RSS MB before -> after | CPU s before -> after | wall s before -> after |",
         "|---|---|---|---|---|"]  # fmt: skip
    for sb, sa in zip(before["scales"], after["scales"]):
        for jb in sb["jobs"]:
            ja = next((j for j in sa["jobs"] if j["job"] == jb["job"]), None)
            if ja is None:
                continue
            scale = f"1/{round(1 / sb['fraction'])}"
            L.append(f"| {scale} | {jb['job']} | {jb['peak_rss_mb']:,} -> **{ja['peak_rss_mb']:,}** "
                     f"| {jb['cpu_s']} -> {ja['cpu_s']} | {jb['wall_s']} -> {ja['wall_s']} |")  # fmt: skip
    for name, res in (("before", before), ("after", after)):
        if res.get("flatness"):
            parts = [f"{f['job']} {f['small_mb']:,} -> {f['large_mb']:,} MB (x{f['ratio']})" for f in res["flatness"]]
            L += ["", f"Peak across scales, {name}: " + "; ".join(parts)]
    L += ["", "## After, in full", ""] + render_md(after)
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fractions", type=float, nargs="+", help="corpus fractions (default 0.01 0.05)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--curate-threads", type=int, help="the curate job's threads (default: this machine's cores)")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true", help="keep the corpora and outputs")
    ap.add_argument("--out", help="write the result JSON here")
    ap.add_argument("--src", help="run the jobs on this src/ (e.g. `git archive` of an earlier commit): before/after")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"),
                    help="write a before/after markdown record (to --out) from two result files and stop")
    args = ap.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        text = compare_md(before, after, "Data stage at OpenR1-Math-Raw's scale: before / after streaming")
        Path(args.out).write_text(text) if args.out else print(text)
        return 0
    res = run(False, 1, fractions=args.fractions, shards=args.shards, workers=args.workers, workdir=args.workdir,
              keep=args.keep, src=args.src, curate_threads=args.curate_threads,
              log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))  # fmt: skip
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


__all__ = ["FULL", "extrapolate", "flatness", "goal", "make_corpus", "measure_job", "render_md", "run"]

if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    sys.exit(main())
