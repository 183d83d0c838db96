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

from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig

log = logging.getLogger(__name__)

# files of a checkpoint that are part of the HF model dir (everything else is trainer state)
_NOT_MODEL = ("trainer_state.json", "training_args.bin", "redi_state.json", "latest", "zero_to_fp32.py")
_NOT_MODEL_PREFIXES = ("optimizer", "scheduler", "scaler", "rng_state", "global_step")


@dataclass
class Environment:
    device: str
    n_gpus: int
    world_size: int
    bf16: bool
    attn_implementation: str
    padding_free: bool
    gradient_checkpointing: bool
    deepspeed: bool = False

    @property
    def precision(self) -> str:
        """How the forward pass computes (see :func:`precision_mode`)."""
        return precision_mode(self.bf16, self.deepspeed)

    def numerics(self) -> dict:
        """What actually ran, for the run summary (issue 13, item 14)."""
        return {
            "precision": self.precision,
            "attention": self.attn_implementation,
            "padding": "packed (position_ids, no padding)" if self.padding_free else "padded (attention_mask)",
            "gradient_checkpointing": self.gradient_checkpointing,
            "deepspeed": self.deepspeed,
        }


PRECISION_MODES = {
    "fp32": "fp32 weights, fp32 compute",
    "bf16-autocast": "fp32 master weights, bf16 autocast (single device, DDP, FSDP)",
    "bf16": "bf16 weights, no autocast (DeepSpeed bf16; fp32 master copy inside its optimizer)",
}


def precision_mode(bf16: bool, deepspeed: bool) -> str:
    """The forward numerics of a training job: a key of :data:`PRECISION_MODES`.

    The DPO reference pass must use the same mode as the policy, or the step-0 loss is not
    ``log 2`` (issue 13, item 9): DeepSpeed converts the module to bf16 and runs without
    autocast, while accelerate's DDP/FSDP keep fp32 weights under bf16 autocast.
    """
    if not bf16:
        return "fp32"
    return "bf16" if deepspeed else "bf16-autocast"


