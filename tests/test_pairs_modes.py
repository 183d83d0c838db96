"""``curation.pairs``: the paper's first pair per problem, every (chosen, rejected)
combination (``all``, capped by ``max_pairs_per_problem``), or whole groups (``groups``, with
each problem's surviving trace counts) on the Open-R1 Raw rows, counted
per problem against a hand count; the length filter and decontamination act on every pair's
traces; every pair reaches training (and the reference pass) under its own id."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from redi.data.config import CurationConfig
from redi.data.curate import TokenCounter, curate, pair_indices
from redi.data.io import read_jsonl
from redi.data.normalize import normalize
from redi.data.verify_stage import gather, verify_shard
from redi.prompts import OPENR1_INSTRUCTION
from test_data_common import build_tiny_tokenizer

FIX = Path(__file__).resolve().parent / "fixtures" / "openr1"
REAL = Path("/work/shared/data/realdata")

# (label_rule) -> row_index -> its pairs (chosen gen, rejected gen) in order, read off the rows
# by hand: a generation is positive under llama_and_mv when llama_verification AND
# math_verify_reparsed_answer are true (a null counts as false); rows 1 (cn_k12), 2, 3, 9
# (validity), 5 (all positive), 6 (none positive), 8, 11, 12 (label lists) give no pair.
HAND = {
    "llama_and_mv": {
        0: [(0, 1)],  # pos T,F
        4: [(2, 0), (2, 1), (3, 0), (3, 1)],  # pos F,F,T,T: rank sums 0, 1, 1, 2
        7: [(1, 0)],  # llama None,T -> pos F,T
        10: [(2, 0), (2, 1)],  # llama T,F,T & mv F,T,T -> pos F,F,T
    },
    "mv": {
        0: [(0, 1)],
        4: [(0, 1), (2, 1), (3, 1)],  # mv T,F,T,T
        10: [(1, 0), (2, 0)],  # mv F,T,T
        11: [(0, 1)],
        12: [(1, 0)],
    },
}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _run(corpus, d: Path, tok, bench=None, ngram=8, **cfg):
    d.mkdir(parents=True, exist_ok=True)
    normalize(corpus, d / "canon.parquet", d / "nrej.jsonl")
    verify_shard(d / "canon.parquet", 0, 1, d / "shard.parquet")
    gather([d / "shard.parquet"], d / "canon.parquet", d / "verified.parquet", d / "vrep.json")
    decon = {"enabled": bench is not None, "benchmarks": ["b"] if bench else [], "ngram": ngram}
    paths = None
    if bench is not None:
        (d / "bench.json").write_text(json.dumps([{"problem": p} for p in bench]))
        paths = {"b": str(d / "bench.json")}
    report = curate(d / "verified.parquet", tok, d / "sft.jsonl", d / "pref.jsonl", d / "r.json", d / "r.md",
                    d / "rej.jsonl", {"decontaminate": decon, **cfg}, benchmark_paths=paths)
    return report, {s["step"]: s for s in report["steps"]}, read_jsonl(d / "pref.jsonl")


def _pairs_by_row(pref, texts):
    out: dict[int, list[tuple[int, int]]] = {}
    for r in pref:
        gens = texts[r["row_index"]]
        out.setdefault(r["row_index"], []).append(
            (gens.index(r["chosen"][0]["content"]), gens.index(r["rejected"][0]["content"])))
    return out


def _texts(corpus):
    return {i: r["generations"] for i, r in enumerate(read_jsonl(corpus))}


CORPORA = [FIX / "raw.jsonl", FIX / "raw.parquet"]
if (REAL / "openr1_rows_raw_large_string.parquet").exists():
    CORPORA.append(REAL / "openr1_rows_raw_large_string.parquet")


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda p: p.parent.name + "/" + p.name)
@pytest.mark.parametrize("rule", sorted(HAND))
def test_all_pairs_per_problem_match_the_hand_count(tmp_path, tok, corpus, rule):
    if corpus.parent == REAL and rule == "mv":
        pytest.skip("hand count of the shared real rows is for the paper's rule")
    jsonl = FIX / "raw.jsonl" if corpus.parent == FIX else REAL / "openr1_rows.jsonl"
    texts = _texts(jsonl)
    want = HAND[rule]
    if corpus.parent == REAL:  # the shared copy lacks the fixture's rows 11 and 12
        want = {k: v for k, v in want.items() if k < 11}
    report, steps, pref = _run(corpus, tmp_path / "all", tok, label_rule=rule, pairs="all")
    assert _pairs_by_row(pref, texts) == want
    n = sum(map(len, want.values()))
    assert steps["select_pref"]["kept"] == n and steps["select_pref"]["pairs"] == "all"
    counts = report["pairs_per_problem"]
    assert counts["final"] == {"problems": len(want), "pairs": n,
                               "histogram": {str(k): v for k, v in sorted(Counter(map(len, want.values())).items())}}
    assert "## Pairs per problem (`pairs: all`)" in (tmp_path / "all" / "r.md").read_text()
    ids = [r["id"] for r in pref]
    assert len(set(ids)) == len(ids)  # each pair its own training (and reference) row
    # "first" is the paper's: the first pair of each problem, ids unchanged
    _, steps1, pref1 = _run(corpus, tmp_path / "first", tok, label_rule=rule)
    assert _pairs_by_row(pref1, texts) == {k: v[:1] for k, v in want.items()}
    assert all(not r["id"].split("-")[-1].startswith("r") for r in pref1)
    # a cap keeps the first pairs of the order and counts the rest
    _, steps2, pref2 = _run(corpus, tmp_path / "cap", tok, label_rule=rule, pairs="all", max_pairs_per_problem=2)
    assert _pairs_by_row(pref2, texts) == {k: v[:2] for k, v in want.items()}
    assert steps2["select_pref"]["pairs_over_cap"] == sum(max(0, len(v) - 2) for v in want.values())


def test_length_filter_and_decontamination_act_on_every_pair(tmp_path, tok):
    rows = read_jsonl(FIX / "raw.jsonl")
    counter = TokenCounter(tok, OPENR1_INSTRUCTION)
    cap = max(n for r in rows for n in counter.response_lengths(r["generations"]))
    rows[4]["generations"][3] += " and so on" * cap  # only this trace is over the cap
    corpus = tmp_path / "raw.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = {i: r["generations"] for i, r in enumerate(rows)}
    _, steps, pref = _run(corpus, tmp_path / "len", tok, pairs="all", max_response_length=cap)
    got = _pairs_by_row(pref, texts)
    want = {**HAND["llama_and_mv"], 4: [(2, 0), (2, 1)]}  # the pairs with gen 3 are gone
    assert got == want
    assert steps["length_filter_pref"]["dropped"] == 2
    assert steps["length_filter_pref"]["reasons"] == {"chosen response too long": 2}
    rej = [r for r in read_jsonl(tmp_path / "len" / "rej.jsonl") if r["step"] == "length_filter_pref"]
    assert {(r["row_index"], r["gen_index"]) for r in rej} == {(4, 3)}
    # decontamination: a problem on the benchmark loses every one of its pairs (row 4's problem
    # has 3 words: 3-grams)
    _, steps, pref = _run(FIX / "raw.jsonl", tmp_path / "dec", tok, bench=[rows[4]["problem"]], ngram=3, pairs="all")
    assert 4 not in _pairs_by_row(pref, _texts(FIX / "raw.jsonl")) and len(pref) == 4
    assert steps["decontaminate_pref"]["dropped"] == 4


def test_groups_carry_each_problems_surviving_traces(tmp_path, tok):
    """``pairs: groups``: every pair (never capped), each row with its problem's group; a trace
    the length filter drops leaves its problem's group (hand count: row 4 keeps 1 of 2 chosen)."""
    texts = _texts(FIX / "raw.jsonl")
    _, steps, pref = _run(FIX / "raw.jsonl", tmp_path / "g", tok, pairs="groups")
    assert _pairs_by_row(pref, texts) == HAND["llama_and_mv"]
    groups = {r["row_index"]: (r["group"]["chosen"], r["group"]["rejected"]) for r in pref}
    assert groups == {0: (1, 1), 4: (2, 2), 7: (1, 1), 10: (1, 2)}
    rows = read_jsonl(FIX / "raw.jsonl")
    counter = TokenCounter(tok, OPENR1_INSTRUCTION)
    cap = max(n for r in rows for n in counter.response_lengths(r["generations"]))
    rows[4]["generations"][3] += " and so on" * cap
    corpus = tmp_path / "raw.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, _, pref = _run(corpus, tmp_path / "gl", tok, pairs="groups", max_response_length=cap)
    assert {r["row_index"]: (r["group"]["chosen"], r["group"]["rejected"]) for r in pref}[4] == (1, 2)
    _, _, first = _run(FIX / "raw.jsonl", tmp_path / "f", tok)
    assert all("group" not in r for r in first)
    with pytest.raises(ValueError, match="must be null with pairs 'groups'"):
        CurationConfig.from_dict({"pairs": "groups", "max_pairs_per_problem": 2})


def test_pair_order_and_config():
    pos = [True, False, True, False, True]
    assert pair_indices(pos, mode="first") == ([(0, 1)], 0)
    pairs, over = pair_indices(pos, mode="all")
    assert pairs == [(0, 1), (0, 3), (2, 1), (2, 3), (4, 1), (4, 3)] and over == 0
    assert pair_indices(pos, mode="all", cap=1) == ([(0, 1)], 5)  # cap 1 is the paper's pair
    cut = [False, True, False, False, False]
    assert pair_indices(pos, cut, mode="all")[0] == [(0, 3), (2, 3), (4, 3)]
    assert pair_indices(pos, cut, True, mode="all")[0][:2] == [(0, 1), (0, 3)]
    assert pair_indices([True, True], mode="all") == ([], 0)
    assert pair_indices(pos, mode="groups", cap=1) == (pairs, 0)  # a group is never capped
    with pytest.raises(ValueError, match="'pairs' must be one of"):
        CurationConfig.from_dict({"pairs": "every"})
    with pytest.raises(ValueError, match="max_pairs_per_problem' must be >= 1"):
        CurationConfig.from_dict({"pairs": "all", "max_pairs_per_problem": 0})
