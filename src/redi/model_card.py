"""Model cards: a Hugging Face ``README.md`` for every final model.

Format (https://huggingface.co/docs/hub/model-cards): YAML front matter (``base_model``,
``library_name``, ``tags``, ``datasets`` when the corpus is a hub dataset) and a markdown body:
data and curation counts (the funnel's two branches; drop events and distinct rows), the
objective and only its own parameters (objective registry) with the training settings, an
evaluation table (pass@1 ± SEM per checkpoint and benchmark), the collapse verdict of a stage-2
run (the reading the report and ``redi status`` share), limitations, and the exact resolved config
with the code commit.

* ``train()`` writes the card into ``results/train/{run}/model/README.md`` when the model is
  saved (evaluations do not exist yet; the table says so).
* ``rules/publish.smk`` writes ``results/cards/{run}/README.md`` once the run's final
  evaluations exist (the same card with its evaluation table); the optional ``push_to_hub``
  rule uploads the model folder with that card as its README.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from redi.provenance import curation_dir

TAGS = ["redi", "reinforcement-distillation", "math", "reasoning"]
#: Training settings every card lists after the objective's own parameters (from the objective
#: registry, ``redi.train.objectives``): a card never shows another objective's parameter.
TRAINING = (
    "negatives", "learning_rate", "epochs", "global_batch_size", "warmup_ratio", "weight_decay", "max_grad_norm",
    "seed",
)  # fmt: skip
LENGTHS = {False: ("max_length",), True: ("max_prompt_length", "max_response_length")}  # by objective.pairwise


def hyper_parameters(cfg: dict, positions: int | None = None) -> list[tuple[str, str]]:
    """(key, value) rows of a run's card: its objective's parameters (registry order), the
    training settings, and the length limits of its kind (SFT: ``max_length``; pairs: prompt and
    response) - a limit above the model's ``positions`` says so."""
    from redi.train import objectives

    objective = objectives.OBJECTIVES.get(cfg.get("objective"))
    params = objective.params if objective else ()
    lengths = LENGTHS[bool(objective.pairwise)] if objective else LENGTHS[False] + LENGTHS[True]
    rows = []
    for key in (*params, *TRAINING, *lengths):
        if cfg.get(key) is None:
            continue
        value = str(cfg[key])
        if key in lengths and positions and int(cfg[key]) > positions:
            value += f" (above the model's {positions:,} positions: never reached)"
        rows.append((key, value))
    return rows


def _rejects(curation: dict, data_dir: Path) -> str:
    """``2,554 drop events over 1,810 distinct rows`` from the rejects file (events alone when it
    cannot be read)."""
    events = curation.get("rejects_count")
    path = data_dir / Path(str(curation.get("rejects") or "rejects.jsonl")).name
    rows = set()
    try:
        with open(path) as handle:
            for line in handle:
                if line.strip():
                    rows.add(json.loads(line).get("row_index"))
    except (OSError, ValueError):
        return f"{events if events is not None else 'n/a'} drop events (each with a reason)"
    events = events if events is not None else sum(1 for _ in open(path))
    return f"{int(events):,} drop events over {len(rows - {None}):,} distinct rows (each with a reason)"


def _objective_text(name) -> str:
    """The registry's sentence for the objective (its bare name if this code no longer knows it)."""
    from redi.train.objectives import OBJECTIVES

    return OBJECTIVES[name].description if name in OBJECTIVES else str(name)


def _json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def eval_rows(eval_dir: Path) -> list[dict]:
    """Every ``{ckpt}/{benchmark}/metrics.json`` under ``results/eval/{run}``, sorted."""
    rows = []
    for path in sorted(Path(eval_dir).glob("*/*/metrics.json")):
        m = _json(path)
        if m and isinstance(m.get("pass@1"), (int, float)):
            rows.append(m)
    order = lambda m: (m.get("step") is None, m.get("step") or 0, str(m.get("checkpoint")), str(m.get("benchmark")))  # noqa: E731
    return sorted(rows, key=order)


