"""The benchmark suite's one entry point.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...] [--out bench/results] [--pipeline]

Detects the hardware and library versions, runs the benchmarks that fit the machine (CPU ones
always, GPU ones where ``torch.cuda.is_available()``), and writes
``<out>/<YYYY-MM-DD>-<host>.json`` (hardware, versions, load averages, every figure, the goals and
pass/fail against them) and ``<out>/<YYYY-MM-DD>-<host>.md`` (a summary). An existing file of the
same date and host is updated: sections run now replace the earlier ones, the others are kept.
Results are written after every section (and every GPU item), so an interrupted run keeps what it
measured. The ``gpu`` section is ``bench/gpu_check.py`` with its extended items.

Sections (``--only``): ``logprobs``, ``trl_head``, ``trainers``, ``verify``, ``generate``,
``data_scale`` (CPU), ``gpu``,
``pipeline`` (the default CPU demo's wall time; only with ``--pipeline`` or ``--only pipeline``).
See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import benchlib  # noqa: E402

CPU_SECTIONS = ("logprobs", "trl_head", "trainers", "verify", "generate", "data_scale")
SECTIONS = CPU_SECTIONS + ("gpu", "pipeline")
SCHEMA = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# goals


def _goal(name, goal, status, measured=None, value=None, target=None, note=None):
    return {
        "name": name,
        "goal": goal,
        "status": status,
        "measured": measured,
        "value": value,
        "target": target,
        "note": note,
    }


def evaluate_goals(doc: dict) -> list[dict]:
    sec = {k: v.get("result") or {} for k, v in doc.get("sections", {}).items()}
    goals = [_logprob_memory_goal(sec), _trl_head_goal(sec), _data_scale_goal(sec), _sft_step_goal(sec)]
    items, cmp_, card = _gpu_figures(sec)
    goals.append(_redi_vs_trl_dpo_goal(cmp_, card))
    goals.append(_mfu_goal(items, card))
    goals.append(_longest_pair_goal(doc, items, card))
    goals.append(_cpu_demo_goal(sec))
    return goals


def _logprob_memory_goal(sec: dict) -> dict:
    """Goal 1: chunked log-prob memory."""
    import bench_logprobs

    lp = sec.get("logprobs")
    if lp and "summary" in lp:
        g = bench_logprobs.goal(lp)
        return _goal(
            "logprob_memory_cpu",
            g["goal"],
            g["status"],
            g.get("measured"),
            g.get("value"),
            0.25,
            g.get("flatness") or g.get("note"),
        )
    return _goal(
        "logprob_memory_cpu",
        "chunked log-prob peak memory at 8k <= 25% of naive; flat beyond one chunk",
        "not_measured",
    )


def _trl_head_goal(sec: dict) -> dict:
    """Goal 1b: the log-prob head vs TRL's fused head (a regression guard)."""
    th = sec.get("trl_head")
    if th and th.get("summary"):
        rows = th["summary"]
        return _goal(
            "logprob_head_vs_trl_cpu",
            "our log-prob head + REDI loss at most TRL DPOTrainer's fused head in peak memory and step time",
            "met" if th.get("guard_holds") else "missed",
            "; ".join(
                f"{r['response_tokens']}: peak {_fmt(r['peak_ratio_ours_over_trl'], 3)}x, "
                f"time {_fmt(r['time_ratio_ours_over_trl'], 3)}x"
                + (
                    f" (TRL not run: predicted {r['trl_predicted_peak_rss_gib']} GiB, ours "
                    f"{_fmt(r.get('peak_ratio_ours_over_trl_predicted'), 3)}x of that)"
                    if r.get("trl_predicted_peak_rss_gib") is not None
                    else ""
                )
                for r in rows
            ),
            max((r["peak_ratio_ours_over_trl"] or 0) for r in rows),
            1.0,
        )
    return _goal(
        "logprob_head_vs_trl_cpu",
        "our log-prob head + REDI loss at most TRL DPOTrainer's fused head in peak memory and step time",
        "not_measured",
    )


def _data_scale_goal(sec: dict) -> dict:
    """Goal 1c: the data stage at the corpus' scale."""
    import bench_data_scale

    g = bench_data_scale.goal(sec.get("data_scale") or {})
    return _goal("data_stage_scale", g["goal"], g["status"], g.get("measured"), g.get("value"), 30)


