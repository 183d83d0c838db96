"""The report's verdicts rest on a statistic that holds, it reports what ran (not what the config
says today), and every surface gives one collapse verdict in one vocabulary.

* Two evaluations of one checkpoint (4 and 8 samples) are never called different (the paper's
  SEM, std over sample indices, said they were; the paired per-problem difference does not).
* A results tree whose config was edited after training is labelled from the runs' recorded
  ``summary.json`` and the disagreement is named in the summary.
* Tables, CSVs, the summary, ``redi status --json`` and the model cards give the same verdict.
* A model card of each objective lists only that objective's parameters.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import handmade_tree  # noqa: E402

from redi.eval.metrics import SEM_RULE, paired_difference, problem_scores, summarise  # noqa: E402
from redi.plan import all_runs, load_config  # noqa: E402
from redi.train.collapse import VERDICTS, assess, verdict_text  # noqa: E402


def samples_of(prob: np.ndarray, k: int, seed: int) -> pd.DataFrame:
    """A samples table of one model (per-problem success probability ``prob``), ``k`` samples."""
    rng = np.random.default_rng(seed)
    correct = rng.random((len(prob), k)) < prob[:, None]
    return pd.DataFrame(
        {
            "problem_id": np.repeat([f"p{i}" for i in range(len(prob))], k),
            "sample_index": np.tile(np.arange(k), len(prob)),
            "correct": correct.ravel(),
            "length": 50,
            "status": "ok",
            "finish_reason": "stop",
        }
    )


def old_rule_different(a: dict, b: dict, sems: float = 2.0) -> bool:
    """The rule the verdicts used before: more than 2 combined paper SEMs apart."""
    return abs(a["pass@1"] - b["pass@1"]) > sems * math.sqrt(a["sem"] ** 2 + b["sem"] ** 2)


def test_one_checkpoint_evaluated_with_4_and_8_samples_is_not_different():
    """The same model evaluated twice (4 samples as an intermediate, 8 as the final) differs from
    itself only by sampling: a verdict may call the two different only at its nominal error rate
    (about 5 % at 2 SEs). Over 200 independent pairs the paper's SEM (std over 4 or 8 sample
    indices) calls more than twice that different; the paired statistic stays at its rate, and a
    pair the old rule called different is indistinguishable by the new one."""
    difficulty = np.random.default_rng(7).beta(2, 2, size=200)  # per-problem success rates
    old_calls, new_calls, example = 0, 0, None
    for seed in range(200):
        four = summarise(samples_of(difficulty, 4, 2 * seed))
        eight = summarise(samples_of(difficulty, 8, 2 * seed + 1))
        assert four["sem_rule"] == SEM_RULE and four["per_problem"]["samples"] == 4
        paired = paired_difference([problem_scores(eight)], [problem_scores(four)])
        assert paired["n_problems"] == 200
        assert paired["diff"] == pytest.approx(eight["pass@1"] - four["pass@1"])
        old = old_rule_different(eight, four)
        old_calls += old
        new_calls += paired["significant"]
        if old and not paired["significant"] and example is None:
            example = (four, eight)
    assert old_calls / 200 >= 0.09, old_calls  # the fault: more than twice the nominal rate
    assert new_calls / 200 <= 0.07, new_calls
    four, eight = example
    # the collapse rule's condition (b) reads the same statistic: no drop between the two
    curve = [(0, four["pass@1"], four["sem"], problem_scores(four)),
             (26, eight["pass@1"], eight["sem"], problem_scores(eight))]  # fmt: skip
    assert assess([], curve).drop is None
    flipped = [(0, eight["pass@1"], eight["sem"], problem_scores(eight)),
               (26, four["pass@1"], four["sem"], problem_scores(four))]  # fmt: skip
    assert assess([], flipped).drop is None and assess([], flipped).verdict == "stable"


def test_paired_difference_hand_example_and_benchmark_average():
    a = {"x": (4, 4), "y": (2, 4), "z": (0, 4)}
    b = {"x": (2, 8), "y": (4, 8), "z": (0, 8)}
    out = paired_difference([a], [b], z=2.0)
    d = np.array([1 - 0.25, 0.5 - 0.5, 0.0])
    assert out["diff"] == pytest.approx(d.mean()) and out["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert out["low"] == pytest.approx(out["diff"] - 2 * out["se"]) and out["n_problems"] == 3
    two = paired_difference([a, a], [b, a])  # second benchmark identical: half the difference
    assert two["diff"] == pytest.approx(d.mean() / 2) and two["se"] == pytest.approx(out["se"] / 2)
    assert paired_difference([a], [{"x": (1, 4)}]) is None  # fewer than 2 shared problems
    assert problem_scores({"pass@1": 0.5}) is None  # older metrics.json: detected, not guessed


# ---- a complete tree, built once -------------------------------------------------------------


def record_configs(work: Path, config: dict) -> None:
    """Write what training records in summary.json (``config``: the run's resolved settings)."""
    for name, run in all_runs(config).items():
        path = work / "results" / "train" / name / "summary.json"
        summary = json.loads(path.read_text())
        summary["config"] = run
        path.write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from redi.report.build import build_report

    work = handmade_tree.write_tree(tmp_path_factory.mktemp("surfaces") / "work", ROOT / "config" / "config.yaml")
    config = load_config(work / "config.yaml")
    record_configs(work, config)
    build_report(work / "results", work / "reports", config)
    return {"work": work, "config": config, "reports": work / "reports"}


def read_csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_one_collapse_vocabulary_on_every_surface(tree, tmp_path):
    from redi.model_card import write_card
    from redi.plan import stage2_runs
    from redi.status import Status
    from redi.train.collapse import assess_run

    work, config, reports = tree["work"], tree["config"], tree["reports"]
    bench = config["evaluation"]["intermediate"]["benchmarks"][0]
    sweep = {r["run"]: r for r in read_csv(reports / "tables" / "sweep.csv")}
    headline = {r["run"]: r for r in read_csv(reports / "tables" / "headline.csv")}
    sweep_md = (reports / "tables" / "sweep.md").read_text()
    summary = (reports / "summary.md").read_text()
    status = {r.name: r for r in Status(config, work).rows() if r.kind == "train"}
    seen = set()
    for name in stage2_runs(config):
        found = assess_run(work / "results", name, bench)
        text = verdict_text(found)
        seen.add(found.verdict)
        assert found.verdict in VERDICTS
        assert sweep[name]["collapse_verdict"] == headline[name]["collapse_verdict"] == found.verdict
        assert f"| {text} |" in sweep_md
        assert f"`{name}` ({text}" in summary
        assert status[name].values["collapse_verdict"] == found.verdict and f"collapse: {text}" in status[name].detail
        card = write_card(work / "results" / "train" / name, tmp_path / name / "README.md", results=work / "results")
        assert f"Collapse verdict: **{text}**." in card.read_text()
        if found.verdict == "collapsed":  # the step where both conditions hold, on every surface
            assert int(sweep[name]["collapse_step"]) == found.step
    assert "collapsed" in seen and "stable" in seen  # the fixture has both kinds
    for word in ("yes (step", "| no |", "| True |", "| False |"):  # the old vocabularies are gone
        assert word not in sweep_md


def test_headline_table_and_the_answer_first(tree):
    reports = tree["reports"]
    rows = read_csv(reports / "tables" / "headline.csv")
    diffs = [float(r["vs_start_diff_pct"]) for r in rows]
    assert diffs == sorted(diffs, reverse=True)  # sorted by the difference from the start
    for r in rows:  # every interval is the paired statistic, ± 2 SE
        lo, hi, diff, se = (float(r[f"vs_start_{k}_pct"]) for k in ("low", "high", "diff", "se"))
        assert lo == pytest.approx(diff - 2 * se) and hi == pytest.approx(diff + 2 * se)
    head = (reports / "summary.md").read_text().splitlines()[:12]
    assert head[2] == "## The answer"
    assert any(line.startswith("- **Did REDI beat SFT?**") for line in head)
    assert any("Against the α = 0 control" in line for line in head)
    assert any("Against DPO" in line for line in head) and any("Against SimPO" in line for line in head)
    assert any("REDI 0.0001 = 100x the paper's 1e-06" in line for line in head)
    html = (reports / "summary.html").read_text()
    assert "<strong>Did REDI beat SFT?</strong>" in html and "**" not in html
    assert 'src="data:image/png;base64,' in html  # the headline figure, embedded


def test_report_of_an_edited_config_uses_what_ran(tree, tmp_path):
    """Train with alpha 0.8, then edit the config so that the run's entry says alpha 0.5: the
    report labels it 0.8 (its summary.json) and names the disagreement."""
    from redi.report.build import build_report

    work = tree["work"]
    edited = yaml.safe_load((work / "config.yaml").read_text())
    stage2 = edited["training"]["stage2"]
    stage2["runs"][0]["alpha"] = [0.0, 0.5, 1.0]
    stage2["runs"].insert(1, {"name": "redi-a0.8-lr1e-4", "objective": "redi", "alpha": 0.5, "learning_rate": 1e-4})
    stage2["defaults"]["global_batch_size"] = 32
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(edited))
    edited = load_config(path)
    assert all_runs(edited)["redi-a0.8-lr1e-4"]["alpha"] == 0.5  # what today's config says
    out = tmp_path / "reports"
    build_report(work / "results", out, edited)
    sweep = {r["run"]: r for r in read_csv(out / "tables" / "sweep.csv")}
    assert float(sweep["redi-a0.8-lr1e-4"]["alpha"]) == 0.8  # what the run trained with
    assert "| redi-a0.8-lr1e-4 | REDI α=0.8, LR 1e-4 |" in (out / "tables" / "table1_final.md").read_text()
    assert "| redi-a0.8-lr1e-4 | REDI α=0.8, LR 1e-4 | best |" in (out / "tables" / "headline.md").read_text()
    summary = (out / "summary.md").read_text()
    assert "## What ran differs from the config" in summary
    assert "`redi-a0.8-lr1e-4`: alpha: configured 0.5, recorded 0.8; global_batch_size: configured 32, recorded 16" in (
        summary
    )


