"""TensorBoard as a researcher reads it: stage-prefixed tags (SFT's long step axis never shares a
chart with stage 2), a step-0 point (the start model) on a stage-2 eval curve, and the run's
hyper-parameters on the HParams dashboard. Read back with TensorBoard's own event reader."""

import json
from pathlib import Path

from redi import tracking


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def read(folder: Path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(folder)).Reload()
    found = {}
    for run, tags in mux.Runs().items():
        for tag in tags["scalars"]:
            found.setdefault(tag, []).extend((e.step, round(e.value, 6)) for e in mux.Scalars(run, tag))
    return {k: sorted(v) for k, v in found.items()}, mux.PluginRunToTagToContent("hparams")


def test_stage_prefix_step0_and_hparams(tmp_path, monkeypatch):
    results = tmp_path / "results"
    run = {"name": "redi-a0.8", "objective": "redi", "alpha": 0.8, "beta": None, "learning_rate": 1e-4,
           "start": "sft"}
    run_dir = results / "train" / "redi-a0.8"
    _dump(run_dir / "checkpoints" / "run.json", {"config": run})  # written as training starts
    _dump(results / "train" / "sft" / "summary.json", {"steps": 40, "config": {"objective": "sft"}})
    _dump(results / "eval" / "sft" / "step-40" / "synthetic" / "metrics.json", {"pass@1": 0.36, "sem": 0.01})
    report = {"report_to": ["tensorboard"]}
    # the trainer's per-step keys carry the stage: TensorBoard shows train/stage2/loss
    monkeypatch.delenv(tracking.STAGE_ENV, raising=False)
    tracking.trainer_arguments(report, run, run_dir)
    assert set(tracking.scalars({"step": 1, "loss": 0.5, "collapse_flag": False})) == {"stage2/loss"}
    assert set(tracking.scalars({"loss": 0.5}, "sft")) == {"sft/loss"}
    for step, acc in ((10, 0.30), (20, 0.25)):
        tracking.log_evaluation(run_dir, {"benchmark": "synthetic", "checkpoint": f"step-{step}", "step": step,
                                          "pass@1": acc, "sem": 0.02}, report)
    found, hparams = read(tracking.tensorboard_dir(run_dir))
    # the eval curve starts at step 0 with the start model, once
    assert found["eval/stage2/synthetic/pass@1"] == [(0, 0.36), (10, 0.3), (20, 0.25)]
    assert not any(tag.startswith("eval/synthetic") for tag in found)
    # one HParams session naming the objective, alpha and the learning rate
    assert hparams and all("_hparams_/session_start_info" in tags or "_hparams_/experiment" in tags
                           for tags in hparams.values())
    session = next(t["_hparams_/session_start_info"] for t in hparams.values() if "_hparams_/session_start_info" in t)
    from tensorboard.plugins.hparams import plugin_data_pb2

    info = plugin_data_pb2.HParamsPluginData.FromString(session).session_start_info
    assert info.hparams["objective"].string_value == "redi" and info.hparams["alpha"].number_value == 0.8
    assert "beta" not in info.hparams and info.hparams["learning_rate"].number_value == 1e-4
    assert (tracking.tensorboard_dir(run_dir) / ".hparams").is_file()
