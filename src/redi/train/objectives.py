"""The training objectives and their registry: the one home of everything an objective is.

Each objective is one small loss function plus one :class:`Objective` entry in
:data:`OBJECTIVES`. Config validation (``train/config.py``), the run plan and run names
(``redi.plan``), the Snakemake rules (``rules/common.smk``: which runs need the reference pass),
the schema's ``objective`` enum (checked by a test) and the report's labels, families and
parameter columns all read this table; none of them names an objective.

Registry API (importable without torch: the Snakefile imports the plan, and through it this
module, in an environment that has only Snakemake and PyYAML; torch is imported inside the loss
functions):

* ``OBJECTIVES: dict[str, Objective]`` - in display order: sft, redi, dpo, simpo.
* ``PARAMETERS: dict[str, Param]`` - every objective parameter plus ``learning_rate``, with its
  display symbol (``alpha`` -> ``α``) and run-name tag (``alpha`` -> ``a``): ``redi-a0.8-lr1e-6``.
* :func:`get` (a clear error for an unknown name), :func:`names`, :func:`pairwise_names`
  (the stage-2 objectives: the schema's enum), :func:`needs_reference`.
* :func:`run_label` (``"REDI α=0.8, LR 1e-6"``), :func:`family` / :data:`FAMILIES` (report
  families: REDI splits into control α=0, redi 0<α<1 and symmetric α=1; every other objective
  is one family named after it), :func:`objective_params` (the parameters a run's name and
  table row show).
* :func:`compute` - the loss of a batch for a :class:`~redi.train.config.RunConfig`, by
  registry lookup.

Adding an objective (say ORPO) is one loss function and one entry here, its test in
``tests/test_train_objectives.py``, its name in ``config/schema.yaml``'s enum (a test checks the
enum equals :func:`pairwise_names`) and its line in ``config/README.md``; a new parameter is
one :class:`Param` here plus its ``RunConfig`` field and schema key.

Loss functions
--------------
Every loss takes the same arguments in the same order: per-sequence log-probabilities of the
response tokens (sums, ``logp(y|x)``; float, shape ``[B]``) and response lengths ``|y|``
(response tokens, prompt excluded; the closing ``<|im_end|>`` counts), chosen first::

    loss(chosen_logps, chosen_lengths, [rejected_logps, rejected_lengths,] *,
         [ref_chosen_logps, ref_rejected_logps,] <parameters>, weights=None, denominator=None)

* ``weights``: 1 for real examples, 0 for the zero-weight fillers that top up an epoch's last,
  short global batch (see ``schedule.py``); default all ones;
* ``denominator``: what the weighted sum is divided by. Default: this batch's own count, so a
  direct call returns the batch mean. The trainer passes the count over the whole optimizer step
  (all micro-batches and devices), so the step's gradient is that of one big batch whatever the
  micro-batching, gradient accumulation, packing or world size.

Reductions (decided here, used everywhere):

* ``sft``: token mean: ``-sum_i logp(y_i) / sum_i |y_i|`` over the global batch (every response
  token weighs the same; unit = token).
* pair objectives: mean over pairs of the per-pair loss (unit = pair).

Metrics are per example (detached): ``chosen_logp_per_token = logp(y_w)/|y_w|``, the same for
rejected, and ``margin = chosen_logp_per_token - rejected_logp_per_token`` (the same definition
for every pair objective, so runs compare on one scale).

Sources: REDI, Xu et al. arXiv 2505.24850 (Sec. 3, Eq. for the REDI objective); DPO, Rafailov et
al. arXiv 2305.18290 (sigmoid loss, as TRL's ``loss_type="sigmoid"``); SimPO, Meng et al. arXiv
2405.14734 (as TRL's CPO trainer with ``loss_type="simpo"``, ``cpo_alpha=0``). Paper defaults:
``redi.paper`` section 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redi import paper
from redi.fmt import format_number

if TYPE_CHECKING:
    from torch import Tensor


# ----------------------------------------------------------------------------------------------
# loss functions


@dataclass
class ObjectiveResult:
    loss: Tensor  # scalar: sum_i w_i * per_example_i / denominator
    per_example: Tensor  # [B] unreduced loss contributions (sft: -logp sum per sequence)
    units: Tensor  # scalar: this batch's count of normalisation units (tokens or pairs), weighted
    chosen_logp_per_token: Tensor  # [B], detached
    rejected_logp_per_token: Tensor | None = None  # [B], detached
    margin: Tensor | None = None  # [B], detached


def _weights(weights: Tensor | None, like: Tensor) -> Tensor:
    import torch

    return torch.ones_like(like) if weights is None else weights.to(like.dtype)


def _per_token(logps: Tensor, lengths: Tensor) -> Tensor:
    return logps / lengths.to(logps.dtype).clamp(min=1)


def _reduce(per_example: Tensor, w: Tensor, units: Tensor, denominator) -> Tensor:
    import torch

    denom = units if denominator is None else denominator
    if not torch.is_tensor(denom):
        denom = torch.tensor(float(denom), dtype=per_example.dtype, device=per_example.device)
    return (w * per_example).sum() / denom.to(per_example.dtype).clamp(min=1e-12)


def _pair_result(per_example, w, denominator, chosen_pt, rejected_pt) -> ObjectiveResult:
    units = w.sum()
    chosen_pt, rejected_pt = chosen_pt.detach(), rejected_pt.detach()
    return ObjectiveResult(
        loss=_reduce(per_example, w, units, denominator),
        per_example=per_example,
        units=units,
        chosen_logp_per_token=chosen_pt,
        rejected_logp_per_token=rejected_pt,
        margin=chosen_pt - rejected_pt,
    )


def sft_loss(
    chosen_logps: Tensor, chosen_lengths: Tensor, *, weights: Tensor | None = None, denominator=None
) -> ObjectiveResult:
    """Mean negative log-likelihood per response token: ``-sum logp / sum |y|``."""
    w = _weights(weights, chosen_logps)
    units = (w * chosen_lengths.to(chosen_logps.dtype)).sum()
    per_example = -chosen_logps
    pt = _per_token(chosen_logps, chosen_lengths).detach()
    return ObjectiveResult(_reduce(per_example, w, units, denominator), per_example, units, pt)


def redi_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    alpha: float,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """REDI: ``-logp(y_w)/|y_w| + alpha * logp(y_l)/|y_l|``, mean over pairs."""
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    per_example = -chosen_pt + alpha * rejected_pt
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def dpo_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """DPO (sigmoid): ``-log sigmoid(beta * ((lw - ref_w) - (ll - ref_l)))`` on sums of log-probs.

    Lengths are used only for the per-token metrics.
    """
    import torch.nn.functional as F

    w = _weights(weights, chosen_logps)
    logits = (chosen_logps - ref_chosen_logps.to(chosen_logps.dtype)) - (
        rejected_logps - ref_rejected_logps.to(rejected_logps.dtype)
    )
    per_example = -F.logsigmoid(beta * logits)
    return _pair_result(
        per_example,
        w,
        denominator,
        _per_token(chosen_logps, chosen_lengths),
        _per_token(rejected_logps, rejected_lengths),
    )


def simpo_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    beta: float,
    gamma: float,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """SimPO: ``-log sigmoid(beta * (lw/|y_w| - ll/|y_l|) - gamma)``; no reference model."""
    import torch.nn.functional as F

    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    per_example = -F.logsigmoid(beta * (chosen_pt - rejected_pt) - gamma)
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


# ----------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class Param:
    """A hyper-parameter that names runs: its ``RunConfig`` field, display symbol, run-name tag
    and allowed values (``rule`` in words, ``valid`` as a predicate on the float value)."""

    name: str
    symbol: str
    tag: str
    rule: str = ""
    valid: Callable[[float], bool] | None = None

    def check(self, run: str, value) -> None:
        """Raise ``ValueError`` naming the run, the parameter and the value if it is not allowed."""
        if self.valid is not None and value is not None and not self.valid(float(value)):
            raise ValueError(f"run {run!r}: {self.name} must be {self.rule}, got {value}")


#: Every parameter a run name or a table column can show, in that order.
PARAMETERS: dict[str, Param] = {
    "alpha": Param("alpha", "α", "a", "in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "beta": Param("beta", "β", "b", "> 0", lambda v: v > 0),
    "gamma": Param("gamma", "γ", "g"),
    "learning_rate": Param("learning_rate", "LR", "lr"),
}


@dataclass(frozen=True)
class Family:
    """A group of runs the report compares as one (a line colour, a table block)."""

    key: str
    label: str
    objective: str


@dataclass(frozen=True)
class Objective:
    """One training objective.

    Fields:
        name: config value of ``objective`` (and first part of a run name).
        label: display name (``"REDI"``).
        description: one sentence for model cards (``redi.model_card``).
        loss: the loss function (arguments as in the module docstring).
        params: its own parameters (keys of :data:`PARAMETERS`), in run-name order; a stage-2 run
            must set each one (``redi.plan``), and each is passed to ``loss`` by keyword.
        pairwise: trains on (chosen, rejected) pairs (``pref.jsonl``), else on ``sft.jsonl``.
        needs_reference: needs the start model's cached log-probs (``ref_logps.parquet``).
        defaults: per-objective values of ``RunConfig`` fields left unset (paper values from
            ``redi.paper``).
        paired_sweep: parameters whose equal-length lists are zipped, not crossed, in a sweep
            (the paper pairs SimPO's beta and gamma).
        families: its report families; :attr:`family_of` picks one for a run dict.
    """

    name: str
    label: str
    description: str
    loss: Callable[..., ObjectiveResult]
    params: tuple[str, ...] = ()
    pairwise: bool = True
    needs_reference: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    paired_sweep: tuple[str, ...] = ()
    families: tuple[Family, ...] = ()
    family_of: Callable[[dict], str] | None = None

    def family(self, run: dict) -> str:
        return self.family_of(run) if self.family_of else self.name


def _defaults(name: str, save_each_epoch: bool = False) -> dict[str, Any]:
    """The paper's settings of ``name`` (``redi.paper``) and whether every epoch end is saved
    (SFT's epochs are its checkpoints; stage-2 runs are one epoch, saved every ``save_steps``)."""
    out = {
        "save_each_epoch": save_each_epoch,
        "learning_rate": paper.LEARNING_RATE[name],
        "epochs": paper.EPOCHS[name],
        "global_batch_size": paper.GLOBAL_BATCH_SIZE[name],
    }
    if name in paper.BETA:
        out["beta"] = paper.BETA[name]
    return out


def _redi_family(run: dict) -> str:
    alpha = float(run.get("alpha", 0.0))
    return "control" if alpha == 0 else "symmetric" if alpha == 1 else "redi"


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "sft",
            "SFT",
            "supervised fine-tuning on the teacher's correct traces (stage 1, D_SFT)",
            sft_loss,
            pairwise=False,
            defaults=_defaults("sft", save_each_epoch=True),
            families=(Family("sft", "SFT", "sft"),),
        ),
        Objective(
            "redi",
            "REDI",
            "REDI: maximise the chosen per-token log-likelihood, minimise alpha x the rejected one (stage 2)",
            redi_loss,
            params=("alpha",),
            defaults=_defaults("redi"),
            families=(
                Family("control", "control (REDI α=0)", "redi"),
                Family("redi", "REDI (0<α<1)", "redi"),
                Family("symmetric", "symmetric REDI (α=1)", "redi"),
            ),
            family_of=_redi_family,
        ),
        Objective(
            "dpo",
            "DPO",
            "DPO against the stage-1 model as reference (stage 2 baseline)",
            dpo_loss,
            params=("beta",),
            needs_reference=True,
            defaults=_defaults("dpo"),
            families=(Family("dpo", "DPO", "dpo"),),
        ),
        Objective(
            "simpo",
            "SimPO",
            "SimPO: length-normalised margin with target gamma (stage 2 baseline)",
            simpo_loss,
            params=("beta", "gamma"),
            defaults=_defaults("simpo"),
            paired_sweep=("beta", "gamma"),
            families=(Family("simpo", "SimPO", "simpo"),),
        ),
    )
}

