"""The cost table: wall time (Snakemake ``benchmark:`` files, trainer timing) and GPU-hours per
job group, beside the paper's cost of the same kind of job (``redi.paper.COST_HOURS``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from redi import paper
from redi.report.collect import REFERENCE_PREFIX, Results, number, read_benchmark_tsv
from redi.report.layout import TABLES
from redi.report.paper_lookup import cost_sentence, paper_cost_hours, paper_setting
from redi.report.render import MISSING, Table, duration
from redi.report.tables.common import NA, Notes, frame

COLUMNS = [
    "Job",
    "Kind",
    "Jobs",
    "Wall (benchmark)",
    "Wall (trainer)",
    "CPU time",
    "Max RSS (MB)",
    "GPUs",
    "GPU-hours",
    f"Paper wall ({paper.PAPER_HARDWARE})",
    "Paper GPU-hours",
]


@dataclass
class Timing:
    """A group of Snakemake benchmark files summed: jobs found, wall / CPU seconds, max RSS (MB)."""

    jobs: int = 0
    wall: float | None = None
    cpu: float | None = None
    rss: float | None = None

    @classmethod
    def read(cls, paths) -> Timing:
        records = [r for r in (read_benchmark_tsv(p) for p in paths) if r is not None]
        if not records:
            return cls()
        cpu = [r["cpu_time"] for r in records if r.get("cpu_time") is not None]
        rss = [r["max_rss"] for r in records if r.get("max_rss") is not None]
        wall = sum(r.get("s") or 0.0 for r in records)
        return cls(len(records), wall, sum(cpu) if cpu else None, max(rss) if rss else None)


@dataclass
class CostRows:
    """The rows of the cost table and their running totals."""

    notes: Notes
    with_paper: bool = False  # the paper's costs beside ours only when this is the paper's setting
    rows: list = field(default_factory=list)
    data: list = field(default_factory=list)
    wall: float = 0.0
    gpu_hours: float = 0.0

    def add(self, job, kind, timing: Timing, expected, gpus, paper_hours=None, trainer=None) -> None:
        paper_hours = paper_hours if self.with_paper else None
        wall = timing.wall
        seconds = wall if wall is not None else trainer
        gh = None if seconds is None else seconds / 3600 * gpus
        self.wall += wall or 0.0
        self.gpu_hours += gh or 0.0
        jobs = timing.jobs
        self.rows.append(
            [
                job,
                kind,
                f"{jobs}/{expected}" if expected is not None and expected != jobs else str(jobs),
                duration(wall) if wall is not None else self.notes.miss(f"benchmarks for {job}"),
                self._trainer_text(job, kind, trainer),
                duration(timing.cpu) if timing.cpu is not None else MISSING if wall is None else NA,
                f"{timing.rss:,.0f}" if timing.rss is not None else NA,
                str(gpus) if gpus else "0 (CPU)",
                f"{gh:.2f}" if gh is not None and gpus else ("0 (CPU)" if gh is not None else MISSING),
                duration(paper_hours * 3600) if paper_hours is not None else NA,
                f"{paper_hours * paper.PAPER_GPUS:.1f}" if paper_hours is not None else NA,
            ]
        )
        self.data.append(
            {
                "job": job,
                "kind": kind,
                "jobs": jobs,
                "expected_jobs": expected,
                "wall_seconds": wall,
                "trainer_wall_seconds": trainer,
                "cpu_seconds": timing.cpu,
                "max_rss_mb": timing.rss,
                "gpus": gpus,
                "gpu_hours": gh,
                "paper_wall_hours": paper_hours,
                "paper_gpu_hours": paper_hours * paper.PAPER_GPUS if paper_hours is not None else None,
            }
        )

    def _trainer_text(self, job, kind, trainer) -> str:
        if trainer is not None:
            return duration(trainer)
        return self.notes.miss(f"train/{job}/summary.json") if kind == "train" else NA

    def total(self, elapsed: float | None = None) -> None:
        self.rows.append(
            ["Total (sum over jobs)", "", "", duration(self.wall), "", "", "", "", f"{self.gpu_hours:.2f}", "", ""]
        )
        self.data.append({"job": "total", "kind": "", "wall_seconds": self.wall, "gpu_hours": self.gpu_hours})
        self.rows.append(
            ["Workflow wall time (first job start to last job end)", "", "", duration(elapsed), "", "", "", "", "",
             "", ""]
        )  # fmt: skip
        self.data.append({"job": "workflow wall time", "kind": "", "wall_seconds": elapsed})


def workflow_wall(results: Results) -> float | None:
    """Seconds from the first benchmarked job's start to the last one's end: each Snakemake
    benchmark file is written when its job ends (its mtime) and records the job's seconds (``s``).
    None without benchmark files. Copying a results tree without keeping file times (``cp``
    without ``-p``) makes this meaningless; the table's note says so."""
    bdir = results.benchmarks_dir
    if not bdir.is_dir():
        return None
    spans = []
    for path in bdir.rglob("*.tsv"):
        record = read_benchmark_tsv(path)
        if record is not None and record.get("s") is not None:
            end = path.stat().st_mtime
            spans.append((end - float(record["s"]), end))
    if not spans:
        return None
    return max(e for _s, e in spans) - min(s for s, _e in spans)


