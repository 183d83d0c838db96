"""The ground-floor homes shared by every stage: ``redi.ids``, ``redi.files``, ``redi.paper``."""

from __future__ import annotations

import json
import os

import pytest

from redi import paper
from redi.files import atomic_path, atomic_write, write_json_atomic, write_parquet_atomic, write_text_atomic
from redi.ids import problem_id


@pytest.mark.parametrize(
    "text, expected",
    [
        # values of the two former definitions (data: surrogatepass; eval: plain UTF-8)
        ("What is 1+1?", "f8b32592940189e5"),
        ("Compute  1 +\n1.", "18f88183c820780a"),
        ("Найдите $x$: $x^2=4$ — ∑", "f140085c2819f8ba"),
        ("", "da39a3ee5e6b4b0d"),
    ],
)
def test_problem_id_unchanged_for_ordinary_text(text, expected):
    assert problem_id(text) == expected


def test_problem_id_is_whitespace_insensitive_and_names_bad_text():
    assert problem_id(" Compute 1 + 1. ") == problem_id("Compute  1 +\n1.")
    bad = "x\udcff y"  # a lone surrogate (bytes decoded with surrogateescape): not valid UTF-8
    with pytest.raises(UnicodeEncodeError):
        bad.encode("utf-8")
    assert len(problem_id(bad)) == 16 and problem_id(bad) != problem_id("x y")


def test_both_stages_use_the_one_problem_id():
    from redi.data import normalize
    from redi.eval import benchmarks

    assert normalize.problem_id is problem_id and benchmarks.problem_id is problem_id


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json_atomic(target, {"a": "é", "p": tmp_path})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": "é", "p": str(tmp_path)}
    assert "é" in target.read_text(encoding="utf-8")  # no ASCII escaping
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    with atomic_write(tmp_path / "b.bin", "wb") as fh:
        fh.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out.json"]


def test_atomic_write_keeps_old_file_when_the_body_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(target, "a"):
            pass


def test_atomic_path_suffix_and_parquet(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(tmp_path / "c.npz", suffix=".npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npz")
        np.savez(tmp, x=np.arange(3))  # savez appends .npz when missing: the suffix prevents it
    assert np.load(tmp_path / "c.npz")["x"].tolist() == [0, 1, 2]
    write_parquet_atomic(pa.table({"x": [1, 2]}), tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").column("x").to_pylist() == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["c.npz", "t.parquet"]


def test_paper_curation_constants():
    # paper, "Data curation": 77,629 SFT examples, 53,175 pairs before the length filter
    assert paper.CURATION_EXPECTED == {"sft": 77629, "pairs_before_length_filter": 53175}
    assert (paper.CURATION_MAX_PROMPT_LENGTH, paper.CURATION_MAX_RESPONSE_LENGTH) == (800, 19000)
