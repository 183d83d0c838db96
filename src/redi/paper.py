"""The REDI paper's constants: one home for every number the pipeline takes from the paper.

Source: Xu et al., "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data for
LLM Reasoning" (arXiv 2505.24850). Each section below names the part of the paper (or of its
public preprocessing) a value comes from. Code that needs a paper value imports it from here
("one module of paper constants that curation, training defaults and the report
import"); nothing else restates it.

Sections:

1. Data curation   - the rules that turn OpenR1-Math-Raw into D_SFT / D_Pref and the counts the
                     paper reports for them (used by ``redi.data.curate``).
2. Hyper-parameters - the training configuration table (read by ``redi.train.objectives``).
3. Reference numbers - the paper's result tables and cost (used by ``redi.report``).

This module is on the ground floor: it imports nothing from ``redi``.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# 1. Data curation (paper, "Data curation"; Open-R1's public OpenR1-Math-Raw preprocessing)
# --------------------------------------------------------------------------------------------

#: Hub dataset the paper curates from (split ``train``).
CORPUS = "open-r1/OpenR1-Math-Raw"

#: Keep only rows whose ``problem_is_valid`` is "yes" (stripped, case-insensitive).
CURATION_VALID_ONLY = True
#: Sources dropped before selection.
CURATION_EXCLUDE_SOURCES = ("cn_k12",)
#: A generation is positive when the Llama judge AND Math-Verify both say correct ("LandMV").
CURATION_LABEL_RULE = "llama_and_mv"
#: The corpus is shuffled with this seed (``datasets.Dataset.shuffle``) before selection.
CURATION_SHUFFLE_SEED = 42
#: Length filter on D_Pref, student tokenizer + chat template: prompt tokens at most ...
CURATION_MAX_PROMPT_LENGTH = 800
#: ... and tokens of each response (chosen and rejected) at most.
CURATION_MAX_RESPONSE_LENGTH = 19000
#: Word n-gram size of the decontamination against the benchmarks (Open-R1 practice).
CURATION_DECONTAMINATION_NGRAM = 8

#: Counts the paper reports after selection: D_SFT (first correct generation of every problem
#: that has one, "78k") and D_Pref before the length filter (first correct = chosen, first
#: incorrect = rejected). Keys are the curation report's ``expected`` quantities.
CURATION_EXPECTED = {"sft": 77629, "pairs_before_length_filter": 53175}

# --------------------------------------------------------------------------------------------
# 2. Hyper-parameters (paper, "Training configuration" table)
# --------------------------------------------------------------------------------------------
# Per-objective settings of the paper's runs, keyed by objective name. The objective registry
# (``redi.train.objectives``) reads them as each objective's defaults; ``RunConfig`` fills a
# run's unset ``learning_rate`` / ``beta`` / ``epochs`` / ``global_batch_size`` from there.

#: Peak learning rate (AdamW, linear warm-up over 10 % of the steps, then linear decay to 0).
#: Symmetric REDI (alpha = 1) ran at 2e-7 in the paper; a run sets that explicitly.
LEARNING_RATE = {"sft": 5e-5, "redi": 1e-6, "dpo": 2e-7, "simpo": 5e-7}
#: Temperature beta of the sigmoid objectives (DPO's KL strength; SimPO's reward scale).
BETA = {"dpo": 0.001, "simpo": 2.0}
#: SimPO target reward margin gamma.
SIMPO_GAMMA = 1.0
#: Epochs over the training set: SFT 3 (the 5-epoch start model is a separate run), stage 2 one.
EPOCHS = {"sft": 3, "redi": 1, "dpo": 1, "simpo": 1}
#: Examples per optimizer step over all devices: sequences for SFT, preference pairs otherwise.
GLOBAL_BATCH_SIZE = {"sft": 128, "redi": 32, "dpo": 32, "simpo": 32}

# --------------------------------------------------------------------------------------------
# 3. Reference numbers (paper, Tables 1 and 2: pass@1 over 16 samples, %; cost)
# --------------------------------------------------------------------------------------------
# Used by the report (``redi.report.paper_lookup`` maps a configured run onto a row here).

#: The paper's five evaluation benchmarks (keys of ``evaluation.benchmarks``), in its column
#: order; their display names (MATH-500, AIME24, AMC23, Minerva, OlympiadBench) are the config's
#: (``config/schema.yaml`` default, ``redi.eval.benchmarks.display_name``).
BENCHMARKS = ("math500", "aime24", "amc", "minerva", "olympiadbench")
#: Samples per problem of the final evaluation; Tables 3-4 report pass@k at this k.
PASSK_K = 16


def _row(values, sems=None, avg=None, avg_sem=None) -> dict:
    """``{benchmark: {"pass@1": %, "sem": % or None}, "avg": {...}}`` of one table row."""
    row = {b: {"pass@1": v, "sem": None} for b, v in zip(BENCHMARKS, values)}
    for b, s in zip(BENCHMARKS, sems or ()):
        row[b]["sem"] = s
    row["avg"] = {"pass@1": avg, "sem": avg_sem}
    return row


#: Table 1 (final models) and Table 2 (stage-2 ablation from SFT-3ep): row key -> (label, row);
#: pass@1 over 16 samples, %, ± SEM where the paper prints one.
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
#: Table 3 (stage-2 ablation) and Table 4 (final models): pass@16, %.
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

#: Reference models of Table 1 by hub name (lower case) -> row key.
REFERENCE_HUB = {
    "qwen/qwen2.5-math-1.5b": "qwen2.5-math-1.5b",
    "qwen/qwen2.5-math-1.5b-instruct": "qwen2.5-math-1.5b-instruct",
    "deepseek-ai/deepseek-r1-distill-qwen-1.5b": "r1-distill-qwen-1.5b",
}

#: The settings that make a run one of Table 2's rows (trained from SFT-3ep; REDI alpha 0.8 from
#: SFT-5ep is Table 1's Qwen-REDI-1.5B). Symmetric REDI ran at its own learning rate.
TABLE2_SETTINGS = {
    "redi": {"objective": "redi", "alpha": 0.8, "learning_rate": LEARNING_RATE["redi"]},
    "redi-symmetric": {"objective": "redi", "alpha": 1.0, "learning_rate": 2e-7},
    "dpo": {"objective": "dpo", "beta": BETA["dpo"], "learning_rate": LEARNING_RATE["dpo"]},
    "simpo": {
        "objective": "simpo",
        "beta": BETA["simpo"],
        "gamma": SIMPO_GAMMA,
        "learning_rate": LEARNING_RATE["simpo"],
    },
}

#: Cost (paper, "Cost" line): wall hours on one node of PAPER_GPUS x PAPER_HARDWARE, with what
#: each number covers. ``redi`` is per epoch; evaluation costs are per checkpoint / per model.
PAPER_GPUS = 8
PAPER_HARDWARE = "8xA100-80GB"
COST_HOURS = {
    "sft-3ep": 8.0,
    "sft-5ep": 13.0,
    "dpo": 5 + 10 / 60,
    "simpo": 4 + 50 / 60,
    "redi": 4 + 10 / 60,
    "eval-intermediate": 40 / 60,
    "eval-final": 20.0,
}
#: key -> (job, unit) in the paper's words, for the report's cost note.
COST_JOBS = {
    "sft-3ep": ("SFT 3 ep", ""),
    "sft-5ep": ("SFT 5 ep", ""),
    "dpo": ("DPO", ""),
    "simpo": ("SimPO", ""),
    "redi": ("REDI", " per epoch"),
    "eval-intermediate": ("MATH-500 x 4 samples", " per checkpoint"),
    "eval-final": ("five benchmarks x 16 samples", " per model"),
}
