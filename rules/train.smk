# Resumable checkpoints live in results/train/{run}/checkpoints/, which is not a declared
# output: Snakemake deletes declared outputs of a failed job, and a job killed at its time
# limit resumes from them when rerun. Training rules are Snakemake checkpoints so that
# evaluation follows the checkpoints a run really saved (a collapse guard may stop it early).
# With resources.train.gpu > 1 the job starts one worker per GPU through accelerate launch.


checkpoint train_sft:
    input:
        model="results/model/student",
        data="results/data/sft.jsonl",
    output:
        model=directory("results/train/{sft_run}/model"),
        metrics="results/train/{sft_run}/metrics.jsonl",
        summary="results/train/{sft_run}/summary.json",
    log:
        "logs/train/{sft_run}.log",
    benchmark:
        "benchmarks/train/{sft_run}.tsv"
    priority: job_priority("train_sft", res("train", "threads", len(SFT_RUNS)))
    conda:
        "../envs/train.yaml"
    threads: res("train", "threads", len(SFT_RUNS))
    resources:
        **job_resources("train"),
    params:
        run=lambda wc: RUNS[wc.sft_run],
        accelerate_config=RES["accelerate_config"],
        cpu_processes=res("train", "cpu_processes"),
    script:
        "../workflow/scripts/train_run.py"


# one pass per (start model, pairs file): ref_logps.parquet for the teacher's pairs,
# ref_logps-student / ref_logps-both for pairs with the student's own negatives
rule reference_logps:
    input:
        model="results/train/{sft_run}/model",
        data=reference_pairs,
    output:
        "results/train/{sft_run}/{ref_file}.parquet",
    log:
        "logs/train/{sft_run}-{ref_file}.log",
    benchmark:
        "benchmarks/train/{sft_run}-{ref_file}.tsv"
    wildcard_constraints:
        ref_file=r"ref_logps(-student|-both)?",
    priority: job_priority("reference_logps", res("reference", "threads", len(REFERENCE_RUNS)))
    conda:
        "../envs/train.yaml"
    threads: res("reference", "threads", len(REFERENCE_RUNS))
    resources:
        **job_resources("reference"),
    params:
        run=reference_run,
        deepspeed=reference_under_deepspeed(),
    script:
        "../workflow/scripts/train_ref_logps.py"


checkpoint train_stage2:
    input:
        model=stage2_start_model,
        data=stage2_data,
        ref_logps=stage2_ref_logps,
    output:
        model=directory("results/train/{stage2_run}/model"),
        metrics="results/train/{stage2_run}/metrics.jsonl",
        summary="results/train/{stage2_run}/summary.json",
    log:
        "logs/train/{stage2_run}.log",
    benchmark:
        "benchmarks/train/{stage2_run}.tsv"
    priority: job_priority("train_stage2", res("train", "threads", len(STAGE2_RUNS)))
    conda:
        "../envs/train.yaml"
    threads: res("train", "threads", len(STAGE2_RUNS))
    resources:
        **job_resources("train"),
    params:
        run=lambda wc: RUNS[wc.stage2_run],
        accelerate_config=RES["accelerate_config"],
        cpu_processes=res("train", "cpu_processes"),
    script:
        "../workflow/scripts/train_run.py"
