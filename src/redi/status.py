"""``redi status``: one table of every planned training run and evaluation, and where each stands.

Reads only small files, never a model, so it is fast on a paper-size tree and safe while
Snakemake runs. The plan comes from :mod:`redi.plan` (the same runs Snakemake
builds), checkpoint steps from :func:`redi.train.schedule.checkpoint_steps` (or the run's
``summary.json`` once it has finished). States:

* ``done``     - the declared output exists (``summary.json`` / ``metrics.json``); shows the
  final loss and collapse verdict, or pass@1 ± SEM.
* ``running``  - partial state that was written to in the last ``stale_s`` seconds (a training
  run's live ``checkpoints/metrics.jsonl``: step n of N, last loss, last accuracy; an
  evaluation's ``generations.jsonl``: samples done of total).
* ``failed``   - the newest Snakemake log reports an error for the job's output, or partial
  state has not moved for ``stale_s`` seconds; the job's log path is shown.
* ``not started`` - none of the above.

``--json`` prints ``{"rows": [...], "totals": {state: count, "rows": n}}``; each row carries
``values``, its numbers: training ``step``, ``total``, ``loss``, ``collapse_verdict`` (the one
vocabulary of :data:`redi.train.collapse.VERDICTS`), ``collapse_step``, ``best_step``;
evaluations ``pass@1``, ``sem`` (fractions; the paper's SEM, ``sem_rule`` names it),
``n_samples``, ``n_problems``, ``samples_done``, ``samples_total``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from redi.data.student_negatives import negatives_of
from redi.eval.benchmarks import benchmark_paths
from redi.plan import all_runs
from redi.train import objectives

STALE_S = 3600.0  # partial state older than this (and no Snakemake error) counts as failed


@dataclass
class Row:
    kind: str  # train | eval
    name: str  # run, or run/checkpoint/benchmark
    state: str  # not started | running | done | failed
    progress: str = ""  # "step 40/104", "384/800 samples"
    detail: str = ""  # last loss / accuracy / collapse verdict
    log: str = ""  # the job's log (for running and failed jobs)
    values: dict = field(default_factory=dict)  # the same facts as numbers (``--json``): see ``Status``


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_lines(path: Path, n: int = 1, max_bytes: int = 65536) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in data.splitlines() if line.strip()][-n:]


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


def snakemake_failures(root: Path) -> dict[str, str]:
    """Output path -> log path of every job the newest ``.snakemake/log/*.snakemake.log`` reports
    as failed ("Error in rule ..." blocks)."""
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return {}
    failures: dict[str, str] = {}
    block: list[str] | None = None
    for line in logs[-1].read_text(errors="replace").splitlines() + [""]:
        if line.startswith("Error in rule"):
            block = []
            continue
        if block is not None:
            if line.strip() == "" or line.startswith(("Shutting down", "Exiting", "Complete log", "[")):
                outputs = [x for b in block if b.strip().startswith("output:") for x in b.split(":", 1)[1].split(",")]
                logfile = next(
                    (b.split(":", 1)[1].split("(")[0].strip() for b in block if b.strip().startswith("log:")), ""
                )
                for out in outputs:
                    failures[out.strip()] = logfile
                block = None
            else:
                block.append(line)
    return failures


class Status:
    """The status of one results tree (``root``: the Snakemake working directory)."""

    def __init__(self, config: dict, root: str | Path = ".", *, stale_s: float = STALE_S, now: float | None = None):
        self.config = config
        self.root = Path(root)
        self.results = self.root / "results"
        self.stale_s = stale_s
        self.now = time.time() if now is None else now
        self.failures = snakemake_failures(self.root)
        self.curated = (_json(self.results / "data" / "curation_report.json") or {}).get("final") or {}
        self._problems: dict = {}

    def _failed(self, *outputs: str) -> str | None:
        for out in outputs:
            if out in self.failures:
                return self.failures[out] or "see .snakemake/log"
        return None

    def _fresh(self, path: Path) -> bool:
        try:
            return self.now - path.stat().st_mtime < self.stale_s
        except OSError:
            return False

    def training_examples(self, run: dict) -> int | None:
        """Examples the run trains on: curated SFT examples, the teacher's pairs, or the pairs with
        the student's own negatives (their ``report.json``), None before they exist."""
        if not objectives.get(run["objective"]).pairwise:
            return self.curated.get("sft")
        source = negatives_of(run)
        if source == "teacher":
            return self.curated.get("pref")
        return (_json(self.results / "data" / f"{source}-negatives" / "report.json") or {}).get("pairs")

    def planned_steps(self, name: str, run: dict) -> tuple[int | None, list[int] | None]:
        """(total steps, checkpoint steps) from the curated data size and the trainer's schedule."""
        from redi.train import schedule

        summary = _json(self.results / "train" / name / "summary.json")
        if summary:
            return summary.get("total_steps"), summary.get("saved_checkpoints")
        n = self.training_examples(run)
        if not n:
            return None, None
        args = (int(n), run["global_batch_size"], run["epochs"])
        total = schedule.total_steps(*args, run.get("max_steps"))
        steps = schedule.checkpoint_steps(*args, run["save_steps"], run["save_each_epoch"], run.get("max_steps"))
        return total, steps

    def _verdict(self, name: str, run: dict, values: dict) -> str:
        """``, collapse: <verdict>`` of a stage-2 run (:func:`redi.train.collapse.assess_run`, the
        reading the report and the model cards share); fills ``values``."""
        from redi.train.collapse import assess_run, verdict_text

        if run["objective"] == "sft":
            return ""
        benches = self.config["evaluation"]["intermediate"]["benchmarks"]
        found = assess_run(self.results, name, benches[0] if benches else None)
        values["collapse_verdict"] = found.verdict if found else "unknown"
        values["collapse_step"] = found.step if found else None
        return f", collapse: {verdict_text(found)}"

    def train_row(self, name: str, run: dict, total: int | None) -> Row:
        run_dir = self.results / "train" / name
        log = f"logs/train/{name}.log"
        summary = _json(run_dir / "summary.json")
        best = _json(self.results / "eval" / name / "best.json") or {}
        if summary is not None:
            last = _last_lines(run_dir / "metrics.jsonl")
            loss = (json.loads(last[0]).get("loss") if last else None)
            values = {"step": summary.get("steps"), "total": summary.get("total_steps"),
                      "loss": loss if isinstance(loss, (int, float)) else None, "best_step": best.get("step")}
            detail = f"loss {loss:.4g}" if isinstance(loss, (int, float)) else ""
            detail += self._verdict(name, run, values)
            return Row(
                "train", name, "done", f"step {summary.get('steps')}/{summary.get('total_steps')}", detail.strip(", "),
                values=values,
            )  # fmt: skip
        failed = self._failed(
            str(Path("results/train") / name / "summary.json"), str(Path("results/train") / name / "model")
        )
        live = run_dir / "checkpoints" / "metrics.jsonl"
        last = _last_lines(live)
        if last or failed:
            rec = json.loads(last[0]) if last else {}
            progress = f"step {rec.get('step', 0)}/{total if total else '?'}"
            loss = rec.get("loss") if isinstance(rec.get("loss"), (int, float)) else None
            values = {"step": rec.get("step", 0), "total": total, "loss": loss, "best_step": None}
            detail = f"loss {loss:.4g}" if loss is not None else ""
            acc = self.last_accuracy(name)
            if acc:
                detail += f", last acc {acc}"
            detail += self._verdict(name, run, values)
            state = "failed" if failed or not (self._fresh(live) or self._fresh(self.root / log)) else "running"
            return Row("train", name, state, progress, detail.strip(", "), failed or log, values)
        return Row("train", name, "not started", f"0/{total}" if total else "", values={"step": 0, "total": total})

    def last_accuracy(self, name: str) -> str:
        benches = self.config["evaluation"]["intermediate"]["benchmarks"]
        found = []
        for bench in benches:
            for path in (self.results / "eval" / name).glob(f"step-*/{bench}/metrics.json"):
                m = _json(path) or {}
                if isinstance(m.get("pass@1"), (int, float)):
                    found.append((int(path.parts[-3][5:]), bench, m))
        if not found:
            return ""
        step, bench, m = max(found, key=lambda x: x[0])
        return f"{100 * m['pass@1']:.1f}% ({bench}, step {step})"

    def n_problems(self, bench: str, run: str, ckpt: str) -> int | None:
        """Problems of a benchmark as evaluated (after ``limit``), from its JSON list."""
        ev = self.config["evaluation"]
        kind = "intermediate" if ckpt.startswith("step-") or ckpt == "base" else "final"
        key = (bench, kind)
        if key not in self._problems:
            path = Path(benchmark_paths(ev["benchmarks"]).get(bench, ""))
            path = path if path.is_absolute() else self.root / path
            data = _json(path)
            n = len(data) if isinstance(data, list) else None
            limit = ev[kind].get("limit")
            self._problems[key] = min(n, limit) if n is not None and limit else n
        return self._problems[key]

    def eval_row(self, run: str, ckpt: str, bench: str, n_samples: int) -> Row:
        name = f"{run}/{ckpt}/{bench}"
        folder = self.results / "eval" / run / ckpt / bench
        log = f"logs/eval/{run}/{ckpt}/{bench}.log"
        if not (self.root / log).is_file() and (self.root / f"logs/eval/{run}/group.log").is_file():
            log = f"logs/eval/{run}/group.log"  # evaluation.group_per_run: one job's log
        metrics = _json(folder / "metrics.json")
        if metrics is not None:
            sem = metrics.get("sem")
            detail = f"pass@1 {100 * metrics['pass@1']:.1f}%" + (
                f" ± {100 * sem:.1f}" if isinstance(sem, (int, float)) else " ± n/a"
            )
            values = {"pass@1": metrics.get("pass@1"), "sem": sem, "sem_rule": metrics.get("sem_rule"),
                      "n_samples": metrics.get("n_samples"), "n_problems": metrics.get("n_problems")}
            return Row("eval", name, "done", f"{metrics.get('n_samples')} samples/problem", detail, values=values)
        failed = self._failed(str(Path("results/eval") / run / ckpt / bench / "metrics.json"))
        journal = folder / "generations.jsonl"
        if journal.is_file() or failed:
            done = _count_lines(journal)
            problems = self.n_problems(bench, run, ckpt)
            progress = f"{done}/{problems * n_samples} samples" if problems else f"{done} samples ({n_samples}/problem)"
            state = "failed" if failed or not (self._fresh(journal) or self._fresh(self.root / log)) else "running"
            values = {"samples_done": done, "samples_total": problems * n_samples if problems else None,
                      "n_samples": n_samples, "n_problems": problems}
            return Row("eval", name, state, progress, "", failed or log, values)
        return Row("eval", name, "not started", values={"n_samples": n_samples})

    def rows(self) -> list[Row]:
        ev = self.config["evaluation"]
        inter, final = ev["intermediate"], ev["final"]
        rows = []
        for bench in inter["benchmarks"]:
            rows.append(self.eval_row("student", "base", bench, inter["n_samples"]))
        for name, run in all_runs(self.config).items():
            total, steps = self.planned_steps(name, run)
            rows.append(self.train_row(name, run, total))
            if steps is None:
                rows.append(Row("eval", f"{name}/step-*", "not started", "checkpoints known after curation"))
            for step in steps or []:
                for bench in inter["benchmarks"]:
                    rows.append(self.eval_row(name, f"step-{step}", bench, inter["n_samples"]))
            for ckpt in final["checkpoints"]:
                for bench in final["benchmarks"]:
                    rows.append(self.eval_row(name, ckpt, bench, final["n_samples"]))
        for ref in ev.get("reference_models", []):
            for bench in final["benchmarks"]:
                rows.append(self.eval_row(f"reference-{ref['name']}", "final", bench, final["n_samples"]))
        return rows


