"""Runs map onto the paper's rows only in the paper's setting; paper values and differences in
the tables of a config/paper.yaml tree (tables only: the figures are tested elsewhere)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import handmade_tree  # noqa: E402

from redi import paper  # noqa: E402
from redi.plan import all_runs, load_config  # noqa: E402
from redi.report import paper_lookup  # noqa: E402
from redi.report.collect import collect  # noqa: E402
from redi.report.layout import stage2_groups  # noqa: E402
from redi.report.tables import build_tables  # noqa: E402


@pytest.fixture(scope="module")
def paper_config():
    return load_config(ROOT / "config" / "paper.yaml")


def test_paper_runs_map_onto_paper_rows(paper_config):
    runs = all_runs(paper_config)
    keys = {name: paper_lookup.paper_key(run, runs, paper_config) for name, run in runs.items()}
    assert keys["sft-3ep"] == "sft-3ep" and keys["sft-5ep"] == "sft-5ep"
    assert keys["redi-a0.8-lr1e-6"] == "redi"
    assert keys["redi-a1-lr2e-7"] == "redi-symmetric"
    assert keys["dpo-b0.001-lr2e-7"] == "dpo"
    assert keys["simpo-b2-g1-lr5e-7"] == "simpo"
    assert keys["redi-a0.8-lr1e-6-from-sft-5ep"] == "redi-final"
    mapped = {k for k in keys.values() if k}
    assert mapped == {"sft-3ep", "sft-5ep", "redi", "redi-symmetric", "dpo", "simpo", "redi-final"}
    assert keys["redi-a0.5-lr1e-6"] is None and keys["dpo-b0.1-lr1e-6"] is None
    refs = [paper_lookup.reference_key(r) for r in paper_config["evaluation"]["reference_models"]]
    assert refs == ["qwen2.5-math-1.5b", "qwen2.5-math-1.5b-instruct", "r1-distill-qwen-1.5b"]


def test_default_config_has_no_paper_counterpart():
    config = load_config(ROOT / "config" / "config.yaml")
    runs = all_runs(config)
    assert not paper_lookup.paper_setting(config)
    assert all(paper_lookup.paper_key(run, runs, config) is None for run in runs.values())


def test_paper_numbers_are_the_documented_ones():
    assert paper.TABLE1["redi-final"][1]["avg"]["pass@1"] == 49.5
    assert paper.TABLE2["redi"][1]["aime24"]["pass@1"] == 27.3
    assert paper.TABLE3["redi"]["amc"] == 81.9
    assert paper.TABLE4["sft-5ep"]["aime24"] == 56.7
    doc_path = ROOT.parent / "shared" / "docs" / "paper.md"  # the reference text, where present
    if doc_path.exists():
        doc = doc_path.read_text()
        for key, (_label, row) in {**paper.TABLE1, **paper.TABLE2}.items():
            for bench in paper.BENCHMARKS:
                assert f"{row[bench]['pass@1']:.1f}" in doc, (key, bench)


def test_stage2_groups_of_the_paper_config(paper_config):
    groups = {g["name"]: g for g in stage2_groups(paper_config)}
    assert set(groups) == {
        "fig_stage2_alpha_sweep",
        "fig_stage2_objectives",
        "fig_stage2_dpo_sweep",
        "fig_stage2_simpo_sweep",
        "fig_stage2_alpha_sweep-from-sft-5ep",
    }
    assert len(groups["fig_stage2_dpo_sweep"]["runs"]) == 6
    assert groups["fig_stage2_alpha_sweep-from-sft-5ep"]["runs"] == ["redi-a0.8-lr1e-6-from-sft-5ep"]


@pytest.fixture(scope="module")
def paper_tables(tmp_path_factory):
    root = handmade_tree.write_tree(
        tmp_path_factory.mktemp("paper") / "tree", ROOT / "config" / "paper.yaml", n_sft=128 * 10, n_pairs=32 * 210
    )
    results = collect(root / "results", load_config(root / "config.yaml"), root / "benchmarks")
    return {t.name: t for t in build_tables(results)}


def test_paper_columns_and_differences(paper_tables):
    table = paper_tables["table2_ablation"]
    assert "MATH-500 paper" in table.columns and "Avg Δ" in table.columns
    rows = table.data
    checked = 0
    for row in rows.to_dict("records"):
        if row["paper_pct"] is not None and not math.isnan(row["paper_pct"]) and row["status"] == "ok":
            assert math.isclose(row["diff_pct"], row["value_pct"] - row["paper_pct"], abs_tol=1e-9)
            checked += 1
    # 5 mapped rows (start, REDI, symmetric, DPO, SimPO) x (5 benchmarks + avg)
    assert checked == 5 * 6
    redi = rows[(rows.run == "redi-a0.8-lr1e-6") & (rows.benchmark == "aime24")].iloc[0]
    assert redi["paper_pct"] == 27.3
    md = table.to_markdown()
    assert "| redi-a0.5-lr1e-6 |" in md and "n/a" in md


def test_reference_rows_and_table1(paper_tables):
    table = paper_tables["table1_final"]
    rows = table.data
    ref = rows[(rows.run == "reference-r1-distill-qwen-1.5b") & (rows.benchmark == "math500")].iloc[0]
    assert ref["paper_pct"] == 83.2 and ref["paper_sem_pct"] == 0.2
    final = rows[(rows.run == "redi-a0.8-lr1e-6-from-sft-5ep") & (rows.benchmark == "avg")].iloc[0]
    assert final["paper_pct"] == 49.5
    assert rows[rows.run.str.startswith("reference-")].run.nunique() == 3


def test_passk_tables_compare_pass16(paper_tables):
    rows = paper_tables["table3_passk_ablation"].data
    assert set(rows.metric) == {"pass@16"}
    sft = rows[(rows.run == "sft-3ep") & (rows.benchmark == "aime24")].iloc[0]
    assert sft["paper_pct"] == 53.3
    rows4 = paper_tables["table4_passk_final"].data
    distill = rows4[(rows4.run == "reference-r1-distill-qwen-1.5b") & (rows4.benchmark == "amc")].iloc[0]
    assert distill["paper_pct"] == 92.8


def test_cost_table_has_paper_costs(paper_tables):
    rows = paper_tables["cost"].data
    train = rows[rows.kind == "train"].set_index("job")
    assert math.isclose(train.loc["sft-3ep", "paper_wall_hours"], 8.0)
    assert math.isclose(train.loc["sft-5ep", "paper_gpu_hours"], 13.0 * 8)
    assert math.isclose(train.loc["dpo-b0.001-lr2e-7", "paper_wall_hours"], 5 + 10 / 60)
    # the paper config gives 8 GPUs per training job: GPU-hours = wall hours x 8
    row = train.loc["sft-3ep"]
    assert math.isclose(row["gpu_hours"], row["wall_seconds"] / 3600 * 8)
    final = rows[rows.kind == "eval: best on final benchmarks"]
    assert (final["paper_wall_hours"] == 20.0).all()


def test_curation_expected_counts(paper_tables):
    rows = paper_tables["curation"].data.set_index("step")
    assert rows.loc["select_sft", "paper"] == 77629
    assert rows.loc["select_pref", "expected"] == 53175
    assert rows.loc["select_pref", "match"] in (False, 0)


@pytest.mark.parametrize("name", ["table1_final", "table2_ablation"])
def test_avg_value_and_sem_are_eval_metrics_benchmark_average(paper_tables, name):
    """The Avg cell (value AND SEM) is redi.eval.metrics.benchmark_average of the metrics files:
    the tables hold no averaging rule of their own."""
    import json

    from redi.eval.metrics import benchmark_average
    from redi.report.render import pm

    table = paper_tables[name]
    rows = table.data.to_dict("records")
    checked = 0
    for avg in (r for r in rows if r["benchmark"] == "avg" and r["status"] == "ok"):
        parts = [
            r
            for r in rows
            if (r["run"], r["checkpoint"]) == (avg["run"], avg["checkpoint"]) and r["benchmark"] != "avg"
        ]
        assert {r["benchmark"] for r in parts} == set(paper.BENCHMARKS)
        metrics = [json.loads(Path(r["source"]).read_text()) for r in parts]
        expected = benchmark_average(metrics, expected=paper.BENCHMARKS)
        assert expected["sem"] is not None
        assert avg["value_pct"] == 100 * expected["pass@1"]
        assert avg["sem_pct"] == 100 * expected["sem"]
        shown = [row for row in table.rows if row[0] == avg["model"] and row[2].startswith(avg["checkpoint"])]
        assert pm(expected["pass@1"], expected["sem"]) in shown[0]
        checked += 1
    assert checked >= 5
