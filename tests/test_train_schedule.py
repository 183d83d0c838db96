"""Checkpoint-step arithmetic, run-config validation and the batch sampler's step structure."""

import numpy as np
import pytest

from redi.train.batching import GlobalBatchSampler
from redi.train.config import RunConfig
from redi.train.schedule import checkpoint_steps, steps_per_epoch, total_steps


@pytest.mark.parametrize(
    "args, expected",
    [
        # n, global batch, epochs, save_steps, save_each_epoch
        ((100, 10, 1, 200, False), [10]),  # only the final step
        ((100, 10, 3, 200, True), [10, 20, 30]),  # epoch ends
        ((105, 10, 2, 5, True), [5, 10, 11, 15, 20, 22]),  # 11 steps/epoch (short last batch)
        ((53175, 32, 1, 200, False), [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1662]),
        ((77629, 128, 3, 200, True), [200, 400, 600, 607, 800, 1000, 1200, 1214, 1400, 1600, 1800, 1821]),
        ((7, 8, 2, 0, False), [2]),  # fewer examples than one batch; save_steps 0 = off
        ((64, 8, 1, 4, False), [4, 8]),
    ],
)
def test_checkpoint_steps(args, expected):
    assert checkpoint_steps(*args) == expected


def test_max_steps_overrides_epochs():
    assert total_steps(100, 10, 3, max_steps=7) == 7
    assert checkpoint_steps(100, 10, 3, 3, True, max_steps=7) == [3, 6, 7]
    # beyond one epoch: epoch ends inside max_steps are still saved
    assert checkpoint_steps(30, 10, 1, 100, True, max_steps=8) == [3, 6, 8]


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        checkpoint_steps(0, 8, 1, 10, False)
    with pytest.raises(ValueError):
        total_steps(10, 0, 1)


def test_sampler_matches_schedule_and_is_seeded():
    lengths = np.random.default_rng(0).integers(5, 50, size=21)
    s = GlobalBatchSampler(lengths, global_batch=8, micro_batch=2, seed=3)
    assert s.steps_per_epoch == steps_per_epoch(21, 8) == 3
    assert len(s) == 3 * 4
    steps = list(s.global_batches(epoch=0))
    real = [i for step in steps for i, w in step if w == 1.0]
    assert sorted(real) == list(range(21))  # every example exactly once per epoch
    assert sum(w == 0.0 for step in steps for _, w in step) == 3  # fillers top up the last batch
    for step in steps:  # length-sorted inside the step
        ls = [lengths[i] for i, _ in step]
        assert ls == sorted(ls, reverse=True)
    again = list(GlobalBatchSampler(lengths, 8, 2, seed=3).global_batches(epoch=0))
    assert again == steps
    assert list(s.global_batches(epoch=1)) != steps
    # micro-batches are the global batch cut in order
    s.set_epoch(0)
    micro = list(s)
    assert [x for m in micro[:4] for x in m] == steps[0]


def test_run_config_defaults_and_validation():
    c = RunConfig.from_dict({"objective": "dpo"})
    assert (c.beta, c.learning_rate, c.global_batch_size, c.epochs) == (0.001, 2e-7, 32, 1)
    c = RunConfig.from_dict({"objective": "simpo"})
    assert (c.beta, c.gamma, c.learning_rate) == (2.0, 1.0, 5e-7)
    c = RunConfig.from_dict({"objective": "sft"})
    assert (c.learning_rate, c.global_batch_size, c.epochs, c.save_each_epoch) == (5e-5, 128, 3, True)
    c = RunConfig.from_dict({"objective": "redi", "collapse": {"window": 3}})
    assert (c.alpha, c.collapse.window, c.collapse.drop, c.save_each_epoch) == (0.8, 3, 0.5, False)
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict({"objective": "redi", "learning_rat": 1e-6})
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict({"objective": "redi", "collapse": {"windw": 3}})
    with pytest.raises(ValueError, match="objective"):
        RunConfig.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="alpha"):
        RunConfig.from_dict({"objective": "redi", "alpha": 1.5})
    c = RunConfig.from_dict({"objective": "redi", "global_batch_size": 32, "per_device_batch_size": 4})
    assert c.gradient_accumulation(world_size=2) == 4
    with pytest.raises(ValueError, match="not a multiple"):
        c.gradient_accumulation(world_size=3)
