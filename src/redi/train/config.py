"""One training run's configuration: every knob, its default and what it does.

The workflow config gives each run as a plain dict (``runs: [{name: ..., objective: ...}]``);
:meth:`RunConfig.from_dict` fills defaults and rejects unknown keys, so a typo fails the job
instead of silently training with a default. Defaults marked *paper* are the REDI paper's
settings (arXiv 2505.24850, "Training configuration"; values in ``redi.paper``); ``None``
defaults are resolved per objective from the objective registry (``redi.train.objectives``) by
:meth:`RunConfig.resolved`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from redi import paper
from redi.data.student_negatives import NEGATIVES

from . import objectives


@dataclass
class CollapseConfig:
    """Collapse guard: flag (and optionally stop) a sharp simultaneous log-prob drop.

    At step ``t`` the guard compares the mean chosen and rejected per-token log-probs of the last
    ``window`` steps with those of the ``window`` steps before them; if *both* fell by at least
    ``drop`` nats/token, ``collapse_flag`` is set for step ``t``. The first flagged step is the
    run's ``collapse_step``. Needs ``2 * window`` steps of history; pair objectives only.
    """

    window: int = field(
        default=10,
        metadata={"help": "Steps per averaging window: the last `window` steps are compared with the `window` before."},
    )
    drop: float = field(
        default=0.5,
        metadata={"help": "Nats/token by which BOTH the chosen and the rejected mean per-token log-probs must fall, "
                          "window over window, to flag a collapse."},
    )
    stop: bool = field(
        default=False,
        metadata={"help": "Stop the run at the first flagged step (its summary then says `collapsed: true`)."},
    )

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise ValueError(f"collapse.window must be >= 1, got {self.window}")
        if float(self.drop) <= 0:
            raise ValueError(f"collapse.drop must be > 0, got {self.drop}")
        self.window, self.drop, self.stop = int(self.window), float(self.drop), bool(self.stop)


@dataclass
class RunConfig:
    """A training run. Every field is a key of the workflow's ``run`` dict.

    Each field's ``help`` is the one home of its documentation: ``python -m redi.config_docs``
    writes it into ``config/schema.yaml``'s descriptions and ``config/README.md``'s table.
    """

    name: str = field(
        default="",
        metadata={"help": "Run name (`results/train/{name}/`); a stage-2 run's default is its objective and "
                          "parameters, e.g. `redi-a0.8-lr1e-6`."},
    )
    objective: str = field(
        default="",
        metadata={"help": "Required: the loss, a name in `redi.train.objectives.OBJECTIVES` (SFT runs: `sft`; "
                          "stage-2 runs: a pair objective)."},
    )
    start: str | None = field(
        default=None,
        metadata={"help": "Stage 2: the SFT run whose final model this run starts from (default "
                          "`training.stage2.start`, else the first SFT run)."},
    )
    negatives: str | None = field(
        default=None,
        metadata={"help": "Stage 2: where this run's rejected traces come from: `teacher` (the paper's pairs), "
                          "`student` (the start model's own incorrect samples, paired with the teacher's chosen "
                          "trace) or `both`; default `training.stage2.negatives` (redi.data.student_negatives). "
                          "Runs with different sources compare in one report."},
    )
    # --- objective parameters ---
    alpha: float = field(
        default=0.8,
        metadata={"help": "REDI: weight of the rejected term, in [0, 1]; 0 = SFT on the chosen traces, 1 = symmetric."},
    )
    beta: float | None = field(
        default=None,
        metadata={"help": "DPO / SimPO temperature beta; default per objective (`redi.paper.BETA`)."},
    )
    gamma: float = field(
        default=paper.SIMPO_GAMMA,
        metadata={"help": "SimPO target reward margin gamma (paper 1.0); lists of SimPO's beta and gamma sweep as "
                          "pairs, as the paper pairs them."},
    )
    neg_weighting_gamma: float | None = field(
        default=None,
        metadata={"help": "`redi_negw`: the rejected term is multiplied by `exp(gamma * l_l)` (l_l: mean per-token "
                          "log-prob of the rejected trace), not detached, as the paper's released trainer's "
                          "`use_neg_weighting` / `neg_weighting_gamma`; default per objective (1.0)."},
    )
    chosen_coef: float = field(
        default=1.0,
        metadata={"help": "`redi` / `redi_negw`: weight of the chosen term (the paper code's "
                          "`reinforce_chosen_coef`; 1 in the paper)."},
    )
    # --- optimisation (AdamW + linear warm-up / linear decay to 0) ---
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate (linear warm-up, then linear decay to 0); default per objective, the "
                          "paper's (symmetric REDI, alpha = 1, used 2e-7: set it explicitly)."},
    )
    epochs: int | None = field(
        default=None,
        metadata={"help": "Passes over the data; default per objective, the paper's."},
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={"help": "Sequences (SFT) or pairs (stage 2) per optimizer step over all GPUs; default per "
                          "objective, the paper's."},
    )
    per_device_batch_size: int = field(
        default=1,
        metadata={"help": "Examples per forward/backward on one process; gradient accumulation fills the global "
                          "batch."},
    )
    warmup_ratio: float = field(
        default=0.1,
        metadata={"help": "Share of the steps with linear warm-up from 0, rounded up (paper 0.1)."},
    )
    weight_decay: float = field(
        default=1e-4,
        metadata={"help": "AdamW decoupled weight decay, not on biases and norm weights (paper 1e-4)."},
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1 (paper 0.9)."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2 (paper 0.999)."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon (paper 1e-8)."})
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Gradient clipping by global norm (the transformers/TRL default the paper ran with); "
                          "0 = off."},
    )
    max_steps: int | None = field(
        default=None,
        metadata={"help": "Run exactly N optimizer steps, overriding `epochs` (null = full epochs)."},
    )
    seed: int = field(default=42, metadata={"help": "Data order and initial RNG state."})
    # --- sequence lengths (tokens, with the student's chat template) ---
    max_length: int = field(
        default=32768,
        metadata={"help": "SFT: cap on prompt + response tokens (the student's chat template), cut from the right."},
    )
    max_prompt_length: int = field(
        default=800,
        metadata={"help": "Stage 2: cap on prompt tokens; a longer prompt keeps its last tokens."},
    )
    max_response_length: int = field(
        default=19000,
        metadata={"help": "Stage 2: cap on each response's tokens, cut from the right."},
    )
    # --- checkpoints ---
    save_steps: int = field(
        default=200,
        metadata={"help": "Save a resumable checkpoint every N optimizer steps (paper 200); every checkpoint is "
                          "evaluated."},
    )
    save_each_epoch: bool | None = field(
        default=None,
        metadata={"help": "Also save at every epoch end (the accuracy-per-epoch figure); default per objective."},
    )
    keep_optimizer_state: str = field(
        default="last",
        metadata={"help": "`last`: older checkpoints keep weights only (saves disk at 1.5B scale); `all`: every "
                          "checkpoint resumable."},
    )
    save: bool = field(
        default=True,
        metadata={"help": "Write checkpoints and the final model; `false` writes only `metrics.jsonl` and "
                          "`summary.json` (measurement runs calling `redi.train.run.train`, such as "
                          "`bench/gpu_check`; the workflow needs the model, so it must stay true there)."},
    )
    # --- memory / speed ---
    logprob_chunk_size: int = field(
        default=512,
        metadata={"help": "Positions per log-softmax chunk of the memory-bounded log-prob head."},
    )
    gradient_checkpointing: bool | str = field(
        default="auto",
        metadata={"help": "Recompute activations in backward: `auto` (on with CUDA), `true`, `false`."},
    )
    bf16: bool | str = field(
        default="auto",
        metadata={"help": "bf16 autocast: `auto` (on a GPU that supports bf16), `true`, `false`."},
    )
    padding_free: bool | str = field(
        default="auto",
        metadata={"help": "Pack sequences with `position_ids` (FlashAttention varlen): `auto` (on a GPU with "
                          "flash-attn), `true`, `false` (padded, length-grouped batches)."},
    )
    attn_implementation: str = field(
        default="auto",
        metadata={"help": "`auto` (`flash_attention_2` if installed on CUDA, else `sdpa`), `sdpa`, `eager` or "
                          "`flash_attention_2`."},
    )
    collapse: CollapseConfig = field(
        default_factory=CollapseConfig,
        metadata={"help": "Collapse guard: flag (and optionally stop) a sharp simultaneous log-prob drop."},
    )

    # ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, run: dict[str, Any] | RunConfig) -> RunConfig:
        if isinstance(run, RunConfig):
            return run
        if not isinstance(run, dict):
            raise TypeError(f"run config must be a dict, got {type(run).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(run) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) in run config {run.get('name', '')!r}: {unknown}; "
                f"known keys: {sorted(known)}"
            )
        values = dict(run)
        collapse = values.pop("collapse", None) or {}
        if isinstance(collapse, CollapseConfig):
            collapse_cfg = collapse
        else:
            bad = sorted(set(collapse) - {f.name for f in dataclasses.fields(CollapseConfig)})
            if bad:
                raise ValueError(f"unknown key(s) in run config collapse: {bad}")
            collapse_cfg = CollapseConfig(**collapse)
        # YAML gives None for empty keys: treat as "use the default".
        values = {k: v for k, v in values.items() if v is not None}
        return cls(**values, collapse=collapse_cfg).resolved()

    def resolved(self) -> RunConfig:
        """Fill per-objective defaults and validate. Idempotent."""
        if self.objective not in objectives.OBJECTIVES:
            raise ValueError(
                f"run {self.name!r}: objective must be one of {objectives.names()}, got {self.objective!r}"
            )
        obj = objectives.get(self.objective)
        c = dataclasses.replace(self)
        for key, value in obj.defaults.items():
            if getattr(c, key) is None:
                setattr(c, key, value)
        objectives.PARAMETERS["alpha"].check(c.name, c.alpha)  # a field of every run
        for key in obj.params:
            if getattr(c, key) is None:
                raise ValueError(f"run {c.name!r}: {obj.name} needs {key}")
            objectives.PARAMETERS[key].check(c.name, getattr(c, key))
        for key in ("epochs", "global_batch_size", "per_device_batch_size", "max_length",
                    "max_prompt_length", "max_response_length"):
            if int(getattr(c, key)) < 1:
                raise ValueError(f"run {c.name!r}: {key} must be >= 1, got {getattr(c, key)}")
        if c.max_steps is not None and int(c.max_steps) < 1:
            raise ValueError(f"run {c.name!r}: max_steps must be >= 1 or null, got {c.max_steps}")
        if int(c.logprob_chunk_size) < 0:
            raise ValueError(f"run {c.name!r}: logprob_chunk_size must be >= 0")
        if not 0.0 <= float(c.warmup_ratio) < 1.0:
            raise ValueError(f"run {c.name!r}: warmup_ratio must be in [0, 1), got {c.warmup_ratio}")
        if c.keep_optimizer_state not in ("last", "all"):
            raise ValueError(f"run {c.name!r}: keep_optimizer_state must be 'last' or 'all'")
        if c.negatives is not None and c.negatives not in NEGATIVES:
            raise ValueError(f"run {c.name!r}: negatives must be one of {NEGATIVES}, got {c.negatives!r}")
        if not isinstance(c.save, bool):
            raise ValueError(f"run {c.name!r}: save must be true or false, got {c.save!r}")
        for key in ("gradient_checkpointing", "bf16", "padding_free"):
            v = getattr(c, key)
            if isinstance(v, str):
                v = {"true": True, "false": False, "auto": "auto"}.get(v.lower())
                if v is None:
                    raise ValueError(f"run {c.name!r}: {key} must be true, false or auto")
                setattr(c, key, v)
        for key in ("epochs", "global_batch_size", "per_device_batch_size", "max_length",
                    "max_prompt_length", "max_response_length", "save_steps", "seed",
                    "logprob_chunk_size"):
            setattr(c, key, int(getattr(c, key)))
        for key in ("alpha", "gamma", "chosen_coef", "learning_rate", "warmup_ratio", "weight_decay",
                    "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm"):
            setattr(c, key, float(getattr(c, key)))
        for key in ("beta", "neg_weighting_gamma"):
            if getattr(c, key) is not None:
                setattr(c, key, float(getattr(c, key)))
        if c.max_steps is not None:
            c.max_steps = int(c.max_steps)
        return c

    @property
    def is_pairwise(self) -> bool:
        return objectives.get(self.objective).pairwise

    def gradient_accumulation(self, world_size: int) -> int:
        """``global_batch_size / (per_device_batch_size * world_size)``; must divide exactly."""
        per_step = self.per_device_batch_size * int(world_size)
        if self.global_batch_size % per_step:
            raise ValueError(
                f"run {self.name!r}: global_batch_size={self.global_batch_size} is not a multiple "
                f"of per_device_batch_size={self.per_device_batch_size} x world_size={world_size}"
            )
        return self.global_batch_size // per_step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
