# Model cards and the optional push of final models to the Hugging Face hub (redi.model_card).
# Every final model folder already holds a card written by training; the card here adds the
# run's final evaluations. Tracking settings reach every job through REDI_TRACKING (read when
# the workflow is parsed, also inside SLURM jobs), so changing them never reruns a job.
import os

os.environ["REDI_TRACKING"] = json.dumps(config["tracking"])
PUBLISH = config["publish"]
if PUBLISH["push_to_hub"] and not PUBLISH["hub_org"]:
    raise ValueError(
        "config key 'publish.hub_org': required when publish.push_to_hub is true"
    )


def run_final_metrics(wildcards):
    return expand(
        "results/eval/{run}/{ckpt}/{bench}/metrics.json",
        run=wildcards.run,
        ckpt=EVAL["final"]["checkpoints"],
        bench=EVAL["final"]["benchmarks"],
    )


def start_hub_name(wildcards):
    """Hub id of the model a run started from (the student's, for SFT runs), if it has one."""
    start = RUNS[wildcards.run].get("start")
    if start and PUBLISH["hub_org"]:
        return f"{PUBLISH['hub_org']}/{start}"
    if not start:
        return config["student"].get("hub_name")
    return None


def publish_targets():
    files = expand("results/cards/{run}/README.md", run=RUNS)
    if PUBLISH["push_to_hub"]:
        files += expand("results/cards/{run}/pushed.json", run=RUNS)
    return files


rule model_card:
    input:
        summary="results/train/{run}/summary.json",
        evaluations=run_final_metrics,
    output:
        card="results/cards/{run}/README.md",
    log:
        "logs/publish/{run}-model_card.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        base_model=start_hub_name,
    script:
        "../workflow/scripts/publish_card.py"


if PUBLISH["push_to_hub"]:

    rule push_to_hub:
        input:
            model="results/train/{run}/model",
            card="results/cards/{run}/README.md",
        output:
            receipt="results/cards/{run}/pushed.json",
        log:
            "logs/publish/{run}-push_to_hub.log",
        localrule: True
        conda:
            "../envs/train.yaml"
        params:
            repo_id=lambda wc: f"{PUBLISH['hub_org']}/{wc.run}",
            private=PUBLISH["private"],
        script:
            "../workflow/scripts/publish_push.py"
