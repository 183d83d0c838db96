"""The experiment plan: validated config -> named training runs and their settings.

Snakemake (``rules/common.smk``) and the command line both read runs from here, so a run's
name and hyper-parameters are defined in exactly one place.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
from pathlib import Path

import yaml

from redi.fmt import format_number
from redi.train import objectives

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

#: Run-naming parameters a stage-2 entry may give as a list (a sweep): the registry's.
SWEEPABLE = tuple(objectives.PARAMETERS)


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


def _with_defaults(validator_class):
    """A validator that fills in schema defaults while validating (jsonschema FAQ recipe)."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place (filling defaults) and check cross-key rules."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "<root>"
        raise ConfigError(f"config key '{key}': {error.message}")
    check_consistency(config)
    return config


def load_config(path: str | Path) -> dict:
    with open(path) as handle:
        return validate_config(yaml.safe_load(handle) or {})


def check_consistency(config: dict) -> None:
    """Rules the schema cannot express: references between keys."""
    benchmarks = config["evaluation"]["benchmarks"]
    for where in ("intermediate", "final"):
        for name in config["evaluation"][where]["benchmarks"]:
            if name not in benchmarks:
                raise ConfigError(
                    f"config key 'evaluation.{where}.benchmarks': unknown benchmark '{name}' "
                    f"(known: {', '.join(sorted(benchmarks))})"
                )
    for name in config["curation"]["decontaminate"]["benchmarks"]:
        if name not in benchmarks:
            raise ConfigError(f"config key 'curation.decontaminate.benchmarks': unknown benchmark '{name}'")
    student = config["student"]
    if student["kind"] == "pretrained" and not (student["hub_name"] or student["local_path"]):
        raise ConfigError("config key 'student': kind 'pretrained' needs 'hub_name' or 'local_path'")
    if config["corpus"]["source"] == "local" and not config["corpus"]["local_path"]:
        raise ConfigError("config key 'corpus.local_path': required when corpus.source is 'local'")
    sft, stage2 = sft_runs(config), stage2_runs(config)
    for name, run in stage2.items():
        if run["start"] not in sft:
            raise ConfigError(
                f"config key 'training.stage2.runs': run '{name}' starts from unknown SFT run "
                f"'{run['start']}' (known: {', '.join(sft)})"
            )
    reference_runs(stage2)
    check_consumers(config, {**sft, **stage2})
    resolve_memory(config, log=logging.getLogger(__name__).warning)