def _training(results: Results, out: CostRows) -> None:
    bdir, gpus = results.benchmarks_dir, results.gpus("train")
    for name, run in results.runs.items():
        trainer = number((results.summaries.get(name) or {}).get("wall_seconds"))
        timing = Timing.read([bdir / "train" / f"{name}.tsv"])
        out.add(name, "train", timing, 1, gpus, paper_cost_hours(run), trainer)
        if run["objective"] != "sft":
            continue
        # one reference pass per pairs file: the teacher's, and each with the student's own negatives
        for ref in sorted(bdir.glob(f"train/{name}-ref_logps*.tsv")):
            source = ref.stem.removeprefix(f"{name}-ref_logps").lstrip("-")
            kind = f"DPO reference log-probs ({source} negatives)" if source else "DPO reference log-probs"
            out.add(name, kind, Timing.read([ref]), 1, gpus)


# evaluation.group_per_run: one eval_group job did all of a run's evaluations
GROUP_TSV = "group.tsv"


def _grouped(results: Results, name: str) -> bool:
    return (results.benchmarks_dir / "eval" / name / GROUP_TSV).is_file()


def _intermediate_evals(results: Results, out: CostRows) -> None:
    bdir, inter = results.benchmarks_dir, results.intermediate_benchmarks
    for name in ["student", *results.runs]:
        if name != "student" and _grouped(results, name):
            kind = "eval: every checkpoint, then best/final on final benchmarks (one job)"
            out.add(name, kind, Timing.read([bdir / "eval" / name / GROUP_TSV]), 1, results.gpus("eval"))
            continue
        ckpts = ["base"] if name == "student" else [f"step-{s}" for s in results.checkpoint_steps(name)]
        paths = [bdir / "eval" / name / c / f"{b}.tsv" for c in ckpts for b in inter]
        if not paths:
            continue
        paper_hours = paper.COST_HOURS["eval-intermediate"] * len(ckpts) if inter == ["math500"] else None
        kind = "eval: every checkpoint" if name != "student" else "eval: untrained student"
        out.add(name, kind, Timing.read(paths), len(paths), results.gpus("eval"), paper_hours)


def _final_evals(results: Results, out: CostRows) -> None:
    bdir, final, gpus = results.benchmarks_dir, results.final_benchmarks, results.gpus("eval")
    paper_hours = paper.COST_HOURS["eval-final"] if set(final) == set(paper.BENCHMARKS) else None
    for name in (r for r in results.runs if not _grouped(results, r)):  # grouped: in the row above
        for ckpt in results.final_checkpoints:
            timing = Timing.read([bdir / "eval" / name / ckpt / f"{b}.tsv" for b in final])
            out.add(name, f"eval: {ckpt} on final benchmarks", timing, len(final), gpus, paper_hours)
    for ref in results.reference_models:
        run = REFERENCE_PREFIX + ref["name"]
        timing = Timing.read([bdir / "eval" / run / f"{b}.tsv" for b in final])
        out.add(run, "eval: reference on final benchmarks", timing, len(final), gpus, paper_hours)


