"""A run's values are resolved once: however often Snakemake's parse asks the plan for its runs
(rules, consistency checks, the report's figure names), each distinct run builds one
``RunConfig``; callers get copies of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from redi import plan
from redi.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["test.yaml", "paper.yaml"])
def test_each_run_is_resolved_once(name, monkeypatch):
    monkeypatch.setattr(plan, "_RESOLVED", {})
    calls = []
    real = RunConfig.from_dict.__func__

    def counted(cls, run):
        calls.append(run.get("name"))
        return real(cls, run)

    monkeypatch.setattr(RunConfig, "from_dict", classmethod(counted))
    config = plan.validate_config(yaml.safe_load((ROOT / "config" / name).read_text()))  # checks every run
    plan.check_consistency(config)
    for _ in range(3):
        runs = plan.all_runs(config)
        plan.stage2_runs(config)
    assert sorted(calls) == sorted(runs), "a run was resolved more than once"


def test_callers_get_copies(monkeypatch):
    monkeypatch.setattr(plan, "_RESOLVED", {})
    config = plan.load_config(ROOT / "config" / "test.yaml")
    first = plan.all_runs(config)
    name = next(iter(first))
    first[name]["learning_rate"] = 123.0
    first[name]["collapse"]["window"] = 999
    again = plan.all_runs(config)
    assert again[name]["learning_rate"] != 123.0 and again[name]["collapse"]["window"] != 999
