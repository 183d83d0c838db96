"""Configuration and environment: every invalid value fails validation naming its key before
any job runs (``redi.plan.validate_config`` and ``snakemake -n``); remote code stays off unless
the config turns it on; hub tokens never reach a file or a log; without network every rule that
needs the hub fails within seconds saying how to use a local copy, and the default config never
needs the hub."""

from __future__ import annotations

import ast
import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from redi.plan import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
CANARY = "hf_secret_canary_71d0e5aa"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_TOKEN": CANARY, "HUGGING_FACE_HUB_TOKEN": CANARY}  # fmt: skip
HUB_RULES = ("download_corpus", "prepare_student", "prepare_reference")


def base_config() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["evaluation"]["reference_models"] = [{"name": "ref", "local_path": "/models/ref"}]
    return config


# ----------------------------------------------------------------------------- schema walk


def _resolve(node):
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].split("/")[-1]] | {k: v for k, v in node.items() if k != "$ref"}
    return node


def _bad_values(node) -> list:
    """Values that violate ``node`` (a leaf of the schema)."""
    node = _resolve(node)
    if "oneOf" in node:
        return [v for alt in node["oneOf"] for v in _bad_values(alt) if not isinstance(v, (list, str))][:2] + [
            "a string"
        ]
    if "enum" in node:
        return ["not-one-of-them", 3]
    types = node.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    bad = []
    if "integer" in types:
        bad += ["seven", 1.5]
    elif "number" in types:
        bad.append("seven")
    if types and not {"integer", "number"} & set(types):
        bad.append(12345 if "string" in types else "a string")
    for key, delta in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1), ("exclusiveMaximum", 0)):
        if key in node:
            bad.append(node[key] + delta)
    if "pattern" in node:
        bad.append("has spaces and / slashes!")
    if "array" in types and "items" in node:
        bad += [[v] for v in _bad_values(node["items"])[:1]]
    return bad


def _leaves(node, path):
    """(path, bad value) for every key of the schema below ``node``."""
    node = _resolve(node)
    props = node.get("properties")
    if node.get("type") == "object" and props is not None:
        if node.get("additionalProperties") is False:
            yield path + ["no_such_key"], 1
        for key, sub in props.items():
            yield from _leaves(sub, path + [key])
        return
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        yield path + ["any"], _bad_values(node["additionalProperties"])[0]
        return
    if node.get("type") == "array" and "items" in node and "properties" in _resolve(node["items"]):
        yield from _leaves(node["items"], path + [0])
        return
    for value in _bad_values(node):
        yield path, value


def _place(config, path, value):
    node = config
    for key in path[:-1]:
        if isinstance(key, int):
            node = node[key]
        else:
            node = node.setdefault(key, {}) if not isinstance(node.get(key), (dict, list)) else node[key]
    node[path[-1]] = value


def _schema_cases():
    cases, seen = [], set()
    for key, sub in SCHEMA["properties"].items():
        for path, value in _leaves(sub, [key]):
            if path[:3] == ["training", "sft", "runs"]:
                path = ["training", "sft", "runs", "sft"] + path[4:]
            # the run settings are one definition used in five places: every bad value under
            # training.defaults, one per key (for the key's path in the message) elsewhere
            if path[0] == "training" and path[1] != "defaults" and tuple(path) in seen:
                continue
            seen.add(tuple(path))
            cases.append((path, value))
    return cases


SCHEMA_CASES = _schema_cases()


def test_the_walk_covers_the_schema():
    paths = {".".join(map(str, p)) for p, _ in SCHEMA_CASES}
    for expected in ("training.defaults.learning_rate", "training.stage2.runs.0.alpha", "verify.timeout_s",
                     "evaluation.sampling.top_p", "resources.train.runtime", "student.trust_remote_code",
                     "evaluation.reference_models.0.name", "curation.decontaminate.ngram"):  # fmt: skip
        assert expected in paths, expected
    assert len(SCHEMA_CASES) > 200


@pytest.mark.parametrize(
    "path, value", SCHEMA_CASES, ids=[f"{'.'.join(map(str, p))}={v!r}"[:80] for p, v in SCHEMA_CASES]
)
def test_every_invalid_value_names_its_key(path, value):
    config = base_config()
    _place(config, path, value)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    msg = str(err.value)
    named = [str(p) for p in path if p != "no_such_key"]
    # the message names the key's path (an unknown key is reported at its parent, by name)
    assert f"config key '{'.'.join(named)}" in msg or f"config key '{'.'.join(named[:-1])}" in msg, msg
    if path[-1] == "no_such_key":
        assert "no_such_key" in msg


# ----------------------------------------------------------------------------- beyond the schema

CONSUMER_CASES = [
    # (mutation, key the message must name) - values the schema accepts but the stage that uses
    # them would reject hours later (an evaluation job, a stage-2 job) or silently ignore
    (lambda c: c["evaluation"]["sampling"].update(temperature=0), "evaluation.sampling.temperature"),
    (lambda c: c["training"]["stage2"]["defaults"].update(global_batch_size=12), "global_batch_size"),
    (lambda c: c["training"]["stage2"]["runs"][0].update(overrides={"per_device_batch_size": 5}),
     "per_device_batch_size"),
    (lambda c: c["resources"]["train"].update(gpu=3), "global_batch_size"),
    (lambda c: c["training"]["defaults"].update(warmup_ratio=1.0), "warmup_ratio"),
    (lambda c: c["evaluation"]["reference_models"].append({"name": "nowhere"}), "evaluation.reference_models"),
    (lambda c: c["resources"].update(accelerate_config="zero9"), "resources.accelerate_config"),
    (lambda c: c["evaluation"].update(vllm={"tensor_paralel_size": 2}), "evaluation.vllm"),
    # every evaluation key is checked as the evaluation job checks it (EvalConfig.from_dict)
    (lambda c: c["evaluation"].update(transformers={"dtipe": "bfloat16"}), "evaluation.transformers.dtipe"),
    (lambda c: c["student"]["tiny"].update(hiden_size=64), "student.tiny"),
    (lambda c: c["student"]["tiny"].update(hidden_size=100, num_attention_heads=3), "student.tiny"),
    (lambda c: c["corpus"]["synthetic"].update(n_test_problem=5), "corpus.synthetic"),
    (lambda c: c["corpus"]["synthetic"].update(min_generations=5, max_generations=2), "corpus.synthetic"),
]  # fmt: skip


