"""Config validation and the run plan that Snakemake and the CLI share."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from redi.fmt import format_number
from redi.plan import ConfigError, all_runs, load_config, stage2_runs, validate_config

ROOT = Path(__file__).resolve().parents[1]


def raw(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "test.yaml", "smollm2.yaml", "arena.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert config["student"]["trust_remote_code"] is False
    assert all_runs(config)


def test_defaults_are_filled_in():
    config = validate_config({})
    assert config["curation"]["label_rule"] == "llama_and_mv"
    assert config["curation"]["shuffle_seed"] == 42
    assert config["curation"]["max_response_length"] == 19000
    assert config["evaluation"]["sampling"] == {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32768, "seed": 0}
    assert config["corpus"]["source"] == "synthetic"


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["training"]["stage2"]["runs"][0].update(alpha=1.5), "training.stage2.runs.0.alpha"),
        (lambda c: c["training"]["stage2"]["runs"][0].update(objective="ppo"), "training.stage2.runs.0.objective"),
        (lambda c: c["student"].update(kind="pretrained", hub_name=None), "student"),
        (lambda c: c["evaluation"]["sampling"].update(top_p=2), "evaluation.sampling.top_p"),
        (lambda c: c["verify"].update(shardz=3), "verify"),
        (lambda c: c["evaluation"]["final"].update(benchmarks=["nope"]), "evaluation.final.benchmarks"),
        (lambda c: c["resources"]["train"].update(runtime=86400), "resources.train.runtime"),
        (
            lambda c: c["training"]["stage2"]["runs"].append({"objective": "dpo", "learning_rate": 1e-6}),
            "training.stage2.runs",
        ),
    ],
)
def test_invalid_values_name_the_key(mutate, key):
    config = raw("config.yaml")
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert f"'{key}" in str(error.value)


def test_paper_plan_matches_the_paper():
    runs = all_runs(load_config(ROOT / "config" / "paper.yaml"))
    assert runs["sft-3ep"]["epochs"] == 3 and runs["sft-5ep"]["epochs"] == 5
    assert runs["sft-3ep"]["learning_rate"] == 5e-5 and runs["sft-3ep"]["global_batch_size"] == 128
    redi = runs["redi-a0.8-lr1e-6"]
    assert (redi["alpha"], redi["learning_rate"], redi["global_batch_size"], redi["start"]) == (
        0.8,
        1e-6,
        32,
        "sft-3ep",
    )
    assert runs["redi-a1-lr2e-7"]["alpha"] == 1.0
    assert runs["dpo-b0.001-lr2e-7"]["beta"] == 0.001
    assert runs["simpo-b2-g1-lr5e-7"]["gamma"] == 1.0 and runs["simpo-b10-g5-lr5e-7"]["gamma"] == 5.0
    assert "simpo-b2-g5-lr5e-7" not in runs  # beta and gamma are paired, not crossed
    assert runs["redi-a0.8-lr1e-6-from-sft-5ep"]["start"] == "sft-5ep"
    assert all(r["save_steps"] == 200 for r in runs.values())
    assert {f"redi-a{a}-lr1e-6" for a in ("0.2", "0.5", "0.8", "1")} <= set(runs)


def test_default_varies_one_knob_between_stage2_runs():
    runs = stage2_runs(load_config(ROOT / "config" / "config.yaml"))
    assert {r["objective"] for r in runs.values()} == {"redi", "dpo", "simpo"}
    assert sorted(r["alpha"] for r in runs.values() if r["objective"] == "redi") == [0.0, 0.5, 0.8, 1.0]
    shared = ("start", "learning_rate", "global_batch_size", "epochs", "warmup_ratio", "seed", "save_steps")
    for key in shared:
        assert len({r[key] for r in runs.values()}) == 1, key


def test_duplicate_run_names_are_rejected():
    config = raw("config.yaml")
    config["training"]["stage2"]["runs"].append(copy.deepcopy(config["training"]["stage2"]["runs"][1]))
    with pytest.raises(ConfigError, match="defined twice"):
        validate_config(config)


def test_number_formatting_is_short_and_path_safe():
    assert [format_number(x) for x in (1e-6, 2e-7, 1e-4, 0.8, 2.0, 5e-5, 0.01, 0.001)] == [
        "1e-6", "2e-7", "1e-4", "0.8", "2", "5e-5", "0.01", "0.001",
    ]


def _leaf_keys(node, defs):
    if "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    for key, sub in (node.get("properties") or {}).items():
        yield key
        yield from _leaf_keys(sub, defs)


def test_config_readme_documents_every_key():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    # a key counts as documented when it appears as a code span or a dotted part of one
    missing = {
        k for k in _leaf_keys(schema, schema["definitions"]) if not re.search(rf"[`.]{re.escape(k)}[`.]", readme)
    }
    assert not missing, f"undocumented config keys: {sorted(missing)}"


def test_stage2_objectives_are_the_registry():
    """The stage-2 ``objective`` names are the registry's pair objectives, validated by the plan
    (the schema keeps no copy), so a new registry entry needs no schema edit."""
    from redi.plan import check_stage2_entry
    from redi.train import objectives

    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert "enum" not in schema["definitions"]["stage2_run"]["properties"]["objective"]
    for name in objectives.pairwise_names():
        check_stage2_entry({"objective": name, **{p: 0.5 for p in objectives.get(name).params}})
    for name in ("sft", "orpo"):
        with pytest.raises(ConfigError, match="not a stage-2 objective"):
            check_stage2_entry({"objective": name})


def test_reference_runs_must_agree_on_truncation():
    config = raw("config.yaml")
    runs = config["training"]["stage2"]["runs"]
    dpo = next(r for r in runs if r["objective"] == "dpo")
    runs.append({**copy.deepcopy(dpo), "name": "dpo-other", "overrides": {"max_response_length": 7}})
    with pytest.raises(ConfigError, match="share its reference log-probs"):
        validate_config(config)


def test_threads_auto_follows_the_cores_a_job_has():
    """resources.<stage>.threads: auto: a job alone takes every core Snakemake was
    given, parallel jobs of a stage share them, GPU jobs take their allocation's CPUs."""
    from redi.plan import job_threads, reference_resources

    cpu = {"threads": "auto", "gpu": 0, "cpus_per_gpu": 8}
    assert job_threads(cpu, cores=2, parallel=1) == 2  # the demo's one SFT run
    assert job_threads(cpu, cores=2, parallel=6) == 1  # its six stage-2 runs
    assert job_threads(cpu, cores=16, parallel=6) == 2
    assert job_threads(cpu, cores=None) == 1  # a cluster executor without --cores
    assert job_threads({**cpu, "gpu": 4, "cpus_per_gpu": 6}, cores=2) == 24
    assert job_threads({**cpu, "threads": 3}, cores=64, parallel=1) == 3  # a number is kept
    assert reference_resources({**cpu, "mem_mb": 8000, "runtime": "1h"})["threads"] == "auto"
    config = validate_config(raw("config.yaml"))
    assert (config["resources"]["train"]["threads"], config["resources"]["eval"]["threads"]) == ("auto", 1)
    config = raw("config.yaml")
    config["resources"]["eval"]["threads"] = "all"
    with pytest.raises(ConfigError, match="resources.eval.threads"):
        validate_config(config)


