rule synthesize_corpus:
    output:
        train="results/data/corpus/train.parquet",
        test=SYNTHETIC_TEST,
    log:
        "logs/data/synthesize_corpus.log",
    benchmark:
        "benchmarks/data/synthesize_corpus.tsv"
    priority: job_priority("data")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        cfg=config["corpus"]["synthetic"],
    script:
        "../workflow/scripts/data_corpus.py"


rule download_corpus:
    output:
        directory(HUB_CORPUS),
    log:
        "logs/data/download_corpus.log",
    benchmark:
        "benchmarks/data/download_corpus.tsv"
    priority: job_priority("data")
    localrule: True
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        name=config["corpus"]["hub"]["name"],
        revision=config["corpus"]["hub"]["revision"],
        split=config["corpus"]["hub"]["split"],
    script:
        "../workflow/scripts/data_download.py"


rule normalize_corpus:
    input:
        corpus=corpus_input,
    output:
        canonical="results/data/canonical.parquet",
        rejects="results/data/normalize_rejects.jsonl",
    log:
        "logs/data/normalize_corpus.log",
    benchmark:
        "benchmarks/data/normalize_corpus.tsv"
    priority: job_priority("data")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    script:
        "../workflow/scripts/data_normalize.py"


rule verify_shard:
    input:
        canonical="results/data/canonical.parquet",
    output:
        "results/data/verify/shard-{i}-of-{n}.parquet",
    log:
        "logs/data/verify/shard-{i}-of-{n}.log",
    benchmark:
        "benchmarks/data/verify/shard-{i}-of-{n}.tsv"
    priority: job_priority("data", config["verify"]["workers"])
    conda:
        "../envs/data.yaml"
    threads: config["verify"]["workers"]
    resources:
        **job_resources("verify"),
    params:
        shard_index="{i}",
        n_shards="{n}",
        timeout_s=config["verify"]["timeout_s"],
        memory_mb=config["verify"]["memory_mb"],
    script:
        "../workflow/scripts/data_verify.py"


rule gather_verification:
    input:
        canonical="results/data/canonical.parquet",
        shards=verify_shards,
    output:
        verified="results/data/verified.parquet",
        report="results/data/verification_report.json",
    log:
        "logs/data/gather_verification.log",
    benchmark:
        "benchmarks/data/gather_verification.tsv"
    priority: job_priority("data")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    script:
        "../workflow/scripts/data_gather.py"


checkpoint curate:
    input:
        unpack(decontamination_benchmarks),
        unpack(teacher_origins),
        verified="results/data/verified.parquet",
        tokenizer="results/model/student",
    output:
        sft="results/data/sft.jsonl",
        pref="results/data/pref.jsonl",
        report_json="results/data/curation_report.json",
        report_md="results/data/curation_report.md",
        rejects="results/data/rejects.jsonl",
    log:
        "logs/data/curate.log",
    benchmark:
        "benchmarks/data/curate.tsv"
    priority: job_priority("data", res("curate", "threads"))
    conda:
        "../envs/data.yaml"
    threads: res("curate", "threads")
    resources:
        **job_resources("curate"),
    params:
        cfg=config["curation"],
        benchmarks=config["curation"]["decontaminate"]["benchmarks"],  # names; files are inputs
    script:
        "../workflow/scripts/data_curate.py"
