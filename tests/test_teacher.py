"""Teacher traces: config, problem selection, a real sampling shard through the
evaluation code path, the Raw-layout corpus through normalisation, per-source curation counts,
the dry-run plan, and (slow) ``snakemake --configfile config/teacher.yaml`` up to curation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from helpers import save_tiny_student
from redi.data.curate_report import source_counts
from redi.data.normalize import canonical_rows, normalize
from redi.data.schemas import raw_schema
from redi.plan import ConfigError, validate_config
from redi.teacher.config import TeacherConfig
from redi.teacher.corpus import build_corpus, read_origins
from redi.teacher.plan import describe, expected
from redi.teacher.problems import read_problem_set, select_problems
from redi.teacher.sample import sample_shard, shard_problems
from test_data_config import _schema_defaults, _subset

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


# ---- config ---------------------------------------------------------------------------------


def test_schema_defaults_are_the_dataclass_defaults():
    node = SCHEMA["properties"]["teacher"]
    ours = TeacherConfig().to_dict()
    _subset(_schema_defaults(node), ours, "teacher")
    assert set(ours) == set(node["properties"])
    assert set(ours["model"]) == set(node["properties"]["model"]["properties"])


@pytest.mark.parametrize(
    "cfg, key",
    [
        ({"n_sampels": 2}, "teacher.n_sampels"),
        ({"model": {"hub": "x"}}, "teacher.model.hub"),
        ({"generation": {"temperature": 1.0}}, "teacher.generation.temperature"),
        ({"generation": {"n_samples": 2}}, "teacher.generation.n_samples"),
    ],
)
def test_unknown_keys_are_named(cfg, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        TeacherConfig.from_dict(cfg)


def test_generation_overrides_evaluation_key_by_key():
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 99, "seed": 0}
    evaluation = {"backend": "transformers", "sampling": sampling, "batch_size": 8, "benchmarks": {"x": "y"},
                  "intermediate": {}, "vllm": {"a": 1}}  # fmt: skip
    cfg = TeacherConfig.from_dict({"n_samples": 3, "generation": {"sampling": {"temperature": 1.0}, "vllm": {"b": 2}}})
    out = cfg.eval_config(evaluation)
    assert out["sampling"] == {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 99, "seed": 0}
    assert out["vllm"] == {"a": 1, "b": 2} and out["n_samples"] == 3 and out["batch_size"] == 8
    assert "benchmarks" not in out and out["trust_remote_code"] is False


def _config(**teacher):
    return validate_config({"teacher": {"enabled": True, "model": {"kind": "tiny"}, **teacher},
                            "curation": {"label_rule": "mv"}})  # fmt: skip


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match="curation.label_rule"):
        validate_config({"teacher": {"enabled": True, "model": {"kind": "tiny"}}})  # default llama_and_mv
    with pytest.raises(ConfigError, match="hub_name"):
        validate_config({"teacher": {"enabled": True}, "curation": {"label_rule": "mv"}})
    with pytest.raises(ConfigError, match="top_p"):
        _config(generation={"sampling": {"top_p": 0}})
    validate_config({"teacher": {"enabled": False}})  # off: an empty model block is fine


# ---- problems -------------------------------------------------------------------------------


def _corpus(tmp_path: Path) -> Path:
    """A Raw-layout corpus: a row with correct traces only, one with incorrect only, one mixed,
    one whose only incorrect trace is truncated, and a second row of the first problem."""
    def row(problem, mv, finish=None):
        return {"problem": problem, "answer": "4", "problem_is_valid": "yes", "source": "s", "synthetic": False,
                "generations": [f"<think>t</think> \\boxed{{{4 if ok else 5}}}" for ok in mv],
                "generations_count": len(mv),
                "correctness": {"llama_verification": mv, "math_verify_answer": mv, "math_verify_reparsed_answer": mv},
                "finish_reasons": finish, "is_reasoning_complete": None}  # fmt: skip

    rows = [row("2+2 (A)", [True, True]), row("2+2 (B)", [False, False]), row("2+2 (C)", [True, False]),
            row("2+2 (D)", [True, False], ["stop", "length"]), row("2+2 (A)", [False])]  # fmt: skip
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=raw_schema()), path)
    canonical = tmp_path / "canonical.parquet"
    normalize(path, canonical, tmp_path / "rejects.jsonl")
    return canonical


@pytest.mark.parametrize("as_rejected, expected", [(False, ["A", "B", "D"]), (True, ["A", "B"])])
def test_only_missing_keeps_problems_that_cannot_give_a_pair(tmp_path, as_rejected, expected):
    canonical = _corpus(tmp_path)
    counts = select_problems(tmp_path / "p.json", {"only_missing": True, "n_samples": 3}, canonical_path=canonical,
                             truncated_as_rejected=as_rejected)  # fmt: skip
    chosen = json.loads((tmp_path / "p.json").read_text())
    assert [p["problem"][-2] for p in chosen] == expected
    assert counts["duplicate_problems"] == 1 and counts["samples"] == 3 * len(expected)
    assert chosen[0]["corpus_row"] == 0  # the first row of a repeated problem gets the traces


def test_problem_files_bad_rows_are_named(tmp_path):
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps([{"problem": "1+1", "answer": 2}, {"problem": "x", "answer": None}]))
    with pytest.raises(ValueError, match=r"b\.json: row 1 has no answer"):
        read_problem_set(bench)
    table = tmp_path / "b.parquet"
    pq.write_table(pa.table({"problem": ["1+1", " "], "answer": ["2", "3"]}), table)
    with pytest.raises(ValueError, match=r"b\.parquet: row 1 has no problem text"):
        read_problem_set(table)


def test_shards_cover_every_problem_once():
    problems = list(range(10))
    shards = [shard_problems(problems, i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == problems


# ---- a real shard through evaluation, then the corpus ----------------------------------------


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, one_torch_thread):
    tmp = tmp_path_factory.mktemp("teacher")
    model = save_tiny_student(tmp / "teacher")
    canonical = _corpus(tmp)
    select_problems(tmp / "problems.json", {"only_missing": True}, canonical_path=canonical)
    cfg = {"backend": "transformers", "sampling": {"temperature": 1.0, "max_new_tokens": 12}, "n_samples": 2,
           "batch_size": 4}  # fmt: skip
    shards = [tmp / f"shard-{i}-of-2" for i in range(2)]
    costs = [sample_shard(tmp / "problems.json", model, shards[i], cfg, index=i, n_shards=2) for i in range(2)]
    return tmp, canonical, shards, costs, model, cfg


def test_shard_records_its_cost_and_resumes_from_its_journal(sampled):
    tmp, _, shards, costs, model, cfg = sampled
    assert [c["problems"] for c in costs] == [2, 1]
    assert all(c["samples"] == 2 * c["problems"] and c["generated_tokens"] > 0 and c["gpu_hours"] == 0 for c in costs)
    assert json.loads((shards[0] / "cost.json").read_text()) == costs[0]
    again = sample_shard(tmp / "problems.json", model, shards[0], cfg, index=0, n_shards=2)
    metrics = json.loads((shards[0] / "metrics.json").read_text())
    assert metrics["reused_samples"] == 4  # nothing generated twice
    assert again["generated_tokens"] == costs[0]["generated_tokens"]


def test_corpus_is_raw_layout_and_normalises_with_labels_and_truncation(sampled):
    tmp, canonical, shards, _, _, _ = sampled
    out = tmp / "mixed.parquet"
    report = build_corpus(tmp / "problems.json", shards, out, tmp / "origins.json", tmp / "report.json",
                          canonical_path=canonical)  # fmt: skip
    real = pq.read_schema(ROOT / "tests/fixtures/openr1/raw.parquet")
    ours = pq.read_schema(out)
    for col in ("generations", "generations_count", "correctness", "problem_is_valid", "synthetic"):
        # the real file stores large_string; the types are otherwise the same
        assert str(ours.field(col).type) == str(real.field(col).type).replace("large_", ""), col
    summary = normalize(out, tmp / "c2.parquet", tmp / "r2.jsonl")
    assert summary["schema"] == "raw" and summary["rejected_rows"] == 0
    rows = canonical_rows(tmp / "c2.parquet")
    origins = read_origins(tmp / "origins.json")
    samples = {}
    for s in shards:
        for rec in (
            pd.read_parquet(s / "samples.parquet").sort_values(["problem_id", "sample_index"]).to_dict("records")
        ):
            samples.setdefault(rec["problem_id"], []).append(rec)
    assert len(rows) == 5 and report["samples"] == 6 and report["rows_with_new_traces"] == 3
    for row in rows:
        n_corpus, n_teacher = origins[row["row_index"]]
        new = samples.get(row["problem_id"], []) if n_teacher else []
        assert len(row["generations"]) == n_corpus + n_teacher == n_corpus + len(new)
        assert row["generations"][n_corpus:] == [s["text"] for s in new]
        assert row["label_mv"][n_corpus:] == [bool(s["correct"]) for s in new]
        if new:
            assert row["finish_reasons"][n_corpus:] == [s["finish_reason"] for s in new]
            assert row["is_reasoning_complete"][n_corpus:] == [s["finish_reason"] != "length" for s in new]
    assert report["correct"] + report["incorrect"] == report["samples"]
    assert report["truncated"] == sum(s["finish_reason"] == "length" for v in samples.values() for s in v)


def test_teacher_traces_only_and_a_benchmark_problem_set(sampled, tmp_path):
    _, _, _, _, model, cfg = sampled
    bench = tmp_path / "set.json"
    bench.write_text(
        json.dumps([{"problem": "What is 3+4?", "answer": 7.0}, {"problem": "Name 2", "answer": ["2", "two"]}])
    )
    select_problems(tmp_path / "p.json", {"problems": str(bench), "keep_corpus_traces": False}, problems_path=bench)
    shard = tmp_path / "shard-0-of-1"
    sample_shard(tmp_path / "p.json", model, shard, cfg, index=0, n_shards=1)
    build_corpus(tmp_path / "p.json", [shard], tmp_path / "c.parquet", tmp_path / "o.json", tmp_path / "r.json",
                 unknown_validity="yes")  # fmt: skip
    table = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert [r["answer"] for r in table] == ["7", "2"]  # benchmark golds as the Raw answer string
    assert all(r["problem_is_valid"] == "yes" and r["correctness"]["llama_verification"] is None for r in table)


# ---- report and plan ------------------------------------------------------------------------


def test_source_counts_attribute_each_trace():
    origins = {0: (2, 2), 1: (0, 3)}
    r0, r1 = {"row_index": 0}, {"row_index": 1}
    sft, pref = [(r0, 1), (r1, 0)], [(r0, 0, 3), (r0, 2, 1), (r1, 0, 2)]
    out = source_counts(origins, (sft, pref), (sft[:1], pref[:1]))
    assert out["generations"] == {"corpus": 2, "teacher": 5} and out["rows_with_teacher_traces"] == 2
    assert out["selected"]["sft"] == {"corpus": 1, "teacher": 1}
    assert out["selected"]["pairs"] == {"corpus/teacher": 1, "teacher/corpus": 1, "teacher/teacher": 1}
    assert out["selected"]["new_pairs"] == 3 and out["final"]["new_pairs"] == 1


def test_dry_run_plan_counts_samples_and_tokens(tmp_path):
    config = validate_config(yaml.safe_load((ROOT / "config/teacher.yaml").read_text()))
    e = expected(config, problems_json=tmp_path / "none.json")
    assert (e["problems"], e["samples"], e["max_tokens"], e["exact"]) == (240, 960, 960 * 48, False)
    assert "at most 960 samples" in describe(config)
    (tmp_path / "p.json").write_text(json.dumps([{}] * 7))
    assert expected(config, problems_json=tmp_path / "p.json")["samples"] == 28


def test_parse_time_needs_no_heavy_libraries(tmp_path):
    """The teacher rules' parse-time code (config, plan line) with the heavy stack blocked."""
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'tokenizers', 'pyarrow', 'datasets', 'math_verify'):\n"
        "    sys.modules[m] = None\n"
        "from snakemake.cli import main\n"
        f"sys.argv = ['snakemake', '-n', '--nolock', '--cores', '1', '-d', {str(tmp_path)!r}, '--configfile',"
        f" {str(ROOT / 'config/teacher.yaml')!r}, '--quiet', 'rules']\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "teacher_sample" in r.stdout + r.stderr and "at most 960 samples" in r.stderr


