# Tables, figures and a summary of results/ beside the paper's numbers (src/redi/report/).
# The same build runs without Snakemake, from an existing results/ tree and without any
# training or evaluation: `redi report build --results results --reports reports
# --config config/config.yaml`.

from pathlib import Path

from redi.report.layout import snakemake_outputs


report: "../workflow/report/workflow.rst"


rule report_build:
    input:
        intermediate=all_intermediate_metrics,
        final=final_metrics(),
        summaries=expand("results/train/{run}/summary.json", run=RUNS),
        metrics=expand("results/train/{run}/metrics.jsonl", run=RUNS),
        best=expand("results/eval/{run}/best.json", run=RUNS),
        curation="results/data/curation_report.json",
        verification="results/data/verification_report.json",
    output:
        **snakemake_outputs(config, report, caption_dir="../workflow/report"),
    log:
        "logs/report/report_build.log",
    benchmark:
        "benchmarks/report/report_build.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    params:
        **config.get("report", {}),
        # folders from the rule's own files (results/data/curation_report.json, reports/summary.md)
        results=lambda w, input: str(Path(input.curation).parents[1]),
        reports=lambda w, output: str(Path(output.summary_md).parent),
        benchmarks="benchmarks",
    script:
        "../workflow/scripts/report_build.py"
