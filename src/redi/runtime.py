"""Process-level settings every entry point applies before heavy work."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def set_threads(n: int) -> None:
    """Pin torch and BLAS to ``n`` threads.

    Snakemake runs several jobs at once; two jobs that each take every core run many times
    slower than two single-thread jobs, so each job uses exactly its ``threads``.

    OpenMP's waiting threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless set):
    a small model runs thousands of tiny parallel regions per step, and where another process
    holds a core the default spin-wait made 2-thread SFT of the demo's student 18x slower than 1
    thread (measured on 2 cores busy with other work; passive: 1.3x slower than 1
    thread there). Takes effect only before torch first starts its OpenMP pool.

    Also keeps freed memory for reuse (:func:`keep_freed_memory`).
    """
    keep_freed_memory()
    n = max(1, int(n))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    # Hugging Face tokenizers encode batches on Rayon threads: as many as the job has, none more
    # (curation's length filter is the data stage's dominant cost at full size).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if n > 1 else "false")
    os.environ.setdefault("RAYON_NUM_THREADS", str(n))
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set once in this process
        pass


# glibc's mallopt parameters (<malloc.h>)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Allocations below this come from the heap, not their own mmap: glibc's own ceiling for its
# dynamic threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX, 4 * 1024 * 1024 * sizeof(long)).
MMAP_THRESHOLD_BYTES = 32 * 2**20
# Free memory at the heap's top is handed back to the kernel only past this.
TRIM_THRESHOLD_BYTES = 256 * 2**20
_allocator_tuned: bool | None = None


def _user_chose_allocator() -> bool:
    """The user set glibc's malloc thresholds or preloaded another allocator (jemalloc,
    tcmalloc, mimalloc: mallopt would then set a malloc that is not in use)."""
    env = os.environ
    return (
        "MALLOC_MMAP_THRESHOLD_" in env
        or "MALLOC_TRIM_THRESHOLD_" in env
        or "glibc.malloc." in env.get("GLIBC_TUNABLES", "")
        or "malloc" in env.get("LD_PRELOAD", "")
    )


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocation instead of returning it to
    the kernel and faulting it back in, zeroed, a moment later.

    A training step or a generation step allocates and frees the same tensors over and over
    (activations, the KV cache as it grows, logits). With glibc's defaults much of that memory
    goes back to the kernel on free, and every reuse costs page faults: the CPU demo took 48
    million minor faults and 110 s of system time out of ~1,060 CPU s. With the mmap threshold
    at 32 MiB and the trim threshold at 256 MiB, one evaluation of the demo (800 samples) takes
    210 k faults instead of 700-780 k and 5-8 % less wall time; an SFT epoch 2.4 % less
    (measured with a 1 GiB trim threshold) (
    ``bench/results/2026-11-30-demo-cpu-speedup.md``). The numbers computed do not change
    (only where freed memory goes). Costs up to ``TRIM_THRESHOLD_BYTES`` of resident memory
    per process that a default process would have returned.

    Called by every job (``workflow/scripts/_bootstrap.py``), every ``redi`` command and
    :func:`set_threads`. Applies from the call on (allocations already made keep their place). Does nothing where
    the C library is not glibc, or where the user set ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc.*`` tunable, or preloaded another allocator
    (``LD_PRELOAD`` naming a malloc): their choice stands. Returns whether the
    settings are in effect in this process (the first call decides; later calls repeat its
    answer). Source: glibc ``mallopt(3)`` (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``).
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        if sys.platform.startswith("linux") and not _user_chose_allocator():
            try:
                libc = ctypes.CDLL(None)
                if hasattr(libc, "gnu_get_libc_version"):  # glibc (musl's mallopt does nothing)
                    _allocator_tuned = bool(
                        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                    )
            except OSError:
                pass
    return _allocator_tuned


def log_uncaught_exceptions(logger_name: str = "redi.job") -> None:
    """Write an uncaught exception (with its traceback) to the logging handlers before the
    process dies: a job's log file then says why it failed, not only the console of whatever
    started it (Snakemake's, for a ``script:`` job). The traceback still goes to stderr too.
    Idempotent; ``KeyboardInterrupt`` is left alone."""
    import logging

    if getattr(sys.excepthook, "_redi", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if not issubclass(kind, KeyboardInterrupt):
            logging.getLogger(logger_name).critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
            for handler in logging.getLogger().handlers:
                handler.flush()
        previous(kind, value, tb)

    hook._redi = True
    sys.excepthook = hook


# ---- child processes find the package -----------------------------------

def src_path() -> str:
    """The folder that holds the ``redi`` package (``src/`` of a checkout)."""
    import redi

    return str(Path(redi.__file__).resolve().parents[1])


#: The launcher's process id, set by :func:`worker_env` in every child it prepares; a worker
#: that calls :func:`exit_with_launcher` watches that process.
LAUNCHER_PID_ENV = "REDI_LAUNCHER_PID"


def worker_env(base: dict | None = None, **extra: str) -> dict:
    """Environment for a Python child process (``accelerate launch``/``torchrun`` workers, vLLM
    engines) with the package's folder first on ``PYTHONPATH`` and this process named as its
    launcher (``LAUNCHER_PID_ENV``: a child entry point that calls :func:`exit_with_launcher`
    ends with this process).

    Snakemake 9.27 removes ``PYTHONPATH`` from conda jobs, and the env files do not install the
    package (a conda env cannot know where the checkout is), so a worker started with
    ``-m redi...`` would die with ``No module named 'redi'`` unless the path is passed here.
    """
    env = dict(os.environ if base is None else base)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != src_path()]
    env["PYTHONPATH"] = os.pathsep.join([src_path(), *rest])
    env[LAUNCHER_PID_ENV] = str(os.getpid())
    env.update(extra)
    return env


# ---- workers never outlive their launcher ----------------------------------------------------

def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs: no such process, or a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux): the signal test above is all there is
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def exit_with_launcher(poll_s: float = 1.0) -> bool:
    """In a worker started with :func:`worker_env` (``LAUNCHER_PID_ENV`` set): exit at once
    (``os._exit(1)``, after one line on stderr) when the launcher is gone; a daemon thread checks
    every ``poll_s`` seconds. Returns whether a watch was started (False outside such workers).

    Why: ``accelerate launch`` / ``torchrun`` workers are grandchildren of the job's process.
    When a scheduler stops a job by signalling its process tree (SLURM's ``proctrack/linuxproc``,
    ``proctrack/pgid``) and the launcher dies first, the workers are re-parented to init, no
    longer found in the tree, and train on: they keep the GPUs busy and write checkpoints and
    metrics under the retried job that resumes from the same folder. SLURM's documentation of
    ``proctrack/linuxproc`` names this failure (processes whose parent died escape the job).
    """
    pid = int(os.environ.get(LAUNCHER_PID_ENV) or 0)
    if pid <= 0 or pid == os.getpid():
        return False
    import threading

    def watch() -> None:
        while not _process_gone(pid):
            time.sleep(poll_s)
        print(f"redi worker {os.getpid()}: its launcher (pid {pid}) is gone; exiting", file=sys.stderr, flush=True)
        os._exit(1)

    threading.Thread(target=watch, name="redi-launcher-watch", daemon=True).start()
    return True


# ---- GPUs: fail fast, and never share a GPU between two local jobs (items 6, 7) -------------

CUDA12_HINT = (
    "The torch wheels on PyPI for the pinned versions are CUDA 13 builds and need an NVIDIA driver "
    "of release 580 or newer. On an older driver install the CUDA 12 build of the same torch "
    "version from the PyTorch index (pip install torch==<version> --index-url "
    "https://download.pytorch.org/whl/cu12<minor>, as listed on pytorch.org for that version), "
    "or ask for nodes with a newer driver."
)


def driver_version() -> str | None:
    """The NVIDIA kernel driver's version, or None where no driver is installed."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            if word[:1].isdigit() and word.count(".") >= 1:
                return word
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )
        return out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else None
    except (OSError, subprocess.SubprocessError):
        return None