def test_a_card_of_each_objective_lists_only_its_parameters():
    from redi.model_card import build_card
    from redi.train.collapse import Assessment
    from redi.train.config import RunConfig
    from redi.train.objectives import OBJECTIVES, PARAMETERS

    for name, objective in OBJECTIVES.items():
        cfg = RunConfig.from_dict({"name": f"run-{name}", "objective": name, "alpha": 0.8, "beta": 0.1}).to_dict()
        verdict = None if name == "sft" else Assessment("stable")
        card = build_card({"run": cfg["name"], "objective": name, "config": cfg}, verdict=verdict, positions=2048)
        table = card.split("## Objective and hyper-parameters")[1].split("##")[0]
        for param in PARAMETERS:
            if param == "learning_rate":
                continue
            assert (f"| {param} |" in table) == (param in objective.params), (name, param)
        if objective.pairwise:
            assert "| max_prompt_length |" in table and "| max_length |" not in table
            assert "Collapse verdict: **stable**." in card
        else:
            assert "| max_length | 32768 (above the model's 2,048 positions" in table
            assert "## Training stability" not in card
        assert "## Limitations" in card and "toy model" in card


def test_older_metrics_files_are_detected_not_mislabelled(tmp_path):
    """A metrics.json from older code (no per_problem, no sem_rule) is read through the
    samples.parquet beside it; without one, every verdict that needs it says so."""
    from redi.eval.metrics import load_problem_scores
    from redi.report.collect import collect
    from redi.report.headline import headline_rows
    from redi.report.summary import build_summary

    work = handmade_tree.write_tree(tmp_path / "work", ROOT / "config" / "config.yaml")
    config = load_config(work / "config.yaml")
    paths = sorted((work / "results" / "eval").glob("*/*/*/metrics.json"))
    for path in paths:  # as older code wrote them
        metrics = json.loads(path.read_text())
        for key in ("per_problem", "sem_rule"):
            metrics.pop(key)
        path.write_text(json.dumps(metrics))
    assert load_problem_scores(paths[0]) == (None, "missing")
    results = collect(work / "results", config)
    assert all(row.vs_start is None for row in headline_rows(results))
    text = build_summary(results)
    assert "no paired statistic (a per-problem score is missing)" in text
    assert "indistinguishable" not in text and "a difference" not in text  # nothing claimed
    # with the samples beside it, the scores are recomputed from the samples
    frame = samples_of(np.full(5, 0.5), 4, 0)
    frame.to_parquet(paths[0].with_name("samples.parquet"))
    paths[0].write_text(json.dumps({**json.loads(paths[0].read_text()), "n_samples": 4}))
    scores, source = load_problem_scores(paths[0])
    assert source == "samples.parquet" and len(scores) == 5 and all(n == 4 for _c, n in scores.values())


