"""The report's figures (matplotlib, Agg): PNG for the HTML report and PDF for papers.

* Figures 3-7 of the paper, per group of stage-2 runs that share axes (alpha sweep; objectives
  compared; DPO / SimPO sweeps): intermediate accuracy, chosen and rejected per-token log-prob
  and parameter-update norm, all against the optimizer step.
* Figure 2: intermediate accuracy of each SFT run against the epoch (the student = epoch 0).
* pass@k curves, one figure per final benchmark.

Every figure has a fixed pixel size (``layout.FIGSIZE`` x ``layout.FIGURE_DPI``). A run with
nothing to draw yet is named in the figure's note, not drawn as zeros.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from redi.data.student_negatives import NEGATIVES, negatives_of  # noqa: E402
from redi.eval.benchmarks import display_name  # noqa: E402
from redi.report.collect import REFERENCE_PREFIX, Results, number, peak_and_final  # noqa: E402
from redi.report.layout import (  # noqa: E402
    FAMILY_LABEL,
    FIGSIZE,
    FIGURE_DPI,
    STAGE2_FAMILIES,
    family,
    run_label,
    stage2_groups,
)
from redi.train.collapse import verdict_text  # noqa: E402

PANELS = (
    ("accuracy", "intermediate pass@1 (%)"),
    ("chosen_logp_per_token", "chosen log-prob per token"),
    ("rejected_logp_per_token", "rejected log-prob per token"),
    ("update_norm", "parameter-update norm"),
)


def _figure(kind: str, nrows: int = 1, ncols: int = 1):
    fig, axes = plt.subplots(nrows, ncols, figsize=FIGSIZE[kind], dpi=FIGURE_DPI, squeeze=False, layout="constrained")
    return fig, axes


def _save(fig, directory: Path, name: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = directory / f"{name}.{ext}"
        fig.savefig(path, dpi=FIGURE_DPI, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def _note(fig, lines: list[str]) -> None:
    if lines:
        text = "; ".join(lines)
        if len(text) > 160:
            text = text[:157] + "..."
        fig.text(0.005, 0.002, text, fontsize=7, color="#a00", ha="left", va="bottom")


def _error_bars(metrics: list[dict], problems: list[str], name: str) -> list[float]:
    """SEM error bars in points; a SEM that is n/a (k < 2 samples) gets no bar (NaN), never 0."""
    bars = [100 * s if (s := number(m.get("sem"))) is not None else float("nan") for m in metrics]
    if any(b != b for b in bars):
        problems.append(f"{name}: SEM n/a (k < 2), no error bar")
    return bars


def _peak(results: Results, run: str, bench: str) -> float:
    peak, _ = peak_and_final(results.curve(run, bench))
    return float(peak["metrics"]["pass@1"]) if peak else float("-inf")


def smoothing_window(n_steps: int) -> int:
    """Per-step curves longer than 200 steps are drawn as a centred rolling mean (about 1 % of
    the run) so that trends stay visible; shorter ones are drawn raw."""
    return max(1, n_steps // 100) if n_steps > 200 else 1


def run_colors(names: list[str]) -> dict:
    """Distinct colours for runs (tab10, or tab20 beyond ten runs), in the order given."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def report_colors(results: Results) -> dict:
    """One colour per run for every figure of the report (the same run never changes colour
    between figures): :func:`run_colors` over the stage-2 runs in configured order, then the
    SFT runs and reference models."""
    names = list(results.stage2) + list(results.sft) + [REFERENCE_PREFIX + r["name"] for r in results.reference_models]
    return run_colors(names)


def _n_text(metrics: list[dict]) -> str:
    """``n = 4 samples x 100 problems`` of the evaluations drawn (several values joined)."""
    samples = sorted({int(m["n_samples"]) for m in metrics if m.get("n_samples") is not None})
    problems = sorted({int(m["n_problems"]) for m in metrics if m.get("n_problems") is not None})
    if not samples:
        return ""
    return f"n = {'/'.join(map(str, samples))} samples x {'/'.join(map(str, problems))} problems"


