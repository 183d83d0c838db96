"""Stage-2 pairs with the student's own negatives: the problems of the teacher pairs go to
sampling with their answers; each problem's teacher chosen trace meets the student's first
usable incorrect sample; truncated samples follow ``truncated_as_rejected``; the report and
every row say where the rejected trace came from."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from redi.data.student_negatives import student_pairs, write_problems
from redi.eval.benchmarks import load_benchmark


def _pair(ri, pid, problem, chosen, rejected):
    return {"id": f"{pid}-{ri}", "row_index": ri, "source": "s", "prompt": [{"role": "user", "content": problem}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


@pytest.fixture()
def setup(tmp_path):
    problems = {3: "What is 1+1?", 7: "What is 2+2?", 9: "What is 3+3?", 11: "What is 4+4?"}
    answers = {3: "2", 7: "4", 9: "6", 11: "8"}
    pref = [_pair(ri, f"p{ri}", p, f"teacher right {ri}", f"teacher wrong {ri}") for ri, p in problems.items()]
    pref.insert(1, _pair(3, "p3x", problems[3], "teacher right 3b", "teacher wrong 3b"))  # a second pair of row 3
    (tmp_path / "pref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pref))
    verified = pd.DataFrame({"row_index": list(problems), "problem": list(problems.values()),
                             "answer": [answers[k] for k in problems], "source": ["s"] * 4})
    verified.to_parquet(tmp_path / "verified.parquet")
    out = write_problems(tmp_path / "pref.jsonl", tmp_path / "verified.parquet", tmp_path / "problems.json")
    assert [p["row_index"] for p in out] == [3, 7, 9, 11] and [p["answer"] for p in out] == ["2", "4", "6", "8"]
    pid = {int(json.loads((tmp_path / "problems.json").read_text())[p.index]["row_index"]): p.problem_id
           for p in load_benchmark(tmp_path / "problems.json")}
    # evaluation's samples.parquet columns, two shards
    rows = [  # (row, sample, text, correct, finish, length)
        (3, 0, "s3 right", True, "stop", 5), (3, 1, "s3 wrong", False, "stop", 5),
        (3, 2, "s3 wrong2", False, "stop", 5),
        (7, 0, "s7 cut", False, "length", 64), (7, 1, "s7 wrong", False, "stop", 5),
        (9, 0, "s9 right", True, "stop", 5), (9, 1, "s9 right2", True, "stop", 5),
        (11, 0, "s11 cut", False, "length", 64), (11, 1, "s11 long", False, "stop", 900),
    ]
    for shard in (0, 1):
        d = tmp_path / f"shard-{shard}"
        d.mkdir()
        pd.DataFrame([{"problem_id": pid[r], "sample_index": s, "text": t, "extracted": "", "correct": c,
                       "status": "ok", "length": n, "finish_reason": f}
                      for r, s, t, c, f, n in rows if (r in (3, 9)) == (shard == 0)]).to_parquet(d / "samples.parquet")
    return tmp_path


def _run(d, **kw):
    report = student_pairs(d / "pref.jsonl", d / "problems.json", [d / "shard-0", d / "shard-1"], d / "out.jsonl",
                           d / "rep.json", d / "rep.md", max_response_length=512, **kw)
    return report, [json.loads(x) for x in (d / "out.jsonl").read_text().splitlines()]


def test_student_pairs_first_usable_incorrect_sample(setup):
    report, rows = _run(setup, negatives="student")
    got = {r["row_index"]: (r["chosen"][0]["content"], r["rejected"][0]["content"], r["rejected_origin"]) for r in rows}
    # row 3: the first teacher pair's chosen x the first incorrect sample; row 7: the cut sample
    # is skipped; row 9: all correct; row 11: cut, then too long
    assert got == {3: ("teacher right 3", "s3 wrong", "student"), 7: ("teacher right 7", "s7 wrong", "student")}
    assert report["problems_without_student_negative"] == {
        "every student sample correct": 1,
        "incorrect student samples truncated (truncated_as_rejected false) or too long": 1}
    assert report["student_samples"] == {"samples": 9, "correct": 3, "truncated": 2}
    assert report["pairs_by_rejected_origin"] == {"student": 2}
    assert "| student | 2 |" in (setup / "rep.md").read_text()


def test_truncated_samples_follow_truncated_as_rejected_and_both_keeps_teacher_pairs(setup):
    report, rows = _run(setup, negatives="both", truncated_as_rejected=True)
    student = {r["row_index"]: r["rejected"][0]["content"] for r in rows if r["rejected_origin"] == "student"}
    assert student == {3: "s3 wrong", 7: "s7 cut", 11: "s11 cut"}
    assert report["pairs_by_rejected_origin"] == {"student": 3, "teacher": 5}
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids) == 8
    with pytest.raises(ValueError, match="must be 'student' or 'both'"):
        _run(setup, negatives="teacher")


# ---- a run's own negatives: teacher and own negatives in one workflow ---------------------


def _config(runs, **stage2):
    from redi.plan import load_config

    config = load_config("config/config.yaml")
    config["training"]["stage2"].update(runs=runs, **stage2)
    return config


def test_each_run_reads_the_pairs_and_reference_file_of_its_negatives():
    from redi.plan import reference_file, reference_runs, stage2_pairs, stage2_runs
    from redi.train.objectives import run_label

    runs = stage2_runs(_config([
        {"objective": "dpo", "beta": 0.1, "learning_rate": 1e-5},
        {"objective": "dpo", "beta": 0.1, "learning_rate": 1e-5, "negatives": "student"},
        {"objective": "redi", "alpha": [0.0, 0.8], "learning_rate": 1e-5, "negatives": "both"},
    ]))  # fmt: skip
    assert list(runs) == ["dpo-b0.1-lr1e-5", "dpo-b0.1-lr1e-5-neg-student",
                          "redi-a0-lr1e-5-neg-both", "redi-a0.8-lr1e-5-neg-both"]  # fmt: skip
    assert [r["negatives"] for r in runs.values()] == ["teacher", "student", "both", "both"]
    assert [stage2_pairs(r["negatives"]) for r in runs.values()] == [
        "results/data/pref.jsonl", "results/data/student-negatives/pref.jsonl",
        "results/data/both-negatives/pref.jsonl", "results/data/both-negatives/pref.jsonl"]  # fmt: skip
    # one reference pass per (start, pairs file), only for runs that need one
    assert list(reference_runs(runs)) == ["results/train/sft/ref_logps.parquet",
                                          "results/train/sft/ref_logps-student.parquet"]  # fmt: skip
    assert reference_file(runs["dpo-b0.1-lr1e-5-neg-student"]) == "results/train/sft/ref_logps-student.parquet"
    assert run_label(runs["dpo-b0.1-lr1e-5-neg-student"]) == "DPO β=0.1, LR 1e-5, own negatives"
    assert run_label(runs["redi-a0.8-lr1e-5-neg-both"]).endswith("teacher + own negatives")
    assert run_label(runs["dpo-b0.1-lr1e-5"]) == "DPO β=0.1, LR 1e-5"
    # the stage's default: no suffix for runs that follow it, a suffix for one that does not
    runs = stage2_runs(_config([{"objective": "dpo", "beta": 0.1}, {"objective": "dpo", "beta": 0.1,
                                 "negatives": "teacher"}], negatives="student"))  # fmt: skip
    assert {n: r["negatives"] for n, r in runs.items()} == {"dpo-b0.1": "student",
                                                            "dpo-b0.1-neg-teacher": "teacher"}  # fmt: skip


def test_run_negatives_are_validated_with_the_key_named():
    from redi.plan import ConfigError, stage2_runs, validate_config

    config = _config([{"objective": "dpo", "beta": 0.1, "negatives": "teacher"}])
    config["curation"] = {**config.get("curation", {}), "pairs": "groups"}
    config["training"]["stage2"]["runs"].append({"objective": "advdistill", "negatives": "student"})
    with pytest.raises(ConfigError, match=r"training.stage2.runs.1.negatives': objective 'advdistill'"):
        stage2_runs(config)
    bad = _config([{"objective": "dpo", "beta": 0.1, "negatives": "mine"}])
    with pytest.raises(ConfigError, match="negatives"):
        validate_config(bad)
    config = _config([{"objective": "dpo", "beta": 0.1, "negatives": "student", "start": "sft-b"}])
    config["training"]["sft"]["runs"]["sft-b"] = {}
    with pytest.raises(ConfigError, match=r"runs.0.start': the student's own negatives are sampled from"):
        stage2_runs(config)


def test_a_run_is_measured_against_the_control_trained_on_its_pairs_file(tmp_path):
    """The alpha = 0 control of a run is the one with the same learning rate, batch, length,
    seed and pairs file: with own negatives the control's chosen traces are those of the problems
    that kept a student pair, not every teacher pair. Runs recorded before per-run negatives
    existed read as the teacher's pairs."""
    from redi.report.collect import Results
    from redi.report.headline import control_run

    def run(name, objective, negatives, lr=2e-5, **kw):
        return name, {"name": name, "objective": objective, "start": "sft", "learning_rate": lr,
                      "global_batch_size": 16, "epochs": 1, "max_steps": 75, "seed": 42,
                      "negatives": negatives, **kw}  # fmt: skip

    stage2 = dict([
        run("redi-a0-lr2e-5", "redi", None, alpha=0.0),  # recorded before the key existed
        run("redi-a0-lr1e-4", "redi", "teacher", lr=1e-4, alpha=0.0),
        run("redi-a0-lr2e-5-neg-student", "redi", "student", alpha=0.0),
        run("redi-a0.8-lr2e-5", "redi", "teacher", alpha=0.8),
        run("redi-a0.8-lr2e-5-neg-student", "redi", "student", alpha=0.8),
        run("dpo-b0.1-lr1e-4-neg-student", "dpo", "student", lr=1e-4, beta=0.1),
    ])  # fmt: skip
    results = Results(results=tmp_path, benchmarks_dir=tmp_path, config={}, sft={"sft": {}}, stage2=stage2)
    assert control_run(results, "redi-a0.8-lr2e-5") == "redi-a0-lr2e-5"
    assert control_run(results, "redi-a0.8-lr2e-5-neg-student") == "redi-a0-lr2e-5-neg-student"
    assert control_run(results, "redi-a0-lr2e-5-neg-student") == "redi-a0-lr2e-5-neg-student"
    # no control at this LR with these pairs: none (not one trained otherwise)
    assert control_run(results, "dpo-b0.1-lr1e-4-neg-student") is None
    assert control_run(results, "unknown") is None


