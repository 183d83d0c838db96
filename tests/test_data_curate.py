"""Curation rules on hand-written verified rows, with a tiny tokenizer."""

from __future__ import annotations

import json

import pytest

from redi.data.config import CurationConfig
from redi.data.curate import (
    TokenCounter,
    build_ngram_index,
    choose_pair,
    contamination,
    curate,
    is_valid,
    label_problem,
    positives,
    word_ngrams,
)
from redi.data.io import read_jsonl
from redi.prompts import OPENR1_INSTRUCTION, user_content
from test_data_common import build_tiny_tokenizer, gen, verified_row, write_verified

BENCH_PROBLEM = "Find the number of ordered pairs of positive integers whose product is one hundred."
LONG_PROBLEM = "Compute the value " + " ".join(["of the sum"] * 150) + "."


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"), [BENCH_PROBLEM, gen(12)])


def _rows():
    T, F = True, False
    long_gen = gen(2, " ".join(["step"] * 300))
    return [
        verified_row(0, llama=[T, F], mv=[T, T]),  # and: [T, F] -> sft g0, pref (0, 1)
        verified_row(1, llama=[T, F], mv=[T, F], valid="No"),  # invalid
        verified_row(2, llama=[T, F], mv=[T, F], source="cn_k12"),  # excluded source
        verified_row(3, llama=[F, T, T], mv=[T, T, F]),  # and: [F, T, F] -> sft g1, pref (1, 0)
        verified_row(4, llama=[T], mv=[F], rec=[T]),  # and: none; or/recomputed: positive
        verified_row(5, llama=[T, T], mv=[T, T]),  # all positive -> sft only
        verified_row(6, llama=[T], mv=[T, T]),  # label length mismatch
        verified_row(7, llama=[F, F], mv=[F, F], valid=" YES "),  # valid (strip/case), no positive
        verified_row(8, problem=BENCH_PROBLEM, llama=[T, F], mv=[T, F]),  # contaminated
        verified_row(9, gens=[long_gen, gen(3)], llama=[T, F], mv=[T, F]),  # chosen too long
        verified_row(10, llama=[T, F], mv=[T, F], valid=None, schema="flat"),  # no validity column
        verified_row(11, problem=LONG_PROBLEM, llama=[T, F], mv=[T, F]),  # prompt too long
    ]


def _run(tmp_path, tok, cfg=None, rows=None, benchmarks=True):
    verified = write_verified(rows if rows is not None else _rows(), tmp_path / "verified.parquet")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"problem": BENCH_PROBLEM.upper() + "  ", "answer": "9"}]))
    counter = TokenCounter(tok, OPENR1_INSTRUCTION)
    normal = counter.prompt_lengths(["Problem number 0: compute 0 + 2."])[0]
    base = {"max_prompt_length": normal + 40, "max_response_length": 120}
    report = curate(
        verified,
        tok,
        tmp_path / "sft.jsonl",
        tmp_path / "pref.jsonl",
        tmp_path / "report.json",
        tmp_path / "report.md",
        tmp_path / "rejects.jsonl",
        {**base, **(cfg or {})},
        {"bench": str(bench)} if benchmarks else {},
    )
    sft = read_jsonl(tmp_path / "sft.jsonl")
    pref = read_jsonl(tmp_path / "pref.jsonl")
    rejects = read_jsonl(tmp_path / "rejects.jsonl")
    return report, sft, pref, rejects


def _shuffled(ids, n=12, seed=42):
    import datasets

    order = datasets.Dataset.from_dict({"i": list(range(n))}).shuffle(seed=seed)["i"]
    return [i for i in order if i in set(ids)]