def check_consumers(config: dict, runs: dict[str, dict]) -> None:
    """Values the schema lets through but the code that reads them would reject when its job
    runs (hours later, for an evaluation or a stage-2 job) or would silently ignore: each is
    checked here with that code's own rule, so the workflow stops before any job starts."""
    from redi.data.synthetic import SynthConfig
    from redi.eval.config import EvalConfig, job_settings
    from redi.model.shape import TINY_DEFAULTS
    from redi.train.launch import accelerate_config_path

    try:  # as every evaluation job will check its settings (sampling, backend options, ...)
        EvalConfig.from_dict(job_settings(config["evaluation"]))
    except (TypeError, ValueError) as error:  # its messages name the key (evaluation.sampling.top_p)
        named = re.search(r"\bevaluation(\.\w+)+", str(error))
        raise ConfigError(f"config key '{named.group(0) if named else 'evaluation'}': {error}") from error
    check_vllm_gpus(config, "eval", job_settings(config["evaluation"])["backend"])
    train = config["resources"]["train"]
    world_size = max(1, int(train["gpu"]) or int(train.get("cpu_processes", 1)))  # GPU or CPU workers
    for run in runs.values():  # a stage-2 job must not find this out after SFT has run
        try:
            resolve_run(run).gradient_accumulation(world_size)
        except ValueError as error:
            raise ConfigError(f"config key 'training' (with {world_size} training workers): {error}") from error
    for i, ref in enumerate(config["evaluation"]["reference_models"]):
        if not (ref.get("hub_name") or ref.get("local_path")):
            raise ConfigError(
                f"config key 'evaluation.reference_models.{i}': reference model '{ref['name']}' needs "
                "'hub_name' or 'local_path'"
            )
    if config["resources"]["accelerate_config"]:
        try:
            accelerate_config_path(config["resources"]["accelerate_config"])
        except FileNotFoundError as error:
            raise ConfigError(f"config key 'resources.accelerate_config': {error}") from error
    tiny = {**TINY_DEFAULTS, **config["student"]["tiny"]}
    unknown = sorted(set(tiny) - set(TINY_DEFAULTS))
    if unknown:
        raise ConfigError(f"config key 'student.tiny': unknown key(s) {unknown}; known: {sorted(TINY_DEFAULTS)}")
    heads, kv_heads = int(tiny["num_attention_heads"]), int(tiny["num_key_value_heads"])
    if heads < 1 or kv_heads < 1 or tiny["hidden_size"] % heads or heads % kv_heads:
        raise ConfigError(
            "config key 'student.tiny': hidden_size must be a multiple of num_attention_heads, and "
            f"num_attention_heads of num_key_value_heads (got {tiny['hidden_size']}, {heads}, {kv_heads})"
        )
    try:
        SynthConfig.from_dict(config["corpus"]["synthetic"])
    except ValueError as error:
        raise ConfigError(f"config key 'corpus.synthetic': {error}") from error
    if config["teacher"]["enabled"]:
        check_teacher(config)


def check_teacher(config: dict) -> None:
    """The teacher stage's keys: its config, the evaluation settings its sampling jobs
    get (checked as an evaluation job would check them) and a curation rule it can serve."""
    from redi.eval.config import EvalConfig
    from redi.teacher.config import TEACHER_LABEL_RULES, TeacherConfig

    try:
        teacher = TeacherConfig.from_dict(config["teacher"])
        backend = EvalConfig.from_dict(teacher.eval_config(config["evaluation"])).backend
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key 'teacher': {error}") from error
    check_vllm_gpus(config, "teacher", backend, "teacher.generation.backend")
    rule = config["curation"]["label_rule"]
    if rule not in TEACHER_LABEL_RULES:
        raise ConfigError(
            f"config key 'curation.label_rule': '{rule}' reads the Llama-judge labels, which new teacher "
            f"traces do not have; use one of {list(TEACHER_LABEL_RULES)} with teacher.enabled"
        )


def check_vllm_gpus(config: dict, stage: str, backend: str, backend_key: str = "evaluation.backend") -> None:
    """vLLM generates on GPUs only: a stage whose jobs use it must request at least one.

    Without this, the plan is accepted and every job of the stage starts without a GPU and
    fails at its first engine (or a cluster job waits in the queue for a CPU node first).

    Raises:
        ConfigError: naming ``resources.<stage>.gpu`` and the backend key.
    """
    if backend == "vllm" and not int(config["resources"][stage]["gpu"] or 0):
        raise ConfigError(
            f"config key 'resources.{stage}.gpu': {backend_key} is 'vllm', which generates on GPUs only, "
            f"but resources.{stage}.gpu is 0; request GPUs (e.g. resources.{stage}.gpu: 1) or use the "
            "'transformers' backend on the CPU"
        )


def stage_resources(config: dict, stage: str) -> dict:
    """The Snakemake ``resources`` of a rule of ``stage`` (a key of config ``resources``, or
    ``reference`` for the DPO reference pass), as the SLURM executor plugin reads them.

    GPU rules get ``nodes: 1``: the jobstep plugin runs the job as
    ``srun -n1 --gpus=N --nodes=1``, so an allocation spread over two nodes cannot host it;
    training and evaluation are single-node jobs (one task; ``accelerate launch`` or the vLLM
    engines start one worker per GPU inside it). ``reference`` defaults to one GPU of the
    training node shape (the pass uses one device).
    """
    res = config["resources"]
    if stage == "reference":
        spec = res.get("reference") or reference_resources(res["train"])
    else:
        spec = res[stage]
    out = {"mem_mb": spec["mem_mb"], "runtime": spec["runtime"]}
    if spec["gpu"]:
        out["gpu"] = spec["gpu"]
        out["cpus_per_gpu"] = spec["cpus_per_gpu"]
        out["nodes"] = 1
        if spec.get("gpu_model"):
            out["gpu_model"] = spec["gpu_model"]
    return out


