"""The REDI paper's constants: one home for every number the pipeline takes from the paper.

Source: Xu et al., "Harnessing Negative Signals: Reinforcement Distillation from Teacher Data for
LLM Reasoning" (arXiv 2505.24850). Each section below names the part of the paper (or of its
public preprocessing) a value comes from. Code that needs a paper value imports it from here
(issue 14: "one module of paper constants that curation, training defaults and the report
import"); nothing else restates it.

Sections:

1. Data curation   - the rules that turn OpenR1-Math-Raw into D_SFT / D_Pref and the counts the
                     paper reports for them (used by ``redi.data.curate``).
2. Hyper-parameters - the training configuration table (to be used by ``redi.train.config``).
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
# Per-objective learning rates, betas, epochs and batch sizes live in redi.train.config for now;
# they move here (and redi.train.config / the report import them) in a later part of issue 14.

# --------------------------------------------------------------------------------------------
# 3. Reference numbers (paper, Tables 1 and 2: pass@1 over 16 samples, %; cost)
# --------------------------------------------------------------------------------------------
# The result tables live in redi.report.paper for now; they move here in a later part of
# issue 14.
