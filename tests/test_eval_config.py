"""The evaluation's config dataclass owns the defaults; config/schema.yaml states the same ones,
and the workflow's per-job dict (rules/common.smk ``eval_params``) is exactly an EvalConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from redi.eval.backends import BACKENDS, backend_options
from redi.eval.benchmarks import split_half
from redi.eval.config import WORKFLOW_KEYS, EvalConfig, SamplingConfig, held_out_split, job_settings
from redi.plan import validate_config

ROOT = Path(__file__).resolve().parents[1]
EVALUATION = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]["evaluation"]


def test_schema_defaults_equal_the_dataclass_defaults():
    props = EVALUATION["properties"]
    ours = EvalConfig()
    assert set(props) - set(WORKFLOW_KEYS) <= {f.name for f in dataclasses.fields(EvalConfig)}
    for key, prop in props.items():
        if key in WORKFLOW_KEYS:
            continue
        if key == "sampling":
            for name, sub in prop["properties"].items():
                assert sub["default"] == getattr(ours.sampling, name), f"evaluation.sampling.{name}"
            assert set(prop["properties"]) == {f.name for f in dataclasses.fields(SamplingConfig)}
        else:
            assert prop["default"] == getattr(ours, key), f"evaluation.{key}"
    # each kind's n_samples / limit become the job's: the dataclass default is the intermediate one
    assert props["intermediate"]["properties"]["n_samples"]["default"] == ours.n_samples
    assert props["intermediate"]["properties"]["limit"]["default"] == ours.limit
    assert set(props["backend"]["enum"]) == set(BACKENDS)


def _job_dict(config: dict, kind: str) -> dict:
    """What rules/common.smk eval_params builds for one job."""
    ev = config["evaluation"]
    return {**job_settings(ev), "n_samples": ev[kind]["n_samples"], "limit": ev[kind]["limit"],
            "split": held_out_split(ev, kind)}  # fmt: skip


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_the_shipped_configs_give_valid_job_configs(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate_config(config)
    for kind in ("intermediate", "final"):
        cfg = EvalConfig.from_dict(_job_dict(config, kind))
        assert cfg.n_samples == config["evaluation"][kind]["n_samples"]
        assert dataclasses.asdict(cfg.sampling) == config["evaluation"]["sampling"]


def test_from_dict_fills_defaults_and_casts():
    cfg = EvalConfig.from_dict({"sampling": {"top_p": 1, "seed": "3"}, "verify_timeout_s": 5, "limit": None})
    assert cfg.sampling == SamplingConfig(top_p=1.0, seed=3) and cfg.verify_timeout_s == 5.0
    assert cfg.limit is None and cfg.batch_size == EvalConfig().batch_size
    assert EvalConfig.from_dict(cfg) is cfg and EvalConfig.from_dict(None) == EvalConfig()


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"top_p": 0.9}, "evaluation.top_p"),
        ({"sampling": {"top_k": 20}}, "evaluation.sampling.top_k"),
        ({"vllm": {"tensor_paralel_size": 2}}, "evaluation.vllm.tensor_paralel_size"),
        ({"transformers": {"devce": "cpu"}}, "evaluation.transformers.devce"),
        ({"backend": "sglang"}, "'backend'"),
        ({"n_samples": 0}, "'n_samples'"),
        ({"sampling": {"temperature": 0}}, "temperature"),
    ],
)
def test_from_dict_names_the_bad_key(bad, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        EvalConfig.from_dict(bad)


def test_backend_options_are_the_constructors_keywords():
    assert {"tensor_parallel_size", "data_parallel", "max_model_len", "python"} <= backend_options("vllm")
    assert backend_options("transformers") == {"device", "dtype", "attn_implementation", "prefill_once"}
    cfg = EvalConfig.from_dict({"backend": "vllm", "vllm": {"max_model_len": 4096}})
    assert cfg.backend_options == {"max_model_len": 4096} and cfg.max_model_len == 4096
    assert EvalConfig.from_dict({"vllm": {"max_model_len": 4096}}).max_model_len is None  # transformers


def test_group_per_run_follows_the_backend():
    """evaluation.group_per_run: auto = one job per run on transformers (CPU: a job's
    start costs more than a small evaluation), one per checkpoint on vLLM; booleans win."""
    from redi.eval.backends import groups_per_run

    assert EVALUATION["properties"]["group_per_run"]["default"] == "auto"
    assert groups_per_run("auto", "transformers") is True
    assert groups_per_run("auto", "vllm") is False
    assert {groups_per_run(v, b) for v in (True,) for b in BACKENDS} == {True}
    assert {groups_per_run(v, b) for v in (False,) for b in BACKENDS} == {False}
    with pytest.raises(ValueError, match="group_per_run"):
        groups_per_run("yes", "transformers")
    with pytest.raises(ValueError, match="backend"):
        groups_per_run("auto", "tgi")


def test_the_workflow_config_sets_every_job_knob():
    """config/schema.yaml's evaluation section is EvalConfig's fields plus the workflow keys;
    the only fields it leaves out are set per job (the transformers backend's options
    were a field the workflow config could not set)."""
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    section = set(schema["properties"]["evaluation"]["properties"])
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    assert section - set(WORKFLOW_KEYS) <= fields
    per_job = {"n_samples", "limit",  # from evaluation.intermediate / final
               "split",  # from evaluation.held_out_selection and the job's schedule
               "trust_remote_code",  # the evaluated model's own setting (student, reference model)
               "verify_workers"}  # the job's threads  # fmt: skip
    assert fields - section == per_job


def _problems(n: int):
    from redi.eval.benchmarks import Problem

    return [Problem(f"p{i:03d}", i, f"problem {i}", ("1",)) for i in range(n)]


@pytest.mark.parametrize("n", [1, 7, 50])
def test_held_out_halves_are_disjoint_cover_the_benchmark_and_ignore_file_order(n):
    problems = _problems(n)
    selection, report = split_half(problems, "selection"), split_half(problems, "report")
    ids = lambda ps: [p.problem_id for p in ps]  # noqa: E731
    assert not set(ids(selection)) & set(ids(report))
    assert sorted(ids(selection) + ids(report)) == ids(problems)
    assert len(selection) == (n + 1) // 2  # the selection half takes the odd one
    assert ids(selection) == sorted(ids(selection), key=ids(problems).index)  # file order kept
    assert ids(split_half(problems[::-1], "selection")) == ids(selection)[::-1]  # same problems, any order
    with pytest.raises(ValueError, match="split part"):
        split_half(problems, "test")


def test_held_out_selection_halves_only_the_benchmarks_both_schedules_name():
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    ev = config["evaluation"]
    assert held_out_split(ev, "intermediate") == {} == held_out_split(ev, "final")  # off: the paper's protocol
    ev["held_out_selection"] = True
    validate_config(config)
    shared = [b for b in ev["intermediate"]["benchmarks"] if b in ev["final"]["benchmarks"]]
    assert shared and set(ev["final"]["benchmarks"]) - set(shared)  # the case has final-only benchmarks
    inter, final = _job_dict(config, "intermediate"), _job_dict(config, "final")
    assert EvalConfig.from_dict(inter).split == dict.fromkeys(shared, "selection")
    assert EvalConfig.from_dict(final).split == dict.fromkeys(shared, "report")
    with pytest.raises(ValueError, match="'split'"):
        EvalConfig.from_dict({"split": {"math500": "test"}})


def test_the_workflow_passes_each_job_its_half(tmp_path):
    """Parsed through Snakemake (config/paper.yaml + held_out_selection): every checkpoint's
    evaluation sees the selection half of MATH-500, the final and reference evaluations the
    report half; the student's untrained row is a step-0 point of the selection curves."""
    from helpers import parsed_workflow

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config["evaluation"]["held_out_selection"] = True
    path = tmp_path / "paper-held-out.yaml"
    path.write_text(yaml.safe_dump(config))
    from types import SimpleNamespace

    wildcards = SimpleNamespace(ref=config["evaluation"]["reference_models"][0]["name"])
    with parsed_workflow(path) as workflow:
        params = {name: workflow._rules[name].params["eval"]
                  for name in ("eval_checkpoint", "eval_final", "eval_reference", "eval_student")}  # fmt: skip
        split = {name: (p(wildcards) if callable(p) else p)["split"] for name, p in params.items()}
    assert split["eval_checkpoint"] == split["eval_student"] == {"math500": "selection"}
    assert split["eval_final"] == split["eval_reference"] == {"math500": "report"}
