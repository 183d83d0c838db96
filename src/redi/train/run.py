"""``train()``: one run from a start model and a data file to ``{out_dir}/model`` and its logs.

Files (``docs/design.md``)::

    {out_dir}/model/                 final weights + tokenizer, HF format   (declared, written last)
    {out_dir}/metrics.jsonl          one line per optimizer step           (declared)
    {out_dir}/summary.json           run summary                           (declared)
    {out_dir}/checkpoints/           NOT declared (survives a failed job):
        checkpoint-{step}/           at exactly schedule.checkpoint_steps(); HF weights +
                                     tokenizer (+ optimizer/scheduler/RNG/trainer state in the
                                     newest; older ones keep weights only unless
                                     keep_optimizer_state="all")
        metrics.jsonl                live metrics log (copied to {out_dir} at the end)
        run.json                     the resolved config + inputs fingerprint
        tokens-*.npz                 tokenisation cache

A rerun resumes from the newest complete checkpoint (same data order; metrics lines after that
step are dropped). If the config or the inputs changed since the checkpoints were written, they
are discarded and the run starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redi.files import atomic_path, write_text_atomic

from . import checkpoints, objectives
from .config import RunConfig
from .environment import (
    Environment,
    check_launch_precision,
    check_reference_numerics,
    resolve_bf16,
    resolve_environment,
)

log = logging.getLogger(__name__)


def _fingerprint(cfg: RunConfig, model_path, data_path, ref_logps_path) -> str:
    h = hashlib.sha256(cfg.to_json().encode())
    for p in (model_path, data_path, ref_logps_path):
        if p is None:
            h.update(b"-")
            continue
        p = Path(p)
        h.update(str(p.resolve()).encode())
        files = [p] if p.is_file() else sorted(x for x in p.iterdir() if x.is_file())
        for f in files:
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def read_metrics(path: Path, upto: int | None = None) -> list[dict]:
    """Metrics records (a torn last line from a kill is ignored), optionally ``step <= upto``."""
    out = []
    if not Path(path).exists():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if upto is None or rec.get("step", 0) <= upto:
            out.append(rec)
    return out


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def train(
    run: dict,
    model_path: str,
    data_path: str,
    out_dir: str,
    *,
    ref_logps_path: str | None = None,
    threads: int = 1,
) -> dict:
    """Train one run; returns the summary (also written to ``{out_dir}/summary.json``).

    ``run``: the run's settings (:class:`~redi.train.config.RunConfig` keys; ``name`` defaults
    to ``out_dir``'s folder name). ``ref_logps_path``: cached reference log-probs
    (``reference.py``), required by objectives that need them (DPO).

    Raises:
        FileNotFoundError: an input path does not exist.
        ValueError: an invalid run config, reference log-probs missing or made in another
            precision mode, or a worker launched with another mixed precision than the run's bf16.
        NonFiniteError: the loss or gradient norm became NaN/Inf (the newest checkpoint is good).
    """
    from redi.runtime import set_threads

    set_threads(threads)
    job = _prepare(run, model_path, data_path, out_dir, ref_logps_path)
    _claim_checkpoints(job)
    data, tokenizer = _load_data(job)
    resume = _resume_point(job)
    trainer = _build_trainer(job, data, tokenizer, resume)
    final_step, wall, redi_state = _fit(job, trainer, resume)
    summary = _summary(job, data, resume, final_step, wall, redi_state)
    _write_outputs(job, trainer, summary, final_step)
    return summary


# ----------------------------------------------------------------------------------------------
# the steps of train(), in order


@dataclass
class _Job:
    """One training job's settings and places, shared by the steps of :func:`train`."""

    cfg: RunConfig
    model_path: str
    data_path: str
    ref_logps_path: str | None
    out: Path
    state: Any  # accelerate.PartialState
    env: Environment
    ga: int  # gradient accumulation steps
    total: int = 0  # optimizer steps of the run (set once the data is loaded)
    save_at: list[int] = field(default_factory=list)  # schedule.checkpoint_steps

    @property
    def main(self) -> bool:
        return self.state.is_main_process

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    @property
    def metrics_live(self) -> Path:
        return self.ckpt_dir / "metrics.jsonl"


