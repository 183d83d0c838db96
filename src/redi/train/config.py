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

from . import objectives


@dataclass
class CollapseConfig:
    """Collapse guard: flag (and optionally stop) a sharp simultaneous log-prob drop.

    At step ``t`` the guard compares the mean chosen and rejected per-token log-probs of the last
    ``window`` steps with those of the ``window`` steps before them; if *both* fell by at least
    ``drop`` nats/token, ``collapse_flag`` is set for step ``t``. The first flagged step is the
    run's ``collapse_step``. Needs ``2 * window`` steps of history; pair objectives only.
    """

    window: int = 10  # steps per averaging window
    drop: float = 0.5  # nats/token both chosen and rejected must fall by, window over window
    stop: bool = False  # stop the run at the first flagged step (summary: collapsed=true)

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise ValueError(f"collapse.window must be >= 1, got {self.window}")
        if float(self.drop) <= 0:
            raise ValueError(f"collapse.drop must be > 0, got {self.drop}")
        self.window, self.drop, self.stop = int(self.window), float(self.drop), bool(self.stop)


@dataclass
class RunConfig:
    """A training run. Every field is a key of the workflow's ``run`` dict."""

    name: str = ""  # run name (results/train/{name}/); defaults to the output folder's name
    objective: str = ""  # required: a key of redi.train.objectives.OBJECTIVES
    start: str | None = None  # workflow: the SFT run a stage-2 run starts from (recorded only;
    #   the start model itself is train()'s model_path)
    # --- objective parameters ---
    alpha: float = 0.8  # redi: weight of the rejected term, in [0, 1]; 0 = SFT on chosen, 1 = symmetric
    beta: float | None = None  # dpo / simpo temperature; per objective: paper.BETA (dpo 0.001, simpo 2.0)
    gamma: float = paper.SIMPO_GAMMA  # simpo target reward margin (paper: 1.0)
    neg_weighting_gamma: float | None = None  # redi_negw: rejected term x exp(gamma * l_l), not
    #   detached (the paper code's use_neg_weighting / neg_weighting_gamma); per objective: 1.0
    chosen_coef: float = 1.0  # redi / redi_negw: weight of the chosen term (the paper code's
    #   reinforce_chosen_coef; 1 in the paper)
    # --- optimisation (AdamW + linear warm-up / linear decay to 0) ---
    learning_rate: float | None = None  # peak LR; per objective: paper.LEARNING_RATE (sft 5e-5,
    #   redi 1e-6, dpo 2e-7, simpo 5e-7; symmetric REDI, alpha=1, used 2e-7: set it explicitly)
    epochs: int | None = None  # per objective: paper.EPOCHS (sft 3, pair objectives 1)
    global_batch_size: int | None = None  # sequences (sft) or pairs per optimizer step:
    #   paper.GLOBAL_BATCH_SIZE (sft 128, pair objectives 32)
    per_device_batch_size: int = 1  # examples per forward/backward on one device
    warmup_ratio: float = 0.1  # share of total steps with linear warm-up from 0 (ceil)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay (not on biases / norm weights)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # gradient clipping (transformers/TRL default the paper ran with); 0 = off
    max_steps: int | None = None  # overrides epochs when set (runs exactly this many steps)
    seed: int = 42  # data order and initial RNG state
    # --- sequence lengths (tokens, with the student's chat template) ---
    max_length: int = 32768  # sft: prompt + response, truncated from the right
    max_prompt_length: int = 800  # pairs: longer prompts keep their last tokens
    max_response_length: int = 19000  # pairs: longer responses are truncated from the right
    # --- checkpoints ---
    save_steps: int = 200  # save every N optimizer steps (0 = only epoch ends / final)
    save_each_epoch: bool | None = None  # also save at each epoch end; default per objective (sft: true)
    keep_optimizer_state: str = "last"  # "last": older checkpoints keep weights only; "all"
    # --- memory / speed ---
    logprob_chunk_size: int = 512  # positions per log-softmax chunk; 0 = naive full logits
    gradient_checkpointing: bool | str = "auto"  # activation checkpointing; auto = on with CUDA
    bf16: bool | str = "auto"  # bf16 autocast; auto = on when CUDA supports bf16
    padding_free: bool | str = "auto"  # pack sequences with position_ids; auto = with flash-attn
    attn_implementation: str = "auto"  # auto = flash_attention_2 if installed on CUDA, else sdpa
    collapse: CollapseConfig = field(default_factory=CollapseConfig)

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
