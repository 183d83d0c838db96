"""Distributed workers never outlive the process that launched them.

A scheduler that stops a job by signalling its process tree (SLURM's ``proctrack/linuxproc``, as
in the cluster rehearsal) misses workers whose launcher died first: re-parented to init, they
trained on to the last step and wrote a final checkpoint that the retried job then "resumed"
from. Every child prepared with ``redi.runtime.worker_env`` (training workers, vLLM engines)
names its launcher, and its entry point (``exit_with_launcher``) exits with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from redi.runtime import LAUNCHER_PID_ENV, worker_env

BIN = Path(sys.executable).parent

WATCHING_WORKER = textwrap.dedent("""
    import time
    from redi.runtime import exit_with_launcher
    assert exit_with_launcher(poll_s=0.05)
    print("watching", flush=True)
    time.sleep(120)
""")

LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys, time
    from redi.runtime import worker_env
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=worker_env())  # names this process
    print(worker.pid, flush=True)
    time.sleep(120)
""")


def _gone(pid: int, within_s: float) -> bool:
    from redi.runtime import _process_gone

    deadline = time.time() + within_s
    while time.time() < deadline:
        if _process_gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_worker_exits_when_its_launcher_is_killed_even_before_it_is_reaped():
    """The launcher is this test's child: SIGKILLed and not waited for, it stays a zombie, which
    still answers ``kill(pid, 0)``; the worker must see it as gone all the same."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, WATCHING_WORKER], stdout=subprocess.PIPE, text=True,
                                env=worker_env())  # fmt: skip
    worker = int(launcher.stdout.readline())
    try:
        time.sleep(1.0)  # the worker is up and watching
        assert not _gone(worker, 0.2)
        os.kill(launcher.pid, signal.SIGKILL)
        assert _gone(worker, 10.0), "the worker outlived its launcher"
    finally:
        for pid in (worker, launcher.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launcher.wait()


def test_no_watch_outside_launched_workers(monkeypatch):
    from redi.runtime import exit_with_launcher

    monkeypatch.delenv(LAUNCHER_PID_ENV, raising=False)
    assert exit_with_launcher() is False
    monkeypatch.setenv(LAUNCHER_PID_ENV, str(os.getpid()))  # its own pid: not a worker of anyone
    assert exit_with_launcher() is False


def _workers_of(launcher_pid: int) -> list[int]:
    """Processes whose environment names ``launcher_pid`` as their launcher."""
    mark = f"{LAUNCHER_PID_ENV}={launcher_pid}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_killing_the_training_launcher_stops_its_cpu_workers(inputs, tmp_path):
    """``redi train run --cpu-processes 2`` (torch.distributed.run, two gloo workers), its launcher
    SIGKILLed mid-run: both workers end within seconds and no metrics line is written after."""
    out = tmp_path / "sft"
    run = {"objective": "sft", "global_batch_size": 4, "per_device_batch_size": 1, "max_steps": 5000,
           "save_steps": 5000, "save_each_epoch": False, "learning_rate": 1e-4, "seed": 3}  # fmt: skip
    cmd = [str(BIN / "redi"), "train", "run", "--run-json", json.dumps(run), "--model", inputs["model"],
           "--data", inputs["sft"], "--out", str(out), "--cpu-processes", "2", "--threads", "2"]  # fmt: skip
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = out / "checkpoints" / "metrics.jsonl"  # where a running job appends its steps
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            assert launcher.poll() is None, "training ended before the test could interrupt it"
            time.sleep(0.2)
        workers = _workers_of(launcher.pid)
        assert len(workers) >= 2, workers  # the two training processes (and torchrun's agent)
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher alone, as a scheduler that misses its children
        launcher.wait()
        assert all(_gone(pid, 15.0) for pid in workers), f"workers outlived the launcher: {_workers_of(launcher.pid)}"
        lines = len(metrics.read_text().splitlines())
        time.sleep(2.0)
        assert len(metrics.read_text().splitlines()) == lines < 5000
    finally:
        for kill in (lambda: os.killpg(launcher.pid, signal.SIGKILL), *[
            (lambda pid=pid: os.kill(pid, signal.SIGKILL)) for pid in _workers_of(launcher.pid)
        ]):  # fmt: skip
            try:
                kill()
            except ProcessLookupError:
                pass
        launcher.wait()
