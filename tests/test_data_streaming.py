"""The data stage's streaming internals: row-group reads, chunked verification,
the curation text store. What they produce must not depend on the batch or chunk sizes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redi.data import curate as curate_mod
from redi.data import verify_stage
from redi.data.io import iter_parquet_batches
from redi.data.normalize import normalize
from redi.data.synthetic import synthetic_corpus_schema
from test_data_common import build_tiny_tokenizer, gen, raw_row, write_parquet


def _multi_row_group_file(path, n_rows=23, rg=5):
    table = pa.table({"row_index": list(range(n_rows)), "text": [f"t{i} é" * (i + 1) for i in range(n_rows)]})
    pq.write_table(table, path, row_group_size=rg)
    return table


def test_iter_parquet_batches_row_order_and_bounds(tmp_path):
    table = _multi_row_group_file(tmp_path / "x.parquet")
    batches = list(iter_parquet_batches(tmp_path / "x.parquet", batch_size=3, columns=["row_index"]))
    assert [b.num_rows for b in batches] == [3, 2] * 4 + [3]  # never across a row group of 5
    assert pa.Table.from_batches(batches).column("row_index").to_pylist() == table.column("row_index").to_pylist()
    assert all(b.schema.names == ["row_index"] for b in batches)


@pytest.fixture()
def canonical(tmp_path):
    rows = [
        raw_row(f"P{i}", answer=str(i), gens=[gen(i), gen(i + 1), gen(i)][: 1 + i % 3], llama=[True] * (1 + i % 3),
                mv=[True] * (1 + i % 3))  # fmt: skip
        for i in range(11)
    ]
    src = write_parquet(rows, tmp_path / "raw.parquet", synthetic_corpus_schema())
    normalize(src, tmp_path / "canonical.parquet", tmp_path / "rej.jsonl", batch_size=4)  # several row groups
    assert pq.ParquetFile(tmp_path / "canonical.parquet").num_row_groups > 1
    return tmp_path / "canonical.parquet"


def test_verify_shard_chunks_and_batches_do_not_change_results(canonical, tmp_path, monkeypatch):
    one = verify_stage.verify_shard(canonical, 1, 2, tmp_path / "a.parquet", timeout_s=10, workers=1)
    monkeypatch.setattr(verify_stage, "READ_BATCH_ROWS", 2)
    two = verify_stage.verify_shard(canonical, 1, 2, tmp_path / "b.parquet", timeout_s=10, workers=1, chunk=3)
    cols = ["row_index", "gen_index", "mv_recomputed", "status", "extracted"]
    a, b = pq.read_table(tmp_path / "a.parquet", columns=cols), pq.read_table(tmp_path / "b.parquet", columns=cols)
    assert a.equals(b) and a.num_rows == one["items"] == two["items"] > 3
    assert pq.ParquetFile(tmp_path / "b.parquet").num_row_groups > 1  # written chunk by chunk
    assert one["rows"] == two["rows"] == len(set(a.column("row_index").to_pylist()))
    assert set(a.column("row_index").to_pylist()) == set(range(5, 11))  # shard 1 of 2 over row indices 0..10


def test_shards_read_only_their_row_groups(canonical, tmp_path, monkeypatch):
    """A shard decodes only the row groups that hold its row_index range (footer statistics)."""
    read = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, row_groups=None, **kwargs):
        read.extend(row_groups or [])
        return real(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    n_groups = pq.ParquetFile(canonical).num_row_groups  # 11 rows in groups of 4: 3
    for i in range(2):
        read.clear()
        verify_stage.verify_shard(canonical, i, 2, tmp_path / f"s{i}.parquet", timeout_s=10, workers=1)
        assert 0 < len(set(read)) < n_groups
    assert verify_stage.shard_range(11, 0, 2) == (0, 5) and verify_stage.shard_range(11, 1, 2) == (5, 11)


def test_verify_shard_empty_shard_writes_an_empty_table(canonical, tmp_path):
    assert verify_stage.shard_range(11, 0, 13) == (0, 0)  # more shards than rows: some are empty
    s = verify_stage.verify_shard(canonical, 0, 13, tmp_path / "e.parquet", timeout_s=10, workers=1)
    t = pq.read_table(tmp_path / "e.parquet")
    assert s["items"] == s["rows"] == t.num_rows == 0 and t.schema.names[0] == "row_index"


def test_gather_batches_do_not_change_the_verified_table(canonical, tmp_path, monkeypatch):
    shards = [tmp_path / f"s{i}.parquet" for i in range(2)]
    for i, p in enumerate(shards):
        verify_stage.verify_shard(canonical, i, 2, p, timeout_s=10, workers=1, chunk=2)
    r1 = verify_stage.gather(shards, canonical, tmp_path / "v1.parquet", tmp_path / "r1.json")
    monkeypatch.setattr(verify_stage, "READ_BATCH_ROWS", 3)
    r2 = verify_stage.gather(shards, canonical, tmp_path / "v2.parquet", tmp_path / "r2.json")
    v1, v2 = pq.read_table(tmp_path / "v1.parquet"), pq.read_table(tmp_path / "v2.parquet")
    assert v1.equals(v2) and v1.num_rows == 11
    assert r1["overall"] == r2["overall"] and r1["per_source"] == r2["per_source"]
    # every generation has its own result, in order
    for row in v1.to_pylist():
        assert len(row["label_recomputed"]) == len(row["verify_status"]) == len(row["generations"])
        assert "missing" not in row["verify_status"]


def test_gather_names_the_shard_with_a_duplicate(canonical, tmp_path):
    a = tmp_path / "a.parquet"
    verify_stage.verify_shard(canonical, 0, 1, a, timeout_s=10, workers=1)
    b = tmp_path / "b.parquet"
    pq.write_table(pq.read_table(a).slice(2, 1), b)
    with pytest.raises(ValueError, match=r"b\.parquet: duplicate result for row"):
        verify_stage.gather([a, b], canonical, tmp_path / "v.parquet", tmp_path / "r.json")


def test_text_store_round_trip_and_cleanup(tmp_path):
    texts = {(0, 1): "plain", (3, 0): "naïve ∑ 😀 \x00 ctrl", (2, 2): ""}
    with curate_mod.TextStore(tmp_path) as store:
        for k, v in texts.items():
            store.add(k, v)
        assert len(store) == 3 and list(store) == list(texts)
        for k in reversed(list(texts)):  # random access, any order
            assert store[k] == texts[k]
        assert (9, 9) not in store
    assert list(tmp_path.iterdir()) == []  # nothing left beside the outputs


def test_fetch_texts_only_the_selected_generations(canonical, tmp_path, monkeypatch):
    shards = [tmp_path / "s.parquet"]
    verify_stage.verify_shard(canonical, 0, 1, shards[0], timeout_s=10, workers=1)
    verify_stage.gather(shards, canonical, tmp_path / "v.parquet", tmp_path / "r.json")
    rows = {r["row_index"]: r for r in pq.read_table(tmp_path / "v.parquet").to_pylist()}
    items = [(rows[2], 0, 2), (rows[7], 1), (rows[10], 0)]
    monkeypatch.setattr(curate_mod, "FETCH_BATCH_ROWS", 2)
    with curate_mod.fetch_texts(tmp_path / "v.parquet", items, tmp_path / "out") as store:
        assert sorted(store) == [(2, 0), (2, 2), (7, 1), (10, 0)]
        for ri, gi in store:
            assert store[(ri, gi)] == rows[ri]["generations"][gi]


def test_token_lengths_do_not_depend_on_the_call_bounds(tmp_path, monkeypatch):
    texts = {(i, 0): gen(i, body="step " * (3 * i + 1)) for i in range(7)}
    tok = build_tiny_tokenizer(tmp_path / "tok", list(texts.values()))
    counter = curate_mod.TokenCounter(tok, "Solve.")
    sft = [({"row_index": i, "problem": f"What is {i} + {i}?"}, 0) for i in range(7)]
    whole = curate_mod.token_lengths(counter, sft, texts)
    monkeypatch.setattr(curate_mod.TokenCounter, "BATCH", 2)
    monkeypatch.setattr(curate_mod.TokenCounter, "MAX_CHARS", 40)  # below one text: one text per call
    assert curate_mod.token_lengths(counter, sft, texts) == whole
    assert whole[1][(6, 0)] > whole[1][(0, 0)] > 0