def select_runs(results: Results, group: dict) -> list[str]:
    """The runs drawn for a group: all of them, except the objectives comparison, which takes the
    run with the highest peak intermediate accuracy of each family and negatives source (teacher
    pairs, own negatives: a family is compared on the same pairs; configured order on ties)."""
    if group["kind"] != "objectives":
        return list(group["runs"])
    bench = (results.intermediate_benchmarks or [None])[0]
    chosen = []
    for fam, source in itertools.product(STAGE2_FAMILIES, NEGATIVES):
        members = [
            r for r in group["runs"] if family(results.stage2[r]) == fam and negatives_of(results.stage2[r]) == source
        ]
        if not members:
            continue
        if bench is None:
            chosen.append(members[0])
            continue
        chosen.append(max(members, key=lambda r: (_peak(results, r, bench), -members.index(r))))
    return chosen


def stage2_figure(results: Results, group: dict, directory: Path) -> list[Path]:
    fig, axes = _figure("stage2", 2, 2)
    axes = axes.ravel()
    runs = select_runs(results, group)
    bench = (results.intermediate_benchmarks or [None])[0]
    problems = []
    longest = max((len(results.train_metrics[n]) for n in runs if results.train_metrics.get(n) is not None), default=0)
    window = smoothing_window(longest)
    colors = report_colors(results)
    drawn_metrics = []
    for name in runs:
        spec = results.stage2[name]
        color = colors[name]
        label = run_label(spec)
        if group["kind"] == "objectives":
            label = f"{FAMILY_LABEL[family(spec)]}: {label}"
        style = "--" if family(spec) == "control" else "-"
        drew = False
        if bench is not None:
            drew = _draw_stage2_accuracy(axes[0], results, name, bench, (color, style, label), problems, drawn_metrics)
        drew = _draw_stage2_training(axes, results, name, (color, style, label), window, drew, problems)
        if not drew:
            axes[0].plot([], [], color=color, ls=style, label=f"{label} (no results yet)")
    _label_stage2_axes(axes, results, bench, window, drawn_metrics)
    handles, labels = _stage2_legend_entries(axes)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(
        group["title"] + " — step 0 = start model; dotted line = that run's collapse verdict step", fontsize=11
    )
    _note(fig, problems)
    return _save(fig, directory, group["name"])


def _draw_stage2_accuracy(ax, results: Results, name: str, bench: str, look: tuple, problems: list[str],
                          drawn_metrics: list[dict]) -> bool:
    """A run's intermediate accuracy with SEM bars (``look``: colour, line style, label); True when drawn."""
    color, style, label = look
    drew = False
    points = [p for p in results.curve(name, bench) if p["metrics"] is not None]
    if any(p["step"] for p in points):  # the start point alone says nothing about this run
        steps = [p["step"] for p in points]
        acc = [100 * float(p["metrics"]["pass@1"]) for p in points]
        sem = _error_bars([p["metrics"] for p in points], problems, name)
        drawn_metrics += [p["metrics"] for p in points]
        ax.errorbar(steps, acc, yerr=sem, color=color, ls=style, marker="o", ms=3, capsize=2, label=label)
        drew = True
    missing = [p["ckpt"] for p in results.curve(name, bench) if p["metrics"] is None]
    if missing:
        problems.append(f"{name}: {len(missing)} checkpoint eval(s) missing")
    return drew


