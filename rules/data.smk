rule synthesize_corpus:
    output:
        train="results/data/corpus/train.parquet",
        test=SYNTHETIC_TEST,
    params:
        cfg=config["corpus"]["synthetic"],
    log:
        "logs/data/synthesize_corpus.log",
    benchmark:
        "benchmarks/data/synthesize_corpus.tsv"
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/data_corpus.py"


rule download_corpus:
    output:
        directory("resources/corpus/" + config["corpus"]["hub"]["name"].replace("/", "__")),
    params:
        name=config["corpus"]["hub"]["name"],
        revision=config["corpus"]["hub"]["revision"],
        split=config["corpus"]["hub"]["split"],
    log:
        "logs/data/download_corpus.log",
    benchmark:
        "benchmarks/data/download_corpus.tsv"
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/data.yaml"
    localrule: True
    script:
        "../workflow/scripts/data_download.py"


rule normalize_corpus:
    input:
        corpus_input,
    output:
        canonical="results/data/canonical.parquet",
        rejects="results/data/normalize_rejects.jsonl",
    log:
        "logs/data/normalize_corpus.log",
    benchmark:
        "benchmarks/data/normalize_corpus.tsv"
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/data_normalize.py"


rule verify_shard:
    input:
        "results/data/canonical.parquet",
    output:
        "results/data/verify/shard-{i}-of-{n}.parquet",
    params:
        shard_index="{i}",
        n_shards="{n}",
        timeout_s=config["verify"]["timeout_s"],
        memory_mb=config["verify"]["memory_mb"],
    log:
        "logs/data/verify/shard-{i}-of-{n}.log",
    benchmark:
        "benchmarks/data/verify/shard-{i}-of-{n}.tsv"
    threads: config["verify"]["workers"]
    resources:
        **gpu_resources("verify"),
    conda:
        "../envs/data.yaml"
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
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/data_gather.py"


checkpoint curate:
    input:
        unpack(decontamination_benchmarks),
        verified="results/data/verified.parquet",
        tokenizer="results/model/student",
    output:
        sft="results/data/sft.jsonl",
        pref="results/data/pref.jsonl",
        report_json="results/data/curation_report.json",
        report_md="results/data/curation_report.md",
        rejects="results/data/rejects.jsonl",
    params:
        cfg=config["curation"],
        benchmarks=decontamination_benchmarks(None),
    log:
        "logs/data/curate.log",
    benchmark:
        "benchmarks/data/curate.tsv"
    threads: 1
    resources:
        **gpu_resources("data"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/data_curate.py"