def _sft_step_goal(sec: dict) -> dict:
    """Goal 2: SFT step on CPU vs TRL."""
    tr = (sec.get("trainers") or {}).get("comparisons") or {}
    sft = tr.get("sft")
    if sft and sft.get("ratio_ours_over_trl") is not None:
        r = sft["ratio_ours_over_trl"]
        return _goal(
            "sft_step_cpu_vs_trl",
            "our SFT step at least as fast as TRL's SFTTrainer on CPU",
            "met" if r >= 1.0 else "missed",
            f"{sft['ours_tokens_per_s_median']} vs {sft['trl_tokens_per_s_median']} tokens/s "
            f"= {r:.2f}x (median of per-repeat ratios {sft['ratio_per_repeat']})",
            r,
            1.0,
        )
    return _goal("sft_step_cpu_vs_trl", "our SFT step at least as fast as TRL's SFTTrainer on CPU", "not_measured")


def _gpu_figures(sec: dict) -> tuple[dict, dict, str | None]:
    """The GPU section's items, comparisons and card name (none for a run on the CPU or a failed longest search)."""
    gpu = sec.get("gpu") or {}
    if gpu.get("smoke") or gpu.get("simulate"):  # the GPU code path exercised on a CPU: no GPU figures
        gpu = {}
    items = gpu.get("items") or {}
    cmp_ = gpu.get("comparisons") or {}
    card = ((items.get("matmul") or {}).get("device")) or None
    if (items.get("longest/redi") or {}).get("status") != "ran":
        items = {k: v for k, v in items.items() if k != "longest/redi"}
    return items, cmp_, card


def _redi_vs_trl_dpo_goal(cmp_: dict, card: str | None) -> dict:
    """Goal 3: REDI step vs TRL DPO on GPU."""
    key = "8192/redi_vs_trl_dpo_precomputed"
    if key in cmp_:
        r = cmp_[key]
        ref = cmp_.get("8192/redi_vs_trl_dpo_ref_model")
        return _goal(
            "redi_step_gpu_vs_trl_dpo",
            ">= 1.3x TRL's DPOTrainer for the REDI step on GPU (8k)",
            "met" if r >= 1.3 else "missed",
            f"{r:.2f}x DPOTrainer with precomputed reference log-probs"
            + (f"; {ref:.2f}x DPOTrainer with a reference model" if ref else "")
            + f" on {card}",
            r,
            1.3,
        )
    return _goal(
        "redi_step_gpu_vs_trl_dpo",
        ">= 1.3x TRL's DPOTrainer for the REDI step on GPU",
        "not_measured",
        note="needs a CUDA device",
    )


def _mfu_goal(items: dict, card: str | None) -> dict:
    """Goal 4: MFU at 8k on an H100."""
    st = items.get("steps/8192/redi") or {}
    mfu = st.get("mfu_vs_datasheet")
    if mfu is not None:
        is_h100 = card is not None and "H100" in card
        return _goal(
            "redi_step_mfu_8k_h100",
            "REDI step at 8k on an H100 at >= 40% MFU",
            ("met" if mfu >= 0.40 else "missed") if is_h100 else "not_measured",
            f"{mfu:.1%} of the datasheet peak, {_fmt(st.get('mfu_vs_measured_matmul'), 3)} of "
            f"the measured matmul rate, on {card}",
            mfu,
            0.40,
            None if is_h100 else "measured on a card that is not an H100",
        )
    return _goal(
        "redi_step_mfu_8k_h100",
        "REDI step at 8k on an H100 at >= 40% MFU",
        "not_measured",
        note="needs a CUDA device",
    )


def _longest_pair_goal(doc: dict, items: dict, card: str | None) -> dict:
    """Goal 5: 2 x 19k pair on one 80 GB card."""
    lg = items.get("longest/redi") or {}
    if lg.get("probes"):
        best = lg.get("longest_fitting_response_tokens")
        mem = ((doc.get("hardware") or {}).get("gpus") or [{}])[0].get("memory_gib")
        return _goal(
            "pair_2x19k_one_card",
            "a pair of 2 x 19k response tokens trains on one 80 GB card",
            "met" if best and best >= 19000 else "missed",
            f"longest pair that trains: 2 x {best} response tokens (search limit "
            f"{lg.get('search_limit')}) on {card} ({mem} GiB)",
            best,
            19000,
        )
    return _goal(
        "pair_2x19k_one_card",
        "a pair of 2 x 19k response tokens trains on one 80 GB card",
        "not_measured",
        note="needs a CUDA device",
    )