def build_card(summary: dict, *, curation: dict | None = None, evaluations: list[dict] | None = None,
               base_model: str | None = None, verdict=None, positions: int | None = None,
               rejects: str | None = None) -> str:
    """The card text. ``summary``: the run's ``summary.json`` (with ``provenance``); ``curation``:
    ``curation_report.json``; ``evaluations``: metrics.json dicts; ``base_model``: hub id of the
    start model when known (else the start model's recorded hub name, if any); ``verdict``: the
    run's :class:`redi.train.collapse.Assessment` (stage 2); ``positions``: the model's
    ``max_position_embeddings``; ``rejects``: the curation drop count text (:func:`_rejects`)."""
    cfg = summary.get("config") or {}
    prov = summary.get("provenance") or {}
    model = prov.get("model") or {}
    corpus = (prov.get("data") or {}).get("corpus") or {}
    student = model.get("student") or {}
    base = base_model or model.get("hub") or student.get("hub")
    name = summary.get("run") or cfg.get("name")
    lines = _card_header(summary, cfg, corpus, student, base, name)
    lines += _data_section(summary, prov, corpus, curation, rejects)
    lines += _hyper_parameter_section(summary, cfg, positions)
    lines += _evaluation_section(evaluations, name)
    if verdict is not None:
        lines += _stability_section(verdict)
    lines += ["", "## Limitations", ""]
    lines += _limitations(summary, corpus, positions)
    lines += _reproduce_section(cfg, prov)
    return "\n".join(lines)


def _card_header(summary: dict, cfg: dict, corpus: dict, student: dict, base: str | None, name) -> list[str]:
    """The YAML front matter, the title and the lines that name the objective and the start model."""
    front = {"library_name": "transformers", "tags": TAGS + [cfg.get("objective") or summary.get("objective")]}
    if base:
        front["base_model"] = base
    if student.get("license"):
        front["license"] = student["license"]
    if corpus.get("hub"):
        front["datasets"] = [corpus["hub"]]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    lines.append(f"Trained with the REDI pipeline (Reinforcement Distillation, arXiv 2505.24850): "
                 f"{_objective_text(cfg.get('objective'))}.")
    lines.append(f"Start model: `{summary.get('model_path')}`" + (f" (`{base}`)" if base else "") + ".")
    if student:
        from redi.model.base import describe_student

        lines.append(f"Student (the pipeline's start): {describe_student(student)}"
                     + (f"; license {student['license']}" if student.get("license") else "") + ".")  # fmt: skip
    return lines


def _data_section(summary: dict, prov: dict, corpus: dict, curation: dict | None, rejects: str | None) -> list[str]:
    """The Data section: corpus, training file, curation funnel and truncation."""
    lines = ["", "## Data", ""]
    if corpus:
        ident = f"{corpus['hub']}@{corpus.get('revision')}" if corpus.get("hub") else f"sha256 `{corpus.get('sha256')}`"
        lines.append(f"- Corpus: `{corpus.get('path')}` ({ident})")
    train = (prov.get("data") or {}).get("train") or {}
    lines.append(f"- Training file: `{summary.get('data_path')}` ({summary.get('n_examples')} examples"
                 + (f", sha256 `{train.get('sha256')}`" if train.get("sha256") else "") + ")")
    if curation:
        from redi.data.funnel import funnel_text

        for branch in funnel_text(curation):
            lines.append(f"- Curation, {branch}")
        final = curation.get("final") or {}
        if final:
            dropped = rejects or f"{curation.get('rejects_count', 'n/a')} drop events (each with a reason)"
            lines.append(
                f"- Curated: {final.get('sft')} SFT examples, {final.get('pref')} preference pairs; dropped: {dropped}"
            )
    tok = summary.get("tokenization") or {}
    if tok:
        lines.append("- Truncation: " + ", ".join(f"{k} {v}" for k, v in tok.items()))
    return lines


def _hyper_parameter_section(summary: dict, cfg: dict, positions: int | None) -> list[str]:
    """The objective and hyper-parameter table, with the steps run and the hardware."""
    lines = ["", "## Objective and hyper-parameters", "", "| key | value |", "|---|---|"]
    lines.append(f"| objective | {cfg.get('objective')} |")
    lines += [f"| {k} | {v} |" for k, v in hyper_parameters(cfg, positions)]
    lines.append(
        f"| steps | {summary.get('steps')} of {summary.get('total_steps')} ({summary.get('stopped_reason')}) |"
    )
    lines.append(
        f"| hardware | {summary.get('device')}, world size {summary.get('world_size')}, bf16 {summary.get('bf16')} |"
    )
    return lines