def test_paper_rules_default(tmp_path, tok):
    report, sft, pref, rejects = _run(
        tmp_path, tok, {"expected": {"sft": 7, "pairs_before_length_filter": 5}}
    )
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["valid_only"]["dropped"] == 1 and steps["valid_only"]["validity_unknown_kept"] == 1
    assert steps["exclude_sources"]["reasons"] == {"source cn_k12": 1}
    assert steps["label_lists"]["reasons"] == {
        "label_rule llama_and_mv needs label_mv (correctness.math_verify_reparsed_answer): length mismatch": 1}
    assert steps["select_sft"]["kept"] == 7  # rows 0 3 5 8 9 10 11
    assert steps["select_pref"]["kept"] == 6  # rows 0 3 8 9 10 11
    assert steps["select_pref"]["reasons"] == {"no positive generation": 2, "no non-positive generation": 1}
    assert steps["length_filter_pref"]["reasons"] == {"prompt too long": 1, "chosen response too long": 1}
    assert steps["decontaminate_sft"]["reasons"] == {"8-gram overlap with bench": 1}
    assert report["final"] == {"sft": 6, "pref": 3}

    # order = Dataset.shuffle(seed=42) order of the original rows; row_index kept
    assert [r["row_index"] for r in sft] == _shuffled([0, 3, 5, 9, 10, 11])
    assert [r["row_index"] for r in pref] == _shuffled([0, 3, 10])

    by_row = {r["row_index"]: r for r in sft}
    rows = {r["row_index"]: r for r in _rows()}
    assert by_row[3]["messages"][1] == {"role": "assistant", "content": rows[3]["generations"][1]}
    assert by_row[0]["messages"][0] == {"role": "user", "content": user_content(rows[0]["problem"])}
    assert by_row[0]["id"] == f"{rows[0]['problem_id']}-0" and by_row[0]["source"] == "olympiads"
    p3 = next(p for p in pref if p["row_index"] == 3)
    assert set(p3) == {"id", "row_index", "source", "prompt", "chosen", "rejected"}
    assert p3["chosen"][0]["content"] == rows[3]["generations"][1]
    assert p3["rejected"][0]["content"] == rows[3]["generations"][0]
    assert p3["prompt"] == [{"role": "user", "content": user_content(rows[3]["problem"])}]

    # every row missing from a set has a reject line for that set
    reasons = {(r["row_index"], r["step"]) for r in rejects}
    for ri in range(12):
        if ri not in by_row:
            assert any(k[0] == ri for k in reasons), ri
    assert (9, "length_filter_pref") in reasons and (11, "length_filter_pref") in reasons
    assert (8, "decontaminate_sft") in reasons and (8, "decontaminate_pref") in reasons
    assert report["contaminated"][0]["benchmark"] == "bench"

    exp = {c["quantity"]: c for c in report["expected"]}
    assert exp["sft"]["match"] is True and exp["pairs_before_length_filter"]["match"] is False
    assert exp["sft"]["paper"] == 77629 and exp["pairs_before_length_filter"]["paper"] == 53175
    md = (tmp_path / "report.md").read_text()
    assert "**NO**" in md and "77,629" in md and "53,175" in md and "decontaminate_pref" in md


@pytest.mark.parametrize(
    "rule,sft_rows",
    [
        ("llama_or_mv", {0, 3, 4, 5, 9, 10, 11}),
        ("mv", {0, 3, 5, 9, 10, 11}),
        ("recomputed", {0, 3, 4, 5, 9, 10, 11}),
    ],
)
def test_label_rules(tmp_path, tok, rule, sft_rows):
    _, sft, _, _ = _run(tmp_path, tok, {"label_rule": rule})
    assert {r["row_index"] for r in sft} == sft_rows


def test_configurable_filters(tmp_path, tok):
    report, sft, _, _ = _run(
        tmp_path,
        tok,
        {
            "valid_only": False,
            "exclude_sources": [],
            "decontaminate": {"enabled": False},
            "max_prompt_length": 100000,
            "max_response_length": 100000,
        },
    )
    assert {r["row_index"] for r in sft} == {0, 1, 2, 3, 5, 8, 9, 10, 11}
    assert report["final"]["pref"] == 8
    assert sft[0]["messages"][0]["content"] == user_content(_rows()[sft[0]["row_index"]]["problem"])


def test_keep_unknown_validity_off_and_ngram_size(tmp_path, tok):
    report, sft, _, _ = _run(tmp_path, tok, {"keep_unknown_validity": False, "decontaminate": {"ngram": 30}})
    ids = {r["row_index"] for r in sft}
    assert 10 not in ids  # unknown validity dropped
    assert 8 in ids  # 30-grams: the benchmark problem is shorter, nothing overlaps


def test_llama_rule_on_mv_only_corpus_fails(tmp_path, tok):
    rows = [verified_row(0, llama=None, mv=[True, False])]
    with pytest.raises(ValueError, match="needs Llama judge labels"):
        _run(tmp_path, tok, rows=rows)
    _, sft, pref, _ = _run(tmp_path, tok, {"label_rule": "mv"}, rows=rows)
    assert len(sft) == 1 and len(pref) == 1


