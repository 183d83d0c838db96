"""Qwen2.5-Math-1.5B's real tokenizer, chat template and config, offline.

The tokenizer is built from ``dashscope``'s ``qwen.tiktoken`` (tests/qwen_real.py); the ids in
``KNOWN_IDS`` were read from Qwen's published vocab.json / merges.txt (the 151,643-token BPE
Qwen2.5 and Qwen3 share) with ``AutoTokenizer``, so a wrong vocabulary, merge order,
pre-tokenizer or added-token id fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from qwen_real import N_BPE, QWEN_DIR, VOCAB_ROWS, build_qwen_tokenizer, qwen_config
from redi.prompts import OPENR1_INSTRUCTION, prompt_token_ids, user_content
from test_data_common import verified_row, write_verified

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROW0 = json.loads((FIXTURES / "openr1" / "openr1_220k_default_row0_messages.json").read_text())

# text -> ids, from Qwen's published vocab.json + merges.txt (transformers Qwen2Tokenizer)
KNOWN_IDS = {
    "<think>\n": [13708, 766, 397],
    "Hello world! 12345 \\boxed{x^2}": [9707, 1879, 0, 220, 16, 17, 18, 19, 20, 1124, 79075, 45340, 61, 17, 92],
    "Please reason step by step, and put your final answer within \\boxed{}.": [
        5501, 2874, 3019, 553, 3019, 11, 323, 2182, 697, 1590, 4226, 2878, 1124, 79075, 46391],
    "<|im_start|>user\nhi<|im_end|>\n": [151644, 872, 198, 6023, 151645, 198],
}
SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|file_sep|>": 151664}
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
DEEPSEEK_STYLE = (  # DeepSeek-R1-Distill's rule: an assistant turn keeps only the text after </think>
    "{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n"
    "{% else %}{% set c = m['content'] %}{% if '</think>' in c %}{% set c = c.split('</think>')[-1] %}"
    "{% endif %}<|im_start|>assistant\n{{ c | trim }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """(saved tokenizer directory, tokenizer reloaded from it by AutoTokenizer)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("qwen-tok")
    build_qwen_tokenizer(out)
    return out, AutoTokenizer.from_pretrained(str(out))


def _cfg(objective="sft", **kw):
    return SimpleNamespace(objective=objective, is_pairwise=objective != "sft", max_length=10**6,
                           max_prompt_length=10**6, max_response_length=10**6, **kw)


def test_tokenizer_ids_match_published_vocabulary(qwen):
    _, tok = qwen
    assert len(tok) == N_BPE + 22
    for text, ids in KNOWN_IDS.items():
        assert tok(text, add_special_tokens=False)["input_ids"] == ids, text
    for token, tid in SPECIAL_IDS.items():
        assert tok.convert_tokens_to_ids(token) == tid
    assert qwen_config().vocab_size == VOCAB_ROWS > len(tok)


def test_think_is_ordinary_tokens_and_eval_prompt_is_a_prefix(qwen):
    from redi.train.batching import tokenize_records

    _, tok = qwen
    assert tok.convert_ids_to_tokens(tok("<think>\n", add_special_tokens=False)["input_ids"]) == ["<th", "ink", ">Ċ"]
    assert "<think>" not in tok.get_added_vocab()
    problem = ROW0[0]["content"]
    rec = {"id": "row0", "messages": [{"role": "user", "content": user_content(problem)}, ROW0[1]]}
    data = tokenize_records([rec], tok, _cfg())
    train_ids = list(data.prompts[0]) + list(data.chosen[0])
    eval_ids = prompt_token_ids(tok, problem, OPENR1_INSTRUCTION)
    assert train_ids[: len(eval_ids)] == eval_ids  # the model is evaluated where it was trained
    assert tok.decode(data.prompts[0]).startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    content_ids = tok(ROW0[1]["content"], add_special_tokens=False)["input_ids"]
    assert list(data.chosen[0]) == content_ids + [151645]  # the trace, token for token, + <|im_end|>
    assert len(content_ids) == 2955


