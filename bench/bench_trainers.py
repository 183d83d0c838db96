"""Trainer step throughput on the tiny student: our trainer against TRL's, side by side.

Both sides get the same model (the demo's tiny Qwen2 student, built by
``redi.model.student.build_tiny_student`` from ``config/config.yaml``'s ``student.tiny`` on a
synthetic corpus), the same examples with the *same token ids* (our tokenisation, handed to TRL
pre-tokenised: ``input_ids`` + ``completion_mask`` for ``SFTTrainer``, ``prompt_ids`` /
``chosen_ids`` / ``rejected_ids`` for ``DPOTrainer``), the same micro-batch, gradient accumulation,
optimiser (``adamw_torch``), fp32, no gradient checkpointing, ``sdpa`` attention and one torch
thread. Each side is driven through its real ``Trainer.train()`` loop for ``steps`` optimizer
steps; a callback stamps the end of every step and a forward pre-hook on the policy model counts
the tokens it sees (non-padding, and padded). Throughput = tokens of steps ``warmup+1..steps`` /
their wall time. Each run is a fresh process; ours and TRL's alternate (A, B, A, B, ...).

Comparisons (``PAIRS``):

* ``sft``: our SFT step vs ``SFTTrainer`` (completion-only loss).
* ``redi_vs_dpo_precomputed``: our REDI step vs ``DPOTrainer(precompute_ref_log_probs=True)``:
  TRL 1.16 has no reference-free DPO loss; with precomputed reference log-probs its step is the
  closest to a reference-free one (no reference forward inside the step).
* ``redi_vs_dpo_ref_model``: our REDI step vs ``DPOTrainer`` with a live reference model (what
  DPO costs in TRL by default, and what REDI avoids).
* ``dpo_vs_dpo_precomputed``: like for like: our DPO (cached reference log-probs) vs TRL's DPO
  with precomputed reference log-probs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchlib import REPO, interleaved, median, ratio, rnd, run_worker

PAIRS = {
    "sft": (("ours", "sft"), ("trl", "sft")),
    "redi_vs_dpo_precomputed": (("ours", "redi"), ("trl", "dpo_precomputed")),
    "redi_vs_dpo_ref_model": (("ours", "redi"), ("trl", "dpo_ref_model")),
    "dpo_vs_dpo_precomputed": (("ours", "dpo"), ("trl", "dpo_precomputed")),
}


# ---------------------------------------------------------------------------------------------
# setup (in a worker process): corpus, student, curated data, DPO reference log-probs


def _demo_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def prepare(workdir: str, n_sft: int, n_pairs: int) -> dict:
    """Write ``student/``, ``sft.jsonl``, ``pref.jsonl``, ``ref_logps.parquet`` and
    ``settings.json`` under ``workdir``."""
    from benchlib import set_threads

    set_threads(1)
    import pandas as pd

    from redi.data.synthetic import generate
    from redi.model.student import build_tiny_student
    from redi.prompts import user_content
    from redi.train.reference import compute_reference_logps

    cfg = _demo_config()
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    syn = dict(cfg["corpus"]["synthetic"], malformed_rows=0)
    rows, _ = generate(syn)
    sft, pref = [], []
    for i, r in enumerate(rows):
        if str(r.get("problem_is_valid", "")).lower() != "yes" or r["source"] == "cn_k12":
            continue
        labels = r["correctness"]["math_verify_reparsed_answer"]
        gens = r["generations"]
        complete = [("</think>" in g) for g in gens]
        good = [g for g, ok, c in zip(gens, labels, complete) if ok and c]
        bad = [g for g, ok, c in zip(gens, labels, complete) if not ok and c]
        user = {"role": "user", "content": user_content(r["problem"])}
        base = {"id": f"ex{i:05d}", "row_index": i, "source": r["source"]}
        if good and len(sft) < n_sft:
            sft.append({**base, "messages": [user, {"role": "assistant", "content": good[0]}]})
        if good and bad and len(pref) < n_pairs:
            pref.append(
                {
                    **base,
                    "prompt": [user],
                    "chosen": [{"role": "assistant", "content": good[0]}],
                    "rejected": [{"role": "assistant", "content": bad[0]}],
                }
            )
    if len(sft) < n_sft or len(pref) < n_pairs:
        raise RuntimeError(f"synthetic corpus too small: {len(sft)} SFT rows, {len(pref)} pairs")
    for name, recs in (("sft.jsonl", sft), ("pref.jsonl", pref)):
        with open(work / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)
    canonical = work / "canonical.parquet"
    pd.DataFrame(
        {"problem": [r["problem"] for r in rows], "generations": [list(r["generations"]) for r in rows]}
    ).to_parquet(canonical)
    student = build_tiny_student(str(canonical), str(work / "student"), cfg["student"]["tiny"])
    tr = cfg["training"]
    settings = {
        "per_device_batch_size": tr["defaults"]["per_device_batch_size"],
        "sft": {
            "global_batch_size": tr["sft"]["defaults"]["global_batch_size"],
            "max_length": tr["sft"]["defaults"]["max_length"],
            "learning_rate": 1e-3,
        },
        "pairs": {
            "global_batch_size": tr["stage2"]["defaults"]["global_batch_size"],
            "max_prompt_length": tr["stage2"]["defaults"]["max_prompt_length"],
            "max_response_length": tr["stage2"]["defaults"]["max_response_length"],
            "learning_rate": 1e-4,
            "alpha": 0.8,
            "beta": 0.1,
        },
        "student": student,
    }
    dpo_run = _run_dict("dpo", settings, steps=1)
    compute_reference_logps(
        str(work / "student"), str(work / "pref.jsonl"), str(work / "ref_logps.parquet"), dpo_run, threads=1
    )
    (work / "settings.json").write_text(json.dumps(settings, indent=1))
    return {"sft_examples": len(sft), "pairs": len(pref), "student": student}


def _run_dict(objective: str, settings: dict, steps: int) -> dict:
    pairwise = objective != "sft"
    s = settings["pairs" if pairwise else "sft"]
    run = {
        "name": f"bench-{objective}",
        "objective": objective,
        "per_device_batch_size": s.get("per_device_batch_size", settings["per_device_batch_size"]),
        "global_batch_size": s["global_batch_size"],
        "learning_rate": s["learning_rate"],
        "max_steps": steps,
        "save_steps": 0,
        "save_each_epoch": False,
        "save": False,  # a measurement: no checkpoint, no model
        "warmup_ratio": 0.1,
        "weight_decay": 1e-4,
        "seed": 42,
        "bf16": False,
        "gradient_checkpointing": False,
        "padding_free": False,
        "attn_implementation": "sdpa",
    }
    if pairwise:
        run.update(max_prompt_length=s["max_prompt_length"], max_response_length=s["max_response_length"])
        from redi.train import objectives

        run.update({p: s[p] for p in objectives.get(objective).params})  # the registry's parameters
    else:
        run["max_length"] = s["max_length"]
    return run


# ---------------------------------------------------------------------------------------------
# measurement (in a worker process)


class _Meter:
    """Forward pre-hook on the policy (tokens seen) + step-end stamps (a TrainerCallback).

    Per forward: ``padded`` = positions computed, ``real`` = non-padding tokens, ``sq`` = sum of
    squared sequence lengths (for the attention FLOPs; sequences are the rows of a padded batch,
    or the ``position_ids`` restarts of a packed one).
    """

    def __init__(self):
        self.real = 0
        self.padded = 0
        self.sq = 0
        self.forwards = 0
        self.stamps: dict[int, tuple[float, int, int, int]] = {}

    def hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return None
        mask = kwargs.get("attention_mask")
        pos = kwargs.get("position_ids")
        self.padded += int(ids.numel())
        if mask is not None and mask.dim() == 2:
            lens = mask.sum(-1).tolist()
        elif pos is not None and ids.shape[0] == 1:
            flat = pos.reshape(-1)
            starts = (flat == 0).nonzero().reshape(-1).tolist() + [flat.numel()]
            lens = [b - a for a, b in zip(starts[:-1], starts[1:])] or [flat.numel()]
        else:
            lens = [ids.shape[-1]] * ids.shape[0]
        self.real += int(sum(lens))
        self.sq += int(sum(n * n for n in lens))
        self.forwards += 1
        return None

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        def stamp():
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
            except Exception:  # noqa: BLE001
                pass
            return (time.perf_counter(), meter.real, meter.padded, meter.sq)

        class StepStamp(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                meter.stamps[0] = stamp()

            def on_step_end(self, args, state, control, **kw):
                meter.stamps[state.global_step] = stamp()

        return StepStamp()

    def summary(self, warmup: int) -> dict:
        last = max(self.stamps)
        warmup = min(warmup, last - 1) if last > 0 else 0
        t0, r0, p0, q0 = self.stamps[warmup]
        t1, r1, p1, q1 = self.stamps[last]
        secs = max(t1 - t0, 1e-9)
        step_times = [self.stamps[s][0] - self.stamps[s - 1][0] for s in range(warmup + 1, last + 1)]
        return {
            "steps_timed": last - warmup,
            "seconds": rnd(secs, 4),
            "tokens": r1 - r0,
            "padded_tokens": p1 - p0,
            "sum_seq_len_sq": q1 - q0,
            "tokens_per_s": rnd((r1 - r0) / secs, 1),
            "padded_tokens_per_s": rnd((p1 - p0) / secs, 1),
            "padding_fraction": rnd(1 - (r1 - r0) / max(p1 - p0, 1), 4),
            "step_seconds_median": rnd(median(step_times), 4),
            "forwards_per_step": rnd(self.forwards / max(last, 1), 2),
        }


def measure(
    impl: str,
    variant: str,
    workdir: str,
    steps: int,
    warmup: int,
    overrides: dict | None = None,
    liger: bool = False,
    out_dir: str | None = None,
) -> dict:
    """Train ``steps`` optimizer steps with ``impl`` ("ours" / "trl") and ``variant`` (our
    objective, or "sft" / "dpo_precomputed" / "dpo_ref_model" for TRL) in this fresh process.

    ``workdir/settings.json`` gives the batch settings and, for the GPU suite, ``model_dir``,
    ``run_overrides`` (our RunConfig keys) and ``trl_args`` (TRL config keys); ``overrides`` are
    this variant's own (our RunConfig keys, or TRL config keys for TRL). ``liger`` patches Qwen2's
    RMSNorm / RoPE / SwiGLU with Liger's Triton kernels (no fused cross-entropy: our loss needs
    per-token log-probs). ``out_dir``: the run's folder, made and removed by the caller (a
    worker killed at its timeout cannot remove its own); default a temporary folder."""
    import contextlib

    from benchlib import set_threads

    work = Path(workdir)
    settings = json.loads((work / "settings.json").read_text())
    set_threads(int(settings.get("threads", 1)))
    import tempfile

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if liger:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2

        apply_liger_kernel_to_qwen2(
            rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
        )
    meter = _Meter()
    error = None
    place = (
        contextlib.nullcontext(out_dir)
        if out_dir
        else tempfile.TemporaryDirectory(prefix=f"bench-{impl}-{variant}-", dir=settings.get("scratch", work))
    )
    with place as out:
        try:
            if impl == "ours":
                _train_ours(variant, work, settings, steps, out, meter, overrides or {})
            else:
                _train_trl(variant, work, settings, steps, out, meter, overrides or {})
        except torch.cuda.OutOfMemoryError as exc:
            error = f"CUDA out of memory: {str(exc).splitlines()[0][:300]}"
        except RuntimeError as exc:
            if "out of memory" not in str(exc).lower():
                raise
            error = f"out of memory: {str(exc).splitlines()[0][:300]}"
    res = {
        "impl": impl,
        "variant": variant,
        "overrides": overrides or {},
        "liger": liger,
        "steps": steps,
        "warmup": warmup,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        res["cuda_peak_allocated_gib"] = rnd(torch.cuda.max_memory_allocated() / 2**30, 3)
        res["cuda_peak_reserved_gib"] = rnd(torch.cuda.max_memory_reserved() / 2**30, 3)
    if error:
        res.update(oom=True, error=error)
        return res
    res.update(meter.summary(warmup))
    return res


def _model_dir(work: Path, settings: dict) -> str:
    return str(settings.get("model_dir") or (work / "student"))


def _train_ours(objective, work: Path, settings: dict, steps: int, out: str, meter: _Meter, overrides: dict) -> None:
    import logging

    import redi.train.trainer as trainer_mod
    from redi.train import objectives
    from redi.train.run import train

    logging.getLogger("redi").setLevel(logging.WARNING)
    base = trainer_mod.RediTrainer

    class Metered(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model.register_forward_pre_hook(meter.hook, with_kwargs=True)
            self.add_callback(meter.callback())

    trainer_mod.RediTrainer = Metered  # run.train imports it from the module at call time
    try:
        data = work / ("sft.jsonl" if objective == "sft" else "pref.jsonl")
        ref = str(work / "ref_logps.parquet") if objectives.needs_reference(objective) else None
        run = {**_run_dict(objective, settings, steps), **settings.get("run_overrides", {}), **overrides}
        train(
            run, _model_dir(work, settings), str(data), out, ref_logps_path=ref, threads=int(settings.get("threads", 1))
        )
    finally:
        trainer_mod.RediTrainer = base


def _tokenized(objective: str, work: Path, settings: dict, steps: int):
    from transformers import AutoTokenizer

    from redi.train.batching import load_tokenized
    from redi.train.config import RunConfig

    tok = AutoTokenizer.from_pretrained(_model_dir(work, settings))
    cfg = RunConfig.from_dict(_run_dict(objective, settings, steps))
    data = work / ("sft.jsonl" if objective == "sft" else "pref.jsonl")
    return tok, load_tokenized(str(data), tok, _model_dir(work, settings), cfg)


def _train_trl(variant: str, work: Path, settings: dict, steps: int, out: str, meter: _Meter, overrides: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    trl_args = dict(settings.get("trl_args", {}))
    attn = trl_args.pop("attn_implementation", "sdpa")
    common = _trl_common_args(out, steps, cuda)
    common.update(trl_args)
    common.update(overrides)

    def load_model():
        # fp32 master weights (+ bf16 autocast where bf16=True), exactly as our trainer loads them
        return AutoModelForCausalLM.from_pretrained(
            _model_dir(work, settings), dtype=torch.float32, attn_implementation=attn
        )

    if variant == "sft":
        trainer = _trl_sft_trainer(work, settings, steps, common, load_model)
    else:
        trainer = _trl_dpo_trainer(variant, work, settings, steps, out, common, load_model)
    trainer.model.register_forward_pre_hook(meter.hook, with_kwargs=True)
    trainer.add_callback(meter.callback())
    trainer.train()


def _trl_common_args(out: str, steps: int, cuda: bool) -> dict:
    """The TRL training arguments both trainers share (before the settings' trl_args and the overrides)."""
    return dict(
        output_dir=out,
        max_steps=steps,
        lr_scheduler_type="linear",
        warmup_steps=0.1,
        weight_decay=1e-4,
        optim="adamw_torch_fused" if cuda else "adamw_torch",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=42,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


def _trl_sft_trainer(work: Path, settings: dict, steps: int, common: dict, load_model):
    """TRL's SFTTrainer on our tokenisation, loss on the completion tokens only."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    s = settings["sft"]
    pb = s.get("per_device_batch_size", settings["per_device_batch_size"])
    tok, data = _tokenized("sft", work, settings, steps)
    rows = [
        {"input_ids": [int(x) for x in p] + [int(x) for x in c], "completion_mask": [0] * len(p) + [1] * len(c)}
        for p, c in zip(data.prompts, data.chosen)
    ]
    common.setdefault("padding_free", False)
    args = SFTConfig(
        **common,
        per_device_train_batch_size=pb,
        gradient_accumulation_steps=s["global_batch_size"] // pb,
        learning_rate=s["learning_rate"],
        max_length=s["max_length"],
        completion_only_loss=True,
        packing=False,
    )
    return SFTTrainer(model=load_model(), args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)


def _trl_dpo_trainer(variant: str, work: Path, settings: dict, steps: int, out: str, common: dict, load_model):
    """TRL's DPOTrainer on our tokenisation, with a reference model or (``dpo_precomputed``) precomputed log-probs."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """Takes prompt_ids / chosen_ids / rejected_ids as given (our tokenisation)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    s = settings["pairs"]
    pb = s.get("per_device_batch_size", settings["per_device_batch_size"])
    tok, data = _tokenized("dpo", work, settings, steps)
    rows = [
        {"prompt_ids": [int(x) for x in p], "chosen_ids": [int(x) for x in c], "rejected_ids": [int(x) for x in r]}
        for p, c, r in zip(data.prompts, data.chosen, data.rejected)
    ]
    precompute = variant == "dpo_precomputed"
    common.pop("padding_free", None)  # TRL 1.16 DPO: disabled (warns, pads)
    args = DPOConfig(
        **common,
        per_device_train_batch_size=pb,
        gradient_accumulation_steps=s["global_batch_size"] // pb,
        learning_rate=s["learning_rate"],
        beta=s["beta"],
        loss_type=["sigmoid"],
        max_length=None,
        precompute_ref_log_probs=precompute,
        precompute_ref_batch_size=pb,
    )
    ds = Dataset.from_list(rows)
    if precompute:  # TRL caches the precomputed log-probs beside an on-disk dataset
        from datasets import load_from_disk

        ds.save_to_disk(os.path.join(out, "ds"))
        ds = load_from_disk(os.path.join(out, "ds"))
    return PretokenizedDPOTrainer(
        model=load_model(),
        ref_model=None if precompute else load_model(),
        args=args,
        train_dataset=ds,
        processing_class=tok,
    )


# ---------------------------------------------------------------------------------------------
# suite entry (parent process)


def run(workdir: str, quick: bool, repeats: int, log=print, only_pairs=None) -> dict:
    steps, warmup = (4, 2) if quick else (12, 2)
    s_cfg = _demo_config()["training"]
    g_sft = s_cfg["sft"]["defaults"]["global_batch_size"]
    g_pair = s_cfg["stage2"]["defaults"]["global_batch_size"]
    # exactly one epoch: both trainers see the same set of examples (in their own orders)
    n_sft, n_pairs = steps * g_sft, steps * g_pair
    log(f"  preparing tiny student and data ({n_sft} SFT rows, {n_pairs} pairs) ...")
    prep = run_worker("bench_trainers:prepare", {"workdir": workdir, "n_sft": n_sft, "n_pairs": n_pairs})
    if "error" in prep:
        return {"error": "setup failed", "setup": prep}
    settings = json.loads((Path(workdir) / "settings.json").read_text())

    cache: dict = {}

    def call(impl, variant):
        def f():
            return run_worker(
                "bench_trainers:measure",
                {"impl": impl, "variant": variant, "workdir": workdir, "steps": steps, "warmup": warmup},
                timeout=1800,
            )

        return f

    results = {}
    for name, (a, b) in PAIRS.items():
        if only_pairs and name not in only_pairs:
            continue
        log(f"  {name}: {a[0]} {a[1]} vs {b[0]} {b[1]}, {repeats} interleaved repeats")
        runs = interleaved({f"{a[0]}_{a[1]}": call(*a), f"{b[0]}_{b[1]}": call(*b)}, repeats, log)
        ka, kb = f"{a[0]}_{a[1]}", f"{b[0]}_{b[1]}"
        for k in (ka, kb):
            cache.setdefault(k, []).extend(runs[k])
        tps_a = [r.get("tokens_per_s") for r in runs[ka]]
        tps_b = [r.get("tokens_per_s") for r in runs[kb]]
        per_repeat = [ratio(x, y) for x, y in zip(tps_a, tps_b)]
        results[name] = {
            "ours": ka,
            "trl": kb,
            "ours_tokens_per_s_median": rnd(median(tps_a), 1),
            "trl_tokens_per_s_median": rnd(median(tps_b), 1),
            "ratio_ours_over_trl": rnd(median(per_repeat), 3),
            "ratio_per_repeat": per_repeat,
            "ours_padded_tokens_per_s_median": rnd(median([r.get("padded_tokens_per_s") for r in runs[ka]]), 1),
            "trl_padded_tokens_per_s_median": rnd(median([r.get("padded_tokens_per_s") for r in runs[kb]]), 1),
            "ours_padding_fraction": rnd(median([r.get("padding_fraction") for r in runs[ka]]), 3),
            "trl_padding_fraction": rnd(median([r.get("padding_fraction") for r in runs[kb]]), 3),
            "runs": runs,
        }
    return {
        "setup": prep,
        "settings": settings,
        "steps": steps,
        "warmup_steps": warmup,
        "repeats": repeats,
        "threads": 1,
        "comparisons": results,
    }