STATES = ("done", "running", "failed", "not started")


def totals(rows: list[Row]) -> dict:
    """``{state: count}`` over ``STATES`` and ``rows`` (all of them)."""
    counts = {state: 0 for state in STATES}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    return {**counts, "rows": len(rows)}


def as_json(rows: list[Row]) -> str:
    """``--json``: ``{"rows": [...], "totals": ...}`` with every row's ``values`` as numbers."""
    return json.dumps({"rows": [asdict(r) for r in rows], "totals": totals(rows)}, indent=1) + "\n"


def render(rows: list[Row]) -> str:
    from tabulate import tabulate

    counts = totals(rows)
    table = tabulate([[r.kind, r.name, r.state, r.progress, r.detail, r.log] for r in rows],
                     headers=["job", "name", "state", "progress", "last", "log"], tablefmt="simple")
    return table + "\n\n" + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES) + f" (of {len(rows)})\n"


def register_command(parser) -> None:
    parser.add_argument(
        "--config", default="config/config.yaml", help="the workflow config (default: config/config.yaml)"
    )
    parser.add_argument("--root", default=".", help="the Snakemake working directory holding results/ and logs/")
    parser.add_argument("--json", action="store_true",
                        help="print {rows, totals} as JSON, each row with its numbers under 'values'")
    parser.add_argument("--stale-s", type=float, default=STALE_S,
                        help="partial state idle this long (and no Snakemake error) counts as failed")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from redi.plan import load_config

    rows = Status(load_config(args.config), args.root, stale_s=args.stale_s).rows()
    print(as_json(rows) if args.json else render(rows), end="")
    return 0
