"""Shared helpers of the benchmark suite: isolated worker processes, repeats, machine facts.

Every measurement runs in a fresh Python process started by :func:`run_worker` (``bench/run.py
--worker MODULE:FUNCTION JSON``): torch's thread pools are fixed per process, peak RSS
(``getrusage``) is per process, and CUDA's peak-memory counters start clean. The worker prints
one line ``BENCH_RESULT <json>``; everything else it prints (library warnings, logs) is kept as
the tail of its log for the error report.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MARKER = "BENCH_RESULT "
GIB = 2**30


# ---------------------------------------------------------------------------------------------
# worker processes


def worker_env(threads: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["TQDM_DISABLE"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    env.setdefault("PYTHONHASHSEED", "0")
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


_LIVE: set[int] = set()  # process groups of the workers running now (see kill_live_workers)


def kill_live_workers() -> None:
    """SIGKILL every worker process group still running (a parent ended by a signal calls this:
    its workers run in their own sessions and would outlive it)."""
    import signal

    for pgid in list(_LIVE):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _LIVE.discard(pgid)


def run_command(cmd: list[str], *, timeout: float | None = None, env: dict | None = None, cwd: str | None = None,
                threads: int = 1) -> dict:  # fmt: skip
    """Run ``cmd`` in its own process group; on timeout the whole group is killed (a launcher's
    children too: ``accelerate launch`` starts the real worker as a child). Returns
    ``{"returncode", "stdout", "log_tail", "timed_out", "seconds"}``."""
    import signal

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=worker_env(threads, env), cwd=cwd or str(REPO), start_new_session=True)  # fmt: skip
    timed_out = False
    _LIVE.add(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
    finally:
        _LIVE.discard(proc.pid)
    return {
        "returncode": proc.returncode,
        "stdout": stdout or "",
        "log_tail": ((stdout or "")[-1500:] + "\n" + (stderr or "")[-3000:]).strip(),
        "timed_out": timed_out,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def run_worker(
    target: str,
    kwargs: dict,
    *,
    threads: int = 1,
    timeout: float | None = None,
    python: str | None = None,
    env: dict | None = None,
    launcher: list[str] | None = None,
) -> dict:
    """Run ``bench/<module>.py:function(**kwargs)`` in a fresh process (through ``launcher``, e.g.
    ``[python, -m, accelerate.commands.launch, ...]``, when given); its JSON result, or
    ``{"error": ..., "returncode": ...}`` (never raises for a failed measurement). A worker past
    ``timeout`` is killed with its whole process group."""
    head = list(launcher) if launcher else [python or sys.executable]
    cmd = head + [str(BENCH_DIR / "run.py"), "--worker", target, json.dumps(kwargs)]
    r = run_command(cmd, timeout=timeout, env=env, threads=threads)
    if r["timed_out"]:
        return {"error": f"timed out after {timeout} s", "log_tail": r["log_tail"], "target": target}
    for line in reversed(r["stdout"].splitlines()):
        if line.startswith(MARKER):
            out = json.loads(line[len(MARKER) :])
            if isinstance(out, dict):
                out.setdefault("process_wall_s", r["seconds"])
            return out
    return {
        "error": f"worker {target} exited with code {r['returncode']} and no result",
        "returncode": r["returncode"],
        "log_tail": r["log_tail"],
        "target": target,
    }


def worker_main(target: str, kwargs_json: str) -> int:
    """Entry point of a worker process (called by ``run.py --worker``)."""
    import importlib

    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(**json.loads(kwargs_json))
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rnd(x, digits=3):
    return None if x is None else round(float(x), digits)


def ratio(a, b, digits=3):
    if a is None or b is None or b == 0:
        return None
    return round(float(a) / float(b), digits)


def interleaved(variants: dict, repeats: int, log=None) -> dict:
    """Run ``variants`` (name -> zero-arg callable returning a dict) ``repeats`` times each,
    interleaved A, B, A, B, ... (the order rotates every round, so no variant always runs
    first); returns name -> list of results."""
    names = list(variants)
    out = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            res = variants[n]()
            out[n].append(res)
            if log:
                log(f"    {n} (repeat {r + 1}/{repeats}): {short(res)}")
    return out


def short(res: dict) -> str:
    if not isinstance(res, dict):
        return str(res)
    if "error" in res:
        return "ERROR " + res["error"]
    keys = [k for k in res if isinstance(res[k], (int, float)) and not isinstance(res[k], bool)][:5]
    return ", ".join(f"{k}={res[k]}" for k in keys)


# ---------------------------------------------------------------------------------------------
# machine facts


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    hw = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_logical": os.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_usable": usable,
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "memory_available_gib_at_start": round(psutil.virtual_memory().available / GIB, 1),
        "gpus": [],
    }
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                hw["gpus"].append(
                    {
                        "index": i,
                        "name": p.name,
                        "memory_gib": round(p.total_memory / GIB, 1),
                        "capability": f"{p.major}.{p.minor}",
                        "multiprocessors": p.multi_processor_count,
                    }
                )
            hw["cuda"] = torch.version.cuda
    except Exception as exc:  # noqa: BLE001 - a broken CUDA setup is a fact to record, not a crash
        hw["gpu_error"] = repr(exc)
    return hw


PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "math-verify",
    "datasets",
    "tokenizers",
    "numpy",
    "pebble",
    "snakemake",
    "liger-kernel",
    "flash-attn",
    "vllm",
    "triton",
)


def versions(vllm_python: str | None = None) -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    try:
        import redi

        out["redi"] = getattr(redi, "__version__", None) or importlib.metadata.version("redi")
    except Exception:  # noqa: BLE001
        out["redi"] = None
    try:
        out["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            or None
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
        out["git_dirty"] = bool(dirty.stdout.strip())
    except OSError:
        out["git_commit"] = None
    if vllm_python:
        try:
            v = subprocess.run(
                [vllm_python, "-c", "import vllm, torch; print(vllm.__version__, torch.__version__)"],
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout.split()
            out["vllm_env"] = {"python": vllm_python, "vllm": v[0], "torch": v[1]} if len(v) == 2 else None
        except (OSError, subprocess.TimeoutExpired):
            out["vllm_env"] = None
    return out


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux


def set_threads(n: int) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from redi.runtime import set_threads as _set

    _set(n)
