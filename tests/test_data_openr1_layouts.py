"""Open-R1 rows in their public layouts and Arrow types through normalise -> verify -> curate
: a label list the rule does not read is never required; null validity is dropped
where the column exists; truncated traces are never positive; the hub path runs on a local
`datasets` repository layout."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redi.data.curate import curate
from redi.data.io import read_jsonl
from redi.data.normalize import normalize
from redi.data.sources import download_hub
from redi.data.verify_stage import gather, verify_shard
from test_data_common import build_tiny_tokenizer

FIX = Path(__file__).resolve().parent / "fixtures" / "openr1"
sys.path.insert(0, str(FIX))
import build as layouts  # noqa: E402

# (file, label_rule) -> (SFT row indices, D_Pref row indices), read off the rows by hand
EXPECTED = {
    ("raw", "llama_and_mv"): ([0, 4, 5, 7, 10], [0, 4, 7, 10]),
    ("raw", "mv"): ([0, 4, 5, 7, 10, 11, 12], [0, 4, 10, 11, 12]),
    ("openr1_220k", "llama_and_mv"): ([1, 6], [1, 6]),
    ("openr1_220k", "mv"): ([0, 1, 3, 5, 6], [0, 1, 3, 6]),
}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _pipeline(corpus, tmp_path, tok, **cfg):
    d = tmp_path
    summary = normalize(corpus, d / "canon.parquet", d / "nrej.jsonl")
    verify_shard(d / "canon.parquet", 0, 1, d / "shard.parquet")
    gather([d / "shard.parquet"], d / "canon.parquet", d / "verified.parquet", d / "vrep.json")
    report = curate(d / "verified.parquet", tok, d / "sft.jsonl", d / "pref.jsonl", d / "r.json", d / "r.md",
                    d / "rej.jsonl", {"decontaminate": {"enabled": False}, **cfg})
    steps = {s["step"]: s for s in report["steps"]}
    return summary, report, steps, read_jsonl(d / "sft.jsonl"), read_jsonl(d / "pref.jsonl")


def test_parquet_fixtures_hold_the_jsonl_rows_with_real_types():
    for name, schema in layouts.LAYOUTS.items():
        table = pq.read_table(FIX / f"{name}.parquet")
        assert table.schema.equals(schema()), name
        assert table.to_pylist() == layouts.rows(name)
    raw = pq.read_schema(FIX / "raw.parquet")
    assert raw.field("generations").type == pa.large_list(pa.large_string())
    assert pa.types.is_struct(raw.field("correctness").type)
    flat = layouts.rows("openr1_220k")
    assert flat[0]["correctness_llama"] is None and flat[0]["finish_reasons"] is None  # the real row 0


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("layout,rule", sorted(EXPECTED))
def test_layouts_end_to_end(tmp_path, tok, fmt, layout, rule):
    summary, report, steps, sft, pref = _pipeline(FIX / f"{layout}.{fmt}", tmp_path, tok, label_rule=rule)
    assert summary["rejected_rows"] == 0  # label lists are never required at normalisation
    want_sft, want_pref = EXPECTED[(layout, rule)]
    assert sorted(r["row_index"] for r in sft) == want_sft
    assert sorted(r["row_index"] for r in pref) == want_pref
    reasons = steps["label_lists"]["reasons"]
    assert all(k.startswith(f"label_rule {rule} needs label_") for k in reasons)
    md = (tmp_path / "r.md").read_text()
    assert "## Label lists" in md and f"`label_rule: {rule}` reads" in md


def test_220k_keeps_math_verify_only_rows_under_mv(tmp_path, tok):
    """Kind 1: 5 of the 6 non-cn_k12 rows lack correctness_llama (the real row 0 among them)."""
    _, report, steps, sft, _ = _pipeline(FIX / "openr1_220k.parquet", tmp_path / "mv", tok, label_rule="mv")
    assert steps["label_lists"]["kept"] == 6 and steps["label_lists"]["dropped"] == 0
    assert report["label_lists"]["corpus"]["label_llama"]["rows_with_list"] == 2
    assert report["label_lists"]["corpus"]["label_mv"]["rows_with_list"] == 7
    assert 0 in {r["row_index"] for r in sft}
    _, _, steps, _, _ = _pipeline(FIX / "openr1_220k.parquet", tmp_path / "and", tok)
    assert steps["label_lists"]["reasons"] == {
        "label_rule llama_and_mv needs label_llama (correctness_llama): null": 4}


def test_raw_null_validity_dropped_and_lists_named(tmp_path, tok):
    """Kind 2 (null problem_is_valid where the column exists) and kind 1 on the Raw layout."""
    _, _, steps, _, _ = _pipeline(FIX / "raw.parquet", tmp_path, tok)
    assert steps["valid_only"]["reasons"] == {"problem_is_valid != yes": 2, "problem_is_valid null": 1}
    assert steps["valid_only"]["validity_unknown_kept"] == 0
    assert steps["label_lists"]["reasons"] == {
        "label_rule llama_and_mv needs label_llama (correctness.llama_verification): length mismatch": 1,
        "label_rule llama_and_mv needs label_llama (correctness.llama_verification): null": 1,
        "label_rule llama_and_mv needs label_mv (correctness.math_verify_reparsed_answer): length mismatch": 1,
    }
    rej = read_jsonl(tmp_path / "rej.jsonl")
    assert {r["row_index"] for r in rej if r["step"] == "valid_only" and r["reason"] == "problem_is_valid null"} == {9}


def test_220k_unknown_validity_is_kept_and_counted(tmp_path, tok):
    _, _, steps, _, _ = _pipeline(FIX / "openr1_220k.jsonl", tmp_path, tok, label_rule="mv")
    assert steps["valid_only"]["validity_unknown_kept"] == 7 and steps["valid_only"]["dropped"] == 0


@pytest.mark.parametrize("as_rejected", [False, True])
def test_truncated_traces_never_positive(tmp_path, tok, as_rejected):
    """Kind 4: rows 4 (truncated trace labelled correct), 5 (truncated wrong trace) and 6
    (finish_reasons "length" on a judged-correct trace)."""
    rows = layouts.rows("openr1_220k")
    _, _, steps, sft, pref = _pipeline(FIX / "openr1_220k.parquet", tmp_path, tok, label_rule="mv",
                                       truncated_as_rejected=as_rejected)
    by_row = {r["row_index"]: r for r in sft}
    assert 4 not in by_row  # its only positive is cut off
    assert by_row[6]["messages"][-1]["content"] == rows[6]["generations"][2]  # not the cut-off g1
    pairs = {r["row_index"]: r for r in pref}
    assert pairs[6]["rejected"][0]["content"] == rows[6]["generations"][0]
    assert steps["select_sft"]["reasons"] == {"positive generations all truncated": 1}
    assert steps["select_sft"]["truncated_generations"] == 3
    if as_rejected:
        assert pairs[5]["rejected"][0]["content"] == rows[5]["generations"][1]
    else:
        assert 5 not in pairs
        assert (
            steps["select_pref"]["reasons"]["non-positive generations all truncated (truncated_as_rejected false)"] == 1
        )


def test_hub_download_path_on_a_local_datasets_repository(tmp_path, tok):
    """The same `datasets.load_dataset` call the hub path makes, on a repository laid out as the
    hub has it (parquet shards under data/ with the hub's names); only the network is missing."""
    repo = tmp_path / "open-r1" / "OpenR1-Math-220k"
    (repo / "data").mkdir(parents=True)
    shutil.copy(FIX / "openr1_220k.parquet", repo / "data" / "train-00000-of-00001.parquet")
    out = tmp_path / "cache"
    info = download_hub(str(repo), None, "train", out)
    assert info["rows"] == 7 and "correctness_llama" in info["columns"]
    assert json.loads((out / "redi_download.json").read_text())["split"] == "train"
    # provenance names what was downloaded, not only the revision asked for (a "main" moves):
    # the saved files' hash, taken once at download; no hub commit for a local repository
    from redi.provenance import data_identity, version_key

    ident = data_identity(out)
    assert ident["hub"] == str(repo) and ident.get("commit") is None and len(ident["sha256"]) == 64
    other = tmp_path / "open-r1" / "other"
    (other / "data").mkdir(parents=True)
    table = pq.read_table(FIX / "openr1_220k.parquet")
    pq.write_table(table.slice(0, 6), other / "data" / "train-00000-of-00001.parquet")
    download_hub(str(other), None, "train", tmp_path / "cache2")
    moved = data_identity(tmp_path / "cache2")
    keys = [version_key({"code": {}, "libraries": {}, "data": {"corpus": d}}) for d in (ident, moved)]
    assert keys[0] != keys[1]  # the same request, other content: results do not compare
    from redi.provenance import describe

    assert f"corpus {repo}@None sha256 {ident['sha256'][:12]}" in describe({"data": {"corpus": ident}})
    assert describe({"data": {"corpus": {"path": "gone", "missing": True}}}).endswith("corpus missing")
    summary, _, steps, sft, _ = _pipeline(out, tmp_path / "run", tok, label_rule="mv")
    assert summary["input_kind"] == "save_to_disk" and summary["schema"] == "flat"
    assert sorted(r["row_index"] for r in sft) == EXPECTED[("openr1_220k", "mv")][0]
    with pytest.raises(RuntimeError, match="corpus.local_path"):
        download_hub(str(tmp_path / "no-such-repo"), None, "train", tmp_path / "x")
