"""The experiment plan: validated config -> named training runs and their settings.

Snakemake (``rules/common.smk``) and the command line both read runs from here, so a run's
name and hyper-parameters are defined in exactly one place.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

SWEEPABLE = ("alpha", "beta", "gamma", "learning_rate")
OBJECTIVE_PARAMS = {"redi": ("alpha",), "dpo": ("beta",), "simpo": ("beta", "gamma")}
PARAM_TAGS = {"alpha": "a", "beta": "b", "gamma": "g", "learning_rate": "lr"}


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


def _with_defaults(validator_class):
    """A validator that fills in schema defaults while validating (jsonschema FAQ recipe)."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place (filling defaults) and check cross-key rules."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "<root>"
        raise ConfigError(f"config key '{key}': {error.message}")
    check_consistency(config)
    return config


def load_config(path: str | Path) -> dict:
    with open(path) as handle:
        return validate_config(yaml.safe_load(handle) or {})


def check_consistency(config: dict) -> None:
    """Rules the schema cannot express: references between keys."""
    benchmarks = config["evaluation"]["benchmarks"]
    for where in ("intermediate", "final"):
        for name in config["evaluation"][where]["benchmarks"]:
            if name not in benchmarks:
                raise ConfigError(
                    f"config key 'evaluation.{where}.benchmarks': unknown benchmark '{name}' "
                    f"(known: {', '.join(sorted(benchmarks))})"
                )
    for name in config["curation"]["decontaminate"]["benchmarks"]:
        if name not in benchmarks:
            raise ConfigError(f"config key 'curation.decontaminate.benchmarks': unknown benchmark '{name}'")
    student = config["student"]
    if student["kind"] == "pretrained" and not (student["hub_name"] or student["local_path"]):
        raise ConfigError("config key 'student': kind 'pretrained' needs 'hub_name' or 'local_path'")
    if config["corpus"]["source"] == "local" and not config["corpus"]["local_path"]:
        raise ConfigError("config key 'corpus.local_path': required when corpus.source is 'local'")
    sft = sft_runs(config)
    for name, run in stage2_runs(config).items():
        if run["start"] not in sft:
            raise ConfigError(
                f"config key 'training.stage2.runs': run '{name}' starts from unknown SFT run "
                f"'{run['start']}' (known: {', '.join(sft)})"
            )


def format_number(value: float) -> str:
    """Short, path-safe number: 1e-06 -> 1e-6, 0.0001 -> 1e-4, 0.001 -> 0.001, 0.80 -> 0.8, 2.0 -> 2."""
    text = f"{value:e}" if 0 < abs(value) < 1e-3 else f"{value:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return text


def run_name(objective: str, params: dict) -> str:
    parts = [objective]
    for param in (*OBJECTIVE_PARAMS.get(objective, ()), "learning_rate"):
        if params.get(param) is not None:
            parts.append(PARAM_TAGS[param] + format_number(params[param]))
    return "-".join(parts)


def _merge(*layers: dict) -> dict:
    merged: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _complete(run: dict) -> dict:
    """Every knob of the run with the trainer's own defaults filled in, so that Snakemake's
    checkpoint steps and the trainer can never disagree about a default."""
    from redi.train.config import RunConfig

    try:
        return RunConfig.from_dict(run).to_dict()
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key 'training' (run '{run.get('name')}'): {error}") from error


def sft_runs(config: dict) -> dict[str, dict]:
    training = config["training"]
    runs = {}
    for name, settings in training["sft"]["runs"].items():
        run = _merge(training["defaults"], training["sft"]["defaults"], settings)
        run.update(name=name, objective="sft")
        runs[name] = _complete(run)
    return runs


def _sweep(entry: dict) -> list[dict]:
    """Expand list-valued parameters of one stage-2 entry into single runs (cartesian product;
    SimPO's beta and gamma lists of equal length are zipped, as the paper pairs them)."""
    lists = {k: entry[k] for k in SWEEPABLE if isinstance(entry.get(k), list)}
    zipped = entry["objective"] == "simpo" and "beta" in lists and "gamma" in lists
    if zipped and len(lists["beta"]) != len(lists["gamma"]):
        raise ConfigError("config key 'training.stage2.runs': SimPO beta and gamma lists differ in length")
    axes = []
    if zipped:
        axes.append([{"beta": b, "gamma": g} for b, g in zip(lists.pop("beta"), lists.pop("gamma"))])
    axes += [[{k: v} for v in values] for k, values in lists.items()]
    expanded = []
    for combo in itertools.product(*axes) if axes else [()]:
        single = {k: v for k, v in entry.items() if k not in SWEEPABLE or not isinstance(v, list)}
        for part in combo:
            single.update(part)
        expanded.append(single)
    return expanded


def stage2_runs(config: dict) -> dict[str, dict]:
    training = config["training"]
    stage2 = training["stage2"]
    default_start = stage2["start"] or next(iter(training["sft"]["runs"]))
    runs: dict[str, dict] = {}
    for entry in stage2["runs"]:
        for single in _sweep(entry):
            params = {k: single[k] for k in SWEEPABLE if k in single}
            for param in OBJECTIVE_PARAMS[single["objective"]]:
                if param not in params:
                    raise ConfigError(
                        f"config key 'training.stage2.runs': a {single['objective']} run needs '{param}'"
                    )
            start = single.get("start", default_start)
            name = single.get("name") or run_name(single["objective"], params)
            if start != default_start and "name" not in single:
                name += f"-from-{start}"
            if name in runs:
                raise ConfigError(f"config key 'training.stage2.runs': run '{name}' is defined twice")
            run = _merge(training["defaults"], stage2["defaults"], single.get("overrides"), params)
            run.update(name=name, objective=single["objective"], start=start)
            runs[name] = _complete(run)
    return runs


def all_runs(config: dict) -> dict[str, dict]:
    return {**sft_runs(config), **stage2_runs(config)}