def _other_jobs(results: Results, out: CostRows) -> None:
    """Everything else Snakemake benchmarked: data, model, best-checkpoint selection, report."""
    bdir = results.benchmarks_dir
    if not bdir.is_dir():
        return
    paths = []
    for group in ("data", "model"):
        paths += sorted((bdir / group).rglob("*.tsv")) if (bdir / group).is_dir() else []
    paths += sorted(bdir.glob("eval/*/select_best.tsv")) + sorted(bdir.glob("report/*.tsv"))
    for path in paths:
        rel = path.relative_to(bdir).with_suffix("")
        gpus = results.gpus("verify") if "verify" in rel.parts else results.gpus("data")
        out.add("/".join(rel.parts[1:]), rel.parts[0], Timing.read([path]), None, gpus)


def _sampling_jobs(results: Results, out: CostRows) -> None:
    """The sampling stages' jobs: the teacher stage's shards at resources.teacher's GPUs, and the
    start model's own negatives (``benchmarks/student/``: sampling shards at resources.eval's
    GPUs, the evaluation job they are); their tokens and GPU-hours from
    ``results/teacher/teacher_report.json`` go into a note."""
    bdir = results.benchmarks_dir
    for group, stage, label in (("teacher", "teacher", "teacher"), ("student", "eval", "own negatives")):
        for path in sorted(bdir.glob(f"{group}/**/*.tsv")) if bdir.is_dir() else []:
            rel = path.relative_to(bdir).with_suffix("")
            sampling = "sample" in rel.parts
            gpus = results.gpus(stage) if sampling else results.gpus("data")
            kind = f"{label}: sampling" if sampling else label
            out.add("/".join(rel.parts[1:]), kind, Timing.read([path]), None, gpus)
    report = results.results / "teacher" / "teacher_report.json"
    if report.is_file():
        import json

        t = json.loads(report.read_text())
        out.notes.add(
            f"Teacher sampling: {t['samples']:,} samples of {t['problems']:,} problems, {t['generated_tokens']:,} "
            f"tokens generated in {duration(t['generation_seconds'])} of generation, {t['gpu_hours']:.2f} GPU-hours "
            f"(results/teacher/teacher_report.json; per shard in its cost.json)."
        )


def cost_table(results: Results) -> Table:
    """Wall time and GPU-hours per job group, then the total."""
    notes = Notes(results.settings.max_listed_missing)
    out = CostRows(notes, with_paper=bool(paper_setting(results.config)))
    _training(results, out)
    _intermediate_evals(results, out)
    _final_evals(results, out)
    _other_jobs(results, out)
    _sampling_jobs(results, out)
    out.total(workflow_wall(results))
    notes.add(
        "Workflow wall time: from the first benchmarked job's start to the last one's end (benchmark files' times; "
        "jobs run in parallel, so it is shorter than the sum; meaningless if the tree was copied without file "
        "times)."
    )
    notes.add(
        "Wall (benchmark): Snakemake benchmark: files (sum over the group's jobs); Wall (trainer): summary.json "
        "wall_seconds. "
        "GPU-hours = wall hours x the GPUs the config gives that stage (resources.*.gpu); the benchmark files record "
        "no GPU use."
    )
    if out.with_paper:
        notes.add(
            f"Paper: one {paper.PAPER_HARDWARE} node ({cost_sentence()}), "
            "shown beside the same kind of job; n/a = the paper gives no such cost."
        )
    else:
        notes.add(
            f"Paper columns n/a: this run is not the paper's setting, so the paper's {paper.PAPER_HARDWARE} hours are "
            f"not set beside its jobs (the paper's costs: {cost_sentence()})."
        )
    return Table(
        name="cost",
        title=TABLES["cost"],
        columns=COLUMNS,
        rows=out.rows,
        notes=notes.render(),
        data=frame(out.data),
        align=["l", "l"] + ["r"] * 9,
    )
