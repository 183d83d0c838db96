"""The data stage end to end through its Snakemake adapters and its CLI (small synthetic corpus)."""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

import pyarrow.parquet as pq

from redi.data.io import read_jsonl
from test_data_common import build_tiny_tokenizer

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
CFG = {"n_train_problems": 150, "n_test_problems": 20, "seed": 5}


def Named(items=(), **named):
    """Snakemake's own Namedlist (input/output/params/log of a job): positional items, then
    named ones, reachable as attributes and through ``.get``."""
    from snakemake.iocontainers import Namedlist

    out = Namedlist(toclone=list(items))
    out.update(named)
    return out


def run_script(name, tmp_path, *, input=None, output=None, params=None, threads=1):
    log = tmp_path / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    smk = argparse.Namespace(
        input=input or Named(),
        output=output or Named(),
        params=params or Named(),
        threads=threads,
        log=Named([str(log)]),
    )
    runpy.run_path(str(SCRIPTS / f"data_{name}.py"), init_globals={"snakemake": smk}, run_name="__main__")
    return log.read_text()


def test_adapters_end_to_end(tmp_path):
    d = tmp_path / "results" / "data"
    run_script(
        "corpus",
        tmp_path,
        output=Named(train=str(d / "corpus/train.parquet"), test=str(d / "corpus/test.json")),
        params=Named(cfg=CFG),
    )
    run_script(
        "normalize",
        tmp_path,
        input=Named(corpus=str(d / "corpus/train.parquet")),
        output=Named(canonical=str(d / "canonical.parquet"), rejects=str(d / "normalize_rejects.jsonl")),
    )
    shards = []
    for i in range(2):
        shard = str(d / f"verify/shard-{i}-of-2.parquet")
        run_script(
            "verify",
            tmp_path,
            input=Named(canonical=str(d / "canonical.parquet")),
            output=Named([shard]),
            params=Named(shard_index=i, n_shards=2, timeout_s=5, memory_mb=2048),
        )
        shards.append(shard)
    run_script(
        "gather",
        tmp_path,
        input=Named(shards=shards, canonical=str(d / "canonical.parquet")),
        output=Named(verified=str(d / "verified.parquet"), report=str(d / "verify_report.json")),
    )
    tok = build_tiny_tokenizer(tmp_path / "student")
    log = run_script(
        "curate",
        tmp_path,
        input=Named(
            verified=str(d / "verified.parquet"), tokenizer=str(tok), test=str(d / "corpus/test.json")
        ),
        output=Named(
            sft=str(d / "sft.jsonl"),
            pref=str(d / "pref.jsonl"),
            report_json=str(d / "curation_report.json"),
            report_md=str(d / "curation_report.md"),
            rejects=str(d / "rejects.jsonl"),
        ),
        params=Named(
            cfg={"expected": {"sft": None, "pairs_before_length_filter": None}},
            benchmarks={"test": str(d / "corpus/test.json")},
        ),
    )
    assert "curate: sft=" in log

    verify_report = json.loads((d / "verify_report.json").read_text())
    assert verify_report["overall"]["agreement_with_mv"] == 1.0  # synthetic mv labels are the truth
    report = json.loads((d / "curation_report.json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["corpus"]["kept"] == 150
    # counts are consistent: every corpus row is either in D_SFT or has a reject line
    sft = read_jsonl(d / "sft.jsonl")
    rejects = read_jsonl(d / "rejects.jsonl")
    sft_rows = {r["row_index"] for r in sft}
    rejected_from_sft = {r["row_index"] for r in rejects if not r["step"].endswith("_pref")}
    assert sft_rows | rejected_from_sft == set(range(150))
    assert not sft_rows & rejected_from_sft
    assert {r["step"] for r in rejects} >= {
        "normalize",
        "valid_only",
        "exclude_sources",
        "select_sft",
        "select_pref",
    }
    assert len(pq.read_table(d / "verified.parquet")) == steps["normalize"]["kept"]
    assert report["final"]["sft"] == len(sft) > 0
    assert report["final"]["pref"] == len(read_jsonl(d / "pref.jsonl")) > 0


def test_cli_commands(tmp_path, capsys):
    from redi.data import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        assert args.func(args) == 0
        return json.loads(capsys.readouterr().out)

    out = run(
        "corpus",
        "--train",
        str(tmp_path / "t.parquet"),
        "--test",
        str(tmp_path / "t.json"),
        "--cfg",
        json.dumps(CFG),
    )
    assert out["rows"] == 150
    out = run(
        "normalize",
        "--input",
        str(tmp_path / "t.parquet"),
        "--output",
        str(tmp_path / "c.parquet"),
        "--rejects",
        str(tmp_path / "r.jsonl"),
    )
    assert out["schema"] == "raw"
    out = run(
        "verify-shard",
        "--canonical",
        str(tmp_path / "c.parquet"),
        "--shard-index",
        "0",
        "--n-shards",
        "1",
        "--out",
        str(tmp_path / "s.parquet"),
    )
    assert out["items"] > 0
    out = run(
        "gather",
        "--shards",
        str(tmp_path / "s.parquet"),
        "--canonical",
        str(tmp_path / "c.parquet"),
        "--out",
        str(tmp_path / "v.parquet"),
        "--report",
        str(tmp_path / "vr.json"),
    )
    assert out["rows"] > 0
    tok = build_tiny_tokenizer(tmp_path / "tok")
    out = run(
        "curate",
        "--verified",
        str(tmp_path / "v.parquet"),
        "--tokenizer",
        str(tok),
        "--sft",
        str(tmp_path / "sft.jsonl"),
        "--pref",
        str(tmp_path / "pref.jsonl"),
        "--report-json",
        str(tmp_path / "cr.json"),
        "--report-md",
        str(tmp_path / "cr.md"),
        "--rejects",
        str(tmp_path / "rej.jsonl"),
        "--benchmark",
        f"heldout={tmp_path / 't.json'}",
        "--cfg",
        json.dumps({"label_rule": "recomputed"}),
    )
    assert out["final"]["sft"] > 0
