"""The cluster rehearsal: the paper-shaped workflow through a real one-node SLURM, every rule in an
environment built from its own env file, training under DeepSpeed on 2 CPU processes.

    .venv/bin/python .ci/rehearsal.py [--work DIR] [--keep]

Steps (each Snakemake run bounded by a timeout, so a hang fails the step instead of CI):

1. ``.ci/slurm start``: slurmctld + slurmd + slurmdbd + MariaDB + munge, started directly.
2. A small "snakemake env" (snakemake, the SLURM plugin, PyYAML, jsonschema: what the README says
   a conda run needs) and the ``conda`` front-end (``.ci/conda``) on PATH.
3. The profile: ``profiles/slurm`` as shipped plus ``slurm_partition: debug`` and
   ``slurm_account: rehearsal`` (what this test cluster needs).
4. Phase "workflow": ``snakemake --profile <profile> --use-conda --configfile
   config/rehearsal.yaml`` (the whole DAG: teacher, data, SFT, DPO reference pass, REDI/DPO/SimPO,
   per-checkpoint evaluation, report).
5. Checks:
   (c) DPO's first loss is log 2 (|loss - ln 2| <= 1e-4) under ZeRO-2 (the workflow's run), and
       under ZeRO-3 (``redi train ref-logps`` + ``redi train run --cpu-processes 2
       --accelerate-config zero3`` in a SLURM job, in the train env);
   (b) the SFT job rerun, frozen after its first checkpoint and its time limit lowered: killed at
       the limit (TIMEOUT), retried by the profile with a longer limit, resumed from its
       checkpoint, every step's loss equal to the workflow's uninterrupted run;
   (a) the SFT job rerun and ``scancel``ed after its first checkpoint: retried by the profile (not
       hung), resumed, every step's loss equal to the uninterrupted run;
   (d) a job that fails (a tracker whose package its env lacks) has the error in its own log.
6. ``.ci/slurm stop``, whatever happened.

Exit status 0 only if every check passed; a table of checks and timings is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "rehearsal.yaml"
SNAKEMAKE_ENV = ["snakemake", "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema"]
LOG2 = math.log(2.0)
LOG2_TOL = 1e-4  # bf16 weights on both sides of the reference pass; the bf16 cast of the cached sums was ~4e-3
RESULTS: list[tuple[str, bool, str]] = []
TIMES: dict[str, float] = {}


def say(message: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {message}", flush=True)


def record(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok, detail))
    say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")


def pinned_closure(names: list[str]) -> list[str]:
    """``name==version`` of ``names`` and everything they require, as installed here."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    out, todo = {}, list(names)
    while todo:
        req = Requirement(todo.pop())
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower()
        if key in out:
            continue
        out[key] = f"{dist.metadata['Name']}=={dist.version}"
        extras = set(req.extras) | {""}
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append(line.split(";")[0])
    return sorted(out.values())


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, **kw)