@dataclass
class _Resume:
    checkpoint: Path | None = None  # the newest resumable checkpoint, if any
    step: int = 0
    redi_state: dict = field(default_factory=dict)  # checkpoints.REDI_STATE of that checkpoint
    history: list[dict] = field(default_factory=list)  # metrics lines up to that step


def _prepare(run, model_path, data_path, out_dir, ref_logps_path) -> _Job:
    """Check the inputs exist, resolve the config, start the (distributed) state, pick numerics."""
    import torch
    from accelerate import PartialState

    for what, path in (("start model", model_path), ("data", data_path), ("reference log-probs", ref_logps_path)):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{what} not found: {path}")
    out = Path(out_dir)
    run = dict(run)
    if not run.get("name"):
        run["name"] = out.name
    cfg = RunConfig.from_dict(run)
    if objectives.needs_reference(cfg.objective) and not ref_logps_path:
        raise ValueError(
            f"run {cfg.name!r}: objective {cfg.objective!r} needs ref_logps_path (cached reference log-probs)"
        )
    check_launch_precision(resolve_bf16(cfg.bf16), cfg.name)  # before accelerate reads it
    # cpu=True without CUDA: else every gloo rank thinks it is the main process
    state = PartialState(cpu=not torch.cuda.is_available())
    env = resolve_environment(cfg, state.num_processes)
    ga = cfg.gradient_accumulation(state.num_processes)
    return _Job(cfg, model_path, data_path, ref_logps_path, out, state, env, ga)


def _claim_checkpoints(job: _Job) -> None:
    """Checkpoints of another config or other inputs are not ours to resume: discard them; then
    record this job's fingerprint in ``checkpoints/run.json``."""
    fingerprint = _fingerprint(job.cfg, job.model_path, job.data_path, job.ref_logps_path)
    if job.main:
        ckpt_dir = job.ckpt_dir
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        run_json = ckpt_dir / "run.json"
        if run_json.exists() and json.loads(run_json.read_text()).get("fingerprint") != fingerprint:
            log.warning("run %r: config or inputs changed since the existing checkpoints; "
                        "discarding them and starting over", job.cfg.name)
            for child in ckpt_dir.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        record = {"fingerprint": fingerprint, "config": job.cfg.to_dict(), "model": str(job.model_path),
                  "data": str(job.data_path), "ref_logps": job.ref_logps_path}
        write_text_atomic(run_json, json.dumps(record, indent=1))
    job.state.wait_for_everyone()


