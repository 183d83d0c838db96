"""Issue 15: live curves (TensorBoard through the Trainer's report_to, read back with
TensorBoard's own event reader), progress lines in the job log, provenance in summary.json."""

import json
import logging
from pathlib import Path

import pytest

from helpers import save_tiny_student, write_data
from redi import provenance, tracking
from redi.train.run import train

RUN = {"name": "redi-a1-lr1e-3", "objective": "redi", "alpha": 1.0, "start": "sft", "global_batch_size": 4,
       "per_device_batch_size": 2, "max_steps": 4, "save_steps": 2, "learning_rate": 1e-3, "seed": 5}
TRAIN_TAGS = {"train/stage2/loss", "train/stage2/chosen_logp_per_token", "train/stage2/rejected_logp_per_token",
              "train/stage2/margin", "train/stage2/grad_norm", "train/stage2/update_norm",
              "train/stage2/learning_rate", "train/stage2/tokens_per_second"}  # stage-prefixed: never SFT's axis


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(folder)).Reload()
    out = {}
    for run, tags in mux.Runs().items():
        for tag in tags["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in mux.Scalars(run, tag))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    save_tiny_student(root / "student", init_std=0.2)
    sft, pref = write_data(root, n=10, max_filler=12)
    out = root / "train" / RUN["name"]
    handler = logging.FileHandler(root / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("redi").addHandler(handler)
    logging.getLogger("redi").setLevel(logging.INFO)
    try:
        summary = train(dict(RUN), str(root / "student"), str(pref), str(out), threads=1)
    finally:
        logging.getLogger("redi").removeHandler(handler)
        handler.close()
    return {"root": root, "out": out, "summary": summary, "log": root / "train.log", "pref": pref}


def test_tensorboard_has_every_step_metric_and_eval_as_it_lands(trained):
    folder = tracking.tensorboard_dir(trained["out"])
    found = scalars(folder)
    assert TRAIN_TAGS <= set(found), sorted(found)
    assert [s for s, _ in found["train/stage2/loss"]] == [1, 2, 3, 4]
    rows = [json.loads(line) for line in (trained["out"] / "metrics.jsonl").read_text().splitlines()]
    assert [v for _, v in found["train/stage2/chosen_logp_per_token"]] == pytest.approx(
        [r["chosen_logp_per_token"] for r in rows], rel=1e-6)
    # an evaluation job appends its checkpoint's accuracy to the same run's folder
    for step, acc in ((2, 0.25), (4, 0.125)):
        path = tracking.log_evaluation(trained["out"], {"benchmark": "synthetic", "checkpoint": f"step-{step}",
                                                        "step": step, "pass@1": acc, "sem": 0.05})
        assert path is not None and path.parent == folder
    found = scalars(folder)
    assert found["eval/stage2/synthetic/pass@1"] == [(2, 0.25), (4, 0.125)]
    assert found["eval/stage2/synthetic/sem"] == [(2, pytest.approx(0.05)), (4, pytest.approx(0.05))]


def test_tracking_config_is_checked_and_never_required(monkeypatch):
    assert tracking.resolve({"report_to": []})["report_to"] == []
    assert tracking.resolve({"report_to": "none"})["report_to"] == []
    with pytest.raises(ValueError, match="tracking.report_to.*unknown tracker 'comet'"):
        tracking.resolve({"report_to": ["comet"]})
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="'wandb' needs the package 'wandb'"):
        tracking.resolve({"report_to": ["wandb"]})
    monkeypatch.setenv(tracking.ENV, json.dumps({"report_to": [], "project": "p"}))
    assert tracking.resolve() == {"report_to": [], "project": "p"}
    assert tracking.sweep_group({"objective": "redi", "start": "sft"}) == "stage2-from-sft"
    args = tracking.trainer_arguments({"report_to": [], "project": "p"}, RUN, "x")
    assert args == {"report_to": "none", "run_name": RUN["name"]}


def test_training_log_shows_rate_limited_progress(trained):
    text = trained["log"].read_text()
    assert "\r" not in text
    lines = [line for line in text.splitlines() if f"training {RUN['name']}:" in line]
    # first step, the two saves (steps 2 and 4; 4 is also the last): not one line per step
    assert 1 <= len(lines) <= 4, lines
    assert "4/4 steps (100.0%)" in lines[-1] and "ETA 0:00:00" in lines[-1] and "tokens/s" in lines[-1]


def test_summary_records_provenance(trained):
    prov = trained["summary"]["provenance"]
    on_disk = json.loads((trained["out"] / "summary.json").read_text())["provenance"]
    assert prov == on_disk
    assert prov["code"]["commit"] and len(prov["code"]["commit"]) == 40 and isinstance(prov["code"]["dirty"], bool)
    assert set(prov["libraries"]) == set(provenance.LIBRARIES)
    import torch
    import transformers

    assert (
        prov["libraries"]["torch"] == torch.__version__.split("+")[0] or prov["libraries"]["torch"] == torch.__version__
    )
    assert prov["libraries"]["transformers"] == transformers.__version__
    assert prov["data"]["train"]["sha256"] == provenance.content_hash(trained["pref"])
    assert prov["model"]["sha256"] and prov["config"]["alpha"] == 1.0
    # a changed corpus changes the version key; a record without one (an evaluation) agrees with
    # any; a run's own training file is not compared (SFT and pair runs read different files)
    other = trained["root"] / "other.jsonl"
    other.write_text(Path(trained["pref"]).read_text() + "\n")
    corpus = dict(prov, data={**prov["data"], "corpus": provenance.data_identity(trained["pref"])})
    changed = dict(prov, data={**prov["data"], "corpus": provenance.data_identity(other)})
    assert not provenance.compatible(provenance.version_key(changed), provenance.version_key(corpus))
    no_corpus = provenance.version_key(dict(prov, data={}))
    assert provenance.compatible(no_corpus, provenance.version_key(changed))
    own_train = dict(corpus, data={**corpus["data"], "train": provenance.data_identity(other)})
    assert provenance.compatible(provenance.version_key(own_train), provenance.version_key(corpus))
    newer = dict(corpus, code={"commit": "0" * 40, "dirty": False})
    assert not provenance.compatible(provenance.version_key(newer), provenance.version_key(corpus))


def test_final_model_carries_a_model_card(trained):
    import shutil

    import yaml

    from redi.model_card import write_card

    text = (trained["out"] / "model" / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "transformers" and "redi" in front["tags"]
    for section in ("## Data", "## Objective and hyper-parameters", "## Evaluation", "## Reproduce"):
        assert section in text
    assert "| alpha | 1.0 |" in text and trained["summary"]["provenance"]["code"]["commit"] in text
    assert "Not evaluated when this card was written" in text
    # the card with its evaluation table (what rules/publish.smk writes), from real metrics.json files
    fixture = Path(__file__).parent / "fixtures" / "results" / "eval" / "redi-a0.8-lr1e-4"
    results = trained["root"] / "results"
    shutil.copytree(fixture, results / "eval" / RUN["name"])
    card = write_card(trained["out"], trained["root"] / "cards" / "README.md", results=results, base_model="org/sft")
    full = card.read_text()
    assert yaml.safe_load(full.split("---\n")[1])["base_model"] == "org/sft"
    assert "| step-2 | synthetic | 2 | 0.0% ± 0.0 |" in full and "| best | synthetic | 4 |" in full
