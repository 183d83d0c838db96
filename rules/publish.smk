# Model cards and the optional push of final models to the Hugging Face hub (redi.model_card).
# Every final model folder already holds a card written by training; the card here adds the
# run's final evaluations. Tracking settings reach every job through REDI_TRACKING (exported
# when the workflow is parsed, also inside SLURM jobs), so changing them never reruns a job.
from redi.tracking import export as export_tracking

export_tracking(config["tracking"])
PUBLISH = config["publish"]
if PUBLISH["push_to_hub"] and not PUBLISH["hub_org"]:
    raise ValueError(
        "config key 'publish.hub_org': required when publish.push_to_hub is true"
    )
PUBLISH_TARGETS = expand("results/cards/{run}/README.md", run=RUNS) + (
    expand("results/cards/{run}/pushed.json", run=RUNS)
    if PUBLISH["push_to_hub"]
    else []
)


rule model_card:
    input:
        summary="results/train/{run}/summary.json",
        evaluations=lambda wc: expand(
            "results/eval/{run}/{ckpt}/{bench}/metrics.json",
            run=wc.run,
            ckpt=EVAL["final"]["checkpoints"],
            bench=EVAL["final"]["benchmarks"],
        ),
    output:
        card="results/cards/{run}/README.md",
    log:
        "logs/publish/{run}-model_card.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        # hub id of the start model: the student's for SFT runs, {hub_org}/{start} for stage 2
        base_model=lambda wc: (
            f"{PUBLISH['hub_org']}/{RUNS[wc.run]['start']}"
            if RUNS[wc.run].get("start") and PUBLISH["hub_org"]
            else (
                None
                if RUNS[wc.run].get("start")
                else config["student"].get("hub_name")
            )
        ),
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
