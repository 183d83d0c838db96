"""Issue 12: the scoring layer around Math-Verify (redi.verify) and the audit of every gold.

Each input of the issue and further members of its kind, run through the bounded workers
(:func:`redi.verify.verify_many`, the path of corpus labelling) and the eval scorer.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from redi.eval import metrics as M
from redi.eval.benchmarks import Problem, clean_gold, load_benchmark
from redi.eval.score import score_generations
from redi.verify import answer_expression, check_answer, normalize_gold, verify_many

ROOT = Path(__file__).resolve().parents[1]

# (gold, answer segment, expected verdict)
CASES = {
    # 1. tiny and huge values: exact for rationals, relative (1e-6) for floats
    "tiny_sci": ("4.6 \\times 10^{-24}", "\\boxed{9.2 \\times 10^{-24}}", False),
    "tiny_sci_100x": ("1.325\\times10^{-27}", "\\boxed{1.325\\times10^{-25}}", False),
    "tiny_rational": ("\\frac{1}{2^{70}}", "\\boxed{\\frac{3}{2^{70}}}", False),
    "tiny_rational_same": ("\\frac{1}{2^{70}}", "\\boxed{2^{-70}}", True),
    "tiny_sci_same": ("4.6 \\times 10^{-24}", "\\boxed{4.60 \\times 10^{-24}}", True),
    "tiny_sci_vs_decimal": ("2.5 \\times 10^{-20}", "\\boxed{0.000000000000000000025}", True),
    "tiny_negative": ("-8.224 \\times 10^{-19}", "\\boxed{8.224 \\times 10^{-19}}", False),
    "tiny_in_tuple": ("(1 \\times 10^{-20}, 2)", "\\boxed{(3 \\times 10^{-20}, 2)}", False),
    "tiny_in_set_same": ("1 \\times 10^{-20}, 2", "\\boxed{2, 10^{-20}}", True),
    "huge_rel": ("3.83 \\times 10^{35}", "\\boxed{3.84 \\times 10^{35}}", False),
    "huge_rel_same": ("3.83 \\times 10^{35}", "\\boxed{383000000000000000000000000000000000}", True),
    "rel_tol_edge": ("0.333333", "\\boxed{\\frac{1}{3}}", True),
    "rel_tol_out": ("\\frac{1}{3}", "\\boxed{0.3333}", False),
    "irrational": ("\\frac{\\sqrt{2}}{2}", "\\boxed{0.7071068}", True),
    "irrational_off": ("\\frac{\\sqrt{2}}{2}", "\\boxed{0.7072}", False),
    "big_int_exact": ("2^{1009}", "\\boxed{2^{1009}+1}", False),
    # percent: optional on ONE side, both directions
    "pct_answer_float": ("35", "\\boxed{35.0\\%}", True),
    "pct_gold": ("10\\%", "\\boxed{10}", True),
    "pct_gold_fraction": ("10\\%", "\\boxed{0.1}", True),
    "pct_gold_wrong": ("10\\%", "\\boxed{1000}", False),
    # 2. escaped dollar in gold (and in answers)
    "dollar": ("\\$18.90", "$\\boxed{\\$18.90}$", True),
    "dollar_bare_answer": ("\\$18.90", "$\\boxed{18.90}$", True),
    "dollar_delimited_gold": ("$\\$36$", "$\\boxed{36}$", True),
    "dollar_thousands": ("\\$32,\\!348", "$\\boxed{\\$32,348}$", True),
    "dollar_wrong": ("\\$18.90", "$\\boxed{\\$19.80}$", False),
    # 3. several boxes: adjacent boxes are one answer (the set), else the last group counts
    "boxes_comma_and": ("2,4,9", "$\\boxed{2}$, $\\boxed{4}$, and $\\boxed{9}$", True),
    "boxes_newlines": ("2,4,9", "$\\boxed{2}$\n$\\boxed{4}$\n$\\boxed{9}$", True),
    "boxes_comma": ("2,4,9", "$\\boxed{2}$, $\\boxed{4}$, $\\boxed{9}$", True),
    "boxes_and": ("2,4,9", "$\\boxed{2}$ and $\\boxed{4}$ and $\\boxed{9}$", True),
    "boxes_semicolon": ("2,4,9", "\\[\\boxed{2};\\quad \\boxed{4};\\quad \\boxed{9}\\]", True),
    "boxes_last_only_comma_and": ("9", "$\\boxed{2}$, $\\boxed{4}$, and $\\boxed{9}$", False),
    "boxes_last_only_newlines": ("9", "$\\boxed{2}$\n\n$\\boxed{4}$\n$\\boxed{9}$", False),
    "boxes_last_only_comma": ("9", "$\\boxed{2}$, $\\boxed{4}$, $\\boxed{9}$", False),
    "boxes_last_only_and": ("9", "$\\boxed{2}$ and $\\boxed{4}$ and $\\boxed{9}$", False),
    "boxes_missing_one": ("2,4,9", "$\\boxed{2}$, and $\\boxed{4}$", False),
    "boxes_intermediate": ("9", "First $\\boxed{2}$ is the root. So the final answer is $\\boxed{9}$.", True),
    "boxes_labelled": ("x=2, y=3", "$x=\\boxed{2}$ and $y=\\boxed{3}$", True),
    "box_nested_braces": ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}}", True),
    "box_trailing_stop": ("(-\\infty, 0) \\cup\\{1\\}", "\\boxed{(-\\infty, 0) \\cup\\{1\\}.}", True),
    # 4. unboxed fragments: a mixed number is one value, never one of its parts
    "mixed_not_part": ("12", "The answer is 5 12/7.", False),
    "mixed_not_whole": ("5", "The answer is 5 12/7.", False),
    "mixed_value": ("47/7", "The answer is 5 12/7.", True),
    "mixed_cups": ("\\frac{5}{2}", "We need 2 1/2 cups", True),
    "mixed_boxed": ("\\frac{47}{7}", "\\boxed{5 12/7}", True),
    "mixed_boxed_not_part": ("17/7", "\\boxed{5 12/7}", False),
    "fraction_plain": ("1/2", "so it is 1/2", True),
    "text_number_box": ("1.25", "\\boxed{\\text{1.25}}", True),
    "text_leading_zero": ("025", "\\boxed{\\text{025}}", True),
}


@pytest.fixture(scope="module")
def verdicts():
    names = list(CASES)
    out = verify_many([CASES[n][:2] for n in names], timeout_s=20, workers=2)
    return dict(zip(names, out))


@pytest.mark.parametrize("name", list(CASES))
def test_verdicts(verdicts, name):
    gold, answer, expected = CASES[name]
    v = verdicts[name]
    assert v.status == "ok", (name, v)
    assert v.correct is expected, (name, gold, answer, v)


def test_in_process_check_agrees_with_workers(verdicts):
    for name in ("tiny_sci", "dollar", "boxes_comma_and", "mixed_not_part"):
        gold, answer, _ = CASES[name]
        assert check_answer(gold, answer) == verdicts[name]


def test_normalize_gold_keeps_latex():
    assert normalize_gold("\\$18.90") == "\\$18.90"
    assert normalize_gold("$\\$18.90$") == "\\$18.90"
    assert normalize_gold("$69$,$84$") == "69,84"
    assert normalize_gold(" 9.6\n") == "9.6"
    assert normalize_gold("$(-\\infty, 0) \\cup\\{1\\}$.") == "(-\\infty, 0) \\cup\\{1\\}"
    assert normalize_gold("1,2,...") == "1,2,..."
    assert normalize_gold("\\text{12}") == "12"
    assert normalize_gold("\\text{Evelyn}") == "\\text{Evelyn}"
    for g in ("\\$18.90", "$69$,$84$", "5 12/7", "\\frac{1}{2}."):
        assert normalize_gold(normalize_gold(g)) == normalize_gold(g)
    assert clean_gold("\\$32,\\!348") == "\\$32,\\!348"  # the benchmarks' loader uses the same rule


def test_answer_expression_groups_boxes():
    assert answer_expression("$\\boxed{2}$, $\\boxed{4}$, and $\\boxed{9}$") == ("\\boxed{2, 4, 9}", True)
    assert answer_expression("\\boxed{1} so \\boxed{7}") == ("\\boxed{7}", True)
    assert answer_expression("\\boxed{\\frac{1}{2}}") == ("\\boxed{\\frac{1}{2}}", True)
    assert answer_expression("The answer is 5 12/7.") == ("The answer is 47/7.", False)
    # a decimal or a list is not a mixed number
    assert answer_expression("costs 3.5 1/2")[0] == "costs 3.5 1/2"
    assert answer_expression("x^2 3/4")[0] == "x^2 3/4"


def test_eval_scorer_and_corpus_path_share_the_rule(tmp_path):
    """The raw gold as a corpus row carries it (``$\\$18.90$``) and as the benchmark loader
    cleans it give the same verdicts through score_generations and verify_many."""
    raw = "$\\$18.90$"
    answers = ["$\\boxed{\\$18.90}$", "$\\boxed{18.9}$", "$\\boxed{1890}$"]
    corpus = verify_many([(raw, a) for a in answers], timeout_s=20)
    problem = Problem("p", 0, "q", (clean_gold(raw),))
    gens = [
        {"problem_id": "p", "sample_index": i, "text": "<think>x</think>" + a, "length": 1, "finish_reason": "stop"}
        for i, a in enumerate(answers)
    ]
    df = score_generations([problem], gens, timeout_s=20)
    assert [v.correct for v in corpus] == df["correct"].tolist() == [True, True, False]


def test_math500_dollar_golds_can_be_scored_correct():
    problems = load_benchmark(ROOT / "data" / "benchmarks" / "math.json")
    rows = [p for p in problems if p.index in (242, 459, 488)]
    assert [p.gold for p in rows] == ["\\$32,\\!348", "\\$18.90", "\\$36"]
    out = verify_many([(p.gold, f"$\\boxed{{{p.gold}}}$") for p in rows], timeout_s=20)
    assert all(v.correct for v in out), out


# ----------------------------------------------------------------------------- 5. SEM, k = 1


def _samples(k: int) -> pd.DataFrame:
    rows = [
        {"problem_id": f"p{i}", "sample_index": j, "correct": (i + j) % 2 == 0, "status": "ok", "length": 5,
         "finish_reason": "stop"}
        for i in range(4)
        for j in range(k)
    ]
    return pd.DataFrame(rows)


def test_sem_not_available_for_one_sample():
    assert M.sem([0.5]) is None
    assert M.sem([]) is None
    assert M.sem([0.5, 0.7]) == pytest.approx(0.1 / math.sqrt(2))
    one = M.summarise(_samples(1))
    assert one["sem"] is None and one["n_samples"] == 1
    assert M.benchmark_average([dict(one, benchmark="a"), dict(one, benchmark="b")])["sem"] is None
    two = M.summarise(_samples(2))
    assert two["sem"] is not None and math.isfinite(two["sem"])


def test_formatters_print_not_available():
    from redi.report import summary
    from redi.report.render import pm
    from redi.report.tables.accuracy import Metric

    assert pm(0.5, None) == "50.0 ± n/a"
    assert pm(0.5, float("nan")) == "50.0 ± n/a"
    assert pm(0.5, 0.01) == "50.0 ± 1.0"
    assert "± 0.0" not in summary._fmt(0.5, None) and "n/a" in summary._fmt(0.5, None)
    one = M.summarise(_samples(1))
    value, sem = Metric("pass1").of_average({"a": one, "b": one})
    assert sem is None and value == pytest.approx(one["pass@1"])


# ----------------------------------------------------------------------------- the audit


# (benchmark, row, kind): misses the audit lists as known limits (docs/scoring-audit.md)
KNOWN_LIMITS = {
    ("minerva", 81, "x_equals"),  # gold "m": Math-Verify's unit stripping drops "m" after "="
    ("minerva", 106, "x_equals"),  # same
    ("minerva", 264, "x_equals"),  # gold latex2sympy cannot parse (\hbar): string comparison
    ("olympiad_bench", 199, "drop_element"),  # "16,3,1,1": comma lists are sets, 1,1 collapses
    ("olympiad_bench", 285, "drop_element"),  # "-2,-2": same
}


@pytest.mark.slow
def test_audit_every_benchmark_gold_both_ways():
    from redi.eval.audit import run_audit, table_markdown, totals

    result = run_audit(ROOT / "data" / "benchmarks", workers=2, timeout_s=20)
    assert result["n_problems"] == 1560
    t = totals(result)
    assert t["as_written"] == [1560, 1560], result["misses"][:5]
    assert t["equivalents"][1] > 2500 and t["near_misses"][1] > 6000  # the audit is not vacuous
    found = {(m["benchmark"], m["row"], m["kind"]) for m in result["misses"]}
    assert found <= KNOWN_LIMITS, (sorted(found - KNOWN_LIMITS), table_markdown(result))