class Rehearsal:
    def __init__(self, work: Path, cache: Path):
        self.work = work
        self.cache = cache  # the snakemake env and the rules' envs (kept between local runs)
        self.run_dir = work / "run"
        self.state = work / "slurm"
        self.env = dict(os.environ)
        self.snakemake_bin = cache / "snakemake-env" / "bin" / "snakemake"
        self.proc: subprocess.Popen | None = None  # the Snakemake run in progress
        self.reference: dict[str, list] = {}  # run -> (step, loss) of the workflow's uninterrupted run

    # ---- setup ----------------------------------------------------------------------------
    def start_cluster(self) -> None:
        t = time.time()
        run([str(ROOT / ".ci" / "slurm"), "start", str(self.state)], check=True)
        TIMES["slurm start"] = time.time() - t
        self.env["SLURM_CONF"] = str(self.state / "etc" / "slurm.conf")

    def stop_cluster(self) -> None:
        if self.proc is not None and self.proc.poll() is None:  # interrupted mid-run
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        if "SLURM_CONF" in self.env:
            run(["scancel", "--user", "root"], env=self.env, check=False)
        run([str(ROOT / ".ci" / "slurm"), "stop", str(self.state)], check=False)

    def setup_tools(self) -> None:
        t = time.time()
        venv = self.cache / "snakemake-env"
        if not self.snakemake_bin.exists():
            run([sys.executable, "-m", "venv", str(venv)], check=True)
            # the versions this interpreter has, without resolving again (pip's cache has them)
            run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", *pinned_closure(SNAKEMAKE_ENV)], check=True)
        run(
            [str(venv / "bin" / "python"), str(ROOT / ".ci" / "conda"), "install", str(self.work / "conda")], check=True
        )
        self.env["PATH"] = f"{self.work / 'conda' / 'bin'}:{venv / 'bin'}:{self.env['PATH']}"
        self.env.pop("PYTHONPATH", None)
        self.env.pop("VIRTUAL_ENV", None)
        # DeepSpeed compiles a small CPU op with g++ on its first run: once per rehearsal
        self.env["TORCH_EXTENSIONS_DIR"] = str(self.work / "torch_extensions")
        profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
        profile["default-resources"].update(slurm_partition="debug", slurm_account="rehearsal")
        (self.work / "profile").mkdir(exist_ok=True)
        (self.work / "profile" / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
        say("profile = profiles/slurm/config.yaml + default-resources slurm_partition=debug, slurm_account=rehearsal")
        self.run_dir.mkdir(exist_ok=True)
        TIMES["tools"] = time.time() - t

    # ---- snakemake ------------------------------------------------------------------------
    def snakemake_cmd(self, *args: str, overlay: dict | None = None) -> list[str]:
        configs = [str(CONFIG)]
        if overlay:
            path = self.work / f"overlay-{len(list(self.work.glob('overlay-*')))}.yaml"
            path.write_text(yaml.safe_dump(overlay))
            configs.append(str(path))
        # targets and options first: --configfile takes every word after it
        return [
            str(self.snakemake_bin),
            *args,
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(self.run_dir),
            "--profile",
            str(self.work / "profile"),
            "--use-conda",
            "--conda-prefix",
            str(self.cache / "conda-envs"),
            "--configfile",
            *configs,
        ]

    def snakemake(self, name: str, *args: str, limit: int, overlay: dict | None = None, during=None) -> int:
        """Run Snakemake (its output in WORK/<name>.log), bounded by ``limit`` seconds; ``during``:
        a function called with the process while it runs. Returns the exit status (124: timed out)."""
        cmd = self.snakemake_cmd(*args, overlay=overlay)
        log = self.work / f"{name}.log"
        say(f"{name}: {' '.join(cmd)}  (limit {limit} s, output in {log})")
        t = time.time()
        with open(log, "w") as out:
            proc = self.proc = subprocess.Popen(
                cmd, cwd=self.run_dir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                if during:
                    during(proc)
                rc = proc.wait(timeout=max(1, limit - (time.time() - t)))
            except subprocess.TimeoutExpired:
                say(f"{name}: still running after {limit} s: stopping it (a hung workflow)")
                os.killpg(proc.pid, 9)
                proc.wait()
                run(["scancel", "--user", "root"], env=self.env, check=False)
                rc = 124
        TIMES[name] = time.time() - t
        say(f"{name}: exit {rc} after {TIMES[name]:.0f} s")
        if rc not in (0,):
            tail = log.read_text().splitlines()[-25:]
            print("\n".join(f"    | {line}" for line in tail), flush=True)
        return rc

    def sacct(self, since: str) -> list[dict]:
        out = run(
            ["sacct", "-X", "-n", "--parsable2", "-S", since, "-o", "JobID,JobName,State,TimelimitRaw,Comment,Elapsed"],
            env=self.env,
            capture_output=True,
            check=True,
        ).stdout
        keys = ["id", "name", "state", "limit_min", "comment", "elapsed"]
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    @staticmethod
    def minutes(clock: str) -> int:
        """SLURM's [D-][H:]M:S -> whole minutes."""
        days, _, rest = clock.rpartition("-")
        parts = [int(x) for x in rest.split(":")]
        hours = parts[-3] if len(parts) > 2 else 0
        return int(days or 0) * 1440 + hours * 60 + (parts[-2] if len(parts) > 1 else 0)

    def running_job(self, run_name: str) -> tuple[str, int] | None:
        """(SLURM job id, minutes it has run) of the running job of ``run_name``, from squeue (sacct
        records a job's comment only when it ends)."""
        out = run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%M"], env=self.env, capture_output=True).stdout
        for line in out.splitlines():
            job_id, comment, elapsed = (line.split("|") + ["", ""])[:3]
            if comment.endswith(f"_wildcards_{run_name}") or comment.endswith(f"={run_name}"):
                return job_id, Rehearsal.minutes(elapsed)
        return None

    # ---- helpers --------------------------------------------------------------------------
    def runs(self) -> dict:
        """Run names of the rehearsal config by objective (from the plan, as the rules read it)."""
        sys.path.insert(0, str(ROOT / "src"))
        from redi.plan import load_config, sft_runs, stage2_runs

        cfg = load_config(CONFIG)
        out = {"sft": list(sft_runs(cfg))[0]}
        for name, r in stage2_runs(cfg).items():
            out[r["objective"]] = name
        return out

    def losses(self, run: str) -> list[tuple[int, float]]:
        path = self.run_dir / "results" / "train" / run / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [(int(r["step"]), float(r["loss"])) for r in rows]

    def live_steps(self, run: str) -> int:
        """Steps a running training job has logged (its live metrics file)."""
        path = self.run_dir / "results" / "train" / run / "checkpoints" / "metrics.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def summary(self, run: str) -> dict:
        return json.loads((self.run_dir / "results" / "train" / run / "summary.json").read_text())

    def compare_losses(self, name: str, reference: list, run: str) -> tuple[bool, str]:
        try:
            got = self.losses(run)
        except FileNotFoundError as error:
            return False, f"no metrics: {error}"
        if [s for s, _ in got] != [s for s, _ in reference]:
            return False, f"steps differ: {[s for s, _ in got][:40]} vs {[s for s, _ in reference][:40]}"
        worst = max(abs(a - b) for (_, a), (_, b) in zip(got, reference))
        return worst == 0.0, f"{len(got)} steps, largest loss difference {worst:.3g} (must be 0)"

    # ---- phases ---------------------------------------------------------------------------
    def phase_workflow(self) -> bool:
        rc = self.snakemake("workflow", limit=int(os.environ.get("REHEARSAL_WORKFLOW_LIMIT", 1500)))
        record("workflow: the paper-shaped DAG through SLURM with conda envs", rc == 0, f"exit {rc}")
        return rc == 0

    def check_tracking(self, runs: dict) -> None:
        missing = [
            r for r in runs.values() if not list((self.run_dir / "results/train" / r / "tensorboard").glob("events.*"))
        ]
        record(
            "tracking: TensorBoard events of every training run",
            not missing,
            f"missing for {missing}" if missing else "all present",
        )

    def check_dpo_zero2(self, runs: dict) -> None:
        run_name = runs["dpo"]
        try:
            summary, first = self.summary(run_name), self.losses(run_name)[0][1]
        except (FileNotFoundError, IndexError) as error:
            record("(c) DPO first loss = log 2 under ZeRO-2", False, f"no run: {error}")
            return
        deepspeed = summary.get("numerics", {}).get("deepspeed")
        ok = abs(first - LOG2) <= LOG2_TOL and deepspeed is True and summary.get("world_size") == 2
        record(
            "(c) DPO first loss = log 2 under ZeRO-2",
            ok,
            f"step-1 loss {first:.7f} vs ln 2 {LOG2:.7f} (|diff| {abs(first - LOG2):.2e}, tolerance {LOG2_TOL}); "
            f"deepspeed={deepspeed}, world_size={summary.get('world_size')}, bf16={summary.get('bf16')}",
        )

    def rerun_sft_interrupted(self, phase: str, runs: dict, name: str, limit: int, interrupt) -> dict | None:
        """Rerun the SFT job through SLURM and call ``interrupt(job_id, minutes_run)`` once, as soon
        as its first checkpoint exists; then compare the finished run with the workflow's
        uninterrupted one. Returns what the checks read (None, after recording a failure, when
        there is no uninterrupted run to compare with)."""
        run_name = runs["sft"]
        try:
            reference = self.reference.get(run_name) or self.losses(run_name)
        except FileNotFoundError as error:
            record(name, False, f"no uninterrupted run to compare with: {error}")
            return None
        ckpts = self.run_dir / "results/train" / run_name / "checkpoints"
        shutil.rmtree(ckpts, ignore_errors=True)
        since = time.strftime("%Y-%m-%dT%H:%M:%S")

        def after_first_checkpoint(proc):
            deadline = time.time() + 420
            while time.time() < deadline and proc.poll() is None:
                if any(p.is_dir() for p in ckpts.glob("checkpoint-*")):  # written atomically (os.replace)
                    job = self.running_job(run_name)
                    if job:
                        say(f"{phase}: job {job[0]} has {sorted(p.name for p in ckpts.glob('checkpoint-*'))}")
                        interrupt(*job)
                        return
                time.sleep(0.5)

        rc = self.snakemake(
            phase,
            f"results/train/{run_name}/model",
            "--forcerun",
            "train_sft",
            "--allowed-rules",
            "train_sft",
            limit=limit,
            during=after_first_checkpoint,
        )
        same, detail = self.compare_losses(name, reference, run_name) if rc == 0 else (False, "")
        return {
            "rc": rc,
            "jobs": [j for j in self.sacct(since) if run_name in j["comment"]],
            "same": same,
            "detail": detail,
            "resumed": self.summary(run_name).get("resumed_from_step", 0) if rc == 0 else 0,
            "steps": reference[-1][0] if reference else 0,
        }

    @staticmethod
    def resumed_mid_run(got: dict) -> bool:
        """A resume is only a resume strictly inside the run: from step 0 the job was never
        interrupted, from the last step there was nothing left to redo."""
        return 0 < got["resumed"] < got["steps"]

    def phase_time_limit(self, runs: dict) -> None:
        """(b) The SFT job past its SLURM time limit: TIMEOUT, retried with more time, resumed exactly.

        After its first checkpoint the job is frozen (``scancel --signal=STOP``, with and without
        ``--full``: SLURM's wall clock keeps running, the training does not; checked by its logged
        steps standing still) and its limit lowered (``scontrol update
        TimeLimit``) to the whole minutes it has run, at least 1. So SLURM kills it at a limit
        check whatever the machine's speed: unfrozen, a fast machine finished the 900 steps inside
        the shortest limit SLURM has (1 minute) and the check could not happen. The retry is
        submitted by the profile with the rule's own runtime for attempt 2, which must be more
        than attempt 1's."""
        name = "(b) time limit: retried with more time, resumed exactly"
        actions: list[str] = []
        submitted: list[int] = []
        held: list[bool] = []

        def freeze_and_lower_limit(job_id: str, ran: int) -> None:
            limit = run(["squeue", "-h", "-j", job_id, "-o", "%l"], env=self.env, capture_output=True).stdout
            submitted.append(Rehearsal.minutes(limit.strip()))
            # SLURM 22.05: without --full the signal reaches the job's steps (the srun the SLURM
            # plugin starts the rule in) but not the batch script; with --full only the batch script
            codes = [run(["scancel", *full, "--signal=STOP", job_id], env=self.env, check=False).returncode
                     for full in ([], ["--full"])]  # fmt: skip
            minutes = max(1, ran)
            run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={minutes}"], env=self.env, check=False)
            steps = [self.live_steps(runs["sft"])]
            for _ in range(2):  # the freeze holds: no step is logged while the limit runs out
                time.sleep(3)
                steps.append(self.live_steps(runs["sft"]))
            held.append(steps[1] == steps[2])
            actions.append(f"job {job_id}: frozen (scancel exits {codes}; logged steps {steps}), limit "
                           f"{submitted[0]} -> {minutes} min after {ran} min")  # fmt: skip
            say(actions[-1])

        got = self.rerun_sft_interrupted("time-limit", runs, name, 600, freeze_and_lower_limit)
        if got is None:
            return
        jobs = got["jobs"]
        timed_out = any(j["state"].startswith("TIMEOUT") for j in jobs)
        more_time = bool(submitted) and len(jobs) >= 2 and int(jobs[-1]["limit_min"] or 0) > submitted[0]
        ok = got["rc"] == 0 and held == [True] and timed_out and more_time and self.resumed_mid_run(got) and got["same"]
        states = [(j["state"], j["limit_min"]) for j in jobs]
        record(
            name,
            ok,
            f"exit {got['rc']}; {actions}; SLURM jobs (state, limit min): {states}; "
            f"resumed from step {got['resumed']} of {got['steps']}; {got['detail']}",
        )

    def phase_cancel(self, runs: dict) -> None:
        """(a) The SFT job scancel-ed after its first checkpoint: retried, resumed exactly."""
        name = "(a) scancel: retried (no hang), resumed exactly"
        cancelled: list[str] = []

        def cancel(job_id: str, ran: int) -> None:
            run(["scancel", job_id], env=self.env, check=False)
            cancelled.append(job_id)

        got = self.rerun_sft_interrupted("cancel", runs, name, 480, cancel)
        if got is None:
            return
        states = [j["state"] for j in got["jobs"]]
        ok = got["rc"] == 0 and bool(cancelled) and any(s.startswith("CANCELLED") for s in states)
        ok = ok and self.resumed_mid_run(got) and got["same"]
        hang = " (Snakemake hung after the cancel: stopped by the rehearsal's timeout)" if got["rc"] == 124 else ""
        record(
            name,
            ok,
            f"exit {got['rc']}{hang}; cancelled {cancelled}; SLURM states {states}; "
            f"resumed from step {got['resumed']} of {got['steps']}; {got['detail']}",
        )

    def phase_failure_log(self, runs: dict) -> None:
        """(d) A job that fails has its error in its own log file."""
        run_name = runs["simpo"]
        log = self.run_dir / "logs" / "train" / f"{run_name}.log"
        overlay = {"tracking": {"report_to": ["wandb"]}}  # a tracker whose package the env lacks
        rc = self.snakemake(
            "failure",
            f"results/train/{run_name}/model",
            "--forcerun",
            "train_stage2",
            "--allowed-rules",
            "train_stage2",
            "--retries",
            "0",
            limit=300,
            overlay=overlay,
        )
        text = log.read_text() if log.exists() else ""
        ok = rc not in (0, 124) and "wandb" in text and ("Error" in text or "ERROR" in text)
        record(
            "(d) a failed job's error is in its own log",
            ok,
            f"exit {rc}; {log.relative_to(self.run_dir)}: {len(text)} characters, "
            f"{'names' if 'wandb' in text else 'does not name'} the missing package",
        )

    def failed_job_logs(self) -> None:
        """(d) on a failed workflow: every failed job's own log holds its error."""
        import re

        text = (self.work / "workflow.log").read_text()
        blocks = re.findall(r"^Error in rule (\S+):\n((?:[ \t].*\n)*)", text, flags=re.M)
        if not blocks:
            return
        logs = {rule: re.findall(r"^\s+log: (\S+)", body, flags=re.M) for rule, body in blocks}
        silent = [
            f"{rule}: {path}"
            for rule, paths in logs.items()
            for path in paths
            if "Traceback" not in ((self.run_dir / path).read_text() if (self.run_dir / path).exists() else "")
        ]
        record(
            "(d) a failed job's error is in its own log",
            not silent,
            f"failed rules {sorted(logs)}; their logs without the error: {silent}",
        )

    def check_dpo_zero3(self, runs: dict) -> None:
        """(c) ZeRO-3: the reference pass and one DPO step through the project's CLI, in a SLURM job
        in the train env (the workflow trains every run with one accelerate config)."""
        name = "(c) DPO first loss = log 2 under ZeRO-3"
        sft, dpo = self.run_dir / "results/train" / runs["sft"], self.run_dir / "results/train" / runs["dpo"]
        launch = dpo / "checkpoints" / "launch_run.json"
        envs = [p for p in (self.cache / "conda-envs").glob("*") if p.is_dir() and (p / "bin/deepspeed").exists()]
        if not (launch.exists() and envs and (sft / "model").is_dir()):
            record(
                name, False, f"missing inputs (launch_run.json {launch.exists()}, train env {bool(envs)}, SFT model)"
            )
            return
        out = self.work / "zero3"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        run_cfg = {**json.loads(launch.read_text()), "max_steps": 2, "save_steps": 1000}
        (out / "run.json").write_text(json.dumps(run_cfg))
        pref = self.run_dir / "results/data/pref.jsonl"
        script = out / "job.sh"
        script.write_text(f"""#!/bin/bash
set -euo pipefail
source {self.work / "conda/bin/activate"} {envs[0]}
export PYTHONPATH={ROOT / "src"}
python -m redi.cli train ref-logps --config {out / "run.json"} --model {sft / "model"} --data {pref} \\
  --out {out / "ref.parquet"} --threads 2 --accelerate-config zero3
python -m redi.cli train run --config {out / "run.json"} --model {sft / "model"} --data {pref} \\
  --out {out / "run"} --ref-logps {out / "ref.parquet"} --threads 2 --cpu-processes 2 --accelerate-config zero3
""")
        t = time.time()
        r = run(
            [
                "timeout",
                "420",
                "sbatch",
                "--wait",
                "-p",
                "debug",
                "-A",
                "rehearsal",
                "-c",
                "2",
                "--mem",
                "6000",
                "-t",
                "10",
                "-o",
                str(out / "slurm.log"),
                str(script),
            ],
            env=self.env,
            capture_output=True,
        )
        TIMES["zero3"] = time.time() - t
        try:
            rows = [
                json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()
            ]
            summary = json.loads((out / "run" / "summary.json").read_text())
            first = float(rows[0]["loss"])
        except (FileNotFoundError, IndexError, KeyError) as error:
            tail = (out / "slurm.log").read_text().splitlines()[-15:] if (out / "slurm.log").exists() else []
            record(
                name, False, f"sbatch exit {r.returncode}; no result ({error}); job output ends:\n" + "\n".join(tail)
            )
            return
        deepspeed = summary.get("numerics", {}).get("deepspeed")
        ok = abs(first - LOG2) <= LOG2_TOL and deepspeed is True
        record(
            name,
            ok,
            f"step-1 loss {first:.7f} (|diff| {abs(first - LOG2):.2e}, tolerance {LOG2_TOL}); "
            f"deepspeed={deepspeed}, world_size={summary.get('world_size')}",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/redi-rehearsal", help="working folder (deleted first)")
    parser.add_argument("--keep-run", action="store_true", help="keep --work's run folder (local reruns)")
    parser.add_argument(
        "--cache", default=None, help="keep the snakemake env and the rules' envs here (default: in --work)"
    )
    args = parser.parse_args()
    work = Path(args.work).resolve()
    if args.keep_run:  # a local rerun of the checks: the workflow finds its results up to date
        shutil.rmtree(work / "slurm", ignore_errors=True)
        for old in work.glob("overlay-*.yaml"):
            old.unlink()
    else:
        shutil.rmtree(work, ignore_errors=True)
    # CI's `timeout` sends SIGTERM: unwind through `finally`, which stops the cluster's daemons
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    cache = Path(args.cache).resolve() if args.cache else work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    r = Rehearsal(work, cache)
    try:
        r.start_cluster()
        r.setup_tools()
        runs = r.runs()
        if args.keep_run:  # checks only: the previous run's workflow results (and a stale lock) stay
            shutil.rmtree(r.run_dir / ".snakemake" / "locks", ignore_errors=True)
            say("workflow: not rerun (--keep-run)")
        if (args.keep_run and (r.run_dir / "results").is_dir()) or r.phase_workflow():
            r.reference = {runs["sft"]: r.losses(runs["sft"])}
            r.check_tracking(runs)
            r.check_dpo_zero2(runs)
            r.phase_time_limit(runs)
            r.phase_cancel(runs)
            r.check_dpo_zero3(runs)
            r.phase_failure_log(runs)
        else:
            r.failed_job_logs()
            record("(a)-(c): not reached (the workflow failed)", False, "see above")
    except Exception as error:  # noqa: BLE001 - reported as a failed step; the cluster still stops
        import traceback

        traceback.print_exc()
        record("rehearsal driver", False, f"{type(error).__name__}: {error}")
    finally:
        r.stop_cluster()
    TIMES["total"] = time.time() - start
    print("\n== rehearsal ==")
    for name, ok, detail in RESULTS:
        print(f"{'PASS' if ok else 'FAIL'}  {name}\n      {detail}")
    print("times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in TIMES.items()))
    return 0 if RESULTS and all(ok for _, ok, _ in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