def test_rule_helpers():
    assert is_valid("yes") and is_valid(" YES\n") and not is_valid("no") and is_valid(None) is None
    row = {
        "label_llama": [True, False, True],
        "label_mv": [False, False, True],
        "label_recomputed": [True, True, True],
    }
    assert positives(row, "llama_and_mv") == [False, False, True]
    assert positives(row, "llama_or_mv") == [True, False, True]
    assert positives(row, "mv") == [False, False, True]
    assert positives(row, "recomputed") == [True, True, True]
    assert choose_pair([False, True, False, True]) == (1, 0)
    assert choose_pair([True, True]) == (0, None)
    assert choose_pair([False]) == (None, 0)
    assert label_problem(row, "mv", 3) is None
    assert (
        label_problem(row, "mv", 2)[0] == "label_rule mv needs label_mv (absent from the None layout): length mismatch"
    )
    flat = {"label_llama": None, "label_mv": [True], "schema": "flat"}
    assert (
        label_problem(flat, "llama_and_mv", 1)[0]
        == "label_rule llama_and_mv needs label_llama (correctness_llama): null"
    )
    assert label_problem(flat, "mv", 1) is None  # a list the rule does not read is not required
    with pytest.raises(ValueError):
        CurationConfig.from_dict({"label_rule": "vibes"})
    with pytest.raises(ValueError):
        CurationConfig.from_dict({"nope": 1})


def test_ngrams():
    assert word_ngrams("A  b\nc", 2) == {"a b", "b c"}
    assert word_ngrams("one two", 8) == set()
    index = build_ngram_index({"b": ["x " + BENCH_PROBLEM]}, 8)
    assert contamination("Prefix text. " + BENCH_PROBLEM.lower(), index, 8)[0] == "b"
    assert contamination("Compute 37 + 45 - 18.", index, 8) is None


def test_disputed_examples_counted_under_the_paper_rule_and_dropped_on_request(tmp_path, tok):
    """A trace Math-Verify (re-verified: ``label_recomputed``) calls correct but the judge wrong
    becomes a rejected trace under the paper's rule (judge AND Math-Verify): counted, kept by
    default, dropped with ``drop_disputed``; SFT traces the second verifier calls wrong the same
    way round. Under ``label_rule: recomputed`` the second verifier is the corpus' label_mv."""
    T, F = True, False
    rows = _rows() + [
        verified_row(20, llama=[T, F], mv=[T, F], rec=[F, F]),  # SFT trace re-verified wrong
        verified_row(21, llama=[T, F, F], mv=[T, T, F], rec=[T, T, F]),  # rejected g1 re-verified right
        {**verified_row(22, llama=[T, F], mv=[T, F]), "label_recomputed": None},  # no second label
    ]
    report, sft, pref, rejects = _run(tmp_path / "paper", tok, rows=rows)
    steps = {s["step"]: s for s in report["steps"]}
    # disputed pairs: rows 0 (rejected g1: mv T), 3 (rejected g0: mv T), 21; SFT: row 20
    assert steps["disputed_pref"]["disputed"] == 3 and steps["disputed_pref"]["dropped"] == 0
    assert steps["disputed_sft"]["disputed"] == 1 and steps["disputed_sft"]["dropped"] == 0
    assert steps["disputed_pref"]["no_second_label"] == 1 and steps["disputed_pref"]["verifier"] == "label_recomputed"
    assert steps["disputed_pref"]["kept"] == steps["select_pref"]["kept"]
    md = (tmp_path / "paper" / "report.md").read_text()
    assert "3 of 9 pairs whose rejected trace `label_recomputed` calls correct" in md, md
    assert "1 of 10 SFT examples whose trace `label_recomputed` calls wrong" in md, md
    kept_pairs = {p["row_index"] for p in pref}
    assert {0, 3, 21} <= kept_pairs

    report, sft, pref, rejects = _run(tmp_path / "drop", tok, {"drop_disputed": True}, rows=rows)
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["disputed_pref"]["reasons"] == {"rejected trace called correct by label_recomputed": 3}
    assert steps["disputed_sft"]["reasons"] == {"trace called wrong by label_recomputed": 1}
    assert not {0, 3, 21} & {p["row_index"] for p in pref}
    assert 20 not in {r["row_index"] for r in sft} and 20 in {p["row_index"] for p in pref}
    lines = {(r["row_index"], r["step"], r.get("gen_index")) for r in rejects}
    assert {(0, "disputed_pref", 1), (3, "disputed_pref", 0), (21, "disputed_pref", 1)} <= lines
    assert (20, "disputed_sft", 0) in lines
    assert "dropped (`drop_disputed: true`)" in (tmp_path / "drop" / "report.md").read_text()

    # our own label as the rule: the corpus' Math-Verify list is the second verifier
    report, *_ = _run(tmp_path / "rec", tok, {"label_rule": "recomputed"}, rows=rows)
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["disputed_pref"]["verifier"] == "label_mv"