def _evaluation_section(evaluations: list[dict] | None, name) -> list[str]:
    """The Evaluation section: pass@1 ± SEM per checkpoint and benchmark, or a note that there is none yet."""
    lines = ["", "## Evaluation", ""]
    if evaluations:
        lines += ["pass@1 is the mean over samples per problem, ± its standard error (SEM).", "",
                  "| checkpoint | benchmark | samples/problem | pass@1 ± SEM |", "|---|---|---|---|"]
        for m in evaluations:
            sem = m.get("sem")
            cell = f"{100 * m['pass@1']:.1f}%" + (f" ± {100 * sem:.1f}" if isinstance(sem, (int, float)) else "")
            lines.append(f"| {m.get('checkpoint')} | {m.get('benchmark')} | {m.get('n_samples')} | {cell} |")
    else:
        lines.append("Not evaluated when this card was written; the pipeline's `results/cards/"
                     f"{name}/README.md` adds the evaluation table.")
    return lines


def _stability_section(verdict) -> list[str]:
    """The Training stability section: the collapse verdict, its reasons and the rule."""
    from redi.train.collapse import CollapseRule, verdict_text

    lines = ["", "## Training stability", "", f"Collapse verdict: **{verdict_text(verdict)}**."]
    lines += [f"- {reason}" for reason in verdict.reasons]
    lines += ["", "Rule: " + CollapseRule().text()]
    return lines


def _reproduce_section(cfg: dict, prov: dict) -> list[str]:
    """The Reproduce section: code commit, library versions and the resolved run config."""
    code = prov.get("code") or {}
    libs = ", ".join(f"{k} {v}" for k, v in (prov.get("libraries") or {}).items() if v)
    return ["", "## Reproduce", "",
            f"Code commit `{code.get('commit')}`" + (" (with uncommitted changes)" if code.get("dirty") else "")
            + (f"; {libs}." if libs else "."), "", "Resolved run config:", "", "```json",
            json.dumps(cfg, indent=1, sort_keys=True), "```", ""]


def _limitations(summary: dict, corpus: dict, positions: int | None) -> list[str]:
    """What the model is and is not, from what the run recorded."""
    out = []
    if not corpus.get("hub"):
        out.append(
            f"- Trained on a local corpus (`{corpus.get('path') or summary.get('data_path')}`), not a published "
            "dataset: with the pipeline's synthetic demo corpus this is a toy model that exercises the pipeline, not "
            "a math model."
        )
    if positions and positions < 8192:
        out.append(f"- Context of {positions:,} positions: long reasoning traces do not fit.")
    out.append(
        "- Trained and evaluated only on math problems with a checkable final answer; accuracies are pass@1 over "
        "sampled generations (samples per problem in the evaluation table), not a general capability measure."
    )
    if summary.get("objective") != "sft":
        out.append("- Stage-2 objectives can collapse (see Training stability); check the verdict before use.")
    return out


def write_card(run_dir: str | Path, out: str | Path | None = None, *, results: str | Path | None = None,
               base_model: str | None = None) -> Path:
    """Write the card of ``results/train/{run}`` (``run_dir``) to ``out`` (default:
    ``{run_dir}/model/README.md``), with the evaluations under ``{results}/eval/{run}``."""
    run_dir = Path(run_dir)
    summary = _json(run_dir / "summary.json")
    if summary is None:
        raise FileNotFoundError(f"model card: {run_dir / 'summary.json'} is missing or unreadable")
    data_dir = curation_dir(summary.get("data_path") or "")
    curation = _json(data_dir / "curation_report.json")
    evaluations = eval_rows(Path(results) / "eval" / run_dir.name) if results else None
    out = Path(out) if out else run_dir / "model" / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    model_config = _json(out.parent / "config.json") or _json(run_dir / "model" / "config.json") or {}
    positions = model_config.get("max_position_embeddings")
    verdict = None
    if summary.get("objective") != "sft":
        from redi.train.collapse import assess_run

        root = Path(results) if results else run_dir.parent.parent
        verdict = assess_run(root, run_dir.name, _intermediate_benchmark(root, run_dir.name))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build_card(summary, curation=curation, evaluations=evaluations, base_model=base_model,
                              verdict=verdict, positions=positions,
                              rejects=_rejects(curation, data_dir) if curation else None))
    tmp.replace(out)
    return out


def _intermediate_benchmark(results: Path, run: str) -> str | None:
    """The benchmark of the run's intermediate (``step-*``) evaluations (the first by name when
    several; None when none exist yet)."""
    found = sorted({p.parent.name for p in (results / "eval" / run).glob("step-*/*/metrics.json")})
    return found[0] if found else None
