"""Read everything the report needs from ``results/`` (and Snakemake's ``benchmarks/``).

Nothing here computes a number the tables show (averages, SEMs and paired differences come
from :mod:`redi.eval.metrics`); it loads files, says which ones are missing and picks points of
a curve (:func:`peak_and_final`). A missing or unreadable file is recorded, never replaced by a
zero. A run's labels, parameters and family come from its own ``summary.json`` (``config``: what
it trained with) once it has one; a config that disagrees is recorded in ``disagreements``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from redi.plan import all_runs
from redi.report.config import ReportConfig

log = logging.getLogger(__name__)

REFERENCE_PREFIX = "reference-"


def _read_json(path: Path, problems: list[str]):
    if not path.is_file():
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        problems.append(f"unreadable {path}: {error}")
        log.warning("unreadable %s: %s", path, error)
        return None


def _read_jsonl(path: Path, problems: list[str]):
    import pandas as pd

    if not path.is_file():
        return None
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as error:  # a run killed mid-write leaves a partial last line
                problems.append(f"{path}:{number}: skipped unreadable line ({error})")
    frame = pd.DataFrame(rows)
    if "step" in frame:
        frame = frame.sort_values("step").drop_duplicates("step", keep="last").reset_index(drop=True)
    return frame


def read_benchmark_tsv(path: Path) -> dict | None:
    """Mean of the rows of a Snakemake ``benchmark:`` file (one row unless repeated)."""
    import pandas as pd

    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, sep="\t")
    except Exception as error:  # noqa: BLE001 - an empty or partial file is reported as missing
        log.warning("unreadable benchmark file %s: %s", path, error)
        return None
    if frame.empty:
        return None
    out = {}
    for column in frame.columns:
        if column == "h:m:s":
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        out[column] = float(values.mean()) if values.notna().any() else None
    return out


def number(value) -> float | None:
    """A finite float, or None for null / NaN / missing."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def step_of(ckpt: str) -> int | None:
    if ckpt.startswith("step-"):
        try:
            return int(ckpt[5:])
        except ValueError:
            return None
    return 0 if ckpt == "base" else None


def peak_and_final(points: list[dict]):
    """(peak point, final point) of a :meth:`Results.curve` (None, None if no checkpoint after
    step 0 is evaluated): peak = highest pass@1 over every evaluated point, step 0 (the start
    model) included as the collapse rule includes it, earliest on ties; final = the last
    evaluated checkpoint after step 0."""
    evaluated = [p for p in points if p["metrics"] is not None]
    later = [p for p in evaluated if p["step"]]
    if not later:
        return None, None
    peak = max(evaluated, key=lambda p: (float(p["metrics"]["pass@1"]), -p["step"]))
    return peak, later[-1]


#: Run-config keys whose recorded value (summary.json) and configured value may differ without
#: changing what was trained (paths, devices, speed knobs).
RUNTIME_KEYS = frozenset(
    {"name", "attn_implementation", "bf16", "gradient_checkpointing", "padding_free", "logprob_chunk_size",
     "per_device_batch_size", "keep_optimizer_state"}
)  # fmt: skip


def config_disagreements(recorded: dict, configured: dict) -> list[str]:
    """``key: configured X, recorded Y`` for every training setting that differs (runtime knobs
    of :data:`RUNTIME_KEYS` excluded), sorted by key."""
    out = []
    for key in sorted(set(recorded) | set(configured)):
        if key in RUNTIME_KEYS:
            continue
        if recorded.get(key) != configured.get(key):
            out.append(f"{key}: configured {configured.get(key)!r}, recorded {recorded.get(key)!r}")
    return out


def recorded_negatives(summary: dict, root: Path) -> str:
    """Where a stage-2 run recorded before runs had a ``negatives`` key got its rejected traces,
    read off the pairs file it trained on (``summary["data_path"]``, relative to ``root``, the
    workflow's directory): the teacher's curated pairs (``results/data/pref.jsonl``), or the
    single student-pairs file of that time, whose ``report.json`` names its source."""
    data = summary.get("data_path")
    if not data or Path(data).parent.name == "data":
        return "teacher"
    report = _read_json(root / Path(data).parent / "report.json", [])
    return str((report or {}).get("negatives") or "student")