def test_own_negative_runs_meet_their_teacher_twin_and_old_records_read_their_pairs(tmp_path):
    """An own-negatives run is compared with the same run on the teacher's pairs (not with any
    other); a run recorded before runs had a negatives key reads its source off its pairs file."""
    from redi.report.collect import Results, recorded_negatives
    from redi.report.headline import teacher_twin

    base = {"start": "sft", "learning_rate": 2e-5, "global_batch_size": 16, "epochs": 1, "max_steps": 75,
            "seed": 42}  # fmt: skip
    stage2 = {
        "dpo-b0.1-lr2e-5": {**base, "objective": "dpo", "beta": 0.1},  # recorded without the key
        "dpo-b0.2-lr2e-5": {**base, "objective": "dpo", "beta": 0.2, "negatives": "teacher"},
        "dpo-b0.1-lr2e-5-neg-student": {**base, "objective": "dpo", "beta": 0.1, "negatives": "student"},
        "dpo-b0.2-lr4e-6-neg-both": {**base, "objective": "dpo", "beta": 0.2, "learning_rate": 4e-6,
                                     "negatives": "both"},  # fmt: skip
    }
    results = Results(results=tmp_path, benchmarks_dir=tmp_path, config={}, sft={"sft": {}}, stage2=stage2)
    assert teacher_twin(results, "dpo-b0.1-lr2e-5-neg-student") == "dpo-b0.1-lr2e-5"
    assert teacher_twin(results, "dpo-b0.2-lr4e-6-neg-both") is None  # no teacher run at 4e-6
    assert teacher_twin(results, "dpo-b0.2-lr2e-5") is None  # a teacher run has no twin
    stage2["redi-a0-lr2e-5"] = {**base, "objective": "redi", "alpha": 0.0, "negatives": "teacher"}
    stage2["redi-a0-lr2e-5-neg-student"] = {**base, "objective": "redi", "alpha": 0.0, "negatives": "student"}
    assert teacher_twin(results, "redi-a0-lr2e-5-neg-student") is None  # a control uses no negatives
    # old records: the teacher's pairs, or the single student-pairs folder that names its source
    assert recorded_negatives({"data_path": "results/data/pref.jsonl"}, tmp_path) == "teacher"
    (tmp_path / "results" / "data" / "student").mkdir(parents=True)
    (tmp_path / "results" / "data" / "student" / "report.json").write_text('{"negatives": "both"}')
    assert recorded_negatives({"data_path": "results/data/student/pref.jsonl"}, tmp_path) == "both"


