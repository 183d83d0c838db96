# Teacher traces (redi.teacher): sample new traces for a problem set with the
# evaluation backends, in resumable shards, and write them, mixed with the corpus' own, as a
# Raw-layout corpus (results/teacher/corpus.parquet) that normalize_corpus -> verify -> curate
# read like any corpus (rules/common.smk corpus_input). Off by default: with
# teacher.enabled false no rule here exists and the DAG is unchanged.
import sys

from redi.teacher.plan import describe  # noqa: E402

if TEACHER.enabled:
    # before anything runs (also on snakemake -n): expected problems, samples and tokens
    print(describe(config), file=sys.stderr)

    TEACHER_EVAL = TEACHER.eval_config(EVAL)
    TEACHER_ENV = (
        "../envs/eval-vllm.yaml"
        if TEACHER_EVAL["backend"] == "vllm"
        else "../envs/train.yaml"
    )
    TEACHER_SHARDS = expand(
        "results/teacher/samples/shard-{i}-of-{n}",
        i=range(TEACHER.shards),
        n=TEACHER.shards,
    )

    rule teacher_normalize_corpus:
        input:
            corpus=configured_corpus,
        output:
            canonical="results/teacher/base/canonical.parquet",
            rejects="results/teacher/base/normalize_rejects.jsonl",
        log:
            "logs/teacher/normalize_corpus.log",
        benchmark:
            "benchmarks/teacher/normalize_corpus.tsv"
        priority: job_priority("data")
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        script:
            "../workflow/scripts/data_normalize.py"

    rule teacher_problems:
        input:
            unpack(teacher_problem_inputs),
        output:
            "results/teacher/problems.json",
        log:
            "logs/teacher/problems.log",
        benchmark:
            "benchmarks/teacher/problems.tsv"
        priority: job_priority("data")
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            cfg=config["teacher"],
            truncated_as_rejected=config["curation"]["truncated_as_rejected"],
        script:
            "../workflow/scripts/teacher_problems.py"

    rule build_teacher_tiny:
        input:
            "results/teacher/base/canonical.parquet",
        output:
            directory("resources/models/teacher-tiny"),
        log:
            "logs/teacher/build_teacher_tiny.log",
        benchmark:
            "benchmarks/teacher/build_teacher_tiny.tsv"
        priority: job_priority("data")
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            cfg=config["student"]["tiny"],
        script:
            "../workflow/scripts/model_build_student.py"

    rule prepare_teacher:
        output:
            directory("resources/models/teacher"),
        log:
            "logs/teacher/prepare_teacher.log",
        benchmark:
            "benchmarks/teacher/prepare_teacher.tsv"
        priority: job_priority("data")
        localrule: True
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            ref=config["teacher"]["model"],
        script:
            "../workflow/scripts/model_prepare_base.py"

    rule teacher_sample:
        input:
            problems="results/teacher/problems.json",
            model=teacher_model,
        output:
            samples="results/teacher/samples/shard-{i}-of-{n}/samples.parquet",
            cost="results/teacher/samples/shard-{i}-of-{n}/cost.json",
        log:
            "logs/teacher/sample/shard-{i}-of-{n}.log",
        benchmark:
            "benchmarks/teacher/sample/shard-{i}-of-{n}.tsv"
        wildcard_constraints:
            i=r"\d+",
            n=r"\d+",
        priority: job_priority("data", res("teacher", "threads"))
        conda:
            TEACHER_ENV
        threads: res("teacher", "threads")
        resources:
            **job_resources("teacher"),
        params:
            eval=TEACHER_EVAL,
            index="{i}",
            n_shards="{n}",
        script:
            "../workflow/scripts/teacher_sample.py"

    rule teacher_corpus:
        input:
            unpack(teacher_base),
            problems="results/teacher/problems.json",
            samples=expand("{shard}/samples.parquet", shard=TEACHER_SHARDS),
            costs=expand("{shard}/cost.json", shard=TEACHER_SHARDS),
        output:
            corpus="results/teacher/corpus.parquet",
            origins="results/teacher/origins.json",
            report="results/teacher/teacher_report.json",
        log:
            "logs/teacher/corpus.log",
        benchmark:
            "benchmarks/teacher/corpus.tsv"
        priority: job_priority("data")
        conda:
            "../envs/data.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            keep_corpus_traces=TEACHER.keep_corpus_traces,
            # a problem set without problem_is_valid is treated as curation treats such corpora
            unknown_validity=(
                "yes" if config["curation"]["keep_unknown_validity"] else None
            ),
        script:
            "../workflow/scripts/teacher_corpus.py"