@dataclass
class Results:
    """Everything read from one results tree plus the config that produced it."""

    results: Path
    benchmarks_dir: Path
    config: dict
    runs: dict = field(default_factory=dict)
    sft: dict = field(default_factory=dict)
    stage2: dict = field(default_factory=dict)
    summaries: dict = field(default_factory=dict)
    train_metrics: dict = field(default_factory=dict)
    evals: dict = field(default_factory=dict)  # (run, ckpt, bench) -> metrics.json
    best: dict = field(default_factory=dict)
    unconfigured: list = field(default_factory=list)  # trained runs (summary.json) the config lacks
    disagreements: dict = field(default_factory=dict)  # run -> ["key: configured X, recorded Y"]
    scores: dict = field(default_factory=dict)  # (run, ckpt, bench) -> per-problem scores or None
    score_sources: dict = field(default_factory=dict)  # (run, ckpt, bench) -> metrics.json | samples.parquet | missing
    curation: dict | None = None
    verification: dict | None = None
    #: negatives source (``student`` / ``both``) -> the pairs report of ``redi.data.student_negatives``
    own_negatives: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    settings: ReportConfig = field(default_factory=ReportConfig)  # the report's own knobs

    # ---- config views ------------------------------------------------------------------

    @property
    def evaluation(self) -> dict:
        return self.config.get("evaluation", {})

    @property
    def final_benchmarks(self) -> list[str]:
        return list(self.evaluation.get("final", {}).get("benchmarks", []))

    @property
    def intermediate_benchmarks(self) -> list[str]:
        return list(self.evaluation.get("intermediate", {}).get("benchmarks", []))

    @property
    def final_checkpoints(self) -> list[str]:
        return list(self.evaluation.get("final", {}).get("checkpoints", ["best"]))

    @property
    def reference_models(self) -> list[dict]:
        return list(self.evaluation.get("reference_models", []))

    @property
    def stage2_start(self) -> str | None:
        """The SFT run the stage-2 ablation starts from (training.stage2.start or the first)."""
        start = self.config.get("training", {}).get("stage2", {}).get("start")
        return start or next(iter(self.sft), None)

    def reported_checkpoint(self, run: str) -> str:
        """The checkpoint a run is compared at: ``best`` when evaluated that way, else ``final``."""
        ckpts = self.final_checkpoints
        return "best" if "best" in ckpts or not ckpts else ckpts[0]

    def start_checkpoint(self) -> str:
        """The stage-2 start model is the SFT run's final model: ``final`` when evaluated."""
        ckpts = self.final_checkpoints
        return "final" if "final" in ckpts else self.reported_checkpoint(self.stage2_start or "")

    def gpus(self, stage: str) -> int:
        return int(self.config.get("resources", {}).get(stage, {}).get("gpu", 0) or 0)

    # ---- results views -----------------------------------------------------------------

    def eval(self, run: str, ckpt: str, bench: str) -> dict | None:
        return self.evals.get((run, ckpt, bench))

    def problem_scores(self, run: str, ckpt: str, bench: str) -> dict | None:
        """``{problem_id: (correct, samples)}`` of one evaluation (read once;
        :func:`redi.eval.metrics.load_problem_scores`), None when neither its metrics.json nor
        a samples.parquet beside it has them (older code)."""
        key = (run, ckpt, bench)
        if key not in self.scores:
            from redi.eval.metrics import load_problem_scores

            if key not in self.evals:
                return None
            try:
                self.scores[key], self.score_sources[key] = load_problem_scores(self.eval_path(*key))
            except (ValueError, OSError) as error:
                self.problems.append(f"per-problem scores of {self.eval_path(*key)}: {error}")
                self.scores[key], self.score_sources[key] = None, "missing"
        return self.scores[key]

    def point_scores(self, point: dict, bench: str) -> dict | None:
        """Per-problem scores of a :meth:`curve` point (the start point reads its SFT run's)."""
        return self.problem_scores(point["run"], point["ckpt"].split("/")[-1], bench)

    def paired(self, a: tuple[str, str], b: tuple[str, str], benches: list[str]) -> dict | None:
        """:func:`redi.eval.metrics.paired_difference` of (run, ckpt) ``a`` minus ``b`` over
        ``benches`` (interval: ± ``settings.significance_sems`` paired SEs); None when a score is
        missing."""
        from redi.eval.metrics import paired_difference

        left = [self.problem_scores(a[0], a[1], bench) for bench in benches]
        right = [self.problem_scores(b[0], b[1], bench) for bench in benches]
        if not benches or any(x is None for x in left + right):
            return None
        return paired_difference(left, right, self.settings.significance_sems)

    def eval_path(self, run: str, ckpt: str, bench: str) -> Path:
        return self.results / "eval" / run / ckpt / bench / "metrics.json"

    def checkpoint_steps(self, run: str) -> list[int]:
        """Steps the run saved (summary.json), else the steps that have evaluations."""
        summary = self.summaries.get(run) or {}
        steps = summary.get("checkpoint_steps")
        if steps:
            return sorted(int(s) for s in steps)
        found = {step_of(c) for (r, c, _b) in self.evals if r == run}
        return sorted(s for s in found if s)

    def intermediate(self, run: str, bench: str) -> list[dict]:
        """One record per saved checkpoint (expected or found), sorted by step; ``metrics`` is
        None when that checkpoint has not been evaluated."""
        steps = set(self.checkpoint_steps(run))
        steps |= {step_of(c) for (r, c, b) in self.evals if r == run and b == bench and c.startswith("step-")}
        steps.discard(None)
        return [
            {"step": s, "ckpt": f"step-{s}", "run": run, "metrics": self.eval(run, f"step-{s}", bench)}
            for s in sorted(steps)
        ]

    def start_point(self, run: str, bench: str) -> dict | None:
        """Step 0 of a stage-2 curve: the start SFT run's last checkpoint evaluation."""
        start = self.runs.get(run, {}).get("start")
        if not start:
            return None
        points = self.intermediate(start, bench)
        if not points:
            return None
        last = points[-1]
        return {"step": 0, "ckpt": f"{start}/{last['ckpt']}", "run": start, "metrics": last["metrics"]}

    def curve(self, run: str, bench: str) -> list[dict]:
        """Intermediate accuracy of a stage-2 run: step 0 (the start) then every saved checkpoint."""
        start = self.start_point(run, bench)
        return ([start] if start is not None else []) + self.intermediate(run, bench)

    def steps_per_epoch(self, run: str) -> float | None:
        """Optimizer steps per epoch of a run (from its summary and configured epochs)."""
        summary = self.summaries.get(run) or {}
        spec = self.runs.get(run, {})
        if summary.get("n_examples") and spec.get("global_batch_size"):  # the trainer's own rule
            return float(math.ceil(int(summary["n_examples"]) / int(spec["global_batch_size"])))
        steps, epochs = summary.get("steps"), spec.get("epochs")
        stopped = str(summary.get("stopped_reason") or "")
        if steps and epochs and not spec.get("max_steps") and "collapse" not in stopped and "max_steps" not in stopped:
            return steps / epochs
        frame = self.train_metrics.get(run)
        if frame is not None and {"step", "epoch"} <= set(frame.columns) and len(frame):
            last = frame.iloc[-1]
            if number(last["epoch"]) and number(last["epoch"]) > 0:
                return float(last["step"]) / float(last["epoch"])
        if steps and epochs:
            return steps / epochs
        return None

    def collapse_assessment(self, run: str):
        """The run's verdict by :func:`redi.train.collapse.assess_run` (the reading ``redi
        status`` and the model cards share) on the first intermediate benchmark; None when the run
        has neither metrics nor a summary yet. Cached."""
        from redi.train.collapse import assess_run

        cache = self.__dict__.setdefault("_collapse", {})
        if run not in cache:
            benches = self.intermediate_benchmarks[:1]
            cache[run] = assess_run(self.results, run, benches[0] if benches else None)
        return cache[run]


