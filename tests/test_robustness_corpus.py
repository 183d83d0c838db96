"""Robustness of the data stage against a hostile teacher corpus (docs/robustness.md).

One JSON-lines corpus holds a good row next to every kind of broken row (missing fields, None
or empty generations, label lists of the wrong length or type, non-string problems, duplicate
problems, bytes that are not UTF-8, lone surrogates, control characters, lines that are not
JSON, a 5 MB trace). It runs through the real data stage (normalize -> bounded verification ->
gather -> curate); every row must be either curated or named in the rejects file with its
step and reason, the run must finish, and the report must show the counts. A corpus that
matches no schema, or that filtering empties, must stop with a message naming the missing
columns or the step.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from redi.data.curate import curate
from redi.data.io import read_jsonl
from redi.data.normalize import normalize
from redi.data.synthetic import synthetic_corpus_schema
from redi.data.verify_stage import gather, verify_shard
from test_data_common import build_tiny_tokenizer, raw_row, verified_row, write_parquet, write_verified

# one word the tokenizer learns as one token, so that the 5 MB trace tokenises in seconds
FILLER = " " + "a" * 1024
BIG_TRACE = (
    "<think>\n"
    + FILLER * (5 * 1024 * 1024 // len(FILLER))
    + "\n</think>\n\nTherefore, the final answer is: $\\boxed{2}$. I hope it is correct"
)
GOOD = "<think>\n1 + 1 = 2.\n</think>\n\nTherefore, the final answer is: $\\boxed{2}$. I hope it is correct"
BAD = "<think>\n1 + 1 = 3.\n</think>\n\nTherefore, the final answer is: $\\boxed{3}$. I hope it is correct"
CONTROL = "Compute 1 + 1.\x00\x01\x07\x1b[31m\u202e\u200b\ufeff\r\x7f done"

NORMALIZE_STEPS = ("corpus", "normalize")
SFT_STEPS = NORMALIZE_STEPS + ("valid_only", "exclude_sources", "label_lists", "select_sft",
                             "length_filter_sft", "decontaminate_sft")  # fmt: skip
PREF_STEPS = NORMALIZE_STEPS + ("valid_only", "exclude_sources", "label_lists", "select_pref",
                              "length_filter_pref", "decontaminate_pref")  # fmt: skip


def _row(problem, **kw):
    """A Raw-schema row with two generations (correct, wrong) unless given."""
    kw.setdefault("gens", [GOOD, BAD])
    kw.setdefault("llama", [True, False])
    kw.setdefault("mv", [True, False])
    return raw_row(problem, **kw)


def _without(row, key):
    return {k: v for k, v in row.items() if k != key}


LABEL_LISTS = "label_lists"  # kept by normalisation, dropped by curation's label_rule


def _lines():
    """(JSON line as bytes, expected normalize reject reason or None if the row is kept)."""
    dump = lambda obj: json.dumps(obj).encode()  # noqa: E731
    cases = [
        (dump(_row("Good problem one.")), None),
        (dump(_without(_row("No answer key."), "answer")), "answer_missing"),
        (dump(_without(_row("No generations key."), "generations")), "generations_none"),
        # label lists are judged by the curation rule: kept here, dropped at label_lists
        (dump(_without(_row("No correctness key."), "correctness")), LABEL_LISTS),
        (dump({**_row("Generations null."), "generations": None}), "generations_none"),
        (dump(_row("Generations empty.", gens=[], llama=[], mv=[])), "generations_empty"),
        (dump(_row("A null generation.", gens=[None, BAD])), "generation_not_string"),
        (dump(_row("A number generation.", gens=[7, BAD])), "generation_not_string"),
        (dump(_row("Labels too short.", llama=[True])), LABEL_LISTS),
        (dump(_row("Labels too long.", mv=[True, False, True])), LABEL_LISTS),
        (dump(_row("Labels as words.", llama=["yes", "no"])), LABEL_LISTS),
        (dump({**_row("x"), "problem": 12345}), "problem_not_string"),
        (dump({**_row("x"), "problem": ["a", "list"]}), "problem_not_string"),
        (dump({**_row("x"), "problem": None}), "problem_not_string"),
        (dump({**_row("x"), "problem": "  \n\t "}), "problem_empty"),
        (dump({**_row("Answer is an object."), "answer": {"value": 2}}), "answer_not_string"),
        (dump(_row("Good problem one.")), None),  # duplicate of row 0: kept and counted
        (dump(_row(CONTROL)), None),  # control characters are text: kept verbatim
        (dump(_row("Bytes \xff\xfe here.")).replace(b"\\u00ff\\u00fe", b"\xff\xfe"), "text_not_utf8"),
        (dump(_row("Surrogate in a trace.", gens=["<think>\n\ud800\n</think> 2", BAD])), "text_not_utf8"),
        (b'{"problem": "torn line", "answer": ', "invalid_json"),
        (b'["a", "JSON", "array"]', "not_a_json_object"),
        (b"null", "not_a_json_object"),
        (dump(_row("A five megabyte trace.", gens=[BIG_TRACE, BAD])), None),
        (dump(_row("An empty trace.", gens=[GOOD, ""])), None),  # kept (paper), counted
        (dump(_row("Good problem two.")), None),
    ]
    return cases


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"), [FILLER * 3])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("hostile")
    cases = _lines()
    corpus = root / "corpus.jsonl"
    with open(corpus, "wb") as fh:
        for k, (line, _) in enumerate(cases):
            fh.write(line + b"\n")
            if k == 3:
                fh.write(b"\n   \n")  # blank lines are not rows
    summary = normalize(corpus, root / "canonical.parquet", root / "normalize_rejects.jsonl")
    shard = verify_shard(root / "canonical.parquet", 0, 1, root / "shard.parquet", timeout_s=5, workers=1)
    gather([root / "shard.parquet"], root / "canonical.parquet", root / "verified.parquet", root / "vr.json")
    report = curate(
        root / "verified.parquet",
        tok,
        root / "sft.jsonl",
        root / "pref.jsonl",
        root / "report.json",
        root / "report.md",
        root / "rejects.jsonl",
        {"max_response_length": 2000},
    )
    return {"root": root, "cases": cases, "normalize": summary, "shard": shard, "report": report}


def test_every_bad_row_is_counted_with_its_reason(pipeline):
    cases, summary = pipeline["cases"], pipeline["normalize"]
    expected = {}
    for _, reason in cases:
        if reason and reason != LABEL_LISTS:
            expected[reason] = expected.get(reason, 0) + 1
    assert summary["input_rows"] == len(cases)  # blank lines are not rows
    assert summary["reject_reasons"] == dict(sorted(expected.items()))
    assert summary["canonical_rows"] == sum(reason in (None, LABEL_LISTS) for _, reason in cases)
    assert summary["notes"]["duplicate_problem_rows"] == 1
    assert summary["notes"]["empty_generation_strings"] == 1
    rejects = read_jsonl(pipeline["root"] / "rejects.jsonl")  # curation copies normalize's in
    by_row = {r["row_index"]: r for r in rejects if r["step"] == "normalize"}
    labels = {r["row_index"]: r for r in rejects if r["step"] == "label_lists"}
    for k, (_, reason) in enumerate(cases):
        if reason == LABEL_LISTS:
            assert k not in by_row and labels[k]["reason"].startswith("label_rule llama_and_mv needs "), k
        elif reason:
            assert by_row[k]["reason"] == reason, (k, by_row.get(k))
        else:
            assert k not in by_row


def test_no_row_is_lost(pipeline):
    """Every corpus row is in D_SFT or has a reject line on the D_SFT path; same for D_Pref."""
    root, n = pipeline["root"], len(pipeline["cases"])
    rejects = read_jsonl(root / "rejects.jsonl")
    for data, steps in (("sft.jsonl", SFT_STEPS), ("pref.jsonl", PREF_STEPS)):
        kept = {r["row_index"] for r in read_jsonl(root / data)}
        dropped = {r["row_index"] for r in rejects if r["step"] in steps}
        assert kept.isdisjoint(dropped), data
        assert kept | dropped == set(range(n)), (data, set(range(n)) - kept - dropped)
        assert all(r["reason"] for r in rejects)


def test_odd_but_valid_rows_survive_verbatim(pipeline):
    root, cases = pipeline["root"], pipeline["cases"]
    sft = {r["row_index"]: r for r in read_jsonl(root / "sft.jsonl")}
    pref = {r["row_index"]: r for r in read_jsonl(root / "pref.jsonl")}
    kept = [k for k, (_, reason) in enumerate(cases) if reason is None]
    assert set(sft) == set(kept)  # every kept row has a positive first generation
    control = next(k for k, (line, _) in enumerate(cases) if b"\\u202e" in line)
    assert sft[control]["messages"][0]["content"].endswith(CONTROL)  # byte-for-byte
    big = next(k for k, (line, _) in enumerate(cases) if b"five megabyte" in line)
    assert sft[big]["messages"][1]["content"] == BIG_TRACE  # SFT is not length-filtered (paper)
    assert big not in pref  # but the pair is, with its reason
    reject = [r for r in read_jsonl(root / "rejects.jsonl") if r["row_index"] == big]
    assert [(r["step"], r["reason"]) for r in reject] == [("length_filter_pref", "chosen response too long")]
    canon = pq.read_table(root / "verified.parquet").to_pylist()
    big_row = next(r for r in canon if r["row_index"] == big)
    assert big_row["verify_status"] == ["ok", "ok"] and big_row["label_recomputed"] == [True, False]


def test_report_shows_the_counts(pipeline):
    report, root = pipeline["report"], pipeline["root"]
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["normalize"]["dropped"] == pipeline["normalize"]["rejected_rows"]
    assert steps["normalize"]["notes"]["duplicate_problem_rows"] == 1
    md = (root / "report.md").read_text()
    for reason in ("text_not_utf8", "invalid_json", "label_llama_not_bool_set_null"):
        assert reason in md
    assert steps["label_lists"]["reasons"] == {
        "label_rule llama_and_mv needs label_llama (correctness.llama_verification): length mismatch": 1,
        "label_rule llama_and_mv needs label_llama (correctness.llama_verification): null": 2,
        "label_rule llama_and_mv needs label_mv (correctness.math_verify_reparsed_answer): length mismatch": 1,
    }
    assert "duplicate_problem_rows: 1" in md
    assert report["rejects_count"] == len(read_jsonl(root / "rejects.jsonl"))


def test_unreadable_utf8_in_a_parquet_string_column(tmp_path):
    """A parquet file written by another tool with invalid UTF-8 in one row: that row is
    rejected, its neighbours are kept."""
    import numpy as np
    import pyarrow as pa

    rows = [_row(f"Row {k} problem.") for k in range(3)]
    table = pa.Table.from_pylist(rows, schema=synthetic_corpus_schema())
    texts = [r["problem"].encode() for r in rows]
    texts[1] = b"Row 1 \xff problem."
    offsets = np.cumsum([0] + [len(t) for t in texts]).astype("int32")
    bad = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(texts))])
    table = table.set_column(table.schema.get_field_index("problem"), "problem", bad)
    pq.write_table(table, tmp_path / "bad.parquet")
    out = normalize(tmp_path / "bad.parquet", tmp_path / "c.parquet", tmp_path / "r.jsonl")
    assert (out["canonical_rows"], out["reject_reasons"]) == (2, {"text_not_utf8": 1})
    assert [r["row_index"] for r in read_jsonl(tmp_path / "r.jsonl")] == [1]
    assert [r["row_index"] for r in pq.read_table(tmp_path / "c.parquet").to_pylist()] == [0, 2]


# ----------------------------------------------------------------------------- wrong corpus


def test_unknown_schema_stops_naming_the_missing_columns(tmp_path):
    """Through the command line, as an operator would meet it: non-zero exit, a message that
    names the columns each known schema misses, and no canonical table."""
    src = tmp_path / "alpaca.jsonl"
    src.write_text(json.dumps({"instruction": "Add 1 and 1.", "output": "2"}) + "\n")
    out = tmp_path / "canonical.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "redi.cli", "data", "normalize", "--input", str(src), "--output", str(out),
         "--rejects", str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "matches none of the known schemas" in proc.stderr
    assert "mv_only: missing ['problem', 'answer', 'generations', 'correctness_math_verify']" in proc.stderr
    assert "Columns present: ['instruction', 'output']" in proc.stderr
    assert not out.exists()


def _curate(tmp_path, tok, rows, cfg=None, benchmarks=None):
    verified = write_verified(rows, tmp_path / "verified.parquet")
    return curate(
        verified, tok, tmp_path / "sft.jsonl", tmp_path / "pref.jsonl", tmp_path / "report.json",
        tmp_path / "report.md", tmp_path / "rejects.jsonl", cfg or {}, benchmarks or {},
    )  # fmt: skip


T, F = True, False
BENCH = "Find the number of ordered pairs of positive integers whose product is one hundred."


@pytest.mark.parametrize(
    "rows, cfg, name, step",
    [
        ([verified_row(i, llama=[T, F], mv=[T, F], valid="no") for i in range(3)], {}, "D_SFT", "valid_only"),
        ([verified_row(i, llama=[T, F], mv=[T, F], source="cn_k12") for i in range(3)], {}, "D_SFT",
         "exclude_sources"),
        ([verified_row(i, llama=[T], mv=[T, F]) for i in range(3)], {}, "D_SFT", "label_lists"),
        ([verified_row(i, llama=[F, F], mv=[T, T]) for i in range(3)], {}, "D_SFT", "select_sft"),
        ([verified_row(i, llama=[T, T], mv=[T, T]) for i in range(3)], {}, "D_Pref", "select_pref"),
        ([verified_row(i, llama=[T, F], mv=[T, F]) for i in range(3)], {"max_response_length": 3}, "D_Pref",
         "length_filter_pref"),
        ([verified_row(i, llama=[T, F], mv=[T, F], problem=BENCH + f" ({i})") for i in range(3)], {}, "D_SFT",
         "decontaminate_sft"),
    ],
)  # fmt: skip
def test_empty_curated_set_stops_naming_the_step(tmp_path, tok, rows, cfg, name, step):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"problem": BENCH, "answer": "9"}]))
    (tmp_path / "sft.jsonl").write_text("stale\n")  # an earlier run's file must not survive
    with pytest.raises(ValueError) as err:
        _curate(tmp_path, tok, rows, cfg, {"bench": str(bench)})
    msg = str(err.value)
    assert f"{name} is empty: step '{step}'" in msg, msg
    assert "Rows kept after each step" in msg
    assert not (tmp_path / "sft.jsonl").exists() and not (tmp_path / "pref.jsonl").exists()
    assert (tmp_path / "report.md").exists()  # the funnel is there to read


def test_corpus_emptied_by_normalize_stops_at_curation_naming_normalize(tmp_path, tok):
    rows = [{**raw_row(f"P{i}"), "generations": None} for i in range(3)]
    src = write_parquet(rows, tmp_path / "raw.parquet", synthetic_corpus_schema())
    summary = normalize(src, tmp_path / "canonical.parquet", tmp_path / "nr.jsonl")
    assert summary["canonical_rows"] == 0 and summary["reject_reasons"] == {"generations_none": 3}
    verify_shard(tmp_path / "canonical.parquet", 0, 1, tmp_path / "s.parquet")
    gather([tmp_path / "s.parquet"], tmp_path / "canonical.parquet", tmp_path / "v.parquet", tmp_path / "v.json")
    with pytest.raises(ValueError, match=r"D_SFT is empty: step 'normalize' .*generations_none"):
        curate(tmp_path / "v.parquet", tok, tmp_path / "sft.jsonl", tmp_path / "pref.jsonl",
               tmp_path / "r.json", tmp_path / "r.md", tmp_path / "rejects.jsonl", {}, {})  # fmt: skip
    assert len(read_jsonl(tmp_path / "rejects.jsonl")) == 3  # the reasons are kept