def _cpu_demo_goal(sec: dict) -> dict:
    """Goal 6: CPU demo wall time."""
    pl = sec.get("pipeline")
    if pl and pl.get("wall_s") is not None:
        ok = pl.get("returncode") == 0
        return _goal(
            "cpu_demo_wall",
            "default CPU demo under 10 minutes wall on 2 cores",
            ("met" if pl["wall_s"] < 600 else "missed") if ok else "missed",
            f"{pl['wall_s']:.0f} s wall with --cores {pl.get('cores')}"
            + ("" if ok else f" (snakemake failed: rc {pl.get('returncode')})"),
            pl["wall_s"],
            600,
        )
    return _goal(
        "cpu_demo_wall",
        "default CPU demo under 10 minutes wall on 2 cores",
        "not_measured",
        note="run with --pipeline (takes ~10 min and all cores)",
    )


# ---------------------------------------------------------------------------------------------
# markdown


def _fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def render_md(doc: dict) -> str:
    L = _md_machine(doc) + _md_goals(doc)
    sec = doc.get("sections", {})
    L += _md_logprobs(sec)
    L += _md_trl_head(sec)
    L += _md_data_scale(sec)
    L += _md_trainers(sec)
    L += _md_verify(sec)
    L += _md_generate(sec)
    L += _md_gpu(doc, sec)
    L += _md_pipeline(sec)
    errors = [(k, s.get("error")) for k, s in sec.items() if s.get("error")]
    if errors:
        L += ["", "## Errors", ""] + [f"- {k}: {e}" for k, e in errors]
    return "\n".join(L) + "\n"


def _md_machine(doc: dict) -> list[str]:
    """The title, how the record was made, and the machine, versions and sections run."""
    hw, v = doc["hardware"], doc["versions"]
    L = [f"# Benchmarks {doc['date']} on {doc['host']}", ""]
    L.append(
        f"Generated by `bench/run.py` ({'quick' if doc.get('quick') else 'full'}); raw figures in "
        f"`{doc['date']}-{doc['host']}.json`. Every comparison is a ratio measured side by side in one run "
        "(variants interleaved, median of repeats)."
    )
    L += ["", "## Machine", ""]
    gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in hw.get("gpus", [])) or "none"
    L.append(
        f"- CPU: {hw['cpu_model']}, {hw['cpu_usable']} usable cores ({hw['cpu_logical']} logical), "
        f"{hw['memory_gib']} GiB RAM; GPU: {gpus}"
    )
    L.append("- " + ", ".join(f"{k} {val}" for k, val in v.items() if val and k not in ("vllm_env",)))
    for name, s in doc.get("sections", {}).items():
        L.append(
            f"- `{name}`: ran {s.get('ran_at')} for {s.get('seconds')} s, load average "
            f"{s.get('load_average_start')} -> {s.get('load_average_end')}"
            + (" (quick)" if s.get("quick") else "")
            + (f"; note: {s['note']}" if s.get("note") else "")
        )
    return L


def _md_goals(doc: dict) -> list[str]:
    """The goals table, then the notes of goals that have a measurement."""
    L = ["", "## Goals", "", "| goal | status | measured |", "|---|---|---|"]
    for g in doc.get("goals", []):
        m = (g.get("measured") or g.get("note") or "").replace("|", "/")
        L.append(f"| {g['goal']} | **{g['status']}** | {m} |")
    for g in doc.get("goals", []):
        if g.get("note") and g.get("measured"):
            L.append(f"\n- {g['name']}: {g['note']}")
    return L


