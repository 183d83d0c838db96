"""The REDI paper's constants: one home for every number the pipeline takes from the paper.

Source: Xu et al., "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data for
LLM Reasoning" (arXiv 2505.24850). Each section below names the part of the paper (or of its
public preprocessing) a value comes from. Code that needs a paper value imports it from here
(issue 14: "one module of paper constants that curation, training defaults and the report
import"); nothing else restates it.

Sections:

1. Data curation   - the rules that turn OpenR1-Math-Raw into D_SFT / D_Pref and the counts the
                     paper reports for them (used by ``redi.data.curate``).
2. Hyper-parameters - the training configuration table (read by ``redi.train.objectives``).
3. Reference numbers - the paper's result tables (to be used by the report).

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
# The result tables live in redi.report.paper for now; they move here in a later part of
# issue 14.
