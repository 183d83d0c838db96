"""The tiny student and pretrained-student preparation, on data the test writes itself."""


import pandas as pd
import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from redi.model.base import prepare_base
from redi.model.student import build_tiny_student
from redi.prompts import generation_prompt, user_messages

TRACE = (
    "<think>\nFirst {a} + {b} = {s}.\n</think>\n\n"
    "Therefore, the final answer is: $\\boxed{{{s}}}$. I hope it is correct"
)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("student")
    rows = [
        {"problem": f"Compute {a} + {b}.", "generations": [TRACE.format(a=a, b=b, s=a + b)]}
        for a in range(10, 40)
        for b in range(3, 20)
    ]
    pd.DataFrame(rows).to_parquet(root / "canonical.parquet")
    cfg = {"vocab_size": 400, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 2, "num_key_value_heads": 1}
    info = build_tiny_student(str(root / "canonical.parquet"), str(root / "model"), cfg)
    return root / "model", info


def test_tokenizer_survives_autotokenizer_round_trip(student):
    path, _ = student
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    text = TRACE.format(a=123, b=45, s=168) + " über 3.14"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids) == text
    # Qwen2 splits numbers into single digits; a different pre-tokenizer would merge them.
    assert [tokenizer.decode([i]) for i in tokenizer("168").input_ids] == ["1", "6", "8"]
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tokenizer(token).input_ids) == 1


def test_generation_prompt_is_a_token_prefix_of_the_training_text(student):
    path, _ = student
    tokenizer = AutoTokenizer.from_pretrained(path)
    trace = TRACE.format(a=12, b=5, s=17)
    training = tokenizer.apply_chat_template(
        user_messages("Compute 12 + 5.") + [{"role": "assistant", "content": trace}], tokenize=False
    )
    prompt_ids = tokenizer(generation_prompt(tokenizer, "Compute 12 + 5.")).input_ids
    training_ids = tokenizer(training).input_ids
    assert training_ids[: len(prompt_ids)] == prompt_ids


def test_student_is_a_loadable_qwen2_model(student):
    path, info = student
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == info["vocab_size"] == len(AutoTokenizer.from_pretrained(path))
    assert model.config.eos_token_id == AutoTokenizer.from_pretrained(path).convert_tokens_to_ids("<|im_end|>")


def test_prepare_base_applies_the_paper_config_edit_from_a_local_copy(student, tmp_path):
    path, _ = student
    info = prepare_base(
        str(tmp_path / "base"),
        local_path=str(path),
        config_overrides={"max_position_embeddings": 32768, "rope_theta": 300000.0},
    )
    config = AutoConfig.from_pretrained(tmp_path / "base")
    assert config.max_position_embeddings == 32768
    rope = getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]
    assert rope == 300000.0
    assert info["overrides"]["rope_theta"] == 300000.0
    AutoModelForCausalLM.from_pretrained(tmp_path / "base")


def test_prepare_base_rejects_unknown_config_keys(student, tmp_path):
    path, _ = student
    with pytest.raises(KeyError, match="rope_thetaa"):
        prepare_base(str(tmp_path / "x"), local_path=str(path), config_overrides={"rope_thetaa": 1})


def test_prepare_base_offline_hub_error_tells_how_to_use_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="student.local_path"):
        prepare_base(str(tmp_path / "x"), hub_name="Qwen/Qwen2.5-Math-1.5B", revision="main")