def test_status_card_and_provenance_follow_the_pairs_a_run_trained_on(tmp_path):
    """``redi status`` plans an own-negatives run from its own pairs count; the card and the
    provenance find the corpus through the teacher's curation report one folder up."""
    from redi.model_card import hyper_parameters
    from redi.provenance import corpus_of, curation_dir
    from redi.status import Status

    data = tmp_path / "results" / "data"
    (data / "student-negatives").mkdir(parents=True)
    (data / "curation_report.json").write_text(json.dumps({"final": {"sft": 300, "pref": 200},
                                                           "normalize": {"input": "corpus.parquet"}}))  # fmt: skip
    (data / "student-negatives" / "report.json").write_text(json.dumps({"pairs": 48}))
    status = Status({"evaluation": {}}, tmp_path)
    assert status.training_examples({"objective": "dpo", "negatives": "student"}) == 48
    assert status.training_examples({"objective": "dpo", "negatives": "teacher"}) == 200
    assert status.training_examples({"objective": "dpo"}) == 200
    assert status.training_examples({"objective": "sft"}) == 300
    own = data / "student-negatives" / "pref.jsonl"
    assert curation_dir(own) == data and curation_dir(data / "pref.jsonl") == data
    assert corpus_of(own) == corpus_of(data / "pref.jsonl") == "corpus.parquet"
    rows = dict(hyper_parameters({"objective": "dpo", "beta": 0.1, "negatives": "student", "learning_rate": 1e-5}))
    assert rows["negatives"] == "student"


@pytest.mark.parametrize(
    ("where", "key"),
    [(("training", "stage2", "defaults"), "negatives"), (("training", "defaults"), "start"),
     (("training", "sft", "runs", "sft"), "objective"), (("training", "sft", "defaults"), "name")],
)  # fmt: skip
def test_identity_keys_in_a_hyper_parameter_layer_are_refused_not_ignored(where, key):
    """A run's name, objective, start and negatives come from its entry and the stage's keys; in
    defaults, an SFT run's settings or overrides the plan would overwrite them without a word."""
    from redi.plan import ConfigError, load_config, sft_runs, stage2_runs

    config = load_config("config/config.yaml")
    layer = config
    for part in where:
        layer = layer[part]
    layer[key] = "student" if key == "negatives" else "x"
    with pytest.raises(ConfigError, match=rf"'{'.'.join(where)}.{key}': a run's {key} is not a hyper-parameter"):
        sft_runs(config)
        stage2_runs(config)
    config = load_config("config/config.yaml")
    config["training"]["stage2"]["runs"][0]["overrides"] = {"negatives": "student"}
    with pytest.raises(ConfigError, match=r"runs.0.overrides.negatives'"):
        stage2_runs(config)
