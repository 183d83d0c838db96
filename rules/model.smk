if config["student"]["kind"] == "tiny":

    rule build_student:
        input:
            "results/data/canonical.parquet",
        output:
            directory("results/model/student"),
        log:
            "logs/model/build_student.log",
        benchmark:
            "benchmarks/model/build_student.tsv"
        priority: job_priority("student")
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            cfg=config["student"]["tiny"],
        script:
            "../workflow/scripts/model_build_student.py"

else:

    rule prepare_student:
        output:
            directory("results/model/student"),
        log:
            "logs/model/prepare_student.log",
        benchmark:
            "benchmarks/model/prepare_student.tsv"
        priority: job_priority("student")
        localrule: True
        conda:
            "../envs/train.yaml"
        threads: 1
        resources:
            **job_resources("data"),
        params:
            student=config["student"],
        script:
            "../workflow/scripts/model_prepare_base.py"


rule prepare_reference:
    output:
        directory("resources/models/reference-{ref}"),
    log:
        "logs/model/prepare_reference-{ref}.log",
    benchmark:
        "benchmarks/model/prepare_reference-{ref}.tsv"
    priority: job_priority("eval")
    localrule: True
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        ref=lambda wc: reference_model(wc.ref),
        trust_remote_code=config["student"]["trust_remote_code"],
    script:
        "../workflow/scripts/model_prepare_base.py"
