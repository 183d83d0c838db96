"""A benchmark's display name lives in the config beside its file
(``evaluation.benchmarks.NAME: {path, display}``); a plain ``NAME: file`` stays valid and shows
its name. The report asks :func:`redi.eval.benchmarks.display_name`."""

from __future__ import annotations

import pytest

from redi.eval.benchmarks import benchmark_paths, display_name
from redi.plan import ConfigError, validate_config


def _config(benchmarks: dict) -> dict:
    names = list(benchmarks)
    return validate_config(
        {"evaluation": {"benchmarks": benchmarks, "intermediate": {"benchmarks": names[:1]},
                        "final": {"benchmarks": names}}}  # fmt: skip
    )


def test_plain_and_displayed_entries():
    config = _config({"mine": "data/mine.json", "other": {"path": "data/other.json", "display": "Other Set"}})
    assert benchmark_paths(config["evaluation"]["benchmarks"]) == {"mine": "data/mine.json", "other": "data/other.json"}
    assert display_name(config, "mine") == "mine"
    assert display_name(config, "other") == "Other Set"
    assert display_name(config, "unlisted") == "unlisted"


def test_the_paper_sets_show_the_paper_names_by_default():
    config = validate_config({})
    names = [display_name(config, b) for b in config["evaluation"]["final"]["benchmarks"]]
    assert names == ["MATH-500", "AIME24", "AMC23", "Minerva", "OlympiadBench"]
    assert benchmark_paths(config["evaluation"]["benchmarks"])["math500"] == "data/benchmarks/math.json"


@pytest.mark.parametrize("entry", [{"display": "X"}, {"path": "a.json", "shown": "X"}, 3])
def test_a_bad_entry_names_the_key(entry):
    with pytest.raises(ConfigError, match="evaluation.benchmarks.bad"):
        _config({"bad": entry})
    with pytest.raises(ValueError, match="evaluation.benchmarks.bad"):
        benchmark_paths({"bad": entry})
