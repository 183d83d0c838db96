"""Which tables and figures a config produces, and under which file names.

Only the config decides the file list (Snakemake needs it before any result exists); the
builder writes exactly these files, whatever is missing from ``results/``. Importing this
module is cheap (no pandas / matplotlib): ``rules/common.smk`` uses it for ``rule all``.
"""

from __future__ import annotations

from pathlib import Path

from redi.plan import stage2_runs
from redi.train import objectives

TABLE_FORMATS = ("md", "tex", "csv", "html")
FIGURE_FORMATS = ("png", "pdf")

# name -> (title used in captions)
TABLES = {
    "headline": "Headline: stage-2 runs minus their start model and the α=0 control (pass@1, paired intervals)",
    "table1_final": "Table 1: final models, pass@1",
    "table2_ablation": "Table 2: stage-2 ablation, pass@1 at the best checkpoint",
    "table3_passk_ablation": "Table 3: stage-2 ablation, pass@k",
    "table4_passk_final": "Table 4: final models, pass@k",
    "sweep": "Stage-2 sweep: peak and final intermediate accuracy, collapse",
    "curation": "Curation funnel",
    "verification": "Label verification agreement",
    "cost": "Cost: wall time and GPU-hours",
}

# Figure pixel sizes (width, height) at FIGURE_DPI: savefig never crops ("tight" is not used).
FIGURE_DPI = 100
FIGSIZE = {
    "stage2": (12.0, 8.5),
    "headline": (11.0, 4.8),
    "diagnostics": (12.0, 11.0),
    "sft": (6.4, 4.6),
    "passk": (6.4, 4.6),
}

# Report families of stage-2 runs (REDI splits into control α=0, 0<α<1 and symmetric α=1),
# labels and run labels: read from the objective registry, never restated here.
STAGE2_FAMILIES = tuple(key for key, fam in objectives.FAMILIES.items() if objectives.get(fam.objective).pairwise)
FAMILY_LABEL = {key: fam.label for key, fam in objectives.FAMILIES.items()}
family = objectives.family
run_label = objectives.run_label
#: The objective whose runs form the alpha-sweep figure (the paper's method); every other
#: stage-2 family gets its own sweep figure when it has several runs.
SWEEP_OBJECTIVE = "redi"
OWN_SWEEP_FAMILIES = tuple(k for k in STAGE2_FAMILIES if objectives.FAMILIES[k].objective != SWEEP_OBJECTIVE)


def _starts(config: dict) -> list[str]:
    runs = stage2_runs(config)
    main = config.get("training", {}).get("stage2", {}).get("start") or next(
        iter(config.get("training", {}).get("sft", {}).get("runs", {})), None
    )
    starts = [main] if any(r["start"] == main for r in runs.values()) else []
    for run in runs.values():
        if run["start"] not in starts:
            starts.append(run["start"])
    return starts


def stage2_groups(config: dict) -> list[dict]:
    """Stage-2 runs grouped so that compared runs share axes.

    Per start model: the alpha sweep (every REDI run, alpha 0 control included); the objective
    comparison (one run per family, chosen at build time as the family's highest peak
    intermediate accuracy) when two or more families exist; a sweep figure per other family
    (``OWN_SWEEP_FAMILIES``: DPO, SimPO, ...) with several runs (or whose runs appear in no other
    figure).
    """
    runs = stage2_runs(config)
    starts = _starts(config)
    groups = []
    for index, start in enumerate(starts):
        suffix = "" if index == 0 else f"-from-{start}"
        members = [name for name, run in runs.items() if run["start"] == start]
        families: dict[str, list[str]] = {}
        for name in members:
            families.setdefault(family(runs[name]), []).append(name)
        redi = [n for n in members if runs[n]["objective"] == SWEEP_OBJECTIVE]
        if redi:
            groups.append(
                {
                    "name": f"fig_stage2_alpha_sweep{suffix}",
                    "kind": "alpha_sweep",
                    "start": start,
                    "runs": redi,
                    "title": f"REDI alpha sweep (from {start})",
                }
            )
        compare = len(families) >= 2
        if compare:
            groups.append(
                {
                    "name": f"fig_stage2_objectives{suffix}",
                    "kind": "objectives",
                    "start": start,
                    "runs": members,
                    "title": f"Objectives compared, best run of each family (from {start})",
                }
            )
        for fam in OWN_SWEEP_FAMILIES:
            names = families.get(fam, [])
            if len(names) > 1 or (names and not compare):
                groups.append(
                    {
                        "name": f"fig_stage2_{fam}_sweep{suffix}",
                        "kind": f"{fam}_sweep",
                        "start": start,
                        "runs": names,
                        "title": f"{FAMILY_LABEL[fam]} sweep (from {start})",
                    }
                )
    return groups


