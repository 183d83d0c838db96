"""The paper's reference numbers (arXiv 2505.24850, see docs/paper.md) and the rules that map
a configured run onto one of the paper's rows.

A run maps onto a paper row only when the whole setting is the paper's (hub/local corpus, the
Qwen2.5-Math-1.5B student) and its objective and hyper-parameters are the row's; a benchmark
maps only when it is one of the paper's five. The embedded synthetic default has no
counterpart: its tables show our numbers only and say so.
"""

from __future__ import annotations

import math

# Benchmarks in the paper's column order; display names.
BENCHMARKS = ("math500", "aime24", "amc", "minerva", "olympiadbench")
DISPLAY = {
    "math500": "MATH-500",
    "aime24": "AIME24",
    "amc": "AMC23",
    "minerva": "Minerva",
    "olympiadbench": "OlympiadBench",
    "synthetic": "synthetic test",
}


def display_benchmark(name: str) -> str:
    return DISPLAY.get(name, name)


def _row(values, sems=None, avg=None, avg_sem=None):
    row = {b: {"pass@1": v, "sem": None} for b, v in zip(BENCHMARKS, values)}
    for b, s in zip(BENCHMARKS, sems or ()):
        row[b]["sem"] = s
    row["avg"] = {"pass@1": avg, "sem": avg_sem}
    return row


# pass@1 over 16 samples, % (Table 1 and Table 2 of the paper).
TABLE1 = {
    "qwen2.5-math-1.5b": ("Qwen2.5-Math-1.5B (base)", _row((52.2, 10.0, 42.5, 10.7, 25.2), avg=28.1)),
    "qwen2.5-math-1.5b-instruct": ("Qwen2.5-Math-1.5B-Instruct", _row((75.8, 10.0, 60.0, 29.4, 38.1), avg=42.7)),
    "r1-distill-qwen-1.5b": (
        "DeepSeek-R1-Distill-Qwen-1.5B",
        _row((83.2, 28.3, 62.1, 26.0, 43.1), (0.2, 1.0, 0.8, 0.4, 0.3), 48.6, 0.3),
    ),
    "sft-5ep": ("Qwen-SFT-1.5B-5ep", _row((80.4, 21.9, 57.5, 27.5, 41.5), (0.3, 1.1, 0.6, 0.4, 0.3), 45.8, 0.3)),
    "redi-final": ("Qwen-REDI-1.5B", _row((83.1, 28.1, 62.4, 28.8, 45.2), (0.3, 1.1, 0.6, 0.3, 0.2), 49.5, 0.3)),
}
TABLE2 = {
    "sft-3ep": ("SFT-3ep (start)", _row((76.7, 18.1, 52.8, 24.6, 37.5), avg=41.9)),
    "dpo": ("DPO (beta 0.001, LR 2e-7)", _row((81.3, 24.6, 58.5, 28.7, 43.1), avg=47.2)),
    "simpo": ("SimPO (beta 2, gamma 1, LR 5e-7)", _row((81.1, 24.8, 58.8, 29.1, 42.2), avg=47.2)),
    "redi-symmetric": ("Symmetric REDI (alpha 1.0, LR 2e-7)", _row((81.7, 25.8, 59.5, 29.3, 42.1), avg=47.7)),
    "redi": ("REDI (alpha 0.8, LR 1e-6)", _row((81.7, 27.3, 58.8, 30.4, 43.4), avg=48.3)),
}
# pass@16, % (Table 3: from SFT-3ep; Table 4: final models).
TABLE3 = {
    "sft-3ep": dict(zip(BENCHMARKS, (94.6, 53.3, 86.7, 57.7, 63.1))),
    "dpo": dict(zip(BENCHMARKS, (94.6, 63.3, 86.7, 58.8, 64.7))),
    "simpo": dict(zip(BENCHMARKS, (94.8, 60.0, 89.2, 58.5, 63.3))),
    "redi-symmetric": dict(zip(BENCHMARKS, (95.0, 63.3, 90.4, 58.8, 62.5))),
    "redi": dict(zip(BENCHMARKS, (95.0, 66.7, 81.9, 59.9, 63.9))),
}
TABLE4 = {
    "r1-distill-qwen-1.5b": dict(zip(BENCHMARKS, (95.6, 63.3, 92.8, 56.6, 65.8))),
    "sft-5ep": dict(zip(BENCHMARKS, (95.6, 56.7, 86.7, 56.3, 64.3))),
    "redi-final": dict(zip(BENCHMARKS, (95.0, 66.7, 90.4, 57.0, 65.8))),
}
PASSK_K = 16

