import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

SRC = str(Path(workflow.basedir) / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from redi.data.sources import hub_cache_dir  # noqa: E402
from redi.eval.backends import groups_per_run  # noqa: E402
from redi.eval.benchmarks import benchmark_paths  # noqa: E402
from redi.eval.config import held_out_split, job_settings  # noqa: E402
from redi.plan import (  # noqa: E402
    all_runs,
    check_consistency,
    job_priority,
    job_threads,
    reference_resources,
    reference_file,
    reference_runs,
    runtime_for_attempt,
    sft_runs,
    stage2_pairs,
    stage2_runs,
    stage_resources,
)
from redi.teacher.config import TeacherConfig  # noqa: E402
from redi.train.objectives import needs_reference  # noqa: E402

check_consistency(config)

SFT_RUNS = sft_runs(config)
STAGE2_RUNS = stage2_runs(config)
RUNS = all_runs(config)
REFERENCE_RUNS = reference_runs(STAGE2_RUNS)
EVAL = config["evaluation"]
EVAL_ENV = f"../envs/{'eval-vllm' if EVAL['backend'] == 'vllm' else 'train'}.yaml"
BENCHMARKS = benchmark_paths(EVAL["benchmarks"])  # name -> file
# one eval_group job per run instead of one job per checkpoint (rules/eval.smk)
GROUP_EVAL = groups_per_run(EVAL["group_per_run"], EVAL["backend"])
GROUP_BENCHMARKS = list(
    dict.fromkeys(EVAL["intermediate"]["benchmarks"] + EVAL["final"]["benchmarks"])
)
RES = config["resources"]
SYNTHETIC_TEST = "results/data/corpus/test.json"
HUB_CORPUS = hub_cache_dir(config["corpus"]["hub"]["name"])
# where each stage-2 run's rejected traces come from: the teacher's pairs (the paper) or with
# the student's own negatives (rules/student_negatives.smk; redi.data.student_negatives)
STUDENT_NEGATIVES = sorted({r["negatives"] for r in STAGE2_RUNS.values()} - {"teacher"})
STUDENT_START = config["training"]["stage2"]["start"] or next(iter(SFT_RUNS))
STUDENT_SHARDS = config["training"]["stage2"]["student_sampling"]["shards"]
STUDENT_EVAL = {
    **job_settings(EVAL),
    "n_samples": config["training"]["stage2"]["student_sampling"]["n_samples"],
    "limit": None,
    "trust_remote_code": False,
}


wildcard_constraints:
    run="|".join(re.escape(r) for r in RUNS),
    sft_run="|".join(re.escape(r) for r in SFT_RUNS) or "NONE",
    stage2_run="|".join(re.escape(r) for r in STAGE2_RUNS) or "NONE",
    bench="|".join(re.escape(b) for b in BENCHMARKS),
    step=r"\d+",


def given_cores():
    """Snakemake's --cores (None where a cluster executor runs without one)."""
    try:
        return workflow.cores
    except WorkflowError:
        return None


def res(stage, key, parallel=1):
    """A resources key of `stage`; `threads` resolved (`auto`: redi.plan.job_threads, with
    `parallel` jobs of the stage able to run at once)."""
    if stage == "reference":
        spec = RES.get("reference") or reference_resources(RES["train"])
    else:
        spec = RES[stage]
    if key == "threads":
        return job_threads(spec, given_cores(), parallel)
    return spec[key]


def job_resources(stage):
    """The Snakemake resources of a rule of `stage` (redi.plan.stage_resources), with a time limit
    that grows with Snakemake's `attempt` (redi.plan.runtime_for_attempt): a job the profile retries
    after its time limit resumes from its checkpoints with more time than the attempt before.
    """
    out = stage_resources(config, stage)
    base = out["runtime"]
    out["runtime"] = lambda wildcards, attempt: runtime_for_attempt(base, attempt)
    return out


def eval_priority(wildcards):
    """An evaluation job's priority: an SFT run's before a stage-2 run's (it has more checkpoints)."""
    tier = "eval_sft" if wildcards.run in SFT_RUNS else "eval"
    return job_priority(tier, res("eval", "threads"))


def reference_under_deepspeed():
    """The training jobs run under DeepSpeed (bf16 weights): the reference pass must match them."""
    from redi.train.launch import reference_in_deepspeed_mode

    return reference_in_deepspeed_mode(RES)


# ---- data ------------------------------------------------------------------------------


def corpus_input(wildcards):
    """What normalize_corpus reads: the teacher stage's corpus when it is on."""
    if config["teacher"]["enabled"]:
        return "results/teacher/corpus.parquet"
    return configured_corpus(wildcards)


def teacher_origins(wildcards):
    """Which traces of each row are the corpus' and which the teacher's (curation report)."""
    if config["teacher"]["enabled"]:
        return {"origins": "results/teacher/origins.json"}
    return {}


def configured_corpus(wildcards):
    """The corpus the config names (synthetic, hub or local)."""
    source = config["corpus"]["source"]
    if source == "synthetic":
        return "results/data/corpus/train.parquet"
    if source == "hub":
        return HUB_CORPUS
    return config["corpus"]["local_path"]


def verify_shards(wildcards):
    n = config["verify"]["shards"]
    return [f"results/data/verify/shard-{i}-of-{n}.parquet" for i in range(n)]


def benchmark_inputs(names):
    """Benchmark files a rule reads (the synthetic test set is produced by the pipeline)."""
    return {name: BENCHMARKS[name] for name in names}


# ---- teacher traces (rules/teacher.smk) -----------------------------------------

TEACHER = TeacherConfig.from_dict(config["teacher"])


def teacher_base(wildcards):
    """The configured corpus' canonical table, when the stage reads the corpus."""
    return (
        {"canonical": "results/teacher/base/canonical.parquet"}
        if TEACHER.needs_corpus
        else {}
    )


def teacher_problem_inputs(wildcards):
    """The problem set: the corpus' canonical table or the file teacher.problems names."""
    extra = {} if TEACHER.from_corpus else {"problems": TEACHER.problems}
    return {**teacher_base(wildcards), **extra}


def teacher_model(wildcards):
    """The teacher's folder: the tiny one the pipeline builds, a local copy or the hub download."""
    if TEACHER.model.kind == "tiny":
        return "resources/models/teacher-tiny"
    return TEACHER.model.local_path or "resources/models/teacher"


def decontamination_benchmarks(wildcards):
    return benchmark_inputs(config["curation"]["decontaminate"]["benchmarks"])


# ---- training --------------------------------------------------------------------------


def stage2_start_model(wildcards):
    return f"results/train/{STAGE2_RUNS[wildcards.stage2_run]['start']}/model"


def reference_run(wildcards):
    """Truncation settings for the reference pass (redi.plan.reference_runs checks they agree)."""
    return REFERENCE_RUNS[
        f"results/train/{wildcards.sft_run}/{wildcards.ref_file}.parquet"
    ]


def reference_pairs(wildcards):
    """The pairs file a reference pass scores: that of the runs reading its output."""
    return stage2_pairs(reference_run(wildcards)["negatives"])


def stage2_data(wildcards):
    return stage2_pairs(STAGE2_RUNS[wildcards.stage2_run]["negatives"])


def stage2_ref_logps(wildcards):
    run = STAGE2_RUNS[wildcards.stage2_run]
    return reference_file(run) if needs_reference(run["objective"]) else []


def saved_steps(run):
    """The steps a run saved a checkpoint at (known once its training job has finished)."""
    if run in SFT_RUNS:
        summary = checkpoints.train_sft.get(sft_run=run).output.summary
    else:
        summary = checkpoints.train_stage2.get(stage2_run=run).output.summary
    with open(summary) as handle:
        return json.load(handle)["saved_checkpoints"]


# ---- evaluation ------------------------------------------------------------------------


def intermediate_metrics(run):
    """The run's per-checkpoint metrics as job inputs; none when eval_group writes them (its
    best.json stands for them)."""
    if GROUP_EVAL:
        return []
    return expand(
        "results/eval/{run}/step-{step}/{bench}/metrics.json",
        run=run,
        step=saved_steps(run),
        bench=EVAL["intermediate"]["benchmarks"],
    )


def intermediate_metrics_of(wildcards):
    return intermediate_metrics(wildcards.run)


def all_intermediate_metrics(wildcards):
    files = [m for run in RUNS for m in intermediate_metrics(run)]
    files += expand(
        "results/eval/student/base/{bench}/metrics.json",
        bench=EVAL["intermediate"]["benchmarks"],
    )
    return files


def final_metrics():
    files = expand(
        "results/eval/{run}/{ckpt}/{bench}/metrics.json",
        run=list(RUNS),
        ckpt=EVAL["final"]["checkpoints"],
        bench=EVAL["final"]["benchmarks"],
    )
    files += expand(
        "results/eval/reference-{ref}/final/{bench}/metrics.json",
        ref=[r["name"] for r in EVAL["reference_models"]],
        bench=EVAL["final"]["benchmarks"],
    )
    return files


def eval_params(kind):
    """One evaluation job's settings, an EvalConfig dict (redi.eval.config): the evaluation
    section without its workflow-level keys, plus the n_samples, limit and held-out split of
    `kind`."""
    return {
        **job_settings(EVAL),
        "n_samples": EVAL[kind]["n_samples"],
        "limit": EVAL[kind]["limit"],
        "split": held_out_split(EVAL, kind),
    }


def reference_eval(wildcards):
    """Final-evaluation settings with the reference model's own budget and vLLM context, if it
    names them."""
    ref = reference_model(wildcards.ref)
    out = eval_params("final")
    if ref.get("max_new_tokens"):
        out["sampling"] = {**out["sampling"], "max_new_tokens": ref["max_new_tokens"]}
    if ref.get("max_model_len"):
        out["vllm"] = {**out["vllm"], "max_model_len": ref["max_model_len"]}
    return out


def reference_model(name):
    for ref in EVAL["reference_models"]:
        if ref["name"] == name:
            return ref
    raise ValueError(f"unknown reference model '{name}'")


# ---- report ----------------------------------------------------------------------------


def all_targets(wildcards):
    """Everything the report stage writes (tables, figures, summary); see redi.report.layout."""
    from redi.report.layout import all_report_files

    return all_report_files(config)