# ---- the workflow on CPU --------------------------------------------------------------------


@pytest.mark.slow
def test_teacher_config_samples_verifies_and_curates_end_to_end(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # the target first: --configfile takes every word after it
    args = ["results/data/curation_report.json", "-s", str(ROOT / "Snakefile"), "--cores", "2",
            "--configfile", str(ROOT / "config/teacher.yaml")]  # fmt: skip
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-6000:]
    teacher = json.loads((tmp_path / "results/teacher/teacher_report.json").read_text())
    curation = json.loads((tmp_path / "results/data/curation_report.json").read_text())
    problems = json.loads((tmp_path / "results/teacher/problems.json").read_text())
    assert teacher["samples"] == 4 * len(problems) == teacher["teacher_generations"] > 0
    assert teacher["correct"] + teacher["incorrect"] == teacher["samples"]
    assert teacher["generated_tokens"] > 0 and teacher["tokens_per_second"] > 0
    sources = curation["sources"]
    assert sources["generations"]["teacher"] == teacher["samples"]
    final = sources["final"]
    assert sum(final["pairs"].values()) == curation["final"]["pref"]
    assert sum(final["sft"].values()) == curation["final"]["sft"]
    assert final["new_pairs"] == sum(v for k, v in final["pairs"].items() if "teacher" in k)
    verified = pq.read_table(tmp_path / "results/data/verified.parquet").to_pylist()
    assert len(verified) == teacher["rows"]  # every row of the mixed corpus reached verification
    print(json.dumps({"teacher": {k: v for k, v in teacher.items() if k != "shards"}, "sources": sources}))
