"""The one trainer for every objective (``objectives.OBJECTIVES``): a thin ``transformers.Trainer`` subclass.

What the base ``Trainer`` does (unchanged): AdamW, linear warm-up/decay schedule, gradient
accumulation, bf16 autocast, gradient checkpointing, clipping, accelerate (DDP / DeepSpeed /
FSDP), optimizer/scheduler/RNG/trainer-state checkpointing and resume with batch skipping.

What this subclass adds:

* ``compute_loss``: response log-probs through the chunked head (``logprobs.py``), then the
  objective (``objectives.py``) normalised by the optimizer step's *global* unit count (tokens
  for SFT, pairs otherwise; ``_get_num_items_in_batch``), times the world size because DDP and
  DeepSpeed average gradients over devices. The step's gradient is thus that of one big batch.
* the data loader: our own :class:`~redi.train.batching.GlobalBatchSampler` (seeded order,
  length-grouped inside each step), prepared by accelerate.
* a guard at every optimizer step (``_get_grad_norm``): non-finite loss or gradient norm raises
  :class:`NonFiniteError` naming the step, before the weights change (except under DeepSpeed,
  which steps inside the last backward) and before anything is saved, so the newest
  checkpoint is the last good state.
* per-step metrics (:class:`StepMetricsCallback`): one JSON line per optimizer step, the update
  norm ``||theta_t - theta_{t-1}||_2`` (from a parameter snapshot taken when the step begins),
  the collapse guard, and saving at exactly ``checkpoint_steps``.
* atomic checkpoints (``_save_checkpoint``): the base save writes into a staging folder that is
  renamed to ``checkpoint-{step}`` when complete; with ``keep_optimizer_state="last"`` older
  checkpoints then lose their optimizer/scheduler/RNG files (weights stay, for evaluation).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from redi import tracking
from redi.files import fsync_dir
from redi.progress import Progress

from . import objectives
from .checkpoints import REDI_STATE, checkpoint_dirs, fsync_tree, prune_resume_state
from .collapse import CollapseDetector
from .logprobs import batch_logprobs, install_logprob_head, sequence_sums

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Loss or gradient became NaN/Inf; the run stopped before the optimizer step."""


# accumulator slots (summed over micro-batches, then over devices)
# per-step sums over micro-batches and processes (weights w: pair or example weights)
_LOSS, _CHOSEN, _REJECTED, _EXAMPLES, _TOKENS, _BAD, _PREFERRED, _REWARD_PREFERRED, _REWARD_MARGIN = range(9)
_N_STATS = 9