def _md_logprobs(sec: dict) -> list[str]:
    """Section 1: log-prob memory and time (CPU); nothing when it did not run."""
    L = []
    lp = (sec.get("logprobs") or {}).get("result") or {}
    if lp.get("summary"):
        m = lp["model"]
        L += [
            "",
            "## 1. Log-prob memory and time (CPU)",
            "",
            f"REDI loss forward+backward on one pair, vocab {m['vocab']:,}, hidden {m['hidden']}, "
            f"{m['layers']} layer, {m['dtype']}, prompt {m['prompt_tokens']} tokens, chunk {lp['chunk_size']}, "
            f"{lp['threads']} thread(s), {lp['repeats']} repeat(s); peak = process peak RSS.",
            "",
            "| response tokens | chunked peak GiB | naive peak GiB | chunked / naive | chunked s | naive s | "
            "speed-up | fp32 logits GiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in lp["summary"]:
            naive = (
                _fmt(r["naive_peak_rss_gib"])
                if r["naive_measured"]
                else f"not run (predicted {_fmt(r.get('naive_predicted_peak_rss_gib'), 1)})"
            )
            L.append(
                f"| {r['response_tokens']:,} | {_fmt(r['chunked_peak_rss_gib'])} | {naive} | "
                f"{_fmt(r.get('peak_ratio_chunked_over_naive'), 3)} | {_fmt(r['chunked_seconds'])} | "
                f"{_fmt(r['naive_seconds'])} | {_fmt(r.get('speedup_chunked_over_naive'))} | "
                f"{_fmt(r['fp32_logits_gib'])} |"
            )
    return L


def _md_trl_head(sec: dict) -> list[str]:
    """Section 1b: the log-prob head vs TRL's fused head (CPU); nothing when it did not run."""
    L = []
    th = (sec.get("trl_head") or {}).get("result") or {}
    if th.get("summary"):
        L += ["", "## 1b. Log-prob head vs TRL's fused head (CPU; regression guard)", "", th["benchmark"] + f"; "
              f"{th['threads']} threads, {th['repeats']} interleaved repeat(s), fresh processes; peak = process "
              "peak RSS; step = that peak minus the RSS before the step.", "",
              "| response tokens | ours peak GiB | TRL peak GiB | peak ours / TRL | step peak ours / TRL | ours s | "
              "TRL s | time ours / TRL |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in th["summary"]:
            trl_peak, peak_ratio = _fmt(r["trl_peak_rss_gib"]), f"**{_fmt(r['peak_ratio_ours_over_trl'], 3)}**"
            if r.get("trl_predicted_peak_rss_gib") is not None:
                trl_peak = f"not run (predicted {_fmt(r['trl_predicted_peak_rss_gib'])} > limit {r['limit_gib']})"
                peak_ratio = f"{_fmt(r.get('peak_ratio_ours_over_trl_predicted'), 3)} (vs predicted)"
            L.append(
                f"| {r['response_tokens']:,} | {_fmt(r['ours_peak_rss_gib'])} | {trl_peak} | {peak_ratio} | "
                f"{_fmt(r['step_peak_ratio_ours_over_trl'], 3)} | {_fmt(r['ours_seconds'])} | {_fmt(r['trl_seconds'])} "
                f"| **{_fmt(r['time_ratio_ours_over_trl'], 3)}** |"
            )
        L.append(f"\nGuard ({th['guard']}): {'holds' if th.get('guard_holds') else 'BROKEN'}.")
    return L


def _md_data_scale(sec: dict) -> list[str]:
    """The data stage at OpenR1-Math-Raw's scale (CPU); nothing when it did not run."""
    ds = (sec.get("data_scale") or {}).get("result") or {}
    if ds.get("scales"):
        import bench_data_scale

        return ["", "## Data stage at OpenR1-Math-Raw's scale (CPU)", ""] + bench_data_scale.render_md(ds)
    return []


def _md_trainers(sec: dict) -> list[str]:
    """Section 2: trainer step throughput against TRL (CPU); nothing when it did not run."""
    L = []
    tr = (sec.get("trainers") or {}).get("result") or {}
    if tr.get("comparisons"):
        st = tr["settings"]
        L += [
            "",
            "## 2. Trainer step throughput, tiny student (CPU)",
            "",
            f"Tiny student ({st['student']['parameters']:,} parameters, vocabulary {st['student']['vocab_size']}), "
            f"{tr['threads']} torch thread, fp32, micro-batch {st['per_device_batch_size']}, SFT global batch "
            f"{st['sft']['global_batch_size']}, pairs global batch {st['pairs']['global_batch_size']}; steps "
            f"{tr['warmup_steps'] + 1}..{tr['steps']} timed, {tr['repeats']} interleaved repeats; tokens = "
            "non-padding tokens through the policy.",
            "",
            "| comparison | ours tokens/s | TRL tokens/s | ours / TRL | per repeat | padding ours / TRL "
            "| ours / TRL per computed position (padding included) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in tr["comparisons"].items():
            padded = benchlib.ratio(c.get("ours_padded_tokens_per_s_median"), c.get("trl_padded_tokens_per_s_median"))
            L.append(
                f"| {name} ({c['ours']} vs {c['trl']}) | {_fmt(c['ours_tokens_per_s_median'], 0)} | "
                f"{_fmt(c['trl_tokens_per_s_median'], 0)} | **{_fmt(c['ratio_ours_over_trl'])}** | "
                f"{c['ratio_per_repeat']} | {_fmt(c['ours_padding_fraction'], 3)} / "
                f"{_fmt(c['trl_padding_fraction'], 3)} | {_fmt(padded)} |"
            )
    return L


def _md_verify(sec: dict) -> list[str]:
    """Section 3: verification throughput (CPU); nothing when it did not run."""
    L = []
    vf = (sec.get("verify") or {}).get("result") or {}
    if vf.get("corpus"):
        L += [
            "",
            "## 3. Verification throughput (CPU)",
            "",
            vf.get("note", ""),
            "",
            "| items | variant | items/s | vs plain loop | agrees with plain loop |",
            "|---|---|---|---|---|",
        ]
        for which in ("corpus", "distinct"):
            for name, r in (vf.get(which) or {}).get("variants", {}).items():
                L.append(
                    f"| {which} ({vf[which]['items']}) | {name} | {_fmt(r['items_per_s'], 0)} | "
                    f"{_fmt(r['speedup_vs_plain_loop'])} | {_fmt(r['agrees_with_plain_loop'], 4)} |"
                )
    return L


def _md_generate(sec: dict) -> list[str]:
    """Section 4: generation throughput of the transformers backend (CPU); nothing when it did not run."""
    L = []
    ge = (sec.get("generate") or {}).get("result") or {}
    if ge.get("settings"):
        L += [
            "",
            "## 4. Generation throughput, transformers backend, tiny student (CPU)",
            "",
            f"{ge['prompts']} prompts x {ge['samples_per_prompt']} samples x {ge['max_new_tokens']} new tokens.",
            "",
            "| setting | generated tokens/s | all repeats |",
            "|---|---|---|",
        ]
        for name, r in ge["settings"].items():
            L.append(f"| {name} | {_fmt(r['tokens_per_s_median'], 0)} | {r['tokens_per_s_all']} |")
    return L


def _md_gpu(doc: dict, sec: dict) -> list[str]:
    """Sections 5-7: gpu_check's extended report, or why the GPU section has no figures."""
    gp = (sec.get("gpu") or {}).get("result") or {}
    if gp.get("items"):
        import gpu_check

        body = gpu_check.render_md(dict(gp, date=doc.get("date"), host=doc.get("host"))).splitlines()[1:]
        return ["", "## 5-7. GPU (bench/gpu_check.py, extended)", *body]
    if sec.get("gpu"):
        return ["", "## 5-7. GPU", "", (sec["gpu"].get("result") or {}).get("skipped", "not run")]
    return []


def _md_pipeline(sec: dict) -> list[str]:
    """The default CPU demo's wall time and per-stage job figures; nothing when it did not run."""
    L = []
    pl = (sec.get("pipeline") or {}).get("result") or {}
    if pl.get("wall_s") is not None:
        L += [
            "",
            "## Default CPU demo (snakemake)",
            "",
            f"`{pl['command']}`: **{pl['wall_s']} s** wall, {pl['jobs']} jobs, return code {pl['returncode']}.",
            "",
            "| stage | jobs | sum of job wall s | sum of job CPU s | max RSS MB |",
            "|---|---|---|---|---|",
        ]
        for name, s in pl.get("stages", {}).items():
            L.append(f"| {name} | {s['jobs']} | {s['wall_s']} | {s['cpu_s']} | {s['max_rss_mb']} |")
    return L


# ---------------------------------------------------------------------------------------------
# main


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", os.uname().nodename or "host").strip("-") or "host"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return benchlib.worker_main(argv[1], argv[2])
    args = _parse_args(argv)

    import torch

    cuda = torch.cuda.is_available()
    repeats = args.repeats or (1 if args.quick else 3)
    out_dir = Path(args.out) if args.out else benchlib.BENCH_DIR / "results" / ("quick" if args.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    date, host = datetime.date.today().isoformat(), _host()
    json_path, md_path = out_dir / f"{date}-{host}.json", out_dir / f"{date}-{host}.md"
    selected = _selected_sections(args, cuda)
    doc = _open_record(json_path, args, argv, date, host)

    def save():
        doc["goals"] = evaluate_goals(doc)
        doc["load_average"]["end"] = benchlib.loadavg()
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        os.replace(tmp, json_path)
        md_path.write_text(render_md(doc))

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="redi-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(
        f"host {host}, {doc['hardware']['cpu_model']}, {doc['hardware']['cpu_usable']} cores, "
        f"{'GPU ' + doc['hardware']['gpus'][0]['name'] if cuda else 'no GPU'}; sections: {', '.join(selected)}; "
        f"repeats {repeats}; load average {doc['load_average']['start']}; results -> {json_path}"
    )
    failed = False
    try:
        for name in selected:
            entry = _section_entry(doc, args, repeats)
            t0 = time.time()
            log(f"== {name}")
            try:
                _run_section(name, entry, doc, args, repeats, cuda, workdir, save)
            except Exception as exc:  # noqa: BLE001 - record and go on with the other sections
                import traceback

                failed = True
                entry["error"] = f"{type(exc).__name__}: {exc}"
                entry["traceback"] = traceback.format_exc()[-3000:]
                log(f"   {name} failed: {entry['error']}")
            entry["seconds"] = round(time.time() - t0, 1)
            entry["load_average_end"] = benchlib.loadavg()
            doc["sections"][name] = entry
            save()
            log(f"   {name} done in {entry['seconds']} s")
    finally:
        save()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for g in doc["goals"]:
        log(f"goal {g['name']}: {g['status']}" + (f" ({g['measured']})" if g.get("measured") else ""))
    log(f"wrote {json_path} and {md_path}")
    return 1 if failed else 0


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line's options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smallest sizes, 1 repeat (smoke test / CI)")
    ap.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="NAME", help=f"run only these: {', '.join(SECTIONS)}"
    )
    ap.add_argument(
        "--out", default=None, help="results folder (default bench/results; bench/results/quick with --quick)"
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="interleaved repeats per comparison (default 3; 1 with --quick)"
    )
    ap.add_argument(
        "--pipeline", action="store_true", help="also run the default CPU demo (snakemake, ~10 min, all cores)"
    )
    ap.add_argument("--pipeline-cores", type=int, default=2)
    ap.add_argument("--logprob-threads", type=int, default=1, help="torch threads of the log-prob benchmark")
    ap.add_argument(
        "--trl-limit-gib",
        type=float,
        default=20.0,
        help="trl_head: skip a variant whose predicted peak (linear from the last length: conservative) passes "
        "this or the free memory - 2 GiB; measured 2026-11-30: TRL's fused head peaked at 4.8 GiB at 8k and "
        "4.9 GiB at 16k tokens (predicted 9.0 and 17.4)",
    )
    ap.add_argument(
        "--data-fractions",
        type=float,
        nargs="+",
        help="corpus fractions of the data_scale section (default 0.01 0.05; 1/2000 1/1000 with --quick)",
    )
    ap.add_argument("--gpu-budget-s", type=float, default=1500, help="start no GPU item whose estimate passes this (s)")
    ap.add_argument(
        "--gpu-lengths",
        type=int,
        nargs="+",
        help="response lengths of the GPU step items (default gpu_check's 4096 8192 19000)",
    )
    ap.add_argument(
        "--gpu-simulate",
        action="store_true",
        help="run the GPU section on the CPU with a tiny model (tests the code path)",
    )
    ap.add_argument("--vllm-python", help="python of a separate vLLM environment for the GPU generation benchmark")
    ap.add_argument("--workdir", help="scratch folder (default: a new temporary folder, removed at the end)")
    ap.add_argument("--no-merge", action="store_true", help="do not keep sections of an existing result file")
    return ap.parse_args(argv)


def _selected_sections(args: argparse.Namespace, cuda: bool) -> list[str]:
    """The sections to run, in order: those named with --only, else the GPU (when there is one) and CPU ones."""
    if args.only:
        return list(args.only)
    # the GPU figures are the scarce ones (device time is lent): they go first
    selected = (["gpu"] if cuda or args.gpu_simulate else []) + list(CPU_SECTIONS)
    selected += ["pipeline"] if args.pipeline else []
    return selected


def _open_record(json_path: Path, args: argparse.Namespace, argv: list[str], date: str, host: str) -> dict:
    """The record to write: the existing file of this date and host (unless --no-merge), brought up to date."""
    doc: dict = {}
    if json_path.exists() and not args.no_merge:
        try:
            doc = json.loads(json_path.read_text())
        except json.JSONDecodeError:
            doc = {}
    now = datetime.datetime.now().isoformat(timespec="seconds")
    doc.update(
        schema=SCHEMA,
        date=date,
        host=host,
        updated_at=now,
        quick=bool(args.quick),
        command="bench/run.py " + " ".join(argv),
    )
    doc.setdefault("created_at", now)
    doc["hardware"] = benchlib.hardware()
    doc["versions"] = benchlib.versions(args.vllm_python)
    doc["load_average"] = {"start": benchlib.loadavg(), "end": None}
    doc.setdefault("sections", {})
    return doc


def _section_entry(doc: dict, args: argparse.Namespace, repeats: int) -> dict:
    """A section's record before it runs: the command, code version, time, settings and load average."""
    return {
        "command": doc["command"],
        "git_commit": doc["versions"].get("git_commit"),
        "git_dirty": doc["versions"].get("git_dirty"),
        "ran_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "repeats": repeats,
        "load_average_start": benchlib.loadavg(),
    }


def _run_section(name, entry, doc, args, repeats, cuda, workdir, save) -> None:
    """Run one section and store what it measured as ``entry["result"]``."""
    if name == "logprobs":
        import bench_logprobs

        entry["result"] = bench_logprobs.run(args.quick, repeats, threads=args.logprob_threads, log=log)
    elif name == "trl_head":
        import bench_logprobs

        entry["result"] = bench_logprobs.run_vs_trl(
            args.quick, repeats, threads=2, limit_gib=args.trl_limit_gib, log=log
        )
    elif name == "data_scale":
        import bench_data_scale

        entry["result"] = bench_data_scale.run(args.quick, repeats, log=log, workdir=str(workdir),
                                               fractions=args.data_fractions)  # fmt: skip
    elif name == "trainers":
        import bench_trainers

        entry["result"] = bench_trainers.run(str(workdir / "trainers"), args.quick, repeats, log=log)
    elif name == "verify":
        import bench_verify

        entry["result"] = bench_verify.run(args.quick, repeats, log=log, workdir=str(workdir))
    elif name == "generate":
        import bench_generate

        entry["result"] = bench_generate.run(args.quick, repeats, str(workdir), log=log)
    elif name == "gpu":
        _run_gpu_section(entry, doc, args, repeats, cuda, workdir, save)
    elif name == "pipeline":
        import bench_pipeline

        entry["result"] = bench_pipeline.run(cores=args.pipeline_cores, log=log)


def _run_gpu_section(entry, doc, args, repeats, cuda, workdir, save) -> None:
    """The GPU section (gpu_check, extended), saving the record after every item; skipped without a CUDA device."""
    if not (cuda or args.gpu_simulate):
        entry["result"] = {"skipped": "no CUDA device on this machine"}
        return
    import gpu_check

    doc["sections"]["gpu"] = entry
    (workdir / "gpu").mkdir(parents=True, exist_ok=True)
    check = gpu_check.Check(
        args.gpu_simulate and not cuda,
        args.gpu_budget_s,
        workdir / "gpu",
        log,
        extended=True,
        repeats=repeats,
        lengths=args.gpu_lengths,
        vllm_python=args.vllm_python,
        save=lambda: (entry.update(result=check.result(final=False)), save()),
    )
    entry["result"] = check.run()


if __name__ == "__main__":
    sys.exit(main())