def test_template_that_rewrites_assistant_turns_stops_training(qwen):
    from transformers import AutoTokenizer

    from redi.train.batching import ChatTemplateError, tokenize_records

    path, _ = qwen
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.chat_template = DEEPSEEK_STYLE
    sft = {"id": "row0", "messages": ROW0}
    with pytest.raises(ChatTemplateError, match=r"chat template of .*qwen-tok.*sha1.*student\.chat_template"):
        tokenize_records([sft], tok, _cfg())
    pair = {"id": "p", "prompt": ROW0[:1], "chosen": ROW0[1:], "rejected": ROW0[1:]}
    with pytest.raises(ChatTemplateError, match="does not keep the assistant content"):
        tokenize_records([pair], tok, _cfg("redi"))


def test_length_filter_counts_with_real_tokenizer(qwen, tmp_path):
    """prompt <= 800 and response <= 19,000 tokens, counted with the real template (its
    default system turn included) at the limits and one token over."""
    from redi.data.curate import TokenCounter, curate
    from redi.data.io import read_jsonl

    path, tok = qwen
    counter = TokenCounter(path, OPENR1_INSTRUCTION)
    base = "Find x."
    n0 = counter.prompt_lengths([base])[0]
    problems = {800: base + " x" * (800 - n0), 801: base + " x" * (801 - n0)}
    assert counter.prompt_lengths(list(problems.values())) == [800, 801]
    close = "\n</think>\n\nTherefore, the final answer is: $\\boxed{2}$. I hope it is correct"
    r1 = counter.response_lengths(["<think>\n y" + close])[0]
    responses = {n: "<think>\n" + " y" * (n - r1 + 1) + close for n in (19000, 19001)}
    assert counter.response_lengths(list(responses.values())) == [19000, 19001]
    short = "<think>\nwrong\n</think>\n\n$\\boxed{3}$"
    rows = [
        verified_row(0, problem=problems[800], gens=[responses[19000], short], llama=[True, False], mv=[True, False]),
        verified_row(1, problem=problems[801], gens=[short, short], llama=[True, False], mv=[True, False]),
        verified_row(2, gens=[responses[19001], short], llama=[True, False], mv=[True, False]),
        verified_row(3, gens=[short, responses[19001]], llama=[True, False], mv=[True, False]),
        verified_row(4, gens=[short, short], llama=[True, False], mv=[True, False]),
    ]
    verified = write_verified(rows, tmp_path / "verified.parquet")
    report = curate(verified, path, tmp_path / "sft.jsonl", tmp_path / "pref.jsonl", tmp_path / "r.json",
                    tmp_path / "r.md", tmp_path / "rej.jsonl", {"decontaminate": {"enabled": False}})
    step = next(s for s in report["steps"] if s["step"] == "length_filter_pref")
    assert step["kept"] == 2 and step["reasons"] == {
        "prompt too long": 1, "chosen response too long": 1, "rejected response too long": 1}
    assert sorted(r["row_index"] for r in read_jsonl(tmp_path / "pref.jsonl")) == [0, 4]
    assert report["final"]["sft"] == 5  # the paper filters pairs only


