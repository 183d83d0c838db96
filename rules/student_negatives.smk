# Stage 2 with the student's own negatives (a run's negatives, default training.stage2.negatives:
# student or both; redi.data.student_negatives): train_sft -> student_problems -> student_sample
# (shards of the stage-2 start model, the teacher stage's sampling job) -> student_pairs (one
# pairs file per source in use) -> stage 2. When every run uses the teacher's negatives (the
# paper) no rule here exists and the DAG is unchanged.

if STUDENT_NEGATIVES:

    rule student_problems:
        input:
            pref="results/data/pref.jsonl",
            verified="results/data/verified.parquet",
        output:
            "results/student/problems.json",
        log:
            "logs/student/problems.log",
        benchmark:
            "benchmarks/student/problems.tsv"
        priority: job_priority("data")
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            **stage_resources(config, "data"),
        script:
            "../workflow/scripts/student_problems.py"

    rule student_sample:
        input:
            problems="results/student/problems.json",
            model=f"results/train/{STUDENT_START}/model",
        output:
            samples="results/student/samples/shard-{i}-of-{n}/samples.parquet",
            cost="results/student/samples/shard-{i}-of-{n}/cost.json",
        log:
            "logs/student/sample/shard-{i}-of-{n}.log",
        benchmark:
            "benchmarks/student/sample/shard-{i}-of-{n}.tsv"
        wildcard_constraints:
            i=r"\d+",
            n=r"\d+",
        priority: job_priority("reference_logps", res("eval", "threads"))  # stage 2 waits on it
        conda:
            EVAL_ENV
        threads: res("eval", "threads")
        resources:
            **stage_resources(config, "eval"),
        params:
            eval=STUDENT_EVAL,
            index="{i}",
            n_shards="{n}",
        script:
            "../workflow/scripts/teacher_sample.py"

    rule student_pairs:
        input:
            pref="results/data/pref.jsonl",
            problems="results/student/problems.json",
            samples=expand(
                "results/student/samples/shard-{i}-of-{n}/samples.parquet",
                i=range(STUDENT_SHARDS),
                n=STUDENT_SHARDS,
            ),
        output:
            pref="results/data/{negatives}-negatives/pref.jsonl",
            report="results/data/{negatives}-negatives/report.json",
            report_md="results/data/{negatives}-negatives/report.md",
        log:
            "logs/student/pairs-{negatives}.log",
        benchmark:
            "benchmarks/student/pairs-{negatives}.tsv"
        wildcard_constraints:
            negatives="|".join(STUDENT_NEGATIVES),
        priority: job_priority("data")
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            **stage_resources(config, "data"),
        params:
            negatives=lambda wc: wc.negatives,
            truncated_as_rejected=config["curation"]["truncated_as_rejected"],
            max_response_length=config["curation"]["max_response_length"],
        script:
            "../workflow/scripts/student_pairs.py"
