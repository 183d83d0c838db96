"""DPO reference log-probs: one pass with the stage-2 start model, cached beside the run.

DPO needs ``log pi_ref(y|x)`` for every chosen and rejected response. Computing them once, before
training, means the DPO job holds one model (the paper's setup needed ZeRO-3 to hold two). The
pass uses the same tokenisation, truncation, chunked log-prob head and (on GPU) bf16 autocast as
training, and the same precision mode as the training job (``environment.precision_mode``: fp32,
fp32 weights under bf16 autocast, or bf16 weights as DeepSpeed trains), so at
step 0 the policy's log-probs equal the cached ones and the DPO loss is ``log 2``. The mode is
recorded in the file and training refuses a file of another mode.

Output parquet: ``id, ref_chosen_logp, ref_rejected_logp`` (float64 sums over response tokens),
with the truncation settings in the schema metadata (key ``redi``); training refuses a file made
with other truncation settings.
"""

from __future__ import annotations

import json
import logging

from redi.files import write_parquet_atomic

log = logging.getLogger(__name__)


def compute_reference_logps(
    model_path: str,
    pref_path: str,
    out_path: str,
    run_cfg: dict,
    threads: int = 1,
    deepspeed: bool = False,
) -> dict:
    """Write the reference parquet for ``pref_path``; returns a small summary dict.

    ``deepspeed``: the DPO training job runs under DeepSpeed (bf16 weights, no autocast, when
    the run's ``bf16`` is on); see :func:`redi.train.launch.trains_under_deepspeed`. From the
    command line: ``redi train ref-logps ... --accelerate-config zero2`` (or ``zero3``, or the
    path of a config whose ``distributed_type`` is ``DEEPSPEED``) makes such a file for a job
    started with ``accelerate launch --config_file accelerate/zero2.yaml ...`` (any number of
    processes, GPUs or CPU).

    Raises:
        ValueError: the run's objective does not use reference log-probs.
    """
    from redi.runtime import set_threads

    set_threads(threads)

    import pyarrow as pa
    import torch

    from .environment import resolve_environment

    cfg = _reference_run_config(run_cfg)
    env = resolve_environment(cfg, deepspeed=deepspeed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tokenizer, data = _load_pairs(model_path, pref_path, cfg)
    model = _load_reference_model(model_path, env, device)
    chosen, rejected = _score_pairs(model, tokenizer, data, cfg, env, device)

    n = len(data)
    meta = _reference_meta(model_path, pref_path, cfg, env, n)
    table = pa.table(
        {"id": data.ids, "ref_chosen_logp": chosen, "ref_rejected_logp": rejected}
    ).replace_schema_metadata({"redi": json.dumps(meta)})
    write_parquet_atomic(table, out_path)
    log.info("reference log-probs for %d pairs -> %s", n, out_path)
    return meta


def _reference_run_config(run_cfg: dict):
    """The run's ``RunConfig``, refusing an objective that does not use reference log-probs."""
    from . import objectives
    from .config import RunConfig

    run_cfg = dict(run_cfg)
    # only the truncation settings matter here; without an objective, the first that needs a reference
    run_cfg.setdefault("objective", next(n for n, o in objectives.OBJECTIVES.items() if o.needs_reference))
    cfg = RunConfig.from_dict(run_cfg)
    if not objectives.needs_reference(cfg.objective):
        raise ValueError(f"reference log-probs are for objectives that need them; objective is {cfg.objective!r}")
    return cfg


def _load_pairs(model_path: str, pref_path: str, cfg):
    """The start model's tokenizer (with a pad token) and the tokenized preference pairs."""
    from transformers import AutoTokenizer

    # the pipeline's own model directory: remote code stays off unless the student was prepared
    # with student.trust_remote_code (recorded in its tokenizer; see docs/robustness.md)
    from redi.model.base import trusts_remote_code

    from .batching import load_tokenized

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trusts_remote_code(model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, load_tokenized(pref_path, tokenizer, model_path, cfg)


def _load_reference_model(model_path: str, env, device):
    """The start model in the training job's weight precision, on ``device``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    from redi.model.base import trusts_remote_code

    weights = torch.bfloat16 if env.precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=weights, attn_implementation=env.attn_implementation,
        trust_remote_code=trusts_remote_code(model_path),
    ).to(device)
    model.eval()
    return model


def _score_pairs(model, tokenizer, data, cfg, env, device):
    """Summed response log-probs of every chosen and rejected response, longest pairs first."""
    import numpy as np
    import torch

    from .batching import Collator
    from .logprobs import batch_logprobs, sequence_sums

    collate = Collator(data, tokenizer.pad_token_id, env.padding_free, sft_units=False)
    n = len(data)
    order = np.argsort(-data.lengths(), kind="stable")  # longest first: OOM shows up at once
    chosen = np.zeros(n, dtype=np.float64)
    rejected = np.zeros(n, dtype=np.float64)
    bs = cfg.per_device_batch_size
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=env.precision == "bf16-autocast"):
        for s in range(0, n, bs):
            idx = [int(i) for i in order[s : s + bs]]
            batch = collate([{"index": i, "weight": 1.0} for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            tok = batch_logprobs(model, batch, cfg.logprob_chunk_size)
            seq = sequence_sums(tok.double(), batch["seq_index"], 2 * len(idx)).cpu().numpy()
            chosen[idx] = seq[: len(idx)]
            rejected[idx] = seq[len(idx) :]
            if (s // bs) % 50 == 0:
                log.info("reference log-probs: %d / %d pairs", min(s + bs, n), n)
    return chosen, rejected


def _reference_meta(model_path: str, pref_path: str, cfg, env, n: int) -> dict:
    """The settings recorded in the parquet's schema metadata (and returned as the summary)."""
    return {
        "model_path": str(model_path),
        "data_path": str(pref_path),
        "max_prompt_length": cfg.max_prompt_length,
        "max_response_length": cfg.max_response_length,
        "bf16": env.bf16,
        "precision": env.precision,
        "logprob_chunk_size": cfg.logprob_chunk_size,
        "n": n,
    }
