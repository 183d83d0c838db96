"""Tokenisation with the student's chat template: prompt masking, the response boundary,
truncation, and the reference-log-prob join."""

import numpy as np
import pytest

from helpers import tiny_tokenizer
from redi.prompts import generation_prompt
from redi.train.batching import Collator, attach_reference, tokenize_records
from redi.train.config import RunConfig


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


USER = {"role": "user", "content": "What is 2+2?"}
GOOD = {"role": "assistant", "content": "<think>\nfour\n</think> 4"}
BAD = {"role": "assistant", "content": "<think>\nfive\n</think> 5"}


def test_prompt_and_response_split(tok):
    cfg = RunConfig.from_dict({"objective": "redi"})
    data = tokenize_records([{"id": "a", "prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}], tok, cfg)
    prompt = tok.apply_chat_template([USER], tokenize=True, add_generation_prompt=True)["input_ids"]
    full = tok.apply_chat_template([USER, GOOD], tokenize=True)["input_ids"]
    assert data.prompts[0].tolist() == prompt
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    # response = rest of the conversation up to and including <|im_end|>; the trailing "\n" dropped
    assert data.chosen[0].tolist() == full[len(prompt) : -1]
    assert data.chosen[0][-1] == im_end and tok.decode(full[-1:]) == "\n"
    assert tok.decode(data.chosen[0]) == GOOD["content"] + "<|im_end|>"
    assert tok.decode(data.rejected[0]) == BAD["content"] + "<|im_end|>"
    # the evaluation prompt (generation prompt + "<think>\n") is a prefix of the training ids
    eval_ids = tok(generation_prompt(tok, "What is 2+2?", instruction=""), add_special_tokens=False)["input_ids"]
    train_ids = np.concatenate([data.prompts[0], data.chosen[0]]).tolist()
    assert train_ids[: len(eval_ids)] == eval_ids


def test_sft_rows_and_scored_positions(tok):
    cfg = RunConfig.from_dict({"objective": "sft"})
    data = tokenize_records([{"id": "a", "messages": [USER, GOOD]}], tok, cfg)
    batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=True)([{"index": 0, "weight": 1.0}])
    p, r = len(data.prompts[0]), len(data.chosen[0])
    assert batch["score_index"].tolist() == list(range(p - 1, p + r - 1))  # prompt never scored
    assert batch["targets"].tolist() == data.chosen[0].tolist()
    assert float(batch["units"]) == r and batch["lengths"].tolist() == [r]


def test_truncation_never_drops_examples(tok):
    long_answer = {"role": "assistant", "content": "<think>\n" + "step " * 200 + "</think> 4"}
    cfg = RunConfig.from_dict({"objective": "redi", "max_prompt_length": 5, "max_response_length": 7})
    data = tokenize_records(
        [{"id": "a", "prompt": [USER], "chosen": [long_answer], "rejected": [BAD]},
         {"id": "b", "prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}], tok, cfg)
    full_prompt = tok.apply_chat_template([USER], tokenize=True, add_generation_prompt=True)["input_ids"]
    assert len(data) == 2
    assert data.prompts[0].tolist() == full_prompt[-5:]  # prompts keep their end
    assert all(len(c) == 7 for c in data.chosen) and all(len(c) == 7 for c in data.rejected)
    assert data.stats["truncated_prompts"] == 2 and data.stats["truncated_chosen"] == 2
    cfg = RunConfig.from_dict({"objective": "sft", "max_length": 12})
    data = tokenize_records([{"id": "a", "messages": [USER, long_answer]}], tok, cfg)
    assert len(data.prompts[0]) + len(data.chosen[0]) == 12


def test_bad_rows_fail_clearly(tok):
    with pytest.raises(ValueError, match="pair rows"):
        tokenize_records([{"id": "a", "messages": [USER, GOOD]}], tok, RunConfig.from_dict({"objective": "redi"}))
    with pytest.raises(ValueError, match="messages"):
        tokenize_records([{"id": "a", "prompt": [USER]}], tok, RunConfig.from_dict({"objective": "sft"}))
    with pytest.raises(ValueError, match="unique"):
        tokenize_records([{"id": "a", "messages": [USER, GOOD]}] * 2, tok, RunConfig.from_dict({"objective": "sft"}))


def test_reference_join(tok, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = RunConfig.from_dict({"objective": "dpo"})
    rows = [{"id": i, "prompt": [USER], "chosen": [GOOD], "rejected": [BAD]} for i in ("x", "y")]
    data = tokenize_records(rows, tok, cfg)
    path = tmp_path / "ref.parquet"
    pq.write_table(
        pa.table({"id": ["y", "x"], "ref_chosen_logp": [-2.0, -1.0], "ref_rejected_logp": [-4.0, -3.0]}), path
    )
    attach_reference(data, path, cfg)
    assert data.ref_chosen.tolist() == [-1.0, -2.0] and data.ref_rejected.tolist() == [-3.0, -4.0]
    pq.write_table(pa.table({"id": ["x"], "ref_chosen_logp": [-1.0], "ref_rejected_logp": [-3.0]}), path)
    with pytest.raises(ValueError, match="no reference log-probs"):
        attach_reference(data, path, cfg)
