"""The data stage's config dataclasses own the defaults; config/schema.yaml states the same ones.

``CurationConfig`` and ``SynthConfig`` follow training's ``RunConfig``: defaults and
documentation per field, ``from_dict`` rejecting unknown keys by name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from redi import paper
from redi.data.config import RULE_LISTS, CurationConfig
from redi.data.synthetic import SynthConfig
from redi.plan import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())


def _schema_defaults(node: dict) -> dict:
    """{key: default} of a schema object, nested objects as dicts (keys without one skipped)."""
    out = {}
    for key, prop in node.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            out[key] = _schema_defaults(prop)
        elif "default" in prop:
            out[key] = prop["default"]
    return out


def _subset(schema_defaults: dict, ours: dict, where: str) -> None:
    for key, value in schema_defaults.items():
        assert key in ours, f"schema {where}.{key} is not a config field"
        if isinstance(value, dict):
            _subset(value, ours[key], f"{where}.{key}")
        else:
            assert value == ours[key], f"{where}.{key}: schema default {value!r} != dataclass {ours[key]!r}"


def test_curation_schema_defaults_are_the_dataclass_defaults():
    node = SCHEMA["properties"]["curation"]
    ours = CurationConfig().to_dict()
    _subset(_schema_defaults(node), ours, "curation")
    # every field is a schema key, so the schema documents (and validates) all of them
    assert set(ours) <= set(node["properties"])
    assert node["properties"]["label_rule"]["enum"] == list(RULE_LISTS)


def test_synthetic_schema_defaults_are_the_dataclass_defaults():
    node = SCHEMA["properties"]["corpus"]["properties"]["synthetic"]
    _subset(_schema_defaults(node), SynthConfig().to_dict(), "corpus.synthetic")


def test_curation_defaults_are_the_papers():
    cfg = CurationConfig()
    assert (cfg.max_prompt_length, cfg.max_response_length) == (800, 19000)
    assert cfg.exclude_sources == ["cn_k12"] and cfg.label_rule == "llama_and_mv" and cfg.shuffle_seed == 42
    assert cfg.decontaminate.ngram == paper.CURATION_DECONTAMINATION_NGRAM == 8


def test_from_dict_fills_defaults_and_names_unknown_keys():
    cfg = CurationConfig.from_dict({"decontaminate": {"benchmarks": ["synthetic"]}, "shuffle_seed": None})
    assert cfg.decontaminate == CurationConfig().decontaminate.__class__(benchmarks=["synthetic"])
    assert cfg.shuffle_seed == 42  # None (an empty YAML key) = the default
    with pytest.raises(ValueError, match="curation.nope"):
        CurationConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="curation.decontaminate.ngrams"):
        CurationConfig.from_dict({"decontaminate": {"ngrams": 8}})
    with pytest.raises(ValueError, match="label_rule"):
        CurationConfig.from_dict({"label_rule": "vibes"})
    assert dataclasses.asdict(CurationConfig.from_dict(CurationConfig())) == CurationConfig().to_dict()


@pytest.mark.parametrize(
    "old, new", [("max_prompt_tokens", "max_prompt_length"), ("max_response_tokens", "max_response_length")]
)
def test_old_length_key_names_the_new_one(old, new):
    with pytest.raises(ValueError, match=f"'{old}' was renamed to '{new}'"):
        CurationConfig.from_dict({old: 800})
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["curation"][old] = 800
    with pytest.raises(ConfigError, match=rf"curation\.{old}.*use curation\.{new}"):
        validate_config(config)
