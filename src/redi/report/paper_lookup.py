"""Which of the paper's rows a configured run or reference model is, and that row's numbers.

The numbers themselves live in :mod:`redi.paper` (section 3); this module only maps onto them.
A run maps onto a paper row only when the whole setting is the paper's (hub/local corpus, the
Qwen2.5-Math-1.5B student) and its objective and hyper-parameters are the row's; a benchmark
maps only when it is one of the paper's five. The embedded synthetic default has no
counterpart: its tables show our numbers only and say so.
"""

from __future__ import annotations

import math

from redi import paper
from redi.train.objectives import objective_params


def _close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-6)


def paper_setting(config: dict) -> bool:
    """True when the config trains the paper's student on the paper's corpus."""
    if config.get("corpus", {}).get("source", "synthetic") == "synthetic":
        return False
    student = config.get("student", {})
    if student.get("kind") != "pretrained":
        return False
    name = (student.get("hub_name") or student.get("local_path") or "").lower().rstrip("/")
    return name.endswith("qwen2.5-math-1.5b")


def _sft_key(run: dict) -> str | None:
    if run.get("max_steps"):
        return None
    if not (
        _close(run.get("learning_rate"), paper.LEARNING_RATE["sft"])
        and _close(run.get("global_batch_size"), paper.GLOBAL_BATCH_SIZE["sft"])
    ):
        return None
    return {3: "sft-3ep", 5: "sft-5ep"}.get(run.get("epochs"))


def _paper_schedule(run: dict) -> bool:
    """The paper's stage-2 schedule for the run's objective (its epochs and global batch size)."""
    objective = run["objective"]
    if run.get("max_steps") or objective not in paper.EPOCHS:
        return False
    return _close(run.get("epochs"), paper.EPOCHS[objective]) and _close(
        run.get("global_batch_size"), paper.GLOBAL_BATCH_SIZE[objective]
    )


def paper_key(run: dict, runs: dict, config: dict) -> str | None:
    """Paper row key of a configured run (see module doc), or None.

    SFT runs map to ``sft-3ep`` / ``sft-5ep``; stage-2 runs from the 3-epoch SFT run map to
    Table 2's rows (``paper.TABLE2_SETTINGS``); REDI alpha 0.8 from the 5-epoch SFT run maps to
    ``redi-final`` (Qwen-REDI-1.5B).
    """
    if not paper_setting(config):
        return None
    if run["objective"] == "sft":
        return _sft_key(run)
    if not _paper_schedule(run):
        return None
    start = _sft_key(runs.get(run.get("start"), {"objective": "sft"}))
    mine = {**objective_params(run), "learning_rate": run.get("learning_rate")}
    for key, spec in paper.TABLE2_SETTINGS.items():
        if run["objective"] != spec["objective"]:
            continue
        if all(_close(mine.get(k), v) for k, v in spec.items() if k != "objective"):
            if start == "sft-3ep":
                return key
            if start == "sft-5ep" and key == "redi":
                return "redi-final"
    return None


def reference_key(ref: dict) -> str | None:
    """Paper row key of a configured reference model (by hub name), or None."""
    name = (ref.get("hub_name") or "").lower()
    return paper.REFERENCE_HUB.get(name)


def paper_value(table: dict, key: str | None, benchmark: str):
    """(pass@1 %, sem %) of a row of ``paper.TABLE1`` / ``TABLE2``, or (None, None)."""
    if key is None or key not in table:
        return None, None
    cell = table[key][1].get(benchmark)
    if cell is None:
        return None, None
    return cell["pass@1"], cell["sem"]


def paper_passk(table: dict, key: str | None, benchmark: str):
    """pass@16 % of a row of ``paper.TABLE3`` / ``TABLE4``, or None."""
    if key is None or key not in table:
        return None
    return table[key].get(benchmark)


def lookup(key: str | None, bench: str, kind: str):
    """(value %, sem %) of a row key in the paper's tables: pass@1 (``kind="pass1"``) from
    Tables 1-2, else pass@16 from Tables 4 then 3; (None, None) when the paper has no such cell."""
    if key is None:
        return None, None
    if kind == "pass1":
        for table in (paper.TABLE1, paper.TABLE2):
            value, sem = paper_value(table, key, bench)
            if value is not None:
                return value, sem
        return None, None
    for table in (paper.TABLE4, paper.TABLE3):
        value = paper_passk(table, key, bench)
        if value is not None:
            return value, None
    return None, None


def paper_cost_hours(run: dict) -> float | None:
    """Paper wall hours of the same kind of training job (one paper node), or None."""
    objective = run["objective"]
    if objective == "sft":
        return paper.COST_HOURS.get({3: "sft-3ep", 5: "sft-5ep"}.get(run.get("epochs"), ""))
    return paper.COST_HOURS.get(objective, 0) * run.get("epochs", 1) or None


def _hours_text(hours: float) -> str:
    h, m = divmod(round(hours * 60), 60)
    return " ".join(part for part in (f"{h} h" if h else "", f"{m} min" if m else "") if part)


def cost_sentence() -> str:
    """The paper's costs in words, from ``paper.COST_HOURS`` / ``COST_JOBS``: training jobs,
    then evaluations (``'SFT 3 ep 8 h, ..., REDI 4 h 10 min per epoch; MATH-500 x 4 ...'``)."""
    texts = {k: f"{job} {_hours_text(paper.COST_HOURS[k])}{unit}" for k, (job, unit) in paper.COST_JOBS.items()}
    train = [t for k, t in texts.items() if not k.startswith("eval-")]
    evals = [t for k, t in texts.items() if k.startswith("eval-")]
    return "; ".join([", ".join(train), *evals])