def _draw_stage2_training(axes, results: Results, name: str, look: tuple, window: int, drew: bool,
                          problems: list[str]) -> bool:
    """A run's per-step training curves and its collapse verdict step; True when anything of the run is drawn."""
    color, style, label = look
    frame = results.train_metrics.get(name)
    found = results.collapse_assessment(name)
    if frame is not None and len(frame) and "step" in frame:
        for ax, (column, _) in zip(axes[1:], PANELS[1:]):
            if column == "chosen_logp_per_token" and found is not None and found.chosen_series:
                # the series and threshold the collapse verdict reads (raw values faint)
                ax.plot(frame["step"], frame[column].astype(float), color=color, lw=0.6, alpha=0.25)
                xs, ys = zip(*found.chosen_series)
                ax.plot(xs, ys, color=color, ls=style, lw=1.4, label=label if not drew else None)
                ax.axhline(found.chosen_bar, color=color, ls="-.", lw=0.8)
                drew = True
            elif column in frame and frame[column].notna().any():
                values = frame[column].astype(float)
                if window > 1:
                    values = values.rolling(window, min_periods=1, center=True).mean()
                ax.plot(frame["step"], values, color=color, ls=style, lw=1.2, label=label if not drew else None)
                drew = True
        if found is not None and found.verdict in ("collapsed", "suspect") and found.step is not None:
            for ax in axes:
                ax.axvline(found.step, color=color, ls=":", lw=1)
            axes[0].annotate(
                f"{name}: {verdict_text(found)}", (found.step, 1.0), xycoords=("data", "axes fraction"),
                rotation=90, va="top", ha="right", fontsize=6, color=color,
            )  # fmt: skip
    else:
        problems.append(f"{name}: no metrics.jsonl")
    return drew


def _label_stage2_axes(axes, results: Results, bench: str | None, window: int, drawn_metrics: list[dict]) -> None:
    """Axis labels and grids of the four panels, with the benchmark and sample counts on the accuracy panel."""
    for index, (ax, (_, ylabel)) in enumerate(zip(axes, PANELS)):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel + (f"\n(centred mean of {window} steps)" if index and window > 1 else ""))
        ax.grid(alpha=0.3)
    if bench is not None:
        n_text = _n_text(drawn_metrics)
        axes[0].set_ylabel(f"{display_name(results.config, bench)} pass@1 (%)" + (f"\n{n_text}" if n_text else ""))
        axes[0].set_title("error bars: ± the paper's SEM (spread over sample indices)", fontsize=8)
    axes[1].set_ylabel(
        "chosen log-prob per token\n(bold: running median of the collapse rule; -.: its threshold)", fontsize=8
    )