# ---- memory hints from the student's size ---------------------------------------------------

#: what a training process holds besides the model's tensors (torch, transformers, tokenizer,
#: data), MB; a GPU worker's host side (CUDA context, pinned buffers) more
BASE_MB = {"cpu": 600, "gpu_worker": 4000}
#: activation floats kept per token and layer for the backward pass: ``a h + b i + c L`` (hidden
#: size h, MLP size i, row length L), fitted to two measured CPU training steps (fp32, SDPA,
#: chunked head, no checkpointing; peak RSS): the demo's tiny student at its caps (32 rows of
#: 1,824 tokens: 5,296 MB) and a SmolLM2-135M-shaped model (4 rows of 1,024: 7,747 MB)
ACTIVATION_FLOATS = (6.0, 3.2, 1.8)
#: over the fitted estimate (both measurements fall within it)
MEMORY_MARGIN = 1.1


def count_parameters(shape: dict) -> int:
    """Parameters of a decoder-only transformer (Qwen2 / Llama layout) from its config keys
    (``vocab_size``, ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``num_key_value_heads``, ``head_dim``, ``tie_word_embeddings``;
    q/k/v biases for ``model_type`` qwen2 or ``attention_bias``). SmolLM2-135M: 134.5 M;
    Qwen2.5-1.5B: 1.54 B (both as published)."""
    v, h, i = int(shape["vocab_size"]), int(shape["hidden_size"]), int(shape["intermediate_size"])
    layers, heads = int(shape["num_hidden_layers"]), int(shape["num_attention_heads"])
    kv = int(shape.get("num_key_value_heads") or heads)
    hd = int(shape.get("head_dim") or h // heads)
    bias = shape.get("model_type", "qwen2") == "qwen2" or bool(shape.get("attention_bias"))
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h + (heads * hd + 2 * kv * hd if bias else 0)
    per_layer = attn + 3 * h * i + 2 * h
    tied = shape.get("tie_word_embeddings", True)
    return v * h * (1 if tied else 2) + layers * per_layer + h


#: The ``config.json`` keys :func:`count_parameters` needs (transformers' Llama/Qwen2 names).
SHAPE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def student_shape(config: dict, root: str | Path = ".") -> dict | None:
    """The student's architecture keys: the tiny student's (``student.tiny`` over
    ``TINY_DEFAULTS``), else the ``config.json`` of ``student.local_path`` or of the prepared
    student (``results/model/student``, under ``root``), else None (a hub model not fetched yet,
    or a config without the :data:`SHAPE_KEYS` sizes)."""
    import json

    from redi.model.shape import TINY_DEFAULTS

    student = config["student"]
    if student["kind"] == "tiny":
        return {**TINY_DEFAULTS, **student["tiny"], "model_type": "qwen2"}
    for folder in (student.get("local_path"), Path(root) / "results/model/student"):
        if folder and (Path(folder) / "config.json").is_file():
            data = json.loads((Path(folder) / "config.json").read_text())
            shape = {**data, **(data.get("text_config") or {})}
            # an architecture whose config names its sizes otherwise cannot be estimated: None
            return shape if all(k in shape for k in SHAPE_KEYS) else None
    return None


def estimate_train_mem_mb(shape: dict, run: dict, *, gpus: int = 0, backward: bool = True) -> int:
    """Peak host memory (MB, what SLURM's ``--mem`` counts) of one training job of ``run`` (a
    run dict, :func:`all_runs`) for a student of ``shape`` (:func:`student_shape`), for a
    micro-batch at the sequence caps: ``per_device_batch_size`` rows (two per pair) of
    ``max_length`` or ``max_prompt_length + max_response_length`` tokens (at most the model's
    positions). Real batches are often shorter, so real peaks are often lower (the demo's runs
    stay far below); a batch of the longest curated rows reaches it.

    On the CPU (``gpus == 0``) one process holds everything in fp32: weights, gradients and
    AdamW's two moments (16 bytes per parameter), the micro-batch's activations
    (:data:`ACTIVATION_FLOATS` per token and layer), the chunked head's ``[logprob_chunk_size,
    vocab]`` logits three times, and :data:`BASE_MB`, times :data:`MEMORY_MARGIN`. With
    ``backward=False`` (the DPO reference pass) only the weights and one layer's activations.
    On GPUs each worker loads the fp32 weights into host memory before moving them (4 bytes per
    parameter) beside its CUDA context (:data:`BASE_MB`); GPU memory is not SLURM's ``--mem``.
    """
    cfg = resolve_run(run)
    params = count_parameters(shape)
    mb = 2**20
    if int(gpus) > 0:
        return int(int(gpus) * (4 * params / mb + BASE_MB["gpu_worker"]))
    h, i = int(shape["hidden_size"]), int(shape["intermediate_size"])
    layers, vocab = int(shape["num_hidden_layers"]), int(shape["vocab_size"])
    if cfg.is_pairwise:
        row, rows = cfg.max_prompt_length + cfg.max_response_length, 2 * cfg.per_device_batch_size
    else:
        row, rows = cfg.max_length, cfg.per_device_batch_size
    row = min(row, int(shape.get("max_position_embeddings") or row))
    a, b, c = ACTIVATION_FLOATS
    per_layer = 4 * rows * row * (a * h + b * i + c * row)
    states = (16 if backward else 4) * params
    activations = per_layer * (layers if backward else 1)
    head = 3 * 4 * max(1, cfg.logprob_chunk_size or row) * vocab
    return int(((states + activations + head) / mb + BASE_MB["cpu"]) * MEMORY_MARGIN)


def memory_hints(config: dict, runs: dict[str, dict], root: str | Path = ".") -> dict[str, int] | None:
    """``{"train": MB, "reference": MB}``: the largest estimate over the runs
    (:func:`estimate_train_mem_mb`), or None when the student's shape is unknown."""
    shape = student_shape(config, root)
    if shape is None or not runs:
        return None
    res = config["resources"]
    gpus = int(res["train"]["gpu"])
    train = max(estimate_train_mem_mb(shape, run, gpus=gpus) for run in runs.values())
    # the reference pass: one process on one device, no gradients or optimizer state
    ref_runs = [run for run in runs.values() if objectives.needs_reference(run["objective"])]
    reference = max((estimate_train_mem_mb(shape, run, gpus=min(gpus, 1), backward=False) for run in ref_runs),
                    default=0)  # fmt: skip
    return {"train": train, "reference": reference}


def resolve_memory(config: dict, root: str | Path = ".", log=None) -> None:
    """Fill ``resources.<stage>.mem_mb: auto`` (the schema's default) in place: training and the
    reference pass from the student's size (:func:`memory_hints`), every other stage 8,000 MB.
    A configured value below the estimate stays, with a warning through ``log`` (SLURM kills a
    job that passes ``--mem``). Without a known student shape, ``auto`` becomes 8,000 MB."""
    res = config["resources"]
    hints = memory_hints(config, all_runs(config), root) or {}
    for stage, spec in res.items():
        if not isinstance(spec, dict) or "mem_mb" not in spec:
            continue
        estimate = hints.get(stage)
        if spec["mem_mb"] == "auto":
            spec["mem_mb"] = max(8000, int(estimate or 0)) if stage in ("train", "reference") else 8000
        elif estimate and int(spec["mem_mb"]) < estimate and log is not None:
            log(
                f"config key 'resources.{stage}.mem_mb': {spec['mem_mb']} MB is below the estimated peak "
                f"of {estimate} MB for this student and these runs (redi.plan.estimate_train_mem_mb); "
                "a SLURM job would be killed at its --mem. Raise it, or set it to auto."
            )


def runtime_for_attempt(runtime: str, attempt: int) -> str:
    """A job's time limit on Snakemake's ``attempt`` (1 = first try): ``runtime`` times ``attempt``,
    in the same unit (``"2h"`` -> ``"2h"``, ``"4h"``, ...).

    A training or sampling job killed at its SLURM time limit keeps its checkpoints and the profile
    retries it; with the same limit, work that needs more than one more limit's worth would be
    killed again. The SLURM executor plugin turns the result into ``sbatch -t`` (minutes).

    Raises:
        ValueError: ``runtime`` is not ``<int>(m|h|d)`` (the schema's pattern) or ``attempt < 1``.
    """
    match = re.fullmatch(r"([0-9]+)(m|h|d)", str(runtime))
    if match is None or int(attempt) < 1:
        raise ValueError(f"resources runtime {runtime!r} (attempt {attempt}): expected e.g. '2h' and attempt >= 1")
    return f"{int(match.group(1)) * int(attempt)}{match.group(2)}"


def reference_resources(train: dict) -> dict:
    """Default resources of the reference pass: one of the training job's GPUs with its share
    of the node's memory and cores, and the training job's time limit."""
    gpus = int(train["gpu"])
    share = max(1, gpus)
    return {
        "gpu": min(gpus, 1),
        "cpus_per_gpu": train["cpus_per_gpu"],
        "mem_mb": max(8000, int(train["mem_mb"]) // share),
        "runtime": train["runtime"],
        "threads": train["cpus_per_gpu"] if gpus else train["threads"],
        "gpu_model": train.get("gpu_model"),
    }


def job_threads(spec: dict, cores: int | None, parallel: int = 1) -> int:
    """A job's ``threads`` from its stage's resources ``spec``.

    An integer is kept. ``auto`` = the cores the job really has: on GPUs its allocation,
    ``cpus_per_gpu x gpu``; on the CPU the ``cores`` Snakemake was given (``--cores``) shared
    among the ``parallel`` jobs of the stage that can run at once, at least 1 (a job alone takes
    every core; the demo's six stage-2 runs take one each). Without a core count (a cluster
    executor without ``--cores``) a CPU job gets 1.
    """
    threads = spec["threads"]
    if threads != "auto":
        return int(threads)
    if spec.get("gpu"):
        return int(spec["cpus_per_gpu"]) * int(spec["gpu"])
    if not cores:
        return 1
    return max(1, int(cores) // max(1, int(parallel)))


#: Scheduling tiers, critical path first: where cores are scarce (the CPU demo runs
#: ~30 jobs on 2 cores) a job that many others wait for should start before one that nothing
#: waits for, and among the rest the longest first, so that the last job to finish is a short
#: one (longest-processing-time-first; the demo's runs ended with one core idle for up to a
#: whole evaluation). The data stage, the student (curation tokenises with it, SFT starts from
#: it), SFT (every stage-2 run starts from it), the reference pass (it gates the DPO runs);
#: then an SFT run's evaluation group, ready at the same time as the stage-2 trainings and the
#: longest job (it evaluates the most checkpoints), beside them; stage-2 training; the stage-2
#: evaluations; last the untrained student's evaluation (the shortest: it fills the final gap).
#: Model cards and the report have no tier (Snakemake's default priority 0).
PRIORITY_TIERS: dict[str, int] = {
    "data": 60,
    "student": 55,
    "train_sft": 50,
    "reference_logps": 40,
    "eval_sft": 35,
    "train_stage2": 30,
    "eval": 20,  # a stage-2 run's evaluations, a reference model's
    "eval_student": 15,
}


def job_priority(kind: str, threads: int = 1) -> int:
    """Snakemake ``priority:`` of a job of ``kind`` (a key of ``PRIORITY_TIERS``) that takes
    ``threads`` cores: its tier x its cores.

    Snakemake's scheduler (ILP, Snakemake 9) starts the set of ready jobs with the largest *sum*
    of priorities that fits the free cores, so a bare tier would let two 1-core stage-2 jobs
    (30 + 30) outrank the 2-core reference pass (40); in the demo that pass then ran last and
    DPO's training and evaluation ran alone on one core. Weighted by cores, a job's priority is
    its tier per core it takes, and the higher tier wins the cores. On a cluster it only orders
    submissions.
    """
    return PRIORITY_TIERS[kind] * max(1, int(threads))


def run_name(objective: str, params: dict) -> str:
    """``objective`` then each of its parameters and the learning rate as tag + value, when set:
    ``redi-a0.8-lr1e-6``, ``simpo-b2-g1-lr5e-7`` (tags and order from the objective registry)."""
    parts = [objective]
    for param in (*objectives.get(objective).params, "learning_rate"):
        if params.get(param) is not None:
            parts.append(objectives.PARAMETERS[param].tag + format_number(params[param]))
    return "-".join(parts)


def _merge(*layers: dict) -> dict:
    merged: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = copy.deepcopy(value)
    return merged


#: canonical JSON of a run dict -> its resolved RunConfig (see resolve_run)
_RESOLVED: dict = {}


def resolve_run(run: dict):
    """The run's :class:`~redi.train.config.RunConfig`, resolved once per process for each
    distinct run dict: Snakemake's parse asks for the same runs many times (rules, checks, the
    report's figure names), and each resolution validates every field. The record is shared:
    read it, do not modify it (``to_dict()`` gives a copy).

    Raises:
        TypeError, ValueError: as :meth:`RunConfig.from_dict` (not cached).
    """
    from redi.train.config import RunConfig

    key = json.dumps(run, sort_keys=True, default=repr)
    if key not in _RESOLVED:
        record = RunConfig.from_dict(run)
        _RESOLVED[key] = record  # and under its own values, which resolve to itself
        _RESOLVED.setdefault(json.dumps(record.to_dict(), sort_keys=True, default=repr), record)
    return _RESOLVED[key]


def _complete(run: dict) -> dict:
    """Every knob of the run with the trainer's own defaults filled in, so that Snakemake's
    checkpoint steps and the trainer can never disagree about a default."""
    try:
        return resolve_run(run).to_dict()
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key 'training' (run '{run.get('name')}'): {error}") from error


#: What a run is rather than how it trains: set by the plan from the run's entry (its name,
#: objective, start and negatives) and the stage's keys, never from a hyper-parameter layer,
#: where a value would be overwritten without a word.
IDENTITY_KEYS = ("name", "objective", "start", "negatives")


def _check_layers(*layers: tuple[str, dict | None]) -> None:
    """Raise :class:`ConfigError` naming ``where.key`` for an identity key (:data:`IDENTITY_KEYS`)
    in a hyper-parameter layer (``(where, layer)`` pairs: defaults, an SFT run's settings,
    a stage-2 entry's ``overrides``)."""
    home = {
        "name": "a stage-2 run entry's `name`, an SFT run's key under training.sft.runs",
        "objective": "a stage-2 run entry (SFT runs are `sft`)",
        "start": "a stage-2 run entry, or training.stage2.start for every run",
        "negatives": "a stage-2 run entry, or training.stage2.negatives for every run",
    }
    for where, layer in layers:
        for key in IDENTITY_KEYS:
            if key in (layer or {}):
                raise ConfigError(
                    f"config key '{where}.{key}': a run's {key} is not a hyper-parameter (it would be ignored "
                    f"here); it is set on {home[key]}"
                )


def sft_runs(config: dict) -> dict[str, dict]:
    training = config["training"]
    runs = {}
    for name, settings in training["sft"]["runs"].items():
        _check_layers(
            ("training.defaults", training["defaults"]),
            ("training.sft.defaults", training["sft"]["defaults"]),
            (f"training.sft.runs.{name}", settings),
        )
        run = _merge(training["defaults"], training["sft"]["defaults"], settings)
        run.update(name=name, objective="sft")
        runs[name] = _complete(run)
    return runs


def _sweep(entry: dict) -> list[dict]:
    """Expand list-valued parameters of one stage-2 entry into single runs (cartesian product;
    lists of an objective's ``paired_sweep`` parameters, e.g. SimPO's beta and gamma, are zipped,
    as the paper pairs them)."""
    lists = {k: entry[k] for k in SWEEPABLE if isinstance(entry.get(k), list)}
    objective = objectives.get(entry["objective"])
    paired = objective.paired_sweep
    zipped = bool(paired) and all(k in lists for k in paired)
    if zipped and len({len(lists[k]) for k in paired}) > 1:
        raise ConfigError(
            f"config key 'training.stage2.runs': {objective.label} {' and '.join(paired)} lists differ in length"
        )
    axes = []
    if zipped:
        axes.append([dict(zip(paired, values)) for values in zip(*(lists.pop(k) for k in paired))])
    axes += [[{k: v} for v in values] for k, values in lists.items()]
    expanded = []
    for combo in itertools.product(*axes) if axes else [()]:
        single = {k: v for k, v in entry.items() if k not in SWEEPABLE or not isinstance(v, list)}
        for part in combo:
            single.update(part)
        expanded.append(single)
    return expanded


#: Keys of a stage-2 entry besides the registry's parameters (``config/schema.yaml``).
STAGE2_ENTRY_KEYS = ("name", "objective", "start", "negatives", "overrides")


def check_stage2_entry(entry: dict, where: str = "training.stage2.runs") -> None:
    """The registry's half of a stage-2 entry's validation (the schema cannot list what the
    registry adds): its objective is a pair objective and every key is an entry key or a
    registry parameter. Raises :class:`ConfigError` naming the key (``where``: the entry's path)."""
    if entry.get("objective") not in objectives.pairwise_names():
        raise ConfigError(
            f"config key '{where}.objective': {entry.get('objective')!r} is not a stage-2 objective; "
            f"known: {', '.join(objectives.pairwise_names())}"
        )
    unknown = sorted(set(entry) - set(STAGE2_ENTRY_KEYS) - set(SWEEPABLE))
    if unknown:
        raise ConfigError(
            f"config key '{where}.{unknown[0]}': unknown key(s) {unknown} in a {entry['objective']} entry; "
            f"known: {', '.join((*STAGE2_ENTRY_KEYS, *SWEEPABLE))} (other hyper-parameters go under 'overrides')"
        )


def stage2_runs(config: dict) -> dict[str, dict]:
    """Every stage-2 run of the config, sweeps expanded, by name: the merged hyper-parameters
    plus ``name``, ``objective``, ``start`` (an SFT run) and ``negatives`` (where its rejected
    traces come from: :data:`redi.data.student_negatives.NEGATIVES`). A run that differs from
    the stage's default start or negatives and has no ``name`` gets ``-from-START`` /
    ``-neg-SOURCE`` appended to its default name. Raises :class:`ConfigError` naming the key."""
    training = config["training"]
    stage2 = training["stage2"]
    default_start = stage2["start"] or next(iter(training["sft"]["runs"]))
    default_negatives = stage2.get("negatives", "teacher")
    runs: dict[str, dict] = {}
    pairs_mode = config.get("curation", {}).get("pairs", "first")
    _check_layers(("training.defaults", training["defaults"]), ("training.stage2.defaults", stage2["defaults"]))
    for index, entry in enumerate(stage2["runs"]):
        where = f"training.stage2.runs.{index}"
        check_stage2_entry(entry, where)
        _check_layers((f"{where}.overrides", entry.get("overrides")))
        negatives = entry.get("negatives", default_negatives)
        if objectives.get(entry["objective"]).row_inputs and pairs_mode != "groups":
            raise ConfigError(
                f"config key 'curation.pairs': objective {entry['objective']!r} ({where}) "
                f"reads each problem's group from the pairs: set curation.pairs to 'groups', not {pairs_mode!r}"
            )
        if objectives.get(entry["objective"]).row_inputs and negatives != "teacher":
            key = f"{where}.negatives" if "negatives" in entry else "training.stage2.negatives"
            raise ConfigError(
                f"config key '{key}': objective {entry['objective']!r} reads the teacher's "
                "groups, which student pairs do not have: use negatives 'teacher' for it"
            )
        for single in _sweep(entry):
            params = {k: single[k] for k in SWEEPABLE if k in single}
            for param in objectives.get(single["objective"]).params:
                if param not in params:
                    raise ConfigError(
                        f"config key 'training.stage2.runs': a {single['objective']} run needs '{param}'"
                    )
            start = single.get("start", default_start)
            if negatives != "teacher" and start != default_start:
                raise ConfigError(
                    f"config key '{where}.start': the student's own negatives are sampled from the stage's "
                    f"start model ('{default_start}', training.stage2.start), but this run starts from '{start}'"
                )
            name = single.get("name") or run_name(single["objective"], params)
            if "name" not in single:
                name += f"-from-{start}" if start != default_start else ""
                name += f"-neg-{negatives}" if negatives != default_negatives else ""
            if name in runs:
                raise ConfigError(f"config key 'training.stage2.runs': run '{name}' is defined twice")
            run = _merge(training["defaults"], stage2["defaults"], single.get("overrides"), params)
            run.update(name=name, objective=single["objective"], start=start, negatives=negatives)
            runs[name] = _complete(run)
    return runs


def stage2_pairs(negatives: str) -> str:
    """The pairs file that stage-2 runs with this ``negatives`` source train on: the teacher's
    curated pairs, or those with the start model's own negatives (``rules/student_negatives.smk``)."""
    return "results/data/pref.jsonl" if negatives == "teacher" else f"results/data/{negatives}-negatives/pref.jsonl"


def reference_file(run: dict) -> str:
    """The cached reference log-probs a stage-2 run reads: one file per (start model, pairs
    file), since the reference pass scores every pair of that file with that model."""
    suffix = "" if run["negatives"] == "teacher" else f"-{run['negatives']}"
    return f"results/train/{run['start']}/ref_logps{suffix}.parquet"


def reference_runs(stage2: dict[str, dict]) -> dict[str, dict]:
    """Per reference file (:func:`reference_file`: a start model and a pairs file): the stage-2
    run whose truncation settings the reference pass uses, among the runs that read it (the
    objectives that need reference log-probs, e.g. DPO).

    Raises:
        ConfigError: two runs that read one file disagree on ``max_prompt_length`` /
            ``max_response_length`` (they share one cached file, and training refuses a file
            made with other truncation settings).
    """
    keys = ("max_prompt_length", "max_response_length")
    chosen: dict[str, dict] = {}
    for name, run in stage2.items():
        if not objectives.needs_reference(run["objective"]):
            continue
        first = chosen.setdefault(reference_file(run), run)
        if tuple(first[k] for k in keys) != tuple(run[k] for k in keys):
            raise ConfigError(
                f"config key 'training.stage2.runs': runs '{first['name']}' and '{name}' start from "
                f"'{run['start']}' and share its reference log-probs, but disagree on {keys}"
            )
    return chosen


def all_runs(config: dict) -> dict[str, dict]:
    return {**sft_runs(config), **stage2_runs(config)}