def figure_names(config: dict) -> dict[str, list[str]]:
    """Figure stems by kind: headline, diagnostics, sft, stage2, passk."""
    final = config.get("evaluation", {}).get("final", {}).get("benchmarks", [])
    return {
        "headline": ["fig_headline"],
        "diagnostics": ["fig_diagnostics"],
        "sft": ["fig2_sft_accuracy"],
        "stage2": [g["name"] for g in stage2_groups(config)],
        "passk": [f"fig_passk_{bench}" for bench in final],
    }


def report_outputs(config: dict, reports: str = "reports") -> dict[str, list[str]]:
    """Every file the report stage writes, by group (keys are rule output names)."""
    root = Path(reports)
    figures = figure_names(config)
    out = {f"tables_{ext}": [str(root / "tables" / f"{name}.{ext}") for name in TABLES] for ext in TABLE_FORMATS}
    for kind, names in figures.items():
        for ext in FIGURE_FORMATS:
            out[f"fig_{kind}_{ext}"] = [str(root / "figures" / f"{name}.{ext}") for name in names]
    out["summary_md"] = [str(root / "summary.md")]
    out["summary_html"] = [str(root / "summary.html")]
    out["samples_html"] = [str(root / "samples.html")]
    return out


def all_report_files(config: dict, reports: str = "reports") -> list[str]:
    return [path for paths in report_outputs(config, reports).values() for path in paths]


# Snakemake report: what each output shows (HTML tables, PNG figures and the summary are
# browsable in `snakemake --report`; markdown, LaTeX, CSV and PDF are plain outputs).
CAPTIONS = {name: f"{name}.rst" for name in TABLES}
CAPTIONS.update(
    {
        "fig_headline": "fig_headline.rst",
        "fig_diagnostics": "fig_diagnostics.rst",
        "fig_sft": "fig_sft.rst",
        "fig_stage2": "fig_stage2.rst",
        "fig_passk": "fig_passk.rst",
        "summary": "summary.rst",
        "samples": "samples.rst",
    }
)
SUBCATEGORY = {
    "headline": "headline",
    "table1_final": "pass@1",
    "table2_ablation": "pass@1",
    "table3_passk_ablation": "pass@k",
    "table4_passk_final": "pass@k",
    "sweep": "stage 2",
    "curation": "data",
    "verification": "data",
    "cost": "cost",
}


def snakemake_outputs(config: dict, report, caption_dir: str, reports: str = "reports") -> dict:
    """Named outputs of the report rule, browsable ones wrapped in Snakemake's ``report()``.

    ``report`` is Snakemake's ``report`` flag function; ``caption_dir`` is the captions' folder
    relative to the rule file. Same files as :func:`report_outputs`, grouped for captions.
    """
    root = Path(reports)
    out: dict = {}
    for name in TABLES:
        for ext in TABLE_FORMATS:
            path = str(root / "tables" / f"{name}.{ext}")
            if ext == "html":
                path = report(
                    path, caption=f"{caption_dir}/{CAPTIONS[name]}", category="Tables", subcategory=SUBCATEGORY[name]
                )
            out[f"{name}_{ext}"] = path
    for kind, names in figure_names(config).items():
        for ext in FIGURE_FORMATS:
            paths = [str(root / "figures" / f"{n}.{ext}") for n in names]
            if not paths:
                continue
            if ext == "png":
                paths = report(
                    paths, caption=f"{caption_dir}/{CAPTIONS['fig_' + kind]}", category="Figures", subcategory=kind
                )
            out[f"fig_{kind}_{ext}"] = paths
    out["summary_md"] = str(root / "summary.md")
    out["summary_html"] = report(
        str(root / "summary.html"), caption=f"{caption_dir}/{CAPTIONS['summary']}", category="Summary"
    )
    out["samples_html"] = report(
        str(root / "samples.html"), caption=f"{caption_dir}/{CAPTIONS['samples']}", category="Samples"
    )
    return out
