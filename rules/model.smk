if config["student"]["kind"] == "tiny":

    rule build_student:
        input:
            "results/data/canonical.parquet",
        output:
            directory("results/model/student"),
        params:
            cfg=config["student"]["tiny"],
        log:
            "logs/model/build_student.log",
        benchmark:
            "benchmarks/model/build_student.tsv"
        threads: 1
        resources:
            **gpu_resources("data"),
        conda:
            "../envs/train.yaml"
        script:
            "../workflow/scripts/model_build_student.py"

else:

    rule prepare_student:
        output:
            directory("results/model/student"),
        params:
            student=config["student"],
        log:
            "logs/model/prepare_student.log",
        benchmark:
            "benchmarks/model/prepare_student.tsv"
        threads: 1
        resources:
            **gpu_resources("data"),
        conda:
            "../envs/train.yaml"
        localrule: True
        script:
            "../workflow/scripts/model_prepare_base.py"


rule prepare_reference:
    output:
        directory("resources/models/reference-{ref}"),
    params:
        ref=lambda wc: reference_model(wc.ref),
        trust_remote_code=config["student"]["trust_remote_code"],
    log:
        "logs/model/prepare_reference-{ref}.log",
    benchmark:
        "benchmarks/model/prepare_reference-{ref}.tsv"
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/train.yaml"
    localrule: True
    script:
        "../workflow/scripts/model_prepare_base.py"
