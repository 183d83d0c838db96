# Training jobs are shell commands so that one job can start one process per GPU through
# `accelerate launch`. Resumable checkpoints live in results/train/{run}/checkpoints/, which
# is not a declared output: Snakemake deletes declared outputs of a failed job, and a job
# killed at its time limit must resume from them when it is rerun.


rule train_sft:
    input:
        model="results/model/student",
        data="results/data/sft.jsonl",
    output:
        model=directory("results/train/{sft_run}/model"),
        metrics="results/train/{sft_run}/metrics.jsonl",
        summary="results/train/{sft_run}/summary.json",
    params:
        run=lambda wc: run_json(wc.sft_run),
        launcher=launcher,
        src=SRC,
    log:
        "logs/train/{sft_run}.log",
    benchmark:
        "benchmarks/train/{sft_run}.tsv"
    threads: res("train", "threads")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/train.yaml"
    shell:
        "PYTHONPATH={params.src}:${{PYTHONPATH:-}} {params.launcher} -m redi.cli train run"
        " --run-json {params.run} --model {input.model} --data {input.data}"
        " --out results/train/{wildcards.sft_run} --threads {threads} > {log} 2>&1"


rule reference_logps:
    input:
        model="results/train/{sft_run}/model",
        data="results/data/pref.jsonl",
    output:
        "results/train/{sft_run}/ref_logps.parquet",
    params:
        run=reference_run_json,
        src=SRC,
        python=PYTHON,
    log:
        "logs/train/{sft_run}-ref_logps.log",
    benchmark:
        "benchmarks/train/{sft_run}-ref_logps.tsv"
    threads: res("train", "threads")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/train.yaml"
    shell:
        "PYTHONPATH={params.src}:${{PYTHONPATH:-}} {params.python} -m redi.cli train ref-logps"
        " --run-json {params.run} --model {input.model} --data {input.data}"
        " --out {output} --threads {threads} > {log} 2>&1"


rule train_stage2:
    input:
        model=stage2_start_model,
        data="results/data/pref.jsonl",
        ref_logps=stage2_ref_logps,
    output:
        model=directory("results/train/{stage2_run}/model"),
        metrics="results/train/{stage2_run}/metrics.jsonl",
        summary="results/train/{stage2_run}/summary.json",
    params:
        run=lambda wc: run_json(wc.stage2_run),
        launcher=launcher,
        src=SRC,
        ref=lambda wc, input: f"--ref-logps {input.ref_logps}" if input.ref_logps else "",
    log:
        "logs/train/{stage2_run}.log",
    benchmark:
        "benchmarks/train/{stage2_run}.tsv"
    threads: res("train", "threads")
    resources:
        **gpu_resources("train"),
    conda:
        "../envs/train.yaml"
    shell:
        "PYTHONPATH={params.src}:${{PYTHONPATH:-}} {params.launcher} -m redi.cli train run"
        " --run-json {params.run} --model {input.model} --data {input.data} {params.ref}"
        " --out results/train/{wildcards.stage2_run} --threads {threads} > {log} 2>&1"