#: Every report family, in display order: key -> Family.
FAMILIES: dict[str, Family] = {f.key: f for o in OBJECTIVES.values() for f in o.families}


def get(name: str) -> Objective:
    """The registry entry of ``name``. Raises ``ValueError`` listing the known objectives."""
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}") from None


def names() -> tuple[str, ...]:
    return tuple(OBJECTIVES)


def pairwise_names() -> tuple[str, ...]:
    """The stage-2 objectives (trained on preference pairs): the schema's ``objective`` enum."""
    return tuple(n for n, o in OBJECTIVES.items() if o.pairwise)


def needs_reference(name: str) -> bool:
    return get(name).needs_reference


def objective_params(run: dict) -> dict[str, Any]:
    """``{param: value}`` of the run's own objective parameters (``{"beta": 2.0, "gamma": 1.0}``)."""
    return {p: run.get(p) for p in get(run["objective"]).params}


def family(run: dict) -> str:
    """The report family key of a run dict (``"control"`` for REDI with alpha 0)."""
    return get(run["objective"]).family(run)


def run_label(run: dict) -> str:
    """Short human label of a run: ``'REDI α=0.8, LR 1e-6'``, ``'SimPO β=2, γ=1, LR 5e-7'``."""
    obj = get(run["objective"])
    values = ", ".join(f"{PARAMETERS[p].symbol}={format_number(run.get(p))}" for p in obj.params)
    parts = [f"{obj.label} {values}" if values else obj.label]
    if run.get("learning_rate") is not None:
        parts.append(f"LR {format_number(run['learning_rate'])}")
    return ", ".join(parts)


def compute(
    cfg,
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    *,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """The loss of ``cfg.objective`` (a :class:`redi.train.config.RunConfig`) on one batch.

    Raises:
        ValueError: unknown objective; a pair objective without rejected responses; an objective
            that needs reference log-probs without them.
    """
    obj = get(cfg.objective)
    args = [chosen_logps, chosen_lengths]
    kwargs: dict[str, Any] = {p: getattr(cfg, p) for p in obj.params}
    if obj.pairwise:
        if rejected_logps is None or rejected_lengths is None:
            raise ValueError(f"objective {obj.name!r} needs rejected responses")
        args += [rejected_logps, rejected_lengths]
    if obj.needs_reference:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"objective {obj.name!r} needs reference log-probs (ref_logps_path)")
        kwargs.update(ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    return obj.loss(*args, **kwargs, weights=weights, denominator=denominator)