def test_length_counts_equal_the_tokenizers_own(qwen):
    """The length filter counts through the Rust tokenizer's encode_batch_fast: the
    same number of tokens as transformers' own plain-text encoding + the end-of-turn token, for
    special-token strings in the text, <think>, LaTeX, CJK and emoji, whitespace runs, an empty text, and a batch cut by
    the character bound."""
    from redi.data.curate import TokenCounter

    path, tok = qwen
    counter = TokenCounter(path, OPENR1_INSTRUCTION)
    texts = [
        "<think>\nLet x = 2.\n</think>\n\n$\\boxed{\\frac{1}{2}}$<|im_end|>",
        "<|endoftext|><|im_start|>user\nhi<|im_end|>",
        "\u043f\u0440\u0438\u0432\u0435\u0442 \u4f60\u597d\uff0c\u4e16\u754c "  # Cyrillic, CJK
        "\U0001f600\U0001f44d\U0001f3fd \\sqrt{2}\\cdot\\pi",  # emoji with a skin-tone modifier, LaTeX
        "   \n\n\t  trailing   ",
        "",
        "x" * 5000 + " " + "12345678901234567890" * 50,
    ]
    # the response as trained: the content as plain text (transformers' split_special_tokens)
    # + the end-of-turn token
    plain = tok(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    expected = [len(ids) + 1 for ids in plain]
    assert counter.response_lengths(texts) == expected
    assert expected[4] == 1  # an empty content is its end-of-turn token
    assert len(tok(texts[1], add_special_tokens=False)["input_ids"]) == 6 < expected[1] - 1  # spelled, not special
    counter.MAX_CHARS = 100  # one text per call past the bound
    assert counter.response_lengths(texts) == expected


def test_paper_config_edit_and_template_key(qwen, tmp_path):
    from transformers import AutoConfig, AutoTokenizer, Qwen2ForCausalLM

    from redi.model.base import prepare_base

    path, tok = qwen
    cfg = qwen_config(num_hidden_layers=2, hidden_size=64, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=VOCAB_ROWS)
    src = tmp_path / "base"
    Qwen2ForCausalLM(cfg).save_pretrained(src)
    tok.save_pretrained(src)
    template = tmp_path / "deepseek.jinja"
    template.write_text(DEEPSEEK_STYLE)
    import yaml

    paper = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "paper.yaml").read_text())
    # the paper's edit, named for Qwen2.5-Math-1.5B with its originals: applies to its real config
    prepare_base(str(tmp_path / "out"), local_path=str(src), chat_template=str(template),
                 config_overrides=paper["student"]["config_overrides"])
    out = AutoConfig.from_pretrained(tmp_path / "out")
    assert out.max_position_embeddings == 32768 and out.rope_parameters["rope_theta"] == 300000
    assert out.tie_word_embeddings and out.vocab_size == VOCAB_ROWS and not out.use_sliding_window
    assert AutoTokenizer.from_pretrained(tmp_path / "out").chat_template == DEEPSEEK_STYLE
    real = json.loads((QWEN_DIR / "config.json").read_text())
    assert (
        real["hidden_size"],
        real["num_hidden_layers"],
        real["num_attention_heads"],
        real["num_key_value_heads"],
        real["intermediate_size"],
        real["rope_theta"],
    ) == (1536, 28, 12, 2, 8960, 10000)


@pytest.mark.slow
def test_sft_and_redi_step_real_width_and_vocabulary(qwen, one_torch_thread):
    """One SFT and one REDI optimizer step of a 2-layer random Qwen2 with the real hidden size
    (1536), vocabulary (151,936 rows) and tied embeddings, on CPU, through our batching."""
    import torch
    from transformers import Qwen2ForCausalLM

    from redi.train.batching import Collator, tokenize_records
    from redi.train.config import RunConfig
    from redi.train.logprobs import response_logprobs
    from redi.train.trainer import batch_objective

    _, tok = qwen
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(qwen_config(num_hidden_layers=2, intermediate_size=256))
    assert model.get_input_embeddings().weight.shape == (VOCAB_ROWS, 1536)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    prompt = [{"role": "user", "content": user_content("Compute 2 + 3.")}]
    good = {"role": "assistant", "content": "<think>\n2 + 3 = 5.\n</think>\n\n$\\boxed{5}$"}
    bad = {"role": "assistant", "content": "<think>\n2 + 3 = 6.\n</think>\n\n$\\boxed{6}$"}
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)  # AdamW state would double the memory
    for objective, rec in (("sft", {"id": "s", "messages": prompt + [good]}),
                           ("redi", {"id": "p", "prompt": prompt, "chosen": [good], "rejected": [bad]})):
        cfg = RunConfig(objective=objective, learning_rate=1e-4, epochs=1, global_batch_size=1,
                        max_length=4096, max_prompt_length=800, max_response_length=4096)
        data = tokenize_records([rec], tok, cfg)
        batch = Collator(data, tok.pad_token_id, padding_free=False, sft_units=objective == "sft")(
            [{"index": 0, "weight": 1.0}])
        before = model.lm_head.weight.detach().clone()
        lp = response_logprobs(model, batch["input_ids"], batch["score_index"], batch["targets"],
                               attention_mask=batch["attention_mask"], chunk_size=64)
        loss = batch_objective(cfg, lp, batch).loss
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert not torch.equal(before, model.lm_head.weight)