def collect(
    results: str | Path, config: dict, benchmarks_dir: str | Path | None = None, settings: ReportConfig | None = None
) -> Results:
    """Load a results tree (see docs/design.md) for the runs ``config`` defines."""
    results = Path(results)
    benchmarks_dir = Path(benchmarks_dir) if benchmarks_dir is not None else results.parent / "benchmarks"
    settings = settings or ReportConfig.from_dict(config.get("report", {}))
    out = Results(results=results, benchmarks_dir=benchmarks_dir, config=config, settings=settings)
    out.runs = all_runs(config)
    problems = out.problems
    for run in list(out.runs):
        out.summaries[run] = _read_json(results / "train" / run / "summary.json", problems)
        recorded = (out.summaries[run] or {}).get("config")
        if recorded and recorded.get("objective") != "sft" and recorded.get("negatives") is None:
            recorded = {**recorded, "negatives": recorded_negatives(out.summaries[run], results.parent)}
        if recorded:  # what the run trained with, not what the config says today
            found = config_disagreements(recorded, out.runs[run])
            if found:
                out.disagreements[run] = found
            out.runs[run] = {**recorded, "name": run}
    train_dir = results / "train"
    if train_dir.is_dir():
        out.unconfigured = sorted(
            p.parent.name for p in train_dir.glob("*/summary.json") if p.parent.name not in out.runs
        )
    out.sft = {n: r for n, r in out.runs.items() if r["objective"] == "sft"}
    out.stage2 = {n: r for n, r in out.runs.items() if r["objective"] != "sft"}
    for run in out.runs:
        out.train_metrics[run] = _read_jsonl(results / "train" / run / "metrics.jsonl", problems)
        out.best[run] = _read_json(results / "eval" / run / "best.json", problems)
    known = set(out.runs) | {"student"} | {REFERENCE_PREFIX + r["name"] for r in out.reference_models}
    eval_dir = results / "eval"
    if eval_dir.is_dir():
        for path in sorted(eval_dir.glob("*/*/*/metrics.json")):
            run, ckpt, bench = path.parts[-4:-1]
            if run not in known:
                log.info("ignoring %s: run not in the config", path)
                continue
            metrics = _read_json(path, problems)
            if metrics is not None:
                out.evals[(run, ckpt, bench)] = metrics
    out.curation = _read_json(results / "data" / "curation_report.json", problems)
    for source in dict.fromkeys(r.get("negatives") for r in out.stage2.values()):
        if source not in (None, "teacher"):
            report = _read_json(results / "data" / f"{source}-negatives" / "report.json", problems)
            if report is not None:
                out.own_negatives[source] = report
    out.verification = _read_json(results / "data" / "verification_report.json", problems)
    return out