@pytest.mark.parametrize("mutate, key", CONSUMER_CASES, ids=[k + f"-{i}" for i, (_, k) in enumerate(CONSUMER_CASES)])
def test_values_the_stages_would_reject_fail_validation(mutate, key):
    config = base_config()
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert "config key '" in str(err.value) and key in str(err.value), str(err.value)


def test_valid_configs_still_pass():
    for name in ("config.yaml", "paper.yaml", "test.yaml"):
        validate_config(yaml.safe_load((ROOT / "config" / name).read_text()))
    config = base_config()
    config["evaluation"]["vllm"] = {"tensor_parallel_size": 2, "data_parallel": True, "max_model_len": 4096}
    config["resources"]["train"]["gpu"] = 2
    config["training"]["defaults"]["per_device_batch_size"] = 8  # 2 GPUs x 8 divides 16 and 32
    config["resources"]["accelerate_config"] = "zero3"
    validate_config(config)


def snakemake(*args, cwd, env=None):
    return subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *args], cwd=cwd,
                          capture_output=True, text=True, env=env or OFFLINE, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "snippet, key",
    [
        ("evaluation:\n  sampling:\n    temperature: 0\n", "temperature"),
        ("verify:\n  timeout_s: -1\n", "timeout_s"),
        ("student:\n  tiny:\n    hiden_size: 64\n", "hiden_size"),
    ],
)
def test_snakemake_dry_run_stops_on_invalid_values(tmp_path, snippet, key):
    (tmp_path / "bad.yaml").write_text(snippet)
    result = snakemake("-n", "--cores", "1", "--configfile", "bad.yaml", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert key in out, out
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- remote code


def _from_pretrained_calls():
    for path in sorted((ROOT / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "from_pretrained" and isinstance(node.func.value, ast.Name):
                    yield path, node


def test_every_hub_loader_passes_trust_remote_code_and_it_defaults_off():
    calls = [(p, n) for p, n in _from_pretrained_calls() if n.func.value.id != "GenerationConfig"]
    assert len(calls) >= 8
    for path, node in calls:
        where = f"{path.relative_to(ROOT)}:{node.lineno} {node.func.value.id}.from_pretrained"
        keywords = {k.arg: k.value for k in node.keywords}
        assert "trust_remote_code" in keywords or None in keywords, f"{where} does not pass trust_remote_code"
        value = keywords.get("trust_remote_code")
        assert not (isinstance(value, ast.Constant) and value.value is True), f"{where} turns remote code on"
    # every function that takes the switch defaults it to off
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                named = args.args[len(args.args) - len(args.defaults):] + args.kwonlyargs
                defaults = list(args.defaults) + list(args.kw_defaults)
                for arg, default in zip(named, defaults):
                    if arg.arg == "trust_remote_code":
                        assert isinstance(default, ast.Constant) and default.value is False, (path, node.name)
    assert validate_config({})["student"]["trust_remote_code"] is False


# ----------------------------------------------------------------------------- offline


def _timed_cli(args, env, timeout=120):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "redi.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    return proc, time.monotonic() - t0


@pytest.fixture
def empty_hub_cache(tmp_path):
    return {**OFFLINE, "HF_HOME": str(tmp_path / "hf-home")}


def test_corpus_download_offline_fails_fast_with_local_instructions(tmp_path, empty_hub_cache):
    proc, seconds = _timed_cli(["data", "download", "--name", "open-r1/OpenR1-Math-Raw", "--revision", "main",
                                "--out", str(tmp_path / "corpus")], empty_hub_cache)  # fmt: skip
    assert proc.returncode != 0 and seconds < 30, (seconds, proc.stderr[-2000:])
    assert "corpus.source: local" in proc.stderr and "corpus.local_path" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    assert not (tmp_path / "corpus").exists()


def test_pretrained_model_offline_fails_fast_with_local_instructions(tmp_path, empty_hub_cache):
    """prepare_student and prepare_reference run the same command."""
    proc, seconds = _timed_cli(["model", "base", "--hub-name", "Qwen/Qwen2.5-Math-1.5B", "--revision", "main",
                                "--out", str(tmp_path / "model")], empty_hub_cache)  # fmt: skip
    assert proc.returncode != 0 and seconds < 30, (seconds, proc.stderr[-2000:])
    assert "student.local_path" in proc.stderr  # the student's key
    assert "evaluation.reference_models" in proc.stderr  # and the reference models' key
    assert CANARY not in proc.stdout + proc.stderr
    assert not (tmp_path / "model").exists()


def test_default_dag_never_needs_the_hub(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = snakemake("-n", "--cores", "1", "--quiet", "rules", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "normalize_corpus" in out and "build_student" in out
    for rule in HUB_RULES:
        assert rule not in out, out
    assert CANARY not in out


def test_validation_does_not_read_the_network_or_the_token():
    config = copy.deepcopy(base_config())
    config["corpus"]["source"] = "hub"
    validate_config(config)  # pure: no hub call, so offline machines can plan any config
    assert CANARY not in repr(config)
