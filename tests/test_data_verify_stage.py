"""Verification scatter/gather on the canonical table."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from redi.data.io import read_kv_meta
from redi.data.normalize import normalize
from redi.data.schemas import META_NORMALIZE, verified_schema
from redi.data.synthetic import synthetic_corpus_schema
from redi.data.verify_stage import gather, shard_range, verify_shard
from test_data_common import gen, raw_row, write_parquet


@pytest.fixture()
def canonical(tmp_path):
    rows = [
        raw_row("P0", answer="2", gens=[gen(2), gen(3)], llama=[True, True], mv=[True, False], source="a"),
        raw_row(
            "P1",
            answer="1/2",
            gens=[gen("\\frac{1}{2}"), "<think>\nno end \\boxed{1/2}"],
            llama=[True, False],
            mv=[True, True],
            source="b",
        ),
        raw_row("P2", answer="5", gens=[gen(5)], llama=[False], mv=[True], source="a"),
        raw_row(
            "P3",
            answer="7",
            gens=[gen(7), gen(8), gen(7)],
            llama=[True, False, True],
            mv=[True, False, True],
            source="b",
        ),
    ]
    src = write_parquet(rows, tmp_path / "raw.parquet", synthetic_corpus_schema())
    normalize(src, tmp_path / "canonical.parquet", tmp_path / "rej.jsonl")
    return tmp_path / "canonical.parquet"


def test_shards_partition_and_gather(canonical, tmp_path):
    paths = []
    items = 0
    for i in range(3):
        p = tmp_path / f"shard-{i}-of-3.parquet"
        s = verify_shard(canonical, i, 3, p, timeout_s=10, workers=1)
        t = pq.read_table(p).to_pylist()
        lo, hi = shard_range(4, i, 3)  # 4 corpus rows: contiguous ranges [0, 1), [1, 2), [2, 4)
        assert t and [r["row_index"] for r in t] == sorted(r["row_index"] for r in t)
        assert all(lo <= r["row_index"] < hi for r in t)
        assert (
            set(t[0]) == {"row_index", "gen_index", "mv_recomputed", "status", "extracted", "seconds"}
            if t
            else True
        )
        items += s["items"]
        paths.append(p)
    assert items == 8
    report = gather(paths, canonical, tmp_path / "verified.parquet", tmp_path / "report.json")
    table = pq.read_table(tmp_path / "verified.parquet")
    assert table.schema.remove_metadata().equals(verified_schema())
    rows = table.to_pylist()
    assert [r["label_recomputed"] for r in rows] == [
        [True, False],
        [True, False],
        [True],
        [True, False, True],
    ]
    assert rows[1]["verify_status"] == ["ok", "no_answer"]
    # the normalisation summary travels with the table
    assert read_kv_meta(tmp_path / "verified.parquet", META_NORMALIZE)["canonical_rows"] == 4
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["generations"] == 8
    b = report["per_source"]["b"]
    # source b: mv labels [T,T,T,F,T] vs recomputed [T,F,T,F,T] -> 4/5 agree
    assert b["agreement_with_mv"] == pytest.approx(0.8)
    assert b["mv_true_recomputed_false"] == 1
    a = report["per_source"]["a"]
    assert a["agreement_with_mv"] == 1.0
    assert a["agreement_with_llama"] == pytest.approx(1 / 3)  # llama [T,T,F] vs recomputed [T,F,T]


def test_gather_fails_on_missing_shard(canonical, tmp_path):
    p = tmp_path / "shard-0-of-2.parquet"
    verify_shard(canonical, 0, 2, p, timeout_s=10)
    with pytest.raises(ValueError, match="no verification result"):
        gather([p], canonical, tmp_path / "v.parquet", tmp_path / "r.json")


def test_bad_shard_index(canonical, tmp_path):
    with pytest.raises(ValueError):
        verify_shard(canonical, 2, 2, tmp_path / "x.parquet")
