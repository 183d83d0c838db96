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