def require_cuda(n: int, what: str = "this job", python: str | None = None) -> None:
    """Raise when ``n > 0`` GPUs are requested and torch cannot use that many.

    Without this, a job that asked SLURM for 8 GPUs on a node whose driver is older than the
    wheel's CUDA would train on the CPU for days (torch falls back silently), and a vLLM job
    would fail deep inside its engine start.

    ``python``: the interpreter whose torch will use the GPUs, where that is not this one (vLLM
    in its own virtualenv, ``evaluation.vllm.python``): the check runs there (a few seconds),
    with the same message.

    Raises:
        RuntimeError: naming the torch version, its CUDA build, the driver version and
            ``CUDA_VISIBLE_DEVICES``, with the CUDA 12 install hint.
    """
    if int(n) <= 0:
        return
    if python and Path(python).resolve() != Path(sys.executable).resolve():
        code = "import sys; from redi.runtime import require_cuda; require_cuda(int(sys.argv[1]), sys.argv[2])"
        r = subprocess.run([python, "-c", code, str(int(n)), what], env=worker_env(),
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            raise RuntimeError(f"{last.removeprefix('RuntimeError: ')} (checked with {python})")
        return
    import torch

    usable = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if usable >= int(n):
        return
    raise RuntimeError(
        f"{what} requests {int(n)} GPU(s) but torch can use {usable}: torch {torch.__version__} "
        f"(built for CUDA {torch.version.cuda or 'none: a CPU-only build'}), NVIDIA driver "
        f"{driver_version() or 'not found'}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}. "
        f"{CUDA12_HINT} To run on the CPU instead, set resources.<stage>.gpu: 0."
    )


def _local_gpu_ids() -> list[str]:
    """GPUs this process may use, without initialising CUDA (which would fix the device set
    before ``CUDA_VISIBLE_DEVICES`` is narrowed): ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def gpu_lock_dir() -> Path:
    """Where GPU leases live: one machine-wide folder (``REDI_GPU_LOCK_DIR``; default
    ``$TMPDIR/redi-gpu-locks``, world-writable and sticky like ``/tmp``, so that every user's
    jobs see each other's leases), or a per-user folder where that one cannot be used."""
    if os.environ.get("REDI_GPU_LOCK_DIR"):
        return Path(os.environ["REDI_GPU_LOCK_DIR"])
    shared = Path(tempfile.gettempdir()) / "redi-gpu-locks"
    try:
        shared.mkdir(mode=0o1777, exist_ok=True)
        if shared.stat().st_uid == os.getuid():
            shared.chmod(0o1777)
        if os.access(shared, os.W_OK | os.X_OK):
            return shared
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"redi-gpu-locks-{os.getuid()}"


def gpu_lock_keys(ids: list[str]) -> list[str]:
    """A machine-wide name for each GPU in ``ids`` (entries of ``CUDA_VISIBLE_DEVICES``), for
    its lock file.

    Inside a SLURM allocation, ``CUDA_VISIBLE_DEVICES`` may be renumbered from 0 in every
    allocation (cgroup-constrained devices), so two allocations on one node would both say
    ``0,1`` for different GPUs: the allocation's physical GPU indices (``SLURM_STEP_GPUS``, else
    ``SLURM_JOB_GPUS``, same order) name them instead. Outside SLURM the entries are the
    machine's own indices (or UUIDs, kept as they are). Returns ``gpu-<index>`` or the UUID.
    """
    physical = None
    for var in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        listed = [g.strip() for g in os.environ.get(var, "").split(",") if g.strip()]
        if listed and len(listed) == len(ids):
            physical = listed
            break
    keys = []
    for i, gpu in enumerate(ids):
        name = physical[i] if physical is not None and not gpu.startswith(("GPU-", "MIG-")) else gpu
        keys.append(name if name.startswith(("GPU-", "MIG-")) else f"gpu-{name}")
    return keys


def _try_lock(path: Path):
    """An open handle holding an exclusive ``flock`` on ``path``, or None if another holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def gpu_lease(n: int, *, poll_s: float = 10.0, log=None):
    """Hold ``n`` of the GPUs this process may use for the duration of the block and pin the
    process (and every child) to them through ``CUDA_VISIBLE_DEVICES``.

    Snakemake never sets ``CUDA_VISIBLE_DEVICES`` and, without ``--resources gpu=N``, starts every
    GPU job at once: on one box ``snakemake --cores all`` would put 15 vLLM engines (each taking
    90 % of the memory) and two training runs on the same cards. Each GPU job therefore takes an
    exclusive ``flock`` on one file per GPU and waits (logging why) until ``n`` are free. The
    pool is ``CUDA_VISIBLE_DEVICES`` when set (inside a SLURM allocation: the allocation's GPUs,
    so ``snakemake --cores all`` run inside ``salloc``/``sbatch`` shares them out too), else every
    GPU ``nvidia-smi`` lists. Lock files are named by physical GPU (:func:`gpu_lock_keys`) in a
    machine-wide folder (:func:`gpu_lock_dir`), so two allocations on one node never wait for
    each other's GPUs, and two jobs never share one. A SLURM job that the executor plugin
    submitted holds exactly its own GPUs and leases all of them at once. Locks vanish with the
    process, so a killed job never leaves one behind.

    Raises:
        RuntimeError: more GPUs requested than the pool holds.
    """
    n = int(n)
    if n <= 0:
        yield os.environ.get("CUDA_VISIBLE_DEVICES")
        return
    ids = _local_gpu_ids()
    if n > len(ids):
        raise RuntimeError(
            f"this job requests {n} GPU(s) but this machine shows {len(ids)} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}, nvidia-smi -L); "
            "lower resources.<stage>.gpu or free/expose more GPUs. " + CUDA12_HINT
        )
    keys = dict(zip(ids, gpu_lock_keys(ids)))
    folder = gpu_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, object]] = []
    waited = False
    try:
        while True:
            for gpu in ids:
                if len(held) == n:
                    break
                handle = _try_lock(folder / f"{keys[gpu]}.lock")
                if handle is not None:
                    held.append((gpu, handle))
            if len(held) == n:
                break
            for _, handle in held:  # never sit on some GPUs while waiting for more
                handle.close()
            held.clear()
            if not waited and log is not None:
                log(f"waiting for {n} free GPU(s) of {ids} (leases {[keys[g] for g in ids]} in {folder})")
            waited = True
            time.sleep(poll_s)
        chosen = ",".join(g for g, _ in held)
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen
        if log is not None:
            log(f"GPU lease: CUDA_VISIBLE_DEVICES={chosen} ({', '.join(keys[g] for g, _ in held)})")
        try:
            yield chosen
        finally:
            if previous is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous
    finally:
        for _, handle in held:
            handle.close()
