# Every saved checkpoint is evaluated on the intermediate benchmark(s); the best checkpoint
# of each run (and/or its final model) on the final benchmarks. The steps a run saved are read
# from its summary.json (`saved_checkpoints`, once the `train_*` checkpoint rule has run;
# rules/common.smk `saved_steps`), so each evaluation is its own job; with
# evaluation.group_per_run (default: true on the transformers backend) one eval_group
# job per run does all of them (each checkpoint loaded once) and picks the best in between.


rule eval_student:
    input:
        unpack(lambda wc: benchmark_inputs([wc.bench])),
        model="results/model/student",
    output:
        metrics="results/eval/student/base/{bench}/metrics.json",
        samples="results/eval/student/base/{bench}/samples.parquet",
    log:
        "logs/eval/student/base/{bench}.log",
    benchmark:
        "benchmarks/eval/student/base/{bench}.tsv"
    priority: job_priority("eval_student", res("eval", "threads"))
    conda:
        EVAL_ENV
    threads: res("eval", "threads")
    resources:
        **job_resources("eval"),
    params:
        run="student",
        checkpoint="base",
        eval={
            **eval_params("intermediate"),
            "force_think": config["evaluation"]["base_model_force_think"],
        },
    script:
        "../workflow/scripts/eval_run.py"


if GROUP_EVAL:

    rule eval_group:
        input:
            unpack(lambda wc: benchmark_inputs(GROUP_BENCHMARKS)),
            summary="results/train/{run}/summary.json",
            model="results/train/{run}/model",
        output:
            best="results/eval/{run}/best.json",
            final=expand(
                "results/eval/{{run}}/{ckpt}/{bench}/{file}",
                ckpt=EVAL["final"]["checkpoints"],
                bench=EVAL["final"]["benchmarks"],
                file=["metrics.json", "samples.parquet"],
            ),
        log:
            "logs/eval/{run}/group.log",
        benchmark:
            "benchmarks/eval/{run}/group.tsv"
        priority: eval_priority
        conda:
            EVAL_ENV
        threads: res("eval", "threads")
        resources:
            **job_resources("eval"),
        params:
            run="{run}",
            checkpoints="results/train/{run}/checkpoints",
            intermediate={
                "benchmarks": EVAL["intermediate"]["benchmarks"],
                "eval": eval_params("intermediate"),
            },
            final={
                "benchmarks": EVAL["final"]["benchmarks"],
                "eval": eval_params("final"),
            },
            final_checkpoints=EVAL["final"]["checkpoints"],
        script:
            "../workflow/scripts/eval_group.py"

else:

    rule eval_checkpoint:
        input:
            unpack(lambda wc: benchmark_inputs([wc.bench])),
            summary="results/train/{run}/summary.json",
        output:
            metrics="results/eval/{run}/step-{step}/{bench}/metrics.json",
            samples="results/eval/{run}/step-{step}/{bench}/samples.parquet",
        log:
            "logs/eval/{run}/step-{step}/{bench}.log",
        benchmark:
            "benchmarks/eval/{run}/step-{step}/{bench}.tsv"
        priority: eval_priority
        conda:
            EVAL_ENV
        threads: res("eval", "threads")
        resources:
            **job_resources("eval"),
        params:
            model_path="results/train/{run}/checkpoints/checkpoint-{step}",
            run="{run}",
            checkpoint="step-{step}",
            eval=eval_params("intermediate"),
        script:
            "../workflow/scripts/eval_run.py"

    rule select_best:
        input:
            intermediate_metrics_of,
        output:
            "results/eval/{run}/best.json",
        log:
            "logs/eval/{run}/select_best.log",
        benchmark:
            "benchmarks/eval/{run}/select_best.tsv"
        priority: eval_priority
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        script:
            "../workflow/scripts/eval_select_best.py"

    rule eval_final:
        input:
            unpack(lambda wc: benchmark_inputs([wc.bench])),
            best="results/eval/{run}/best.json",
            model="results/train/{run}/model",
        output:
            metrics="results/eval/{run}/{ckpt}/{bench}/metrics.json",
            samples="results/eval/{run}/{ckpt}/{bench}/samples.parquet",
        log:
            "logs/eval/{run}/{ckpt}/{bench}.log",
        benchmark:
            "benchmarks/eval/{run}/{ckpt}/{bench}.tsv"
        wildcard_constraints:
            ckpt="best|final",
        priority: eval_priority
        conda:
            EVAL_ENV
        threads: res("eval", "threads")
        resources:
            **job_resources("eval"),
        params:
            run="{run}",
            checkpoint="{ckpt}",
            eval=eval_params("final"),
        script:
            "../workflow/scripts/eval_run.py"


rule eval_reference:
    input:
        unpack(lambda wc: benchmark_inputs([wc.bench])),
        model="resources/models/reference-{ref}",
    output:
        metrics="results/eval/reference-{ref}/final/{bench}/metrics.json",
        samples="results/eval/reference-{ref}/final/{bench}/samples.parquet",
    log:
        "logs/eval/reference-{ref}/{bench}.log",
    benchmark:
        "benchmarks/eval/reference-{ref}/{bench}.tsv"
    priority: job_priority("eval", res("eval", "threads"))
    conda:
        EVAL_ENV
    threads: res("eval", "threads")
    resources:
        **job_resources("eval"),
    params:
        run="reference-{ref}",
        checkpoint="final",
        eval=reference_eval,
    script:
        "../workflow/scripts/eval_run.py"