def under_deepspeed() -> bool:
    """True inside a worker that ``accelerate launch`` started with a DeepSpeed config."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true")


def resolve_environment(cfg: RunConfig, world_size: int = 1, deepspeed: bool | None = None) -> Environment:
    """Turn the ``auto`` settings into concrete ones for this machine.

    ``deepspeed``: whether the training job runs under DeepSpeed (default: this process's
    accelerate environment); the reference pass passes the training job's value.
    """
    import torch

    cuda = torch.cuda.is_available()
    n_gpus = torch.cuda.device_count() if cuda else 0
    device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
    bf16 = cfg.bf16 if cfg.bf16 != "auto" else bool(cuda and torch.cuda.is_bf16_supported())
    attn = cfg.attn_implementation
    if attn == "auto":
        attn = "sdpa"
        if cuda:
            try:
                import flash_attn  # noqa: F401

                attn = "flash_attention_2"
            except ImportError:
                pass
    padding_free = cfg.padding_free
    if padding_free == "auto":
        # packed rows need an attention that reads sequence boundaries without an O(S^2) mask
        # (FlashAttention varlen, FlexAttention block masks); SDPA would get a dense block mask
        padding_free = attn.startswith(("flash", "flex"))
    gc = cfg.gradient_checkpointing
    if gc == "auto":
        gc = cuda
    ds = under_deepspeed() if deepspeed is None else bool(deepspeed)
    return Environment(device, n_gpus, world_size, bool(bf16), attn, bool(padding_free), bool(gc), ds)


def check_reference_numerics(ref_logps_path: str, env: Environment) -> None:
    """Refuse cached reference log-probs computed in another precision mode than this run's.

    Raises:
        ValueError: naming both modes (the DPO loss would not start at ``log 2``).
    """
    import pyarrow.parquet as pq

    meta = json.loads((pq.read_schema(ref_logps_path).metadata or {}).get(b"redi", b"{}"))
    made = meta.get("precision")
    if made is None:
        log.warning("%s records no precision mode; cannot check it matches this run's %r", ref_logps_path, env.precision)
    elif made != env.precision:
        raise ValueError(
            f"{ref_logps_path}: reference log-probs were computed in precision mode {made!r} but this "
            f"run trains in {env.precision!r} ({PRECISION_MODES[env.precision]}); the DPO loss would not "
            "start at log 2. Recompute them with the training job's accelerate config and bf16 setting."
        )


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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _copy_model_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in _NOT_MODEL and not f.name.startswith(_NOT_MODEL_PREFIXES):
            shutil.copy2(f, dst / f.name)


def train(
    run: dict,
    model_path: str,
    data_path: str,
    out_dir: str,
    *,
    ref_logps_path: str | None = None,
    threads: int = 1,
) -> dict:
    """Train one run; returns the summary (also written to ``{out_dir}/summary.json``)."""
    from redi.runtime import set_threads

    set_threads(threads)

    import torch
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from redi import tracking

    from . import schedule
    from .batching import Collator, ExampleDataset, GlobalBatchSampler, attach_reference, load_tokenized
    from .trainer import REDI_STATE, RediTrainer, latest_resumable

    for what, path in (("start model", model_path), ("data", data_path), ("reference log-probs", ref_logps_path)):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{what} not found: {path}")
    out = Path(out_dir)
    run = dict(run)
    run.setdefault("name", out.name)
    if not run.get("name"):
        run["name"] = out.name
    cfg = RunConfig.from_dict(run)
    if cfg.objective == "dpo" and not ref_logps_path:
        raise ValueError(f"run {cfg.name!r}: objective 'dpo' needs ref_logps_path (cached reference log-probs)")

    # cpu=True without CUDA: else every gloo rank thinks it is the main process (issue 13, item 15)
    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    env = resolve_environment(cfg, state.num_processes)
    ga = cfg.gradient_accumulation(state.num_processes)
    ckpt_dir = out / "checkpoints"
    metrics_live = ckpt_dir / "metrics.jsonl"

    # -- checkpoints of another config/inputs are not ours to resume -------------------------
    fingerprint = _fingerprint(cfg, model_path, data_path, ref_logps_path)
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        run_json = ckpt_dir / "run.json"
        if run_json.exists():
            previous = json.loads(run_json.read_text()).get("fingerprint")
            if previous != fingerprint:
                log.warning("run %r: config or inputs changed since the existing checkpoints; "
                            "discarding them and starting over", cfg.name)
                for child in ckpt_dir.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        _write_atomic(run_json, json.dumps({"fingerprint": fingerprint, "config": cfg.to_dict(),
                                            "model": str(model_path), "data": str(data_path),
                                            "ref_logps": ref_logps_path}, indent=1))
    state.wait_for_everyone()

    # -- data ------------------------------------------------------------------------------
    # the pipeline's own model directory: remote code stays off (see docs/robustness.md)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    with state.main_process_first():
        data = load_tokenized(data_path, tokenizer, model_path, cfg, cache_dir=ckpt_dir)
    if cfg.objective == "dpo":
        attach_reference(data, ref_logps_path, cfg)
        check_reference_numerics(ref_logps_path, env)
    n_examples = len(data)
    total = schedule.total_steps(n_examples, cfg.global_batch_size, cfg.epochs, cfg.max_steps)
    save_at = schedule.checkpoint_steps(n_examples, cfg.global_batch_size, cfg.epochs,
                                        cfg.save_steps, cfg.save_each_epoch, cfg.max_steps)

    # -- resume point ----------------------------------------------------------------------
    resume = latest_resumable(ckpt_dir)
    resume_step = int(resume.name.split("-")[1]) if resume else 0
    redi_state = json.loads((resume / REDI_STATE).read_text()) if resume else {}
    history = read_metrics(metrics_live, upto=resume_step) if resume else []
    if main:
        _write_atomic(metrics_live, "".join(json.dumps(r) + "\n" for r in history))
    if resume:
        log.info("run %r: resuming from %s (step %d of %d)", cfg.name, resume, resume_step, total)
    state.wait_for_everyone()

    # -- model + trainer -------------------------------------------------------------------
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, attn_implementation=env.attn_implementation, trust_remote_code=False
    )
    model.config.use_cache = False
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=ga,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of max_steps (rounded up)
        max_steps=total,
        num_train_epochs=cfg.epochs,
        optim="adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch",
        bf16=env.bf16,
        gradient_checkpointing=env.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        **tracking.trainer_arguments(tracking.resolve(), cfg.to_dict(), out),
        disable_tqdm=True,
        seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),
    )
    sampler = GlobalBatchSampler(data.lengths(), cfg.global_batch_size, cfg.per_device_batch_size, cfg.seed)
    assert sampler.steps_per_epoch == schedule.steps_per_epoch(n_examples, cfg.global_batch_size)
    trainer = RediTrainer(
        model=model,
        args=args,
        train_dataset=ExampleDataset(data),
        data_collator=Collator(data, tokenizer.pad_token_id, env.padding_free, sft_units=not cfg.is_pairwise),
        processing_class=tokenizer,
        run_cfg=cfg,
        sampler=sampler,
        metrics_path=metrics_live,
        save_steps=save_at,
        redi_state=redi_state,
    )
    for cb in trainer.callback_handler.callbacks:
        if hasattr(cb, "prime"):
            cb.prime(history)

    log.info(
        "run %r: %s, %d examples, %d steps (%d per epoch), global batch %d = %d x %d devices x %d "
        "accumulation, device %s, bf16=%s, attention=%s, padding_free=%s, checkpoints at %s",
        cfg.name, cfg.objective, n_examples, total, sampler.steps_per_epoch, cfg.global_batch_size,
        cfg.per_device_batch_size, state.num_processes, ga, env.device, env.bf16,
        env.attn_implementation, env.padding_free, save_at,
    )
    if resume_step >= total:
        log.info("run %r: the final checkpoint exists; only writing the outputs", cfg.name)
        final_step, wall = resume_step, float(redi_state.get("wall_seconds", 0.0))
    else:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        final_step, wall = trainer.state.global_step, trainer.wall_seconds()
    redi_state = trainer.redi_state if resume_step < total else redi_state
    collapse_step = redi_state.get("collapse_step")
    stopped = "collapse" if (collapse_step is not None and cfg.collapse.stop and final_step < total) else "completed"

    # -- outputs: metrics, summary, then the model (atomically, last) ------------------------
    tmp_model = out / ".model.tmp"
    final_ckpt = ckpt_dir / f"checkpoint-{final_step}"
    if main:
        shutil.rmtree(tmp_model, ignore_errors=True)
    state.wait_for_everyone()
    if final_ckpt.is_dir() and (final_ckpt / "config.json").exists():
        if main:
            _copy_model_files(final_ckpt, tmp_model)
    else:
        trainer.save_model(str(tmp_model))  # every rank takes part (ZeRO-3 / FSDP gather)
    summary = {
        "run": cfg.name,
        "objective": cfg.objective,
        "steps": int(final_step),
        "total_steps": int(total),
        "resumed_from_step": int(resume_step),
        "n_examples": n_examples,
        "wall_seconds": round(wall, 3),
        "train_tokens": int(redi_state.get("train_tokens", 0)),
        "tokens_per_second": (redi_state.get("train_tokens", 0) / wall) if wall > 0 else None,
        "collapsed": collapse_step is not None,
        "collapse_step": collapse_step,
        "stopped_reason": stopped,
        "checkpoint_steps": save_at,
        "saved_checkpoints": [s for s in save_at if (ckpt_dir / f"checkpoint-{s}").is_dir()],
        "device": env.device,
        "n_gpus": env.n_gpus,
        "world_size": state.num_processes,
        "gradient_accumulation": ga,
        "bf16": env.bf16,
        "attn_implementation": env.attn_implementation,
        "padding_free": env.padding_free,
        "gradient_checkpointing": env.gradient_checkpointing,
        "numerics": env.numerics(),
        "tokenization": data.stats,
        "config": cfg.to_dict(),
        "model_path": str(model_path),
        "data_path": str(data_path),
        "ref_logps_path": ref_logps_path,
    }
    if main:
        from redi import provenance

        summary["provenance"] = provenance.record(
            config=cfg.to_dict(), model=model_path,
            data={"train": data_path, "reference log-probs": ref_logps_path,
                  "corpus": provenance.corpus_of(data_path)},
        )
        shutil.copyfile(metrics_live, out / ".metrics.jsonl.tmp")
        os.replace(out / ".metrics.jsonl.tmp", out / "metrics.jsonl")
        _write_atomic(out / "summary.json", json.dumps(summary, indent=1))
        from redi.model_card import write_card

        write_card(out, tmp_model / "README.md")  # a Hugging Face model card (redi.model_card)
        model_dir = out / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        os.replace(tmp_model, model_dir)
        log.info("run %r: done (%s) at step %d; model in %s", cfg.name, stopped, final_step, model_dir)
    state.wait_for_everyone()
    return summary