# Reference models by hub name -> paper key.
REFERENCE_HUB = {
    "qwen/qwen2.5-math-1.5b": "qwen2.5-math-1.5b",
    "qwen/qwen2.5-math-1.5b-instruct": "qwen2.5-math-1.5b-instruct",
    "deepseek-ai/deepseek-r1-distill-qwen-1.5b": "r1-distill-qwen-1.5b",
}

# Cost on one 8xA100-80GB node (paper, "Cost" line): hours.
PAPER_GPUS = 8
PAPER_HARDWARE = "8xA100-80GB"
COST_HOURS = {
    "sft-3ep": 8.0,
    "sft-5ep": 13.0,
    "dpo": 5 + 10 / 60,
    "simpo": 4 + 50 / 60,
    "redi": 4 + 10 / 60,  # per epoch
    "eval-intermediate": 40 / 60,  # MATH-500 x 4 samples, per checkpoint
    "eval-final": 20.0,  # five benchmarks x 16 samples, per model
}

# Paper hyper-parameters of the mapped rows.
_SFT = {"learning_rate": 5e-5, "global_batch_size": 128}
_STAGE2 = {"global_batch_size": 32, "epochs": 1}
_STAGE2_ROWS = {
    "redi": {"objective": "redi", "alpha": 0.8, "learning_rate": 1e-6},
    "redi-symmetric": {"objective": "redi", "alpha": 1.0, "learning_rate": 2e-7},
    "dpo": {"objective": "dpo", "beta": 0.001, "learning_rate": 2e-7},
    "simpo": {"objective": "simpo", "beta": 2.0, "gamma": 1.0, "learning_rate": 5e-7},
}


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
    if not all(_close(run.get(k), v) for k, v in _SFT.items()):
        return None
    return {3: "sft-3ep", 5: "sft-5ep"}.get(run.get("epochs"))


def paper_key(run: dict, runs: dict, config: dict) -> str | None:
    """Paper row key of a configured run (see module doc), or None.

    SFT runs map to ``sft-3ep`` / ``sft-5ep``; stage-2 runs from the 3-epoch SFT run map to
    Table 2's rows (``redi``, ``redi-symmetric``, ``dpo``, ``simpo``); REDI alpha 0.8 from the
    5-epoch SFT run maps to ``redi-final`` (Qwen-REDI-1.5B).
    """
    if not paper_setting(config):
        return None
    if run["objective"] == "sft":
        return _sft_key(run)
    if run.get("max_steps") or not all(_close(run.get(k), v) for k, v in _STAGE2.items()):
        return None
    start = _sft_key(runs.get(run.get("start"), {"objective": "sft"}))
    for key, spec in _STAGE2_ROWS.items():
        if run["objective"] != spec["objective"]:
            continue
        if all(_close(run.get(k), v) for k, v in spec.items() if k != "objective"):
            if start == "sft-3ep":
                return key
            if start == "sft-5ep" and key == "redi":
                return "redi-final"
    return None


def reference_key(ref: dict) -> str | None:
    """Paper row key of a configured reference model (by hub name), or None."""
    name = (ref.get("hub_name") or "").lower()
    return REFERENCE_HUB.get(name)


def paper_value(table: dict, key: str | None, benchmark: str):
    """(pass@1 %, sem %) of a paper row, or (None, None)."""
    if key is None or key not in table:
        return None, None
    row = table[key][1]
    cell = row.get(benchmark)
    if cell is None:
        return None, None
    return cell["pass@1"], cell["sem"]


def paper_passk(table: dict, key: str | None, benchmark: str):
    if key is None or key not in table:
        return None
    return table[key].get(benchmark)


def paper_cost_hours(run: dict) -> float | None:
    """Paper wall hours of the same kind of training job (8xA100-80GB), or None."""
    objective = run["objective"]
    if objective == "sft":
        return COST_HOURS.get({3: "sft-3ep", 5: "sft-5ep"}.get(run.get("epochs"), ""))
    if objective == "redi":
        return COST_HOURS["redi"] * run.get("epochs", 1)
    return COST_HOURS.get(objective, 0) * run.get("epochs", 1) or None