def test_summary_says_where_the_best_checkpoint_was_selected(tree, tmp_path):
    """The selection sentence follows what the evaluations recorded: the paper's protocol (select
    and report on the same problems, biased upward) unless every recorded evaluation was split."""
    from redi.report.build import build_report

    summary = (tree["reports"] / "summary.md").read_text()
    assert "reported on the same problems" in summary and "evaluation.held_out_selection: true" in summary
    results = tmp_path / "results"
    shutil.copytree(tree["work"] / "results", results)
    for path in (results / "eval").glob("*/*/*/metrics.json"):
        m = json.loads(path.read_text())
        part = "selection" if path.parent.parent.name.startswith("step-") or path.parts[-4] == "student" else "report"
        path.write_text(json.dumps(dict(m, split=part, n_problems=100)))
    build_report(results, tmp_path / "reports", tree["config"])
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "reported on the other, disjoint half (report 100 problems, selection 100 problems" in summary
    assert "reported on the same problems" not in summary
    m = json.loads(path.read_text())  # one evaluation from before the split: say so, claim neither
    path.write_text(json.dumps(dict(m, split=None)))
    build_report(results, tmp_path / "reports", tree["config"])
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "Selection: **mixed**" in summary and "disjoint half" not in summary


def test_each_run_is_compared_with_the_control_at_its_learning_rate(tmp_path):
    """With a learning-rate grid there is one alpha = 0 control per rate: the headline table, its
    CSV, the figure's data and the summary's answer all compare a run with the control trained at
    its own rate (before: the first control in the table, the best one in the summary, and an
    alpha = 0 run called "the best REDI run")."""
    from redi.report.build import build_report

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["training"]["stage2"]["runs"] = [
        {"objective": "redi", "alpha": [0.0, 0.8], "learning_rate": [1.0e-4, 2.0e-5]},
        {"objective": "dpo", "beta": 0.1, "learning_rate": 2.0e-5},
    ]
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    work = handmade_tree.write_tree(tmp_path / "work", path)
    config = load_config(work / "config.yaml")
    record_configs(work, config)
    build_report(work / "results", work / "reports", config)
    rows = {r["run"]: r for r in read_csv(work / "reports" / "tables" / "headline.csv")}
    assert rows["redi-a0.8-lr1e-4"]["control"] == "redi-a0-lr1e-4"
    assert rows["redi-a0.8-lr2e-5"]["control"] == rows["dpo-b0.1-lr2e-5"]["control"] == "redi-a0-lr2e-5"
    assert rows["redi-a0-lr2e-5"]["control"] == "redi-a0-lr2e-5" and rows["redi-a0-lr2e-5"]["vs_control_diff_pct"] == ""
    answer = (work / "reports" / "summary.md").read_text().split("## Setting")[0]
    best = next(line for line in answer.splitlines() if "Did REDI beat SFT?" in line)
    assert "redi-a0.8-" in best  # an alpha = 0 run is a control, never "the best REDI run"
    redi_run = best.split("`")[1]
    control_line = next(line for line in answer.splitlines() if "Against the α = 0 control" in line)
    assert f"`{rows[redi_run]['control']}`" in control_line