class RediTrainer(Trainer):
    def __init__(self, *args, run_cfg, sampler, metrics_path, save_steps, redi_state=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_cfg = run_cfg
        self.sampler = sampler
        self.metrics_path = Path(metrics_path)
        self.save_steps_set = set(int(s) for s in save_steps)
        self.redi_state = dict(redi_state or {})
        self.redi_state.setdefault("wall_seconds", 0.0)
        self.redi_state.setdefault("train_tokens", 0)
        self.redi_state.setdefault("collapse_step", None)
        self.loss_is_scaled_for_ga = True  # we normalise by the whole step's unit count
        for cb in (PrinterCallback, ProgressCallback):  # our own per-step log replaces these
            self.remove_callback(cb)
        self._acc = torch.zeros(_N_STATS, dtype=torch.float64)
        self._step_stats = None
        self._snapshot = None
        self._step_lr = None
        self._staging = None
        self._session_start = None
        self._wall_at_start = 0.0
        self._step_grad_norm = None
        install_logprob_head(self.model)
        self.add_callback(StepMetricsCallback(self))

    # -- data --------------------------------------------------------------------------------
    def get_train_dataloader(self):
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=self.sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(loader)

    def _prepare_input(self, data):
        """Move a batch tensor to the device, keeping its dtype.

        The base ``Trainer`` casts every float tensor of a batch to the model's dtype under
        DeepSpeed (bf16), which suits float model inputs; the collator's are all integers (ids,
        masks, positions), and its float tensors feed the loss: the float64 reference log-prob
        sums (in bf16 a sum of -300 nats moves by up to 1 nat; DPO's first loss was 0.69700
        instead of log 2 under ZeRO-2), response lengths (bf16 holds integers exactly only up
        to 256) and pair weights.
        """
        if isinstance(data, torch.Tensor):
            return data.to(device=self.args.device)
        return super()._prepare_input(data)

    def _get_num_items_in_batch(self, batch_samples, device):
        units = sum(float(b["units"]) for b in batch_samples)
        units = torch.tensor(units, dtype=torch.float64, device=device)
        if self.accelerator.num_processes > 1:
            units = self.accelerator.reduce(units, reduction="sum")
        return units

    # -- loss --------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg = self.run_cfg
        token_logps = batch_logprobs(model, inputs, cfg.logprob_chunk_size)
        result = batch_objective(cfg, token_logps, inputs, denominator=num_items_in_batch)
        with torch.no_grad():
            w = inputs["weights"].double().cpu()
            acc = torch.zeros(_N_STATS, dtype=torch.float64)
            acc[_LOSS] = float(result.loss.detach())
            acc[_CHOSEN] = float((w * result.chosen_logp_per_token.double().cpu()).sum())
            if result.rejected_logp_per_token is not None:
                acc[_REJECTED] = float((w * result.rejected_logp_per_token.double().cpu()).sum())
                acc[_PREFERRED] = float((w * (result.margin.double().cpu() > 0)).sum())
            if result.reward_margin is not None:
                reward_margin = result.reward_margin.double().cpu()
                acc[_REWARD_PREFERRED] = float((w * (reward_margin > 0)).sum())
                acc[_REWARD_MARGIN] = float((w * reward_margin).sum())
            acc[_EXAMPLES] = float(w.sum())
            acc[_TOKENS] = float(inputs["n_tokens"])
            acc[_BAD] = 0.0 if math.isfinite(acc[_LOSS]) else 1.0
            self._acc += acc
        loss = result.loss.float() * self.accelerator.num_processes
        return (loss, result) if return_outputs else loss

    # -- guard and LR just before the optimizer step ------------------------------------------
    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm)
        stats = self._acc.clone()
        self._acc.zero_()
        if self.accelerator.num_processes > 1:
            stats = self.accelerator.reduce(stats.to(self.accelerator.device), reduction="sum").cpu()
        self._step_stats = stats
        step = self.state.global_step + 1
        if stats[_BAD] > 0 or not math.isfinite(float(stats[_LOSS])):
            self._fail(f"non-finite loss ({float(stats[_LOSS])}) at optimizer step {step}")
        # None under DeepSpeed before its first step (the engine clips internally)
        gn = None if grad_norm is None else float(grad_norm)
        if gn is not None and not math.isfinite(gn):
            self._fail(f"non-finite gradient norm ({gn}) at optimizer step {step}")
        self._step_grad_norm = gn
        self._step_lr = self._get_learning_rate()
        return grad_norm

    def take_snapshot(self) -> None:
        """Copy the trainable parameters before a step's first micro-batch (they change only in
        the optimizer step; under DeepSpeed that happens inside the last backward)."""
        self._snapshot = [t.detach().clone() for t in _local_params(self.model)]

    def _fail(self, what: str):
        ckpts = checkpoint_dirs(Path(self.args.output_dir))
        last = str(ckpts[-1][1]) if ckpts else "none (a rerun starts from the start model)"
        msg = (
            f"run {self.run_cfg.name!r}: {what}; run stopped, nothing saved for this step; last good checkpoint: {last}"
        )
        log.error(msg)
        raise NonFiniteError(msg)

    def update_norm(self) -> float:
        """L2 norm of the change of all trainable parameters in the last optimizer step."""
        if self._snapshot is None:
            return float("nan")
        sq = torch.zeros((), dtype=torch.float64, device=self.args.device)
        for now, before in zip(_local_params(self.model), self._snapshot):
            sq += torch.linalg.vector_norm((now.detach() - before).float()).double().pow(2).to(sq.device)
        self._snapshot = None
        if self.accelerator.num_processes > 1 and _params_are_sharded(self.model):
            sq = self.accelerator.reduce(sq, reduction="sum")
        return float(sq.sqrt())

    # -- atomic checkpoints ------------------------------------------------------------------
    def _get_output_dir(self, trial):
        if self._staging is not None:
            return str(self._staging)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        step = self.state.global_step
        root = Path(self.args.output_dir)
        staging = root / f".staging-{step}"
        final = root / f"checkpoint-{step}"
        main = self.args.should_save
        if main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self._staging = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        built = staging / f"checkpoint-{step}"
        if main:
            self.redi_state["wall_seconds"] = self.wall_seconds()
            (built / REDI_STATE).write_text(json.dumps(self.redi_state, indent=1))  # staged: renamed below
            fsync_tree(built)
        self.accelerator.wait_for_everyone()
        if main:
            if final.exists():  # re-saving a step (only after an earlier, interrupted rename)
                shutil.rmtree(final)
            os.replace(built, final)
            shutil.rmtree(staging, ignore_errors=True)
            fsync_dir(root)
            if self.run_cfg.keep_optimizer_state == "last":
                prune_resume_state(root, keep=final)
            log.info("saved checkpoint %s", final)
        self.accelerator.wait_for_everyone()

    def wall_seconds(self) -> float:
        if self._session_start is None:
            return float(self.redi_state["wall_seconds"])
        return self._wall_at_start + time.time() - self._session_start