def _stage2_legend_entries(axes) -> tuple[list, list[str]]:
    """Legend handles and labels of the accuracy panel, then any label only another panel has."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    return handles, labels


def sft_figure(results: Results, directory: Path) -> list[Path]:
    """Figure 2: intermediate accuracy against epoch, the untrained student at epoch 0."""
    fig, axes = _figure("sft")
    ax = axes[0, 0]
    problems = []
    benches = results.intermediate_benchmarks
    colors = report_colors(results)
    for bench in benches:
        base = results.eval("student", "base", bench)
        for name in results.sft:
            points = []
            if base is not None:
                points.append((0.0, base))
            else:
                problems.append(f"student/base/{bench} missing")
            spe = results.steps_per_epoch(name)
            for point in results.intermediate(name, bench):
                if point["metrics"] is None:
                    problems.append(f"{name}/{point['ckpt']} missing")
                    continue
                if spe:
                    points.append((point["step"] / spe, point["metrics"]))
            label = name if len(benches) == 1 else f"{name} ({display_name(results.config, bench)})"
            if points:
                xs = [p[0] for p in points]
                ys = [100 * float(p[1]["pass@1"]) for p in points]
                es = _error_bars([p[1] for p in points], problems, name)
                color = colors.get(name) if len(benches) == 1 else None
                ax.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=3, label=label, color=color)
            else:
                ax.plot([], [], label=f"{label} (no results yet)")
            if spe is None and results.intermediate(name, bench):
                problems.append(f"{name}: steps per epoch unknown (no summary.json)")
    ax.set_xlabel("epoch (0 = untrained student)")
    bench_names = ", ".join(display_name(results.config, b) for b in benches)
    drawn = [p["metrics"] for b in benches for n in results.sft for p in results.intermediate(n, b) if p["metrics"]]
    n_text = _n_text(drawn)
    ax.set_ylabel(f"{bench_names} pass@1 (%)" + (f"\n{n_text}; bars: ± the paper's SEM" if n_text else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Figure 2: SFT accuracy against epoch", fontsize=11)
    _note(fig, sorted(set(problems)))
    return _save(fig, directory, "fig2_sft_accuracy")


def passk_models(results: Results) -> list[tuple[str, str, str]]:
    """(label, run, ckpt): reference models, then every run at its reported checkpoint."""
    models = [
        (ref.get("hub_name") or ref["name"], REFERENCE_PREFIX + ref["name"], "final")
        for ref in results.reference_models
    ]
    for name in results.runs:
        ckpt = results.reported_checkpoint(name)
        models.append((f"{name} ({ckpt})", name, ckpt))
    return models


def passk_figure(results: Results, bench: str, directory: Path) -> list[Path]:
    fig, axes = _figure("passk")
    ax = axes[0, 0]
    problems = []
    ks_all = set()
    colors = report_colors(results)
    for label, run, ckpt in passk_models(results):
        metrics = results.eval(run, ckpt, bench)
        if not metrics or not metrics.get("pass@k"):
            problems.append(f"{run}/{ckpt} missing")
            continue
        curve_ = sorted((int(k), float(v)) for k, v in metrics["pass@k"].items() if number(v) is not None)
        ks_all |= {k for k, _ in curve_}
        xs, ys = [k for k, _ in curve_], [100 * v for _, v in curve_]
        ax.plot(xs, ys, marker="o", ms=3, label=label, color=colors.get(run))
    ax.set_xscale("log", base=2)
    if ks_all:
        ticks = [k for k in sorted(ks_all) if k & (k - 1) == 0 or k == max(ks_all)]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("k (samples)")
    n_text = _n_text([m for _l, r, c in passk_models(results) if (m := results.eval(r, c, bench))])
    ax.set_ylabel("pass@k (%), unbiased estimator" + (f"\n{n_text}" if n_text else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncols=2 if len(ax.get_legend_handles_labels()[0]) > 8 else 1)
    ax.set_title(f"pass@k on {display_name(results.config, bench)}", fontsize=11)
    _note(fig, problems)
    return _save(fig, directory, f"fig_passk_{bench}")


def headline_figure(results: Results, directory: Path) -> list[Path]:
    """Each stage-2 run's final pass@1 minus its start (left) and minus the alpha = 0 control
    (right), in points, with ± k paired-SE bars (:mod:`redi.report.headline`)."""
    from redi.report.headline import headline_rows

    fig, axes = _figure("headline", 1, 2)
    rows = headline_rows(results)[::-1]  # largest difference on top
    colors = report_colors(results)
    k = results.settings.significance_sems
    problems = []
    controls = sorted({r.control for r in rows if r.control})
    control_title = controls[0] if len(controls) == 1 else "trained with the run's settings"
    for ax, key, title in (
        (axes[0, 0], "vs_start", f"minus the start model {results.stage2_start}"),
        (axes[0, 1], "vs_control", f"minus the α=0 control {control_title if controls else '(none)'}"),
    ):
        for y, row in enumerate(rows):
            paired = getattr(row, key)
            if paired is None:
                if key == "vs_control" and row.is_control:
                    ax.annotate("(a control)", (0, y), ha="center", va="center", fontsize=8, color="#555")
                else:
                    problems.append(f"{row.run}: {key.replace('_', ' ')} n/a")
                continue
            diff, half = 100 * paired["diff"], 100 * (paired["high"] - paired["diff"])
            ax.errorbar([diff], [y], xerr=[half], color=colors.get(row.run), marker="o", ms=5, capsize=3)
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_yticks(range(len(rows)), [f"{r.run} ({r.ckpt})" for r in rows], fontsize=8)
        ax.set_xlabel(f"Δ pass@1 (points), ± {k:g} paired SEs (≈ 95 %)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    final = results.evaluation.get("final", {})
    benches = ", ".join(display_name(results.config, b) for b in results.final_benchmarks)
    fig.suptitle(
        f"Stage 2 against its start and the control: {benches}, {final.get('n_samples')} samples per problem "
        "(per-problem paired differences)",
        fontsize=11,
    )
    if not rows:
        problems.append("no stage-2 runs")
    _note(fig, problems)
    return _save(fig, directory, "fig_headline")


def diagnostics_figure(results: Results, directory: Path) -> list[Path]:
    """Preference and length diagnostics of the stage-2 runs.

    Per optimizer step (``metrics.jsonl``; running median over the collapse rule's span): the
    margin (chosen minus rejected per-token log-prob, the trainer's ``margin``), the preference
    accuracy (share of a step's pairs whose chosen trace has the higher per-token log-prob,
    ``pref_accuracy``; dashed: the reference-model objectives' implicit-reward accuracy,
    ``reward_accuracy``, TRL's DPO ``rewards/accuracies``) and the implicit-reward margin in nats
    (``reward_margin``, reference-model objectives only). Per evaluated checkpoint (step 0 = the
    start; ``metrics.json``): the mean response length, the truncated share and the no-answer
    share of the samples."""
    from redi.train.collapse import CollapseRule, running_median

    fig, axes = _figure("diagnostics", 3, 2)
    axes = axes.ravel()
    colors = report_colors(results)
    bench = (results.intermediate_benchmarks or [None])[0]
    span = CollapseRule().span
    problems, drawn = [], []

    def per_step(ax, frame, key, **style) -> bool:
        if frame is None or key not in frame or not frame[key].notna().any():
            return False
        values = running_median(frame[key].astype(float).tolist(), span)
        ax.plot(frame["step"], [100 * v for v in values] if key.endswith("accuracy") else values, **style)
        return True

    for name in results.stage2:
        color = colors[name]
        frame = results.train_metrics.get(name)
        if not per_step(axes[0], frame, "margin", color=color, lw=1.2, label=name):
            problems.append(f"{name}: no margin")
        elif not per_step(axes[1], frame, "pref_accuracy", color=color, lw=1.2):
            problems.append(f"{name}: no preference accuracy (trained before it was logged)")
        per_step(axes[1], frame, "reward_accuracy", color=color, lw=1.0, ls="--")
        per_step(axes[2], frame, "reward_margin", color=color, lw=1.2)
        if bench is None:
            continue
        points = [p for p in results.curve(name, bench) if p["metrics"] is not None]
        drawn += [p["metrics"] for p in points]
        steps = [p["step"] for p in points]
        total = [max(1, int(p["metrics"].get("n_problems") or 0) * int(p["metrics"].get("n_samples") or 0))
                 for p in points]  # fmt: skip
        for ax, key, scale in (
            (axes[3], "mean_length", None), (axes[4], "truncated", total), (axes[5], "no_answer", total)
        ):  # fmt: skip
            values = [number(p["metrics"].get(key)) for p in points]
            if scale is not None:
                values = [None if v is None else 100 * v / n for v, n in zip(values, scale)]
            ax.plot(steps, [float("nan") if v is None else v for v in values], color=color, marker="o", ms=3)
    titles = (
        f"margin: chosen - rejected log-prob per token (running median, {span} steps)",
        "pairs ranked right (%): chosen > rejected log-prob/token; dashed: vs reference",
        "implicit-reward margin vs the reference model (nats; DPO-like objectives only)",
        "mean response length (tokens)",
        "truncated samples (%)",
        "samples without an answer (%)",
    )
    for i, (ax, title) in enumerate(zip(axes, titles)):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step" + ("" if i < 3 else " (0 = start model)"))
        ax.grid(alpha=0.3)
    axes[1].axhline(50, color="0.5", lw=0.8, ls=":")
    n_text = _n_text(drawn)
    if bench is not None and n_text:
        axes[3].set_ylabel(f"{display_name(results.config, bench)}, {n_text}", fontsize=8)
    if axes[0].get_legend_handles_labels()[0]:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8,
                   frameon=False)  # fmt: skip
    fig.suptitle("Stage 2: preference and response-length diagnostics", fontsize=11)
    _note(fig, problems)
    return _save(fig, directory, "fig_diagnostics")


def build_figures(results: Results, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    paths = headline_figure(results, directory)
    paths += diagnostics_figure(results, directory)
    paths += sft_figure(results, directory)
    for group in stage2_groups(results.config):
        paths += stage2_figure(results, group, directory)
    for bench in results.final_benchmarks:
        paths += passk_figure(results, bench, directory)
    return paths
