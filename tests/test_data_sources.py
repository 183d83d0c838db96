"""Corpus sources: hub download failure message, local copies in every supported layout."""

from __future__ import annotations

import json

import pytest

from redi.data.sources import download_hub, load_corpus
from redi.data.synthetic import synthetic_corpus_schema
from test_data_common import raw_row, write_parquet


def test_download_hub_offline_message(monkeypatch, tmp_path):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'open-r1/OpenR1-Math-Raw' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError) as err:
        download_hub("open-r1/OpenR1-Math-Raw", "abc123", "train", tmp_path / "out")
    msg = str(err.value)
    assert "corpus.source: local" in msg and "corpus.local_path" in msg
    assert "open-r1/OpenR1-Math-Raw" in msg and "abc123" in msg
    assert not (tmp_path / "out").exists()


def _rows():
    return [
        raw_row(f"P{i}", gens=["a"] * (i + 1), llama=[True] * (i + 1), mv=[False] * (i + 1)) for i in range(5)
    ]


def _problems(corpus):
    return [p for b in corpus.iter_batches(batch_size=2) for p in b.column("problem").to_pylist()]


def test_load_single_parquet_and_dir(tmp_path):
    rows = _rows()
    f = write_parquet(rows, tmp_path / "one.parquet", synthetic_corpus_schema())
    c = load_corpus(f)
    assert c.kind == "parquet" and c.num_rows == 5 and "correctness" in c.column_names
    assert _problems(c) == [f"P{i}" for i in range(5)]
    d = tmp_path / "dir"
    write_parquet(rows[:2], d / "train-00000.parquet", synthetic_corpus_schema())
    write_parquet(rows[2:], d / "train-00001.parquet", synthetic_corpus_schema())  # files are read in sorted path order
    c = load_corpus(d)
    assert c.num_rows == 5 and _problems(c) == [f"P{i}" for i in range(5)]


def test_load_jsonl_file_and_dir(tmp_path):
    rows = _rows()
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = load_corpus(f)
    assert c.kind == "jsonl" and c.num_rows == 5 and _problems(c) == [f"P{i}" for i in range(5)]
    d = tmp_path / "jd"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (d / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))
    assert _problems(load_corpus(d)) == [f"P{i}" for i in range(5)]


def test_load_save_to_disk(tmp_path):
    import datasets
    import pyarrow as pa

    table = pa.Table.from_pylist(_rows(), schema=synthetic_corpus_schema())
    ds = datasets.Dataset(table)
    ds.save_to_disk(str(tmp_path / "ds"))
    c = load_corpus(tmp_path / "ds")
    assert c.kind == "save_to_disk" and c.num_rows == 5
    assert _problems(c) == [f"P{i}" for i in range(5)]
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    assert _problems(load_corpus(tmp_path / "dd")) == [f"P{i}" for i in range(5)]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .parquet or .jsonl"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(ValueError, match="unsupported"):
        load_corpus(tmp_path / "x.csv")
