"""Training: one run of any registered objective (``redi.train.objectives``) and cached
reference log-probs (DPO).

    redi train run --config run.yaml --model M --data D --out results/train/RUN [--ref-logps P]
                   [--threads N] [--gpus G | --cpu-processes P] [--accelerate-config zero2]
    redi train ref-logps --config run.yaml --model M --data pref.jsonl --out ref_logps.parquet
                   [--accelerate-config zero3]
    redi train steps --n-examples N --global-batch B --epochs E --save-steps S [--save-each-epoch]

``--run-json '{"objective": "redi", ...}'`` may replace ``--config FILE``; ``train`` is an alias
of ``run``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


def load_run_config(path: str) -> dict:
    """A run dict from a YAML or JSON file (a top-level ``run:`` key is unwrapped)."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, dict) and set(data) == {"run"}:
        data = data["run"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of run settings")
    return data


def _run_dict(args) -> dict:
    if (args.config is None) == (args.run_json is None):
        raise SystemExit("give exactly one of --config FILE or --run-json JSON")
    if args.run_json is not None:
        data = json.loads(args.run_json)
        if not isinstance(data, dict):
            raise SystemExit("--run-json must be a JSON object")
        return data
    return load_run_config(args.config)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _cmd_train(args) -> int:
    from redi.runtime import exit_with_launcher, set_threads

    exit_with_launcher()  # a worker of run_training's launch ends with the job that started it
    set_threads(args.threads)
    _logging()
    from .launch import run_training

    summary = run_training(
        _run_dict(args), args.model, args.data, args.out,
        ref_logps_path=args.ref_logps, threads=args.threads, gpus=args.gpus,
        accelerate_config=args.accelerate_config, cpu_processes=args.cpu_processes,
    )
    print(json.dumps({k: summary[k] for k in ("run", "steps", "stopped_reason", "collapsed")}))
    return 0


def _cmd_ref_logps(args) -> int:
    from redi.runtime import set_threads

    set_threads(args.threads)
    _logging()
    from .reference import compute_reference_logps

    deepspeed = False
    if args.accelerate_config:
        from .launch import is_deepspeed_config

        deepspeed = is_deepspeed_config(args.accelerate_config)
    compute_reference_logps(args.model, args.data, args.out, _run_dict(args), args.threads, deepspeed=deepspeed)
    return 0


def _cmd_steps(args) -> int:
    from .schedule import checkpoint_steps

    print(json.dumps(checkpoint_steps(args.n_examples, args.global_batch, args.epochs,
                                      args.save_steps, args.save_each_epoch, args.max_steps)))
    return 0


def _config_args(p) -> None:
    p.add_argument("--config", default=None, help="YAML/JSON file with the run settings")
    p.add_argument("--run-json", default=None, help="the run settings as a JSON object")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", aliases=["train"],
                              help="train one run (objective: a key of redi.train.objectives.OBJECTIVES)")
    _config_args(p)
    p.add_argument("--model", required=True, help="start model directory (HF format)")
    p.add_argument("--data", required=True, help="sft.jsonl or pref.jsonl")
    p.add_argument("--out", required=True, help="run directory (model/, metrics.jsonl, ...)")
    p.add_argument("--ref-logps", default=None, help="cached reference log-probs (objectives that need them: dpo)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gpus", type=int, default=0, help=">1: one worker per GPU under accelerate launch")
    p.add_argument("--cpu-processes", type=int, default=1,
                   help="with --gpus 0: >1 trains with that many gloo CPU processes (under accelerate launch "
                        "with --accelerate-config when given, else plain DDP through torch.distributed.run)")
    p.add_argument("--accelerate-config", default=None,
                   help="ddp | zero2 | zero3 | fsdp, or a path: how --gpus > 1 (default zero2) or "
                        "--cpu-processes > 1 workers are launched; its mixed_precision is replaced by the "
                        "run's bf16")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "ref-logps", help="cache DPO reference log-probs of the start model",
        description="Cache DPO reference log-probs of the start model, in the precision mode the DPO "
                    "training job's policy computes in at step 0 (so its first loss is log 2). Give "
                    "--accelerate-config exactly when the training job will be started by accelerate launch "
                    "with that config (redi train run --gpus N>1 or --cpu-processes N>1, or accelerate launch "
                    "--config_file accelerate/zero2.yaml yourself): a DeepSpeed config (zero2, zero3) makes a "
                    "DeepSpeed-mode file (bf16 weights without autocast when the run's bf16 is on); without "
                    "it, or with ddp/fsdp, the file matches a single-process, DDP or FSDP run (fp32 weights "
                    "under bf16 autocast). Training refuses a file of another mode.",
    )  # fmt: skip
    _config_args(p)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="pref.jsonl")
    p.add_argument("--out", required=True, help="output parquet")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--accelerate-config", default=None,
                   help="the DPO training job's accelerate config (ddp | zero2 | zero3 | fsdp, or a path); "
                        "omit for a job that trains in one process")
    p.set_defaults(func=_cmd_ref_logps)

    p = subparsers.add_parser("steps", help="print the checkpoint steps of a run")
    p.add_argument("--n-examples", type=int, required=True)
    p.add_argument("--global-batch", type=int, required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--save-steps", type=int, default=200)
    p.add_argument("--save-each-epoch", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.set_defaults(func=_cmd_steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redi train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # ``python -m redi.train.cli train ...`` (used by accelerate launch)
    import sys

    sys.exit(main())