def test_priorities_put_the_critical_path_first_on_scarce_cores():
    """Snakemake's scheduler starts the ready jobs with the largest summed priority that fit the
    free cores: weighted by cores, one 2-core job of a higher tier must outrank any
    pair of 1-core jobs of lower tiers on the demo's 2 cores; then the longest jobs first."""
    from redi.plan import PRIORITY_TIERS, job_priority

    # the demo after SFT: the reference pass (2 cores) vs two stage-2 runs (1 core each)
    assert job_priority("reference_logps", 2) > 2 * job_priority("train_stage2", 1)
    # SFT (2 cores) vs the best pair of anything below it; curation (2 cores) vs the student's evaluation
    assert job_priority("train_sft", 2) > 2 * job_priority("reference_logps", 1)
    assert job_priority("data", 2) > job_priority("student") > job_priority("eval")
    # longest first among the rest: SFT's evaluation group (ready with the stage-2 trainings) beside
    # them, the stage-2 evaluations after them, the student's (the shortest) last; yet the
    # reference pass (2 cores) wins over SFT's evaluation group + a training (1 core each)
    assert job_priority("eval_sft") > job_priority("train_stage2") > job_priority("eval") > job_priority("eval_student")
    assert job_priority("reference_logps", 2) > job_priority("eval_sft") + job_priority("train_stage2")
    tiers = list(PRIORITY_TIERS)
    assert tiers == sorted(tiers, key=PRIORITY_TIERS.get, reverse=True)  # declared in critical-path order
    assert job_priority("eval", 0) == job_priority("eval", 1)  # a job takes at least one core
    with pytest.raises(KeyError):
        job_priority("no-such-kind")


def test_every_rule_has_a_scheduling_tier():
    """A rule without `priority:` runs at 0, below every tiered job: a teacher-stage or
    select_best job would then wait behind evaluations. Only the jobs nothing else
    waits for (model cards, the report, publishing, `all`) keep 0."""
    untiered = {"all", "model_card", "push_to_hub", "report_build"}
    missing = []
    for path in sorted((ROOT / "rules").glob("*.smk")) + [ROOT / "Snakefile"]:
        blocks = re.split(r"^\s*(?:rule|checkpoint) (\w+):\n", path.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            if name not in untiered and not re.search(r"^\s+priority:", body, re.M):
                missing.append(f"{path.name}:{name}")
    assert not missing, missing