def _load_data(job: _Job):
    """Tokenise (cached), attach reference log-probs if the objective needs them, and fix the
    schedule (``job.total``, ``job.save_at``). Returns ``(data, tokenizer)``."""
    from transformers import AutoTokenizer

    from . import schedule
    from .batching import attach_reference, attach_row_values, load_tokenized

    cfg = job.cfg
    # the pipeline's own model directory: remote code stays off (see docs/robustness.md)
    from redi.model.base import trusts_remote_code

    # off unless the student was prepared with student.trust_remote_code (its tokenizer records it)
    tokenizer = AutoTokenizer.from_pretrained(job.model_path, trust_remote_code=trusts_remote_code(job.model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    with job.state.main_process_first():
        data = load_tokenized(job.data_path, tokenizer, job.model_path, cfg, cache_dir=job.ckpt_dir)
    if objectives.get(cfg.objective).row_inputs:  # numbers the loss reads from the data rows
        attach_row_values(data, job.data_path, objectives.get(cfg.objective).row_inputs, cfg.objective)
    if objectives.needs_reference(cfg.objective):
        attach_reference(data, job.ref_logps_path, cfg)
        check_reference_numerics(job.ref_logps_path, job.env)
    job.total = schedule.total_steps(len(data), cfg.global_batch_size, cfg.epochs, cfg.max_steps)
    job.save_at = schedule.checkpoint_steps(len(data), cfg.global_batch_size, cfg.epochs,
                                            cfg.save_steps, cfg.save_each_epoch, cfg.max_steps, cfg.save)
    return data, tokenizer


def _resume_point(job: _Job) -> _Resume:
    """The newest resumable checkpoint; the live metrics log is cut back to its step."""
    ckpt = checkpoints.latest_resumable(job.ckpt_dir)
    resume = _Resume()
    if ckpt:
        resume = _Resume(ckpt, checkpoints.step_of(ckpt),
                         json.loads((ckpt / checkpoints.REDI_STATE).read_text()),
                         read_metrics(job.metrics_live, upto=checkpoints.step_of(ckpt)))
    if job.main:
        write_text_atomic(job.metrics_live, _jsonl(resume.history))
    if ckpt:
        log.info("run %r: resuming from %s (step %d of %d)", job.cfg.name, ckpt, resume.step, job.total)
    job.state.wait_for_everyone()
    return resume


def _training_arguments(job: _Job):
    """The ``transformers.TrainingArguments`` of the run (saving and logging are ours)."""
    import torch
    from transformers import TrainingArguments

    from redi import tracking

    cfg = job.cfg
    return TrainingArguments(
        output_dir=str(job.ckpt_dir),
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=job.ga,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of max_steps (rounded up)
        max_steps=job.total,
        num_train_epochs=cfg.epochs,
        optim="adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch",
        bf16=job.env.bf16,
        gradient_checkpointing=job.env.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        **tracking.trainer_arguments(tracking.resolve(), cfg.to_dict(), job.out),
        disable_tqdm=True,
        seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),
    )


def _build_trainer(job: _Job, data, tokenizer, resume: _Resume):
    """The start model, the seeded global-batch sampler and the :class:`RediTrainer`, with the
    collapse guard primed from the metrics before the resume point."""
    import torch
    from transformers import AutoModelForCausalLM

    from redi.model.base import trusts_remote_code

    from . import schedule
    from .batching import Collator, ExampleDataset, GlobalBatchSampler
    from .trainer import RediTrainer

    cfg, env = job.cfg, job.env
    model = AutoModelForCausalLM.from_pretrained(
        job.model_path, dtype=torch.float32, attn_implementation=env.attn_implementation,
        trust_remote_code=trusts_remote_code(job.model_path),
    )
    model.config.use_cache = False
    args = _training_arguments(job)
    sampler = GlobalBatchSampler(data.lengths(), cfg.global_batch_size, cfg.per_device_batch_size, cfg.seed)
    assert sampler.steps_per_epoch == schedule.steps_per_epoch(len(data), cfg.global_batch_size)
    trainer = RediTrainer(
        model=model,
        args=args,
        train_dataset=ExampleDataset(data),
        data_collator=Collator(data, tokenizer.pad_token_id, env.padding_free, sft_units=not cfg.is_pairwise),
        processing_class=tokenizer,
        run_cfg=cfg,
        sampler=sampler,
        metrics_path=job.metrics_live,
        save_steps=job.save_at,
        redi_state=resume.redi_state,
    )
    for cb in trainer.callback_handler.callbacks:
        if hasattr(cb, "prime"):
            cb.prime(resume.history)
    log.info(
        "run %r: %s, %d examples, %d steps (%d per epoch), global batch %d = %d x %d devices x %d "
        "accumulation, device %s, bf16=%s, attention=%s, padding_free=%s, checkpoints at %s",
        cfg.name, cfg.objective, len(data), job.total, sampler.steps_per_epoch, cfg.global_batch_size,
        cfg.per_device_batch_size, job.state.num_processes, job.ga, env.device, env.bf16,
        env.attn_implementation, env.padding_free, job.save_at,
    )
    return trainer


def _fit(job: _Job, trainer, resume: _Resume) -> tuple[int, float, dict]:
    """Train from the resume point to the end (or a collapse stop). Returns ``(final step, wall
    seconds, our trainer state)``; a run whose final checkpoint exists does not train again."""
    if resume.step >= job.total:
        log.info("run %r: the final checkpoint exists; only writing the outputs", job.cfg.name)
        return resume.step, float(resume.redi_state.get("wall_seconds", 0.0)), resume.redi_state
    trainer.train(resume_from_checkpoint=str(resume.checkpoint) if resume.checkpoint else None)
    return trainer.state.global_step, trainer.wall_seconds(), trainer.redi_state


def _summary(job: _Job, data, resume: _Resume, final_step: int, wall: float, redi_state: dict) -> dict:
    """The run summary (``summary.json``; keys documented in ``docs/design.md``)."""
    cfg, env = job.cfg, job.env
    collapse_step = redi_state.get("collapse_step")
    collapsed_early = collapse_step is not None and cfg.collapse.stop and final_step < job.total
    return {
        "run": cfg.name,
        "objective": cfg.objective,
        "steps": int(final_step),
        "total_steps": int(job.total),
        "resumed_from_step": int(resume.step),
        "n_examples": len(data),
        "wall_seconds": round(wall, 3),
        "train_tokens": int(redi_state.get("train_tokens", 0)),
        "tokens_per_second": (redi_state.get("train_tokens", 0) / wall) if wall > 0 else None,
        "collapsed": collapse_step is not None,
        "collapse_step": collapse_step,
        "stopped_reason": "collapse" if collapsed_early else "completed",
        "checkpoint_steps": job.save_at,
        "saved_checkpoints": [s for s in job.save_at if (job.ckpt_dir / f"checkpoint-{s}").is_dir()],
        "device": env.device,
        "n_gpus": env.n_gpus,
        "world_size": job.state.num_processes,
        "gradient_accumulation": job.ga,
        "bf16": env.bf16,
        "attn_implementation": env.attn_implementation,
        "padding_free": env.padding_free,
        "gradient_checkpointing": env.gradient_checkpointing,
        "numerics": env.numerics(),
        "tokenization": data.stats,
        "config": cfg.to_dict(),
        "model_path": str(job.model_path),
        "data_path": str(job.data_path),
        "ref_logps_path": job.ref_logps_path,
    }


def _write_outputs(job: _Job, trainer, summary: dict, final_step: int) -> None:
    """metrics.jsonl, summary.json (+ provenance), then the model folder with its card, renamed
    into place last: a declared output that exists is complete."""
    from redi import provenance
    from redi.model_card import write_card

    out, main = job.out, job.main
    tmp_model = out / ".model.tmp"
    final_ckpt = job.ckpt_dir / f"checkpoint-{final_step}"
    if main:
        shutil.rmtree(tmp_model, ignore_errors=True)
    job.state.wait_for_everyone()
    if not job.cfg.save:
        pass  # a measurement run (save: false): no model, only metrics and summary
    elif final_ckpt.is_dir() and (final_ckpt / "config.json").exists():
        if main:
            checkpoints.copy_model_files(final_ckpt, tmp_model)
    else:
        trainer.save_model(str(tmp_model))  # every rank takes part (ZeRO-3 / FSDP gather)
    if main:
        summary["provenance"] = provenance.record(
            config=job.cfg.to_dict(), model=job.model_path,
            data={"train": job.data_path, "reference log-probs": job.ref_logps_path,
                  "corpus": provenance.corpus_of(job.data_path)},
        )
        with atomic_path(out / "metrics.jsonl") as tmp:
            shutil.copyfile(job.metrics_live, tmp)
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
        model_dir = out / "model"
        if job.cfg.save:
            write_card(out, tmp_model / "README.md")  # a Hugging Face model card (redi.model_card)
            if model_dir.exists():
                shutil.rmtree(model_dir)
            os.replace(tmp_model, model_dir)  # a folder: redi.files covers files only
        log.info("run %r: done (%s) at step %d; model in %s", job.cfg.name, summary["stopped_reason"],
                 final_step, model_dir)
    job.state.wait_for_everyone()
