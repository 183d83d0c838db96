"""The report stage: every table and figure from a results tree, numbers checked against the
metrics files, missing pieces shown as "—", and the regenerate-from-results command.

Trees: a hand-made one (tests/fixtures/handmade_tree.py, the default config) always; the tree
of a real tiny run when ``tests/fixtures/results/`` exists (its config:
``tests/fixtures/config.yaml``, else ``config/test.yaml``; Snakemake benchmark files:
``tests/fixtures/benchmarks/`` when present). Every check reads the expected numbers from the
tree itself, so either tree works unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))

import handmade_tree  # noqa: E402

from redi.eval.benchmarks import display_name  # noqa: E402
from redi.plan import load_config, sft_runs  # noqa: E402
from redi.report.build import build_report  # noqa: E402
from redi.report.layout import FIGSIZE, FIGURE_DPI, all_report_files, figure_names  # noqa: E402

MISSING = "—"


def _real_tree():
    results = FIXTURES / "results"
    if not results.is_dir():
        return None
    config = FIXTURES / "config.yaml"
    if not config.is_file():
        config = ROOT / "config" / "test.yaml"
    bench = FIXTURES / "benchmarks"
    return {"results": results, "config": config, "benchmarks": bench if bench.is_dir() else None}


TREES = ["handmade"] + (["real"] if _real_tree() else [])


@pytest.fixture(scope="module", params=TREES)
def tree(request, tmp_path_factory):
    if request.param == "handmade":
        root = handmade_tree.write_tree(tmp_path_factory.mktemp("handmade") / "tree", ROOT / "config" / "config.yaml")
        spec = {"results": root / "results", "config": root / "config.yaml", "benchmarks": root / "benchmarks"}
    else:
        spec = _real_tree()
    spec["name"] = request.param
    spec["cfg"] = load_config(spec["config"])
    return spec


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports") / "reports"
    paths = build_report(tree["results"], reports, tree["cfg"], tree["benchmarks"])
    return {**tree, "reports": reports, "paths": paths}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fnum(text):
    return None if text in ("", None) else float(text)


def md_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the first markdown table in a file."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    if not lines:  # a table without rows (e.g. one that would repeat another)
        return [], []
    split = lambda line: [c.strip() for c in line.strip("|").split(" | ")]  # noqa: E731
    return split(lines[0]), [split(line) for line in lines[2:]]


# ---- every promised file ---------------------------------------------------------------


def test_every_layout_file_is_written_and_non_empty(built):
    expected = {Path(p) for p in all_report_files(built["cfg"], str(built["reports"]))}
    assert expected == set(built["paths"])
    for path in expected:
        assert path.stat().st_size > 0, path


def test_figures_are_images_of_the_expected_size(built):
    from PIL import Image

    for kind, names in figure_names(built["cfg"]).items():
        width, height = (round(v * FIGURE_DPI) for v in FIGSIZE[kind])
        for name in names:
            png = built["reports"] / "figures" / f"{name}.png"
            with Image.open(png) as image:
                assert image.size == (width, height), (png, image.size)
                extrema = image.convert("L").getextrema()
                assert extrema[0] < 100 < extrema[1], f"{png} looks blank: {extrema}"
            assert (built["reports"] / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


# ---- numbers against the metrics files -------------------------------------------------


@pytest.mark.parametrize("table", ["table1_final", "table2_ablation"])
def test_pass1_tables_match_metrics(built, table):
    rows = read_csv(built["reports"] / "tables" / f"{table}.csv")
    assert rows
    per_model: dict = {}
    for row in rows:
        key = (row["model"], row["checkpoint"])
        if row["benchmark"] == "avg":
            per_model.setdefault(key, {})["avg"] = row
            continue
        per_model.setdefault(key, {})[row["benchmark"]] = row
        source = Path(row["source"])
        if row["status"] == "missing":
            assert not source.exists()
            assert row["value_pct"] == ""
            continue
        metrics = json.loads(source.read_text())
        assert math.isclose(float(row["value_pct"]), 100 * metrics["pass@1"], rel_tol=1e-9)
        assert math.isclose(float(row["sem_pct"]), 100 * metrics["sem"], rel_tol=1e-9)
        assert int(float(row["n_samples"])) == metrics["n_samples"]
        assert int(float(row["n_problems"])) == metrics["n_problems"]
    benches = built["cfg"]["evaluation"]["final"]["benchmarks"]
    for cells in per_model.values():
        if "avg" in cells and cells["avg"]["status"] == "ok":
            values = [float(cells[b]["value_pct"]) for b in benches]
            assert math.isclose(float(cells["avg"]["value_pct"]), sum(values) / len(values), rel_tol=1e-9)


def test_markdown_cells_show_the_metrics(built):
    tables = built["reports"] / "tables"
    ablation = (tables / "table2_ablation.md").read_text()
    if "Same models and checkpoints as Table 1" in ablation:  # not repeated: Table 1 shows the rows
        assert "| Model |" not in ablation
        header, body = md_rows(tables / "table1_final.md")
    else:
        header, body = md_rows(tables / "table2_ablation.md")
    bench = built["cfg"]["evaluation"]["final"]["benchmarks"][0]
    column = next(i for i, h in enumerate(header) if h.startswith(display_name(built["cfg"], bench)))
    checked = 0
    for cells in body:
        run = cells[0].removesuffix(" (start)")
        ckpt = cells[header.index("Checkpoint")].split(" ")[0]
        path = built["results"] / "eval" / run / ckpt / bench / "metrics.json"
        if not path.exists():
            assert cells[column] == MISSING
            continue
        metrics = json.loads(path.read_text())
        assert cells[column] == f"{100 * metrics['pass@1']:.1f} ± {100 * metrics['sem']:.1f}"
        assert cells[header.index("Samples")] == str(metrics["n_samples"])
        checked += 1
    assert checked


@pytest.mark.parametrize("table", ["table3_passk_ablation", "table4_passk_final"])
def test_passk_tables_match_metrics(built, table):
    rows = [r for r in read_csv(built["reports"] / "tables" / f"{table}.csv") if r["benchmark"] != "avg"]
    assert rows
    for row in rows:
        if row["status"] != "ok":
            continue
        k = row["metric"].removeprefix("pass@")
        metrics = json.loads(Path(row["source"]).read_text())
        assert math.isclose(float(row["value_pct"]), 100 * metrics["pass@k"][k], rel_tol=1e-9)
        n = built["cfg"]["evaluation"]["final"]["n_samples"]
        assert int(k) == (16 if n >= 16 else max(int(x) for x in metrics["pass@k"]))


def test_sweep_table_peak_final_and_collapse(built):
    rows = read_csv(built["reports"] / "tables" / "sweep.csv")
    cfg = built["cfg"]
    from redi.plan import stage2_runs

    runs = stage2_runs(cfg)
    assert {r["run"] for r in rows} == set(runs)
    bench = cfg["evaluation"]["intermediate"]["benchmarks"][0]
    for row in rows:
        if row["benchmark"] != bench:
            continue
        found = {}
        for path in (built["results"] / "eval" / row["run"]).glob(f"step-*/{bench}/metrics.json"):
            found[int(path.parts[-3].removeprefix("step-"))] = json.loads(path.read_text())["pass@1"]
        if not found:
            assert row["peak_pct"] == ""
            continue
        if row["start_pct"]:  # the peak includes step 0 (the start), as the collapse rule does
            found.setdefault(0, float(row["start_pct"]) / 100)
        best = max(found.values())
        assert math.isclose(float(row["peak_pct"]), 100 * best, rel_tol=1e-9)
        assert math.isclose(found[int(float(row["peak_step"]))], best, rel_tol=1e-9)
        last = max(found)
        assert int(float(row["final_step"])) == last
        assert math.isclose(float(row["final_pct"]), 100 * found[last], rel_tol=1e-9)
        summary_path = built["results"] / "train" / row["run"] / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            flags = [
                json.loads(line).get("collapse_flag")
                for line in (summary_path.parent / "metrics.jsonl").read_text().splitlines()
                if line.strip()
            ]
            if bool(summary["collapsed"]) or any(flags):  # the in-training guard fired
                assert row["collapse_verdict"] == "collapsed"
            assert row["collapse_verdict"] in ("collapsed", "suspect", "stable")


def test_summary_states_the_ranking_and_collapses(built):
    text = (built["reports"] / "summary.md").read_text()
    assert "## Stage 2" in text and "## Stability" in text
    if built["name"] == "handmade":
        # the fixture's symmetric run collapses and is named; the best run is the top of Table 2
        assert "`redi-a1-lr1e-4` (collapsed at step" in text
        rows = [
            r
            for r in read_csv(built["reports"] / "tables" / "table2_ablation.csv")
            if r["run"] != "sft" and r["status"] == "ok"
        ]
        best = max(rows, key=lambda r: float(r["value_pct"]))
        assert f"Best stage-2 run: `{best['run']}`" in text
        assert f"{float(best['value_pct']):.1f}% ± {float(best['sem_pct']):.1f}" in text


def test_cost_table_uses_benchmark_files_and_trainer_timing(built):
    if built["benchmarks"] is None:
        pytest.skip("this tree has no Snakemake benchmark files")
    rows = {(r["job"], r["kind"]): r for r in read_csv(built["reports"] / "tables" / "cost.csv")}
    for run in sft_runs(built["cfg"]):
        row = rows[(run, "train")]
        tsv = built["benchmarks"] / "train" / f"{run}.tsv"
        wall = float(read_csv_tsv(tsv)[0]["s"])
        assert math.isclose(float(row["wall_seconds"]), wall, rel_tol=1e-9)
        summary = json.loads((built["results"] / "train" / run / "summary.json").read_text())
        assert math.isclose(float(row["trainer_wall_seconds"]), summary["wall_seconds"], rel_tol=1e-9)
        gpus = built["cfg"]["resources"]["train"].get("gpu", 0)
        assert math.isclose(float(row["gpu_hours"]), wall / 3600 * gpus, abs_tol=1e-12)
        from redi.report.paper_lookup import paper_setting

        if not paper_setting(built["cfg"]):  # the paper's 8xA100 hours only beside the paper's setting
            assert row["paper_wall_hours"] == "" and row["paper_gpu_hours"] == ""
        elif sft_runs(built["cfg"])[run]["epochs"] in (3, 5):
            assert float(row["paper_wall_hours"]) in (8.0, 13.0)
    # the workflow's real wall time beside the sum over jobs: jobs overlap, so it is not larger
    elapsed = float(rows[("workflow wall time", "")]["wall_seconds"])
    assert 0 < elapsed <= float(rows[("total", "")]["wall_seconds"])


def read_csv_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_latex_is_escaped(built):
    for path in (built["reports"] / "tables").glob("*.tex"):
        body = "\n".join(line for line in path.read_text().splitlines() if not line.startswith(("%", "\\label")))
        for char in ("_", "%", "#", "±", "—", "α"):
            bad = [line for line in body.splitlines() if char in line.replace("\\" + char, "")]
            assert not bad, (path.name, char, bad[:2])
        assert body.count("{") == body.count("}"), path.name


# ---- missing pieces are shown, not hidden ----------------------------------------------


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """The hand-made tree with one stage-2 run never evaluated on the final benchmarks, one
    intermediate evaluation missing, one run never trained, and no data reports."""
    root = handmade_tree.write_tree(tmp_path_factory.mktemp("partial") / "tree", ROOT / "config" / "config.yaml")
    res = root / "results"
    shutil.rmtree(res / "eval" / "dpo-b0.1-lr1e-4" / "best")
    # one intermediate evaluation of a run, whichever steps the config saves
    steps = sorted((res / "eval" / "redi-a0.5-lr1e-4").glob("step-*"), key=lambda p: int(p.name[5:]))
    shutil.rmtree(steps[len(steps) // 2])
    (root / "removed_step.txt").write_text(f"{steps[len(steps) // 2].name} {len(steps)}")
    shutil.rmtree(res / "train" / "simpo-b2-g1-lr1e-4")
    shutil.rmtree(res / "eval" / "simpo-b2-g1-lr1e-4")
    (res / "data" / "curation_report.json").unlink()
    (res / "data" / "verification_report.json").unlink()
    config = load_config(root / "config.yaml")
    reports = root / "reports"
    build_report(res, reports, config, root / "benchmarks")
    return reports


def shown_ablation(tables: Path) -> str:
    """table2_ablation, or table1_final where Table 2 would repeat it (and says so)."""
    if "Same models and checkpoints as Table 1" in (tables / "table2_ablation.md").read_text():
        return "table1_final"
    return "table2_ablation"


def test_missing_evaluation_is_a_dash_with_a_footnote(partial):
    name = shown_ablation(partial / "tables")
    header, body = md_rows(partial / "tables" / f"{name}.md")
    rows = {cells[0]: cells for cells in body}
    column = next(i for i, h in enumerate(header) if h.startswith("synthetic test"))
    assert rows["dpo-b0.1-lr1e-4"][column] == MISSING
    assert rows["simpo-b2-g1-lr1e-4"][column] == MISSING
    assert rows["redi-a0.8-lr1e-4"][column] not in (MISSING, "0.0", "0.0 ± 0.0")
    text = (partial / "tables" / f"{name}.md").read_text()
    footnote = next(line for line in text.splitlines() if line.startswith(f"- {MISSING} = not available yet"))
    assert "dpo-b0.1-lr1e-4/best/synthetic" in footnote and "simpo-b2-g1-lr1e-4/best/synthetic" in footnote
    for row in read_csv(partial / "tables" / "table2_ablation.csv"):
        if row["run"] in ("dpo-b0.1-lr1e-4", "simpo-b2-g1-lr1e-4"):
            assert row["status"] == "missing" and row["value_pct"] == ""
    assert "\\textbf" not in (partial / "tables" / f"{name}.tex").read_text()
    assert "---" in (partial / "tables" / f"{name}.tex").read_text()


def test_missing_never_becomes_zero_anywhere(partial):
    for path in (partial / "tables").glob("*.md"):
        header, body = md_rows(path)
        for cells in body:
            if "simpo-b2-g1-lr1e-4" in cells[0] and path.stem in (
                "table1_final",
                "table2_ablation",
                "table4_passk_final",
            ):
                numeric = cells[header.index("Samples") :]
                assert all(c == MISSING for c in numeric), (path.name, cells)


def test_partial_sweep_and_data_tables(partial):
    header, body = md_rows(partial / "tables" / "sweep.md")
    rows = {cells[0]: dict(zip(header, cells)) for cells in body}
    removed, n_steps = (partial.parent / "removed_step.txt").read_text().split()
    assert rows["redi-a0.5-lr1e-4"]["Evaluated"] == f"{int(n_steps) - 1}/{n_steps}"
    assert rows["simpo-b2-g1-lr1e-4"]["Collapse verdict"] == "unknown"  # not trained: the one vocabulary
    assert rows["simpo-b2-g1-lr1e-4"]["Peak ± SEM (step 0 incl.)"] == MISSING
    assert f"redi-a0.5-lr1e-4/{removed}/synthetic" in (partial / "tables" / "sweep.md").read_text()
    for name in ("curation", "verification"):
        text = (partial / "tables" / f"{name}.md").read_text()
        assert MISSING in text and f"{name}_report.json" in text
    summary = (partial / "summary.md").read_text()
    assert "Not evaluated yet" in summary and "dpo-b0.1-lr1e-4/best" in summary
    assert "**unknown** (not trained yet): `simpo-b2-g1-lr1e-4`" in summary


def test_empty_results_build_without_error(tmp_path):
    config = load_config(ROOT / "config" / "config.yaml")
    (tmp_path / "results").mkdir()
    paths = build_report(tmp_path / "results", tmp_path / "reports", config)
    assert len(paths) == len(all_report_files(config))
    header, body = md_rows(tmp_path / "reports" / "tables" / "table1_final.md")
    assert body and all(cells[-1] == MISSING for cells in body)


# ---- regenerate from results without training or evaluation ----------------------------


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_cli_rebuilds_reports_from_existing_results(tmp_path):
    import argparse

    root = handmade_tree.write_tree(tmp_path / "tree", ROOT / "config" / "config.yaml")
    before = _digest(root / "results")
    reports = tmp_path / "out"
    argv = [
        "build",
        "--results",
        str(root / "results"),
        "--reports",
        str(reports),
        "--config",
        str(root / "config.yaml"),
        "--benchmarks",
        str(root / "benchmarks"),
    ]
    try:
        from redi.cli import main

        assert main(["report", *argv]) == 0
    except ModuleNotFoundError as error:  # another stage's CLI is not importable yet
        from redi.report import cli

        parser = argparse.ArgumentParser()
        cli.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        assert args.func(args) == 0, error
    assert _digest(root / "results") == before  # nothing under results/ was touched
    written = {str(p) for p in all_report_files(load_config(root / "config.yaml"), str(reports))}
    assert all(Path(p).stat().st_size > 0 for p in written)
    assert (reports / "summary.md").read_text().startswith("# REDI reproduction")


def test_cost_table_reads_a_grouped_run_once(tmp_path):
    """evaluation.group_per_run: a run evaluated by one eval_group job has one cost row
    from benchmarks/eval/{run}/group.tsv, and no per-checkpoint or final rows shown missing."""
    root = handmade_tree.write_tree(tmp_path / "tree", ROOT / "config" / "config.yaml")
    run, bdir = "redi-a0.5-lr1e-4", root / "benchmarks" / "eval"
    walls = [float(read_csv_tsv(p)[0]["s"]) for p in (bdir / run).rglob("*.tsv")]
    shutil.rmtree(bdir / run)
    (bdir / run).mkdir()
    handmade_tree._benchmark_tsv(bdir / run / "group.tsv", sum(walls) / 2)
    config = load_config(root / "config.yaml")
    build_report(root / "results", root / "reports", config, root / "benchmarks")
    rows = [r for r in read_csv(root / "reports" / "tables" / "cost.csv") if r["job"] == run]
    kinds = {r["kind"]: r for r in rows}
    grouped = next(r for k, r in kinds.items() if "one job" in k)
    assert math.isclose(float(grouped["wall_seconds"]), sum(walls) / 2, rel_tol=1e-6)
    assert float(grouped["jobs"]) == 1 and set(kinds) == {"train", grouped["kind"]}
    assert f"benchmarks for {run}" not in (root / "reports" / "tables" / "cost.md").read_text()
