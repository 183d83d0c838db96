"""Model cards: a Hugging Face ``README.md`` for every final model (issue 15).

Format (https://huggingface.co/docs/hub/model-cards): YAML front matter (``base_model``,
``library_name``, ``tags``, ``datasets`` when the corpus is a hub dataset) and a markdown body:
data and curation counts, objective and hyper-parameters, an evaluation table (pass@1 ± SEM per
checkpoint and benchmark), and the exact resolved config with the code commit.

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

TAGS = ["redi", "reinforcement-distillation", "math", "reasoning"]
HYPER = ("alpha", "beta", "gamma", "learning_rate", "epochs", "global_batch_size", "warmup_ratio", "weight_decay",
         "max_grad_norm", "max_length", "max_prompt_length", "max_response_length", "seed")


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
               base_model: str | None = None) -> str:
    """The card text. ``summary``: the run's ``summary.json`` (with ``provenance``); ``curation``:
    ``curation_report.json``; ``evaluations``: metrics.json dicts; ``base_model``: hub id of the
    start model when known (else the start model's recorded hub name, if any)."""
    cfg = summary.get("config") or {}
    prov = summary.get("provenance") or {}
    model = prov.get("model") or {}
    corpus = (prov.get("data") or {}).get("corpus") or {}
    front = {"library_name": "transformers", "tags": TAGS + [cfg.get("objective") or summary.get("objective")]}
    student = model.get("student") or {}
    base = base_model or model.get("hub") or student.get("hub")
    if base:
        front["base_model"] = base
    if student.get("license"):
        front["license"] = student["license"]
    if corpus.get("hub"):
        front["datasets"] = [corpus["hub"]]
    name = summary.get("run") or cfg.get("name")
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    lines.append(f"Trained with the REDI pipeline (Reinforcement Distillation, arXiv 2505.24850): "
                 f"{_objective_text(cfg.get('objective'))}.")
    lines.append(f"Start model: `{summary.get('model_path')}`" + (f" (`{base}`)" if base else "") + ".")
    if student:
        from redi.model.base import describe_student

        lines.append(f"Student (the pipeline's start): {describe_student(student)}"
                     + (f"; license {student['license']}" if student.get("license") else "") + ".")  # fmt: skip
    lines += ["", "## Data", ""]
    if corpus:
        ident = f"{corpus['hub']}@{corpus.get('revision')}" if corpus.get("hub") else f"sha256 `{corpus.get('sha256')}`"
        lines.append(f"- Corpus: `{corpus.get('path')}` ({ident})")
    train = (prov.get("data") or {}).get("train") or {}
    lines.append(f"- Training file: `{summary.get('data_path')}` ({summary.get('n_examples')} examples"
                 + (f", sha256 `{train.get('sha256')}`" if train.get("sha256") else "") + ")")
    if curation:
        steps = [s for s in curation.get("steps") or [] if s.get("kept") is not None]
        if steps:
            lines.append("- Curation: " + " -> ".join(f"{s['step']} {s['kept']:,}" for s in steps))
        final = curation.get("final") or {}
        if final:
            lines.append(f"- Curated: {final.get('sft')} SFT examples, {final.get('pref')} preference pairs "
                         f"({curation.get('rejects_count', 'n/a')} rows/generations dropped, each with a reason)")
    tok = summary.get("tokenization") or {}
    if tok:
        lines.append("- Truncation: " + ", ".join(f"{k} {v}" for k, v in tok.items()))
    lines += ["", "## Objective and hyper-parameters", "", "| key | value |", "|---|---|"]
    lines.append(f"| objective | {cfg.get('objective')} |")
    lines += [f"| {k} | {cfg[k]} |" for k in HYPER if cfg.get(k) is not None]
    lines.append(
        f"| steps | {summary.get('steps')} of {summary.get('total_steps')} ({summary.get('stopped_reason')}) |"
    )
    lines.append(
        f"| hardware | {summary.get('device')}, world size {summary.get('world_size')}, bf16 {summary.get('bf16')} |"
    )
    lines += ["", "## Evaluation", ""]
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
    code = prov.get("code") or {}
    libs = ", ".join(f"{k} {v}" for k, v in (prov.get("libraries") or {}).items() if v)
    lines += ["", "## Reproduce", "",
              f"Code commit `{code.get('commit')}`" + (" (with uncommitted changes)" if code.get("dirty") else "")
              + (f"; {libs}." if libs else "."), "", "Resolved run config:", "", "```json",
              json.dumps(cfg, indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)


def write_card(run_dir: str | Path, out: str | Path | None = None, *, results: str | Path | None = None,
               base_model: str | None = None) -> Path:
    """Write the card of ``results/train/{run}`` (``run_dir``) to ``out`` (default:
    ``{run_dir}/model/README.md``), with the evaluations under ``{results}/eval/{run}``."""
    run_dir = Path(run_dir)
    summary = _json(run_dir / "summary.json")
    if summary is None:
        raise FileNotFoundError(f"model card: {run_dir / 'summary.json'} is missing or unreadable")
    curation = _json(Path(summary.get("data_path") or "").parent / "curation_report.json")
    evaluations = eval_rows(Path(results) / "eval" / run_dir.name) if results else None
    out = Path(out) if out else run_dir / "model" / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build_card(summary, curation=curation, evaluations=evaluations, base_model=base_model))
    tmp.replace(out)
    return out
