"""Qwen2.5-Math-1.5B's real tokenizer, chat template and config for the tests, built offline.

The 151,643-token byte-level BPE comes from the PyPI package ``dashscope`` (test extra):
``dashscope/resources/qwen.tiktoken`` (base64 token bytes and rank per line; the rank is the
token id). The merges are derived from the ranks (one per token, the last merge BPE makes);
they equal Qwen's published merges.txt (151,387 lines, checked once, see the fixture README). The
22 added tokens (``<|endoftext|>`` 151643 ... ``<|file_sep|>`` 151664), the chat template and
``config.json`` are shipped in ``tests/fixtures/qwen2.5-math-1.5b`` (their sources are in its
README). Ids the tests pin were checked against Qwen's published vocab.json/merges.txt (see
``KNOWN_IDS`` in ``test_qwen_real.py``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

QWEN_DIR = Path(__file__).resolve().parent / "fixtures" / "qwen2.5-math-1.5b"
N_BPE = 151_643
VOCAB_ROWS = 151_936  # embedding rows of Qwen2.5-Math-1.5B (padded beyond the 151,665 tokens)


def tiktoken_path() -> Path:
    """``qwen.tiktoken`` inside the installed ``dashscope`` package (not imported: only its file)."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the test extra's `dashscope` package is not installed (pip install -e '.[test]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed dashscope package")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte -> printable character table (what byte-level BPE vocabularies are written in)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab: token string -> id, merges in priority order) from ``qwen.tiktoken``."""
    table = _bytes_to_unicode()
    ranks: dict[bytes, int] = {}
    for line in tiktoken_path().read_bytes().splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    vocab = {"".join(table[b] for b in tok): rank for tok, rank in ranks.items()}
    to_str = lambda b: "".join(table[x] for x in b)  # noqa: E731
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) > 1:
            left, right = _last_merge(tok, rank, ranks)
            merges.append((to_str(left), to_str(right)))
    return vocab, merges


def _last_merge(tok: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two parts BPE joins last to make ``tok``: merge its bytes with the tokens ranked
    below it, lowest rank first (tiktoken's algorithm), until two parts remain."""
    parts = [tok[i : i + 1] for i in range(len(tok))]
    while len(parts) > 2:
        best = min(
            ((ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)),
            default=(rank, -1),
        )
        if best[0] >= rank:
            raise AssertionError(f"token {tok!r} (id {rank}) cannot be built from lower-ranked tokens")
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts[0], parts[1]


def build_qwen_tokenizer(out_dir: Path | None = None):
    """Qwen2.5-Math-1.5B's tokenizer (Qwen2Tokenizer: Qwen2's pre-tokenizer regex, NFC, byte
    level) with its 22 added tokens and chat template; saved to ``out_dir`` if given."""
    from transformers import AddedToken, Qwen2Tokenizer

    vocab, merges = bpe_vocab_and_merges()
    if len(vocab) != N_BPE:
        raise AssertionError(f"qwen.tiktoken has {len(vocab)} tokens, expected {N_BPE}")
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    added = json.loads((QWEN_DIR / "added_tokens.json").read_text())
    for item in added:  # in id order, so each lands on its published id
        tok.add_tokens([AddedToken(item["content"], special=item["special"], normalized=False)],
                       special_tokens=item["special"])
        got = tok.convert_tokens_to_ids(item["content"])
        if got != item["id"]:
            raise AssertionError(f"{item['content']} got id {got}, Qwen2.5 has {item['id']}")
    tok.chat_template = (QWEN_DIR / "chat_template.jinja").read_text()
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def qwen_config(**overrides):
    """Qwen2.5-Math-1.5B's real ``config.json`` as a transformers config (``overrides`` applied)."""
    from transformers import Qwen2Config

    # overrides go in before construction: derived fields (layer_types) follow them
    return Qwen2Config.from_dict({**json.loads((QWEN_DIR / "config.json").read_text()), **overrides})
