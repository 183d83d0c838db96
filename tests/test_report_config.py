"""The report's ReportConfig owns its defaults; config/schema.yaml states the same ones, and the
adapter / CLI pass a plain dict through ``from_dict``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from redi.plan import load_config
from redi.report.config import CONFIG_KEYS, ReportConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


def test_schema_defaults_are_the_dataclass_defaults():
    props = SCHEMA["properties"]["report"]["properties"]
    assert set(props) == set(CONFIG_KEYS)
    defaults = {f.name: f.default for f in dataclasses.fields(ReportConfig)}
    for key, prop in props.items():
        assert prop["default"] == defaults[key], key


def test_validated_config_fills_the_report_section():
    config = load_config(ROOT / "config" / "config.yaml")
    assert ReportConfig.from_dict(config.get("report", {})) == ReportConfig()


def test_from_dict_names_unknown_keys_and_checks_values():
    with pytest.raises(ValueError, match="significance_sem"):
        ReportConfig.from_dict({"significance_sem": 3})
    with pytest.raises(ValueError, match="significance_sems"):
        ReportConfig.from_dict({"significance_sems": 0})
    cfg = ReportConfig.from_dict({"results": "/x/results", "significance_sems": 3})
    assert cfg.benchmarks_dir == Path("/x/benchmarks") and cfg.significance_sems == 3


def test_knobs_reach_the_summary_and_footnotes(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    import handmade_tree

    from redi.report.build import run

    root = handmade_tree.write_tree(tmp_path / "tree", ROOT / "config" / "config.yaml")
    config = load_config(root / "config.yaml")
    settings = ReportConfig.from_dict(
        {"results": str(root / "results"), "reports": str(tmp_path / "reports"), "significance_sems": 3}
    )
    run(settings, config)
    summary = (tmp_path / "reports" / "summary.md").read_text().splitlines()
    versus = [line for line in summary if line.startswith("- Versus the")]
    assert versus and all("± 3 paired SEs" in line for line in versus)  # (the collapse rule is train's)
