"""The run key ``save: false`` (measurement runs, e.g. ``bench/gpu_check``): a run trains and
writes its metrics and summary, but no checkpoint and no final model; the default still saves."""

from pathlib import Path

import pytest

from helpers import tiny_training_inputs
from redi.train.config import RunConfig
from redi.train.run import train
from redi.train.schedule import checkpoint_steps

RUN = {
    "objective": "redi",
    "global_batch_size": 4,
    "per_device_batch_size": 2,
    "max_steps": 2,
    "save_steps": 1,
    "learning_rate": 1e-3,
    "seed": 5,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_training_inputs(tmp_path_factory.mktemp("tiny"), n=8, max_filler=8)


def test_no_save_run_writes_no_checkpoint_and_no_model(inputs, tmp_path):
    out = tmp_path / "measure"
    summary = train(dict(RUN, save=False), inputs["model"], inputs["pref"], str(out), threads=1)
    assert summary["steps"] == 2 and summary["checkpoint_steps"] == [] and summary["saved_checkpoints"] == []
    assert not list((out / "checkpoints").glob("checkpoint-*")) and not list(out.glob(".staging-*"))
    assert not (out / "model").exists() and not (out / ".model.tmp").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2 and (out / "summary.json").exists()
    weights = [p for p in out.rglob("*") if p.suffix in (".safetensors", ".pt", ".bin")]
    assert weights == []


def test_default_still_saves(inputs, tmp_path):
    assert RunConfig.from_dict({"objective": "redi"}).save is True
    out = tmp_path / "saved"
    summary = train(dict(RUN), inputs["model"], inputs["pref"], str(out), threads=1)
    assert summary["saved_checkpoints"] == [1, 2] and (Path(out) / "model" / "config.json").exists()


def test_schedule_and_config():
    assert checkpoint_steps(10, 4, 1, 2, True, max_steps=6, save=False) == []
    assert checkpoint_steps(10, 4, 1, 2, True, max_steps=6) == [2, 3, 4, 6]
    with pytest.raises(ValueError, match="save must be true or false"):
        RunConfig.from_dict({"objective": "redi", "save": "no"})
