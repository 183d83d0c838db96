"""The training objectives and their registry: the one home of everything an objective is.

Each objective is one small loss function plus one :class:`Objective` entry in
:data:`OBJECTIVES`. Config validation (``train/config.py``), the run plan and run names
(``redi.plan``), the Snakemake rules (``rules/common.smk``: which runs need the reference pass),
the schema's ``objective`` enum (checked by a test) and the report's labels, families and
parameter columns all read this table; none of them names an objective.

Registry API (importable without torch: the Snakefile imports the plan, and through it this
module, in an environment that has only Snakemake and PyYAML; torch is imported inside the loss
functions):

* ``OBJECTIVES: dict[str, Objective]`` - in display order: the paper's sft, redi, dpo, simpo;
  then objectives the paper did not run: redi_negw (its released code's negative weighting),
  uft (unlikelihood), topr (truncated importance weights on negatives), advdistill (group
  advantage weights; pairs curated with ``curation.pairs: groups``).
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

Adding an objective (say ORPO) is one loss function and one entry here and its test in
``tests/test_objectives_arena.py``: config validation takes the ``objective`` enum and the
stage-2 parameter keys from this registry (``redi.plan.load_schema``), the run plan, the
sweep table's columns, the report's families and figures and the model card read it. A new
parameter is one :class:`Param` here plus its ``RunConfig`` field (its one line of help). An
objective the paper did not run gives its defaults with :func:`_stage2_defaults` (no paper
entry) and a ``sweep`` grid with the reason beside it.

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
``redi.paper`` section 2. The objectives beyond the paper name their sources in their
docstrings (the paper's released trainer; UFT arXiv 2504.11364; TOPR arXiv 2503.14286;
AdvDistill arXiv 2507.00054).
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
    margin: Tensor | None = None  # [B], detached: chosen minus rejected per-token log-prob
    #: [B], detached, objectives with a reference model only: the implicit-reward margin in nats,
    #: ``(logp(y_w) - ref(y_w)) - (logp(y_l) - ref(y_l))`` on sequence sums (TRL's DPO
    #: ``rewards/margins`` divided by beta; its sign gives ``rewards/accuracies``)
    reward_margin: Tensor | None = None


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
    chosen_coef: float = 1.0,
    neg_weighting: bool = False,
    neg_weighting_gamma: float = 1.0,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """REDI: ``-c * l_w + alpha * l_l`` with ``l = logp(y)/|y|`` (per-token mean), mean over pairs.

    ``c`` is ``chosen_coef`` (1 in the paper). With ``neg_weighting`` the rejected term is
    ``alpha * l_l * exp(neg_weighting_gamma * l_l)``, the weight **not** detached: the gradient
    flows through it, so the term is bounded below (its minimum is at ``l_l = -1/gamma``) and a
    rejected trace whose log-prob has fallen past that point is pulled back up.

    Source: Xu et al. arXiv 2505.24850, Sec. 3 (the REDI objective); ``chosen_coef`` and the
    negative weighting are options of the paper's released trainer, not of the paper
    (``trl/trl/trainer/dpo2_trainer.py`` of github.com/Tim-Siu/reinforcement-distillation, loss
    type ``reinforce``: ``reinforce_chosen_coef``, ``use_neg_weighting``,
    ``neg_weighting_gamma``), reproduced term for term; both off by default.
    """
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    rejected_term = alpha * rejected_pt
    if neg_weighting:
        rejected_term = rejected_term * (neg_weighting_gamma * rejected_pt).exp()
    per_example = -chosen_coef * chosen_pt + rejected_term
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def redi_negw_loss(*args, neg_weighting_gamma: float, **kwargs) -> ObjectiveResult:
    """REDI with the paper code's negative weighting switched on: :func:`redi_loss` with
    ``neg_weighting=True``, i.e. per pair ``-c * l_w + alpha * l_l * exp(gamma * l_l)``
    (weight not detached)."""
    return redi_loss(*args, neg_weighting=True, neg_weighting_gamma=neg_weighting_gamma, **kwargs)


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


#: Floor of ``1 - p_t`` in the unlikelihood term (Welleck et al.'s reference implementation
#: clamps at 1e-5): a token the model is sure of gives ``log(1e-5) = -11.5`` and no gradient
#: instead of ``-inf``.
UNLIKELIHOOD_FLOOR = 1e-5


def log_one_minus_p(token_logps: Tensor) -> Tensor:
    """``log(max(1 - p_t, UNLIKELIHOOD_FLOOR))`` per token from ``log p_t`` (any shape)."""
    return (-(token_logps.clamp(max=0.0).expm1())).clamp(min=UNLIKELIHOOD_FLOOR).log()


def uft_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    rejected_log_one_minus_p: Tensor,
    alpha: float,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """Unlikelihood fine-tuning: ``-(1 - alpha) * l_w - alpha * mean_t log(1 - p_t(y_l))``.

    ``l_w = logp(y_w)/|y_w|`` (per-token mean); ``rejected_log_one_minus_p`` is, per rejected
    response, ``sum_t log(1 - p_t)`` over its tokens (``[B]``, :func:`log_one_minus_p` summed by
    :func:`compute`), divided here by ``|y_l|``. The negative term pushes each rejected token's
    probability down but is bounded (``>= 0`` per token, ``0`` at ``p_t = 0``), unlike
    ``-logp``. Mean over pairs.

    Source: unlikelihood training, Welleck et al. arXiv 1908.04319; on negative reasoning
    traces (UFT), arXiv 2504.11364, Sec. 3.
    """
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    unlikely = _per_token(rejected_log_one_minus_p, rejected_lengths)
    per_example = -(1.0 - alpha) * chosen_pt - alpha * unlikely
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def topr_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """Truncated importance weights on negatives (offline TOPR):
    ``-l_w + sg(clip(pi(y_l)/mu(y_l), 0, 1)) * l_l``, mean over pairs.

    ``l = logp(y)/|y|`` (per-token mean, REDI's scale); ``pi(y_l)/mu(y_l) =
    exp(logp(y_l) - ref_logp(y_l))`` is the sequence-level likelihood ratio of the rejected
    trace under the model being trained and the start (stage-1) model ``mu`` (the reference
    pass's cached sums, ``[B]``); ``sg`` = detached. Positives keep weight 1. At the start
    (``pi = mu``) this is symmetric REDI; as the rejected trace becomes unlikely its push-down
    fades, which bounds the negative term. ``ref_chosen_logps`` is accepted (every reference
    objective gets both) and unused.

    Source: Tapered Off-Policy REINFORCE, Le Roux et al. arXiv 2503.14286 (Sec. 4: positive
    rewards untruncated, negative ones with ``min(pi/mu, 1)``), offline with reward +-1.
    """
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    log_ratio = rejected_logps.detach() - ref_rejected_logps.to(rejected_logps.dtype)
    ratio = log_ratio.clamp(max=0.0).exp()  # clip(pi/mu, 0, 1)
    per_example = -chosen_pt + ratio * rejected_pt
    return _pair_result(per_example, w, denominator, chosen_pt, rejected_pt)


def advdistill_loss(
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor,
    rejected_lengths: Tensor,
    *,
    group_chosen: Tensor,
    group_rejected: Tensor,
    weights: Tensor | None = None,
    denominator=None,
) -> ObjectiveResult:
    """Group advantage weights (AdvDistill): each trace's per-token log-likelihood weighted by its
    group-relative advantage, written over the pairs of ``curation.pairs: groups``.

    A problem's group has ``n+`` positive and ``n-`` negative traces (``group_chosen``,
    ``group_rejected``, ``[B]``, from the data rows), ``n = n+ + n-``, verifier rewards 1 / 0,
    mean ``m = n+/n``, std (ddof 0) ``s = sqrt(m (1 - m))`` and advantages ``A+ = (1 - m)/s``,
    ``A- = -m/s``. The group's loss is ``L_g = -(1/n) * sum_i A_i * l_i`` with
    ``l = logp(y)/|y|``. Its ``n+ * n-`` pairs each carry ``-(A+/n- * l_w + A-/n+ * l_l)/n``
    (= ``-(l_w - l_l) / (n * sqrt(n+ n-))``), so they sum to ``L_g`` exactly whichever batch
    each pair lands in (the loss is linear in the traces: no batch needs the whole group). A
    group whose traces all share one reward (``s = 0``) has advantage 0 and no pairs. Mean over
    pairs, i.e. ``sum_g L_g`` / number of pairs.

    Source: Padarha, arXiv 2507.00054 (AdvDistill: group-relative advantages of several teacher
    responses per prompt, from rule-based verifiers, weighting the student's loss).
    """
    w = _weights(weights, chosen_logps)
    chosen_pt = _per_token(chosen_logps, chosen_lengths)
    rejected_pt = _per_token(rejected_logps, rejected_lengths)
    n_pos = group_chosen.to(chosen_pt.dtype)
    n_neg = group_rejected.to(chosen_pt.dtype)
    n = n_pos + n_neg
    mean = n_pos / n
    std = (mean * (1 - mean)).sqrt()
    adv_pos, adv_neg = (1 - mean) / std, -mean / std
    per_example = -(adv_pos / n_neg * chosen_pt + adv_neg / n_pos * rejected_pt) / n
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
    # the paper code's negative weighting exp(gamma * l_neg); sweep 0.5-4 (weight at a typical
    # start l_neg of -0.3 nats/token: 0.86-0.30; the term's floor sits at l_neg = -1/gamma)
    "neg_weighting_gamma": Param("neg_weighting_gamma", "γneg", "ng", "> 0", lambda v: v > 0),
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
        families: its report families; :attr:`family_of` picks one for a run dict. Left empty,
            the objective is one family named and labelled after itself (set in
            ``__post_init__``, so the report never meets an objective without one).
        token_sums: per-token functions of the response log-probs whose per-sequence sums the
            loss needs: ``{"log_one_minus_p": f}`` gives the loss ``rejected_log_one_minus_p``
            (``[B]``, ``sum_t f(logp_t)`` over each rejected response) - and
            ``chosen_log_one_minus_p`` if its signature names it (:func:`compute`).
        row_inputs: numbers the loss reads from each data row: keyword -> dotted path in the row
            (``{"group_chosen": "group.chosen"}``; ``batching.attach_row_values``; ``[B]``).
        options: ``RunConfig`` fields passed to ``loss`` by keyword that do not name runs
            (REDI's ``chosen_coef``).
        sweep: a sensible grid per parameter and for ``learning_rate`` (the first LR is the
            default), for arena configs and users starting a sweep; with the reason in a
            comment beside the entry.
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
    token_sums: dict[str, Callable[[Tensor], Tensor]] = field(default_factory=dict)
    row_inputs: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    sweep: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.families:
            object.__setattr__(self, "families", (Family(self.name, self.label, self.name),))
        for fam in self.families:
            if fam.objective != self.name:
                raise ValueError(f"objective {self.name!r}: family {fam.key!r} names objective {fam.objective!r}")
        if len(self.families) > 1 and self.family_of is None:
            raise ValueError(f"objective {self.name!r} has several families but no family_of to pick one")
        unknown = [p for p in (*self.params, *self.sweep) if p not in PARAMETERS]
        if unknown:
            raise ValueError(f"objective {self.name!r}: unknown parameter(s) {unknown}; known: {list(PARAMETERS)}")

    def family(self, run: dict) -> str:
        """The report family key of a run dict; always one of :attr:`families`."""
        if self.family_of is None:
            return self.families[0].key
        key = self.family_of(run)
        if key not in {f.key for f in self.families}:
            raise ValueError(f"objective {self.name!r}: family_of gave {key!r}, not one of its families")
        return key


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


def _stage2_defaults(learning_rate: float, **extra) -> dict[str, Any]:
    """Defaults of a stage-2 objective the paper did not run: the paper's stage-2 schedule
    (REDI's epochs and global batch size) and the objective's own learning rate (no paper
    entry needed)."""
    return {
        "save_each_epoch": False,
        "learning_rate": learning_rate,
        "epochs": paper.EPOCHS["redi"],
        "global_batch_size": paper.GLOBAL_BATCH_SIZE["redi"],
        **extra,
    }


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
            options=("chosen_coef",),
            # paper: alpha 0.8 at LR 1e-6 (symmetric alpha 1 at 2e-7)
            sweep={"alpha": (0.2, 0.5, 0.8, 1.0), "learning_rate": (1e-6, 2e-7, 5e-6)},
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
            sweep={"beta": (0.001, 0.01, 0.1), "learning_rate": (2e-7, 5e-8, 1e-6)},  # paper: 0.001, 2e-7
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
            sweep={"beta": (2.0,), "gamma": (1.0,), "learning_rate": (5e-7, 1e-7, 2e-6)},  # paper: 2, 1, 5e-7
            families=(Family("simpo", "SimPO", "simpo"),),
        ),
        Objective(
            "redi_negw",
            "REDI-negw",
            "REDI with the paper code's negative weighting: the rejected term times exp(gamma x its "
            "per-token log-likelihood), not detached (stage 2)",
            redi_negw_loss,
            params=("alpha", "neg_weighting_gamma"),
            options=("chosen_coef",),
            # REDI's LR (the weight <= 1 only softens the rejected term); gamma 1 = the code's default
            defaults=_stage2_defaults(1e-6, neg_weighting_gamma=1.0),
            sweep={"alpha": (0.8, 1.0), "neg_weighting_gamma": (1.0, 0.5, 4.0), "learning_rate": (1e-6, 2e-7, 5e-6)},
        ),
        Objective(
            "uft",
            "UFT",
            "unlikelihood fine-tuning: likelihood on the chosen trace, mean log(1 - p) of the "
            "rejected trace's tokens (stage 2)",
            uft_loss,
            params=("alpha",),
            token_sums={"log_one_minus_p": log_one_minus_p},
            # the chosen term is (1 - alpha) x REDI's and the unlikelihood term is bounded: REDI's
            # LR scale; alpha 0.5 weighs both terms equally
            defaults=_stage2_defaults(1e-6),
            sweep={"alpha": (0.5, 0.2, 0.8), "learning_rate": (1e-6, 2e-7, 5e-6)},
        ),
        Objective(
            "topr",
            "TOPR",
            "truncated importance weights on negatives: the rejected term weighted by "
            "min(1, pi/mu) against the stage-1 model mu, detached (stage 2)",
            topr_loss,
            needs_reference=True,
            # starts as symmetric REDI (paper LR 2e-7 at alpha 1) and its negative term fades
            # as pi/mu falls: between symmetric REDI's and REDI's LR
            defaults=_stage2_defaults(5e-7),
            sweep={"learning_rate": (5e-7, 2e-7, 1e-6, 5e-6)},
        ),
        Objective(
            "advdistill",
            "AdvDistill",
            "group advantage weights: every trace of a problem weighted by its verifier reward "
            "minus the group mean, over the group's standard deviation (stage 2; curation.pairs: groups)",
            advdistill_loss,
            row_inputs={"group_chosen": "group.chosen", "group_rejected": "group.rejected"},
            # symmetric-REDI-like pair terms, each problem weighted by its reward std (<= 0.5):
            # REDI's LR
            defaults=_stage2_defaults(1e-6),
            sweep={"learning_rate": (1e-6, 2e-7, 5e-6)},
        ),
    )
}


def _families(registry: dict[str, Objective]) -> dict[str, Family]:
    out: dict[str, Family] = {}
    for obj in registry.values():
        for fam in obj.families:
            if fam.key in out:
                raise ValueError(
                    f"report family {fam.key!r} is defined by both {out[fam.key].objective!r} and {obj.name!r}"
                )
            out[fam.key] = fam
    return out


#: Every report family, in display order: key -> Family.
FAMILIES: dict[str, Family] = _families(OBJECTIVES)


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
    """Short human label of a run: ``'REDI α=0.8, LR 1e-6'``, ``'SimPO β=2, γ=1, LR 5e-7'``,
    ``'DPO β=0.1, LR 2e-7, own negatives'`` (rejected traces sampled from the start model)."""
    obj = get(run["objective"])
    values = ", ".join(f"{PARAMETERS[p].symbol}={format_number(run.get(p))}" for p in obj.params)
    parts = [f"{obj.label} {values}" if values else obj.label]
    if run.get("learning_rate") is not None:
        parts.append(f"LR {format_number(run['learning_rate'])}")
    if run.get("negatives") in OWN_NEGATIVES_LABEL:
        parts.append(OWN_NEGATIVES_LABEL[run["negatives"]])
    return ", ".join(parts)


#: how a run whose rejected traces are not (only) the teacher's says so in its label
OWN_NEGATIVES_LABEL = {"student": "own negatives", "both": "teacher + own negatives"}


def compute(
    cfg,
    chosen_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_logps: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    *,
    token_logps: Tensor | None = None,
    seq_index: Tensor | None = None,
    weights: Tensor | None = None,
    denominator=None,
    **row_values: Tensor,
) -> ObjectiveResult:
    """The loss of ``cfg.objective`` (a :class:`redi.train.config.RunConfig`) on one batch.

    ``token_logps`` (``[N]``) and ``seq_index`` (``[N]``, the row of each token: chosen rows
    ``0..B-1`` first, then rejected rows ``B..2B-1``) are needed only by objectives with
    ``token_sums``; ``row_values`` (``[B]`` each) by objectives with ``row_inputs``.

    Raises:
        ValueError: unknown objective; a pair objective without rejected responses; an objective
            that needs reference log-probs or per-token log-probs without them.
    """
    import inspect

    obj = get(cfg.objective)
    args = [chosen_logps, chosen_lengths]
    kwargs: dict[str, Any] = {p: getattr(cfg, p) for p in (*obj.params, *obj.options)}
    missing = [k for k in obj.row_inputs if k not in row_values]
    if missing:
        raise ValueError(f"objective {obj.name!r} needs {missing} from the data rows (curation.pairs: groups)")
    kwargs.update({k: row_values[k] for k in obj.row_inputs})
    if obj.token_sums:
        if token_logps is None or seq_index is None:
            raise ValueError(f"objective {obj.name!r} needs per-token log-probs (token_logps, seq_index)")
        import torch

        b = chosen_logps.shape[0]
        n_rows = 2 * b if obj.pairwise else b
        accepts = inspect.signature(obj.loss).parameters
        for key, fn in obj.token_sums.items():
            values = fn(token_logps.to(chosen_logps.dtype))
            sums = torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(0, seq_index, values)
            for role, part in (("chosen", sums[:b]), ("rejected", sums[b:])):
                if f"{role}_{key}" in accepts:
                    kwargs[f"{role}_{key}"] = part
    if obj.pairwise:
        if rejected_logps is None or rejected_lengths is None:
            raise ValueError(f"objective {obj.name!r} needs rejected responses")
        args += [rejected_logps, rejected_lengths]
    if obj.needs_reference:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError(f"objective {obj.name!r} needs reference log-probs (ref_logps_path)")
        kwargs.update(ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    result = obj.loss(*args, **kwargs, weights=weights, denominator=denominator)
    if obj.needs_reference:
        chosen_ratio = chosen_logps.detach() - ref_chosen_logps.to(chosen_logps.dtype)
        rejected_ratio = rejected_logps.detach() - ref_rejected_logps.to(rejected_logps.dtype)
        result.reward_margin = chosen_ratio - rejected_ratio
    return result