def batch_objective(cfg, token_logps, inputs, denominator=None) -> objectives.ObjectiveResult:
    """Per-sequence sums (fp64) of a collated micro-batch -> the configured objective."""
    lengths = inputs["lengths"].double()
    seq = sequence_sums(token_logps.double(), inputs["seq_index"], lengths.shape[0])
    weights = inputs["weights"].double()
    b = weights.shape[0]
    kw = {}
    if cfg.is_pairwise:
        kw = {"rejected_logps": seq[b:], "rejected_lengths": lengths[b:]}
        if "ref_chosen" in inputs:
            kw["ref_chosen_logps"] = inputs["ref_chosen"].double()
            kw["ref_rejected_logps"] = inputs["ref_rejected"].double()
    if objectives.get(cfg.objective).token_sums:  # objectives that need per-token log-probs
        kw.update(token_logps=token_logps.double(), seq_index=inputs["seq_index"])
    for name in objectives.get(cfg.objective).row_inputs:  # numbers from the data rows
        kw[name] = inputs[name].double()
    return objectives.compute(cfg, seq[:b], lengths[:b], **kw, weights=weights, denominator=denominator)


class StepMetricsCallback(TrainerCallback):
    """Writes one metrics line per optimizer step, runs the collapse guard, schedules saves."""

    def __init__(self, trainer: RediTrainer):
        self.trainer = trainer
        cfg = trainer.run_cfg.collapse
        self.detector = CollapseDetector(cfg.window, cfg.drop)
        self._mark = None
        self.progress = None

    def prime(self, records: list[dict]) -> None:
        """Replay earlier metrics (after a resume) into the collapse detector."""
        for r in records:
            if r.get("chosen_logp_per_token") is not None and r.get("rejected_logp_per_token") is not None:
                self.detector.update(r["chosen_logp_per_token"], r["rejected_logp_per_token"])

    def on_train_begin(self, args, state, control, **kwargs):
        tr = self.trainer
        tr._session_start = time.time()
        tr._wall_at_start = float(tr.redi_state["wall_seconds"])
        self._mark = time.perf_counter()
        # one progress line per 30 s (and at every save): steps, tokens/s, ETA
        self.progress = Progress(
            f"training {tr.run_cfg.name}", state.max_steps, "steps", logger=log, start_done=state.global_step
        )

    def on_epoch_begin(self, args, state, control, **kwargs):
        tr = self.trainer
        tr.sampler.set_epoch(state.global_step // tr.sampler.steps_per_epoch)

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer.take_snapshot()

    def on_save(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()  # checkpoint time is not training time

    def on_step_end(self, args, state, control, **kwargs):
        tr = self.trainer
        cfg = tr.run_cfg
        stats = tr._step_stats
        now = time.perf_counter()
        seconds = max(now - self._mark, 1e-9)
        self._mark = now
        update_norm = tr.update_norm()
        n = max(float(stats[_EXAMPLES]), 1e-12)
        chosen = float(stats[_CHOSEN]) / n
        rejected = float(stats[_REJECTED]) / n if cfg.is_pairwise else None
        tokens = float(stats[_TOKENS])
        tr.redi_state["train_tokens"] = int(tr.redi_state["train_tokens"] + tokens)
        flag = False
        if cfg.is_pairwise:
            flag = self.detector.update(chosen, rejected)
            if flag and tr.redi_state["collapse_step"] is None:
                tr.redi_state["collapse_step"] = state.global_step
                log.warning(
                    "run %r: collapse at step %d: chosen and rejected per-token log-probs both "
                    "fell by >= %.3g nats/token over %d steps%s",
                    cfg.name,
                    state.global_step,
                    cfg.collapse.drop,
                    cfg.collapse.window,
                    " - stopping (collapse.stop)" if cfg.collapse.stop else "",
                )
                if cfg.collapse.stop:
                    control.should_training_stop = True
        record = {
            "step": state.global_step,
            "epoch": round(float(state.epoch), 6),
            "loss": float(stats[_LOSS]),
            "chosen_logp_per_token": chosen,
            "rejected_logp_per_token": rejected,
            "margin": None if rejected is None else chosen - rejected,
            # share of pairs whose chosen trace has the higher per-token log-prob (the sign of
            # SimPO's implicit reward margin; TRL's CPO/SimPO rewards/accuracies)
            "pref_accuracy": float(stats[_PREFERRED]) / n if cfg.is_pairwise else None,
            # objectives with a reference model: TRL's DPO rewards/accuracies and rewards/margins
            # (the latter in nats, i.e. divided by beta) on sequence log-ratios to the reference
            "reward_accuracy": float(stats[_REWARD_PREFERRED]) / n
            if objectives.needs_reference(cfg.objective)
            else None,
            "reward_margin": float(stats[_REWARD_MARGIN]) / n if objectives.needs_reference(cfg.objective) else None,
            "grad_norm": tr._step_grad_norm,
            "update_norm": update_norm,
            "learning_rate": tr._step_lr,
            "tokens_per_second": tokens / seconds,
            "collapse_flag": bool(flag),
        }
        if tr.args.should_save:
            with open(tr.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.progress.update(
                1,
                tokens=tokens,
                force=state.global_step in tr.save_steps_set or bool(flag),
                note="step {} loss {:.5f} chosen {:.4f} rejected {} |g| {} |dtheta| {:.3g} lr {:.3g}".format(
                    state.global_step,
                    record["loss"],
                    chosen,
                    "-" if rejected is None else f"{rejected:.4f}",
                    "-" if record["grad_norm"] is None else f"{record['grad_norm']:.3g}",
                    update_norm,
                    record["learning_rate"],
                ),
            )
        tr.log(tracking.scalars(record))  # the Trainer's report_to integrations (TensorBoard, W&B, MLflow)
        if state.global_step in tr.save_steps_set:
            control.should_save = True
        return control


# ----------------------------------------------------------------------------------------------
# helpers


def _local_params(model):
    """This process's share of each trainable parameter (whole tensors unless sharded)."""
    out = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if hasattr(p, "ds_tensor"):  # DeepSpeed ZeRO-3 partition
            out.append(p.ds_tensor)
        elif hasattr(p, "to_local"):  # FSDP2 DTensor
            out.append(p.to_local())
        else:
            out.append(p)
    return out


def _params_are_sharded(model) -> bool:
    return any(hasattr(p, "ds_tensor") or hasattr(p, "to_local") for p in model.parameters())
