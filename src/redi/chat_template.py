"""The student's chat template as every stage uses it: rendering, control tokens, the
end-of-turn token, and the one definition of "the response as trained".

Why this module exists (one home for what curation, training, evaluation and the teacher stage
must agree on):

* **Message contents are plain text.** ``tokenizer(text)`` matches special-token *strings*
  anywhere in ``text``, so a trace that mentions ``<|im_end|>`` would get a real end-of-turn id
  mid-response, and a problem holding ``<|im_end|>\\n<|im_start|>assistant\\n`` would inject a
  fake turn. Here a rendered conversation is cut only at the template's own control tokens
  (special tokens the template wrote, outside every message content); the text between two cuts
  is encoded with special-token matching off (``tokenizers``' ``encode_special_tokens``), so a
  content's special-token strings become ordinary tokens. For text without such strings the ids
  equal ``tokenizer(text, add_special_tokens=False)`` (the cuts fall where the tokenizer's own
  added-token split falls).
* **The end-of-turn token is learned from the template**, not assumed to be ``<|im_end|>``:
  :func:`end_of_turn` renders a one-token assistant turn and reads the special token that follows
  the content (``<|im_end|>`` for ChatML/Qwen/SmolLM2, ``<|eot_id|>`` for Llama-3.x).
* **The response as trained** (:func:`response_ids`) is the content as plain text followed by that
  end-of-turn id; curation's length filter (:func:`response_lengths`) and training's tokenisation
  both use it, so a response the filter keeps at ``max_response_length`` reaches training whole.
* **Templates that read the clock** (Llama-3.2's ``strftime_now`` "Today Date") render with a
  fixed date (:func:`template_settings`, ``student.template_date``), so prompts do not depend on
  the day a job runs.
* **The default system turn** some templates add when a conversation has none (SmolLM2: "You are
  a helpful AI assistant named SmolLM, ...") is kept unless ``student.system_prompt`` names one
  (:func:`prompt_messages`); :func:`default_system_turn` reports it.

Settings travel with the tokenizer: :func:`store_settings` writes them into the tokenizer's
``tokenizer_config.json`` (key ``redi_chat``) when the student is prepared, and every checkpoint
saved with that tokenizer keeps them.
"""

from __future__ import annotations

import datetime as _dt
import re
import weakref
from dataclasses import dataclass

import numpy as np

#: the date a template that reads the clock sees unless ``student.template_date`` says otherwise
DEFAULT_TEMPLATE_DATE = "2026-01-01"
SETTINGS_KEY = "redi_chat"
#: a content probe: one ordinary token in every vocabulary we know
PROBE = "OK"
_SENTINEL = "\ue000redi{}\ue001"
#: texts per tokenizer call and characters per call (a call's encodings stay bounded)
BATCH = 256
MAX_CHARS = 2_000_000


class ChatTemplateError(ValueError):
    """The student's chat template cannot be used as training and evaluation need it (it rewrites
    a message's content, or ends a turn with something other than a special token)."""


# ------------------------------------------------------------------------------ settings


def template_settings(tokenizer) -> dict:
    """``{"date": "YYYY-MM-DD", "system_prompt": str | None, "student": dict | None}`` stored
    with ``tokenizer`` (defaults: :data:`DEFAULT_TEMPLATE_DATE`, ``None`` = the template's own
    system turn, ``None`` = no student record)."""
    stored = (getattr(tokenizer, "init_kwargs", None) or {}).get(SETTINGS_KEY) or {}
    return {"date": str(stored.get("date") or DEFAULT_TEMPLATE_DATE), "system_prompt": stored.get("system_prompt"),
            "student": stored.get("student")}  # fmt: skip


def store_settings(tokenizer, *, date: str | None = None, system_prompt: str | None = None,
                   student: dict | None = None) -> dict:  # fmt: skip
    """Attach the template settings (and the student record of :mod:`redi.model.base`) to
    ``tokenizer``; ``save_pretrained`` writes them into ``tokenizer_config.json``. Returns them.

    Raises:
        ValueError: ``date`` is not ``YYYY-MM-DD``.
    """
    date = str(date or DEFAULT_TEMPLATE_DATE)
    try:
        _dt.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"student.template_date {date!r}: expected YYYY-MM-DD") from exc
    settings = {"date": date, "system_prompt": system_prompt, "student": student}
    tokenizer.init_kwargs[SETTINGS_KEY] = settings
    _FACTS.pop(tokenizer, None)  # the end-of-turn probe renders with these settings
    return settings


def reads_clock(tokenizer) -> bool:
    """Whether rendering depends on the day: the output changes when the clock does."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else str(tokenizer.chat_template)
    if "strftime_now" not in template:
        return False
    msgs = [{"role": "user", "content": PROBE}]
    days = [_dt.date(2001, 1, 1), _dt.date(2002, 6, 15)]
    texts = {_render_raw(tokenizer, msgs, True, d, None) for d in days}
    return len(texts) > 1


# ------------------------------------------------------------------------------ rendering


def _render_raw(tokenizer, messages, generation_prompt: bool, date: _dt.date, system_prompt):
    fixed = _dt.datetime(date.year, date.month, date.day, 12, 0, 0)
    if system_prompt is not None and (not messages or messages[0].get("role") != "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=generation_prompt,
        # a template variable shadows transformers' global of that name: every clock read is fixed
        strftime_now=lambda fmt: fixed.strftime(fmt),
    )


def render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    """The chat template's text for ``messages`` with the stored settings (fixed date, system
    turn); ``generation_prompt``: open the assistant turn (``add_generation_prompt``)."""
    s = template_settings(tokenizer)
    return _render_raw(tokenizer, messages, generation_prompt, _dt.date.fromisoformat(s["date"]), s["system_prompt"])


def prompt_messages(messages: list[dict], tokenizer) -> list[dict]:
    """``messages`` as rendered: with the configured system turn first when one is set."""
    system = template_settings(tokenizer)["system_prompt"]
    if system is not None and (not messages or messages[0].get("role") != "system"):
        return [{"role": "system", "content": system}, *messages]
    return list(messages)


# ------------------------------------------------------------------------------ tokens


class _Facts:
    """What one tokenizer object needs, built once: control-token regex and a plain encoder."""

    def __init__(self, tokenizer):
        import tokenizers

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: a fast (Rust) tokenizer is needed")
        self.controls = control_tokens(tokenizer)
        alternatives = sorted(self.controls, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        plain = tokenizers.Tokenizer.from_str(backend.to_str())
        plain.no_truncation()
        plain.no_padding()
        plain.encode_special_tokens = True  # special-token strings are ordinary text
        self.plain = plain
        self.eot: tuple[str, int] | None = None


_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _facts(tokenizer) -> _Facts:
    facts = _FACTS.get(tokenizer)
    if facts is None:
        facts = _FACTS[tokenizer] = _Facts(tokenizer)
    return facts


def control_tokens(tokenizer) -> dict[str, int]:
    """Every special token of ``tokenizer`` (added tokens marked special, and the named special
    tokens: bos/eos/pad/unk/...): string -> id. Non-special added tokens (``<think>`` in some
    vocabularies) are ordinary text."""
    out: dict[str, int] = {}
    for tid, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False) and tok.content:
            out[str(tok.content)] = int(tid)
    for text in getattr(tokenizer, "all_special_tokens", []) or []:
        tid = tokenizer.convert_tokens_to_ids(text)
        if text and isinstance(tid, int) and tid >= 0 and text not in out:
            out[str(text)] = tid
    return out


def spelled_controls(tokenizer, text: str) -> list[str]:
    """The control-token strings that ``text`` spells (in order, with repeats)."""
    pattern = _facts(tokenizer).pattern
    return pattern.findall(text) if pattern is not None else []


def _batches(texts: list[str], batch: int | None = None, max_chars: int | None = None):
    batch, max_chars = batch or BATCH, max_chars or MAX_CHARS
    k = 0
    while k < len(texts):
        end, chars = k, 0
        while end < len(texts) and end - k < batch and (end == k or chars + len(texts[end]) <= max_chars):
            chars += len(texts[end])
            end += 1
        yield k, end
        k = end


def encode_plain(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Ids of each text as plain text (special-token strings split into ordinary tokens, no
    BOS/EOS added): int32 arrays, a bounded batch per call."""
    plain = _facts(tokenizer).plain
    out: list[np.ndarray] = []
    for a, b in _batches(texts):
        encodings = plain.encode_batch_fast(texts[a:b], add_special_tokens=False)
        out.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
    return out


def plain_lengths(tokenizer, texts: list[str], batch: int | None = None, max_chars: int | None = None) -> list[int]:
    """``len`` of each :func:`encode_plain` result, without keeping the ids (``batch`` texts and
    ``max_chars`` characters per call at most)."""
    plain = _facts(tokenizer).plain
    out: list[int] = []
    for a, b in _batches(texts, batch, max_chars):
        out.extend(len(e) for e in plain.encode_batch_fast(texts[a:b], add_special_tokens=False))
    return out


def encode_rendered(tokenizer, items: list[tuple[str, list[tuple[int, int]]]]) -> list[np.ndarray]:
    """Ids of rendered texts: ``items`` are ``(text, content spans)``; a control-token string is a
    control id only outside every span (the template wrote it), everything else is plain text."""
    facts = _facts(tokenizer)
    layouts, chunks = [], []
    for text, spans in items:
        layout, pos = [], 0
        if facts.pattern is not None:
            for m in facts.pattern.finditer(text):
                if any(m.start() < e and m.end() > s for s, e in spans):
                    continue  # a content spells it: text
                if m.start() > pos:
                    layout.append(len(chunks))
                    chunks.append(text[pos : m.start()])
                layout.append(-1 - facts.controls[m.group()])
                pos = m.end()
        if pos < len(text):
            layout.append(len(chunks))
            chunks.append(text[pos:])
        layouts.append(layout)
    encoded = encode_plain(tokenizer, chunks)
    out = []
    for layout in layouts:
        parts = [encoded[k] if k >= 0 else np.array([-1 - k], dtype=np.int32) for k in layout]
        out.append(np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32))
    return out


# ------------------------------------------------------------------------------ template facts


def template_name(tokenizer) -> str:
    """How errors name the template: the tokenizer's path and the template's sha1."""
    import hashlib

    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else str(tokenizer.chat_template)
    digest = hashlib.sha1(template.encode("utf-8")).hexdigest()[:12]
    return f"the chat template of {getattr(tokenizer, 'name_or_path', '') or 'the tokenizer'!r} (sha1 {digest})"


def end_of_turn(tokenizer) -> tuple[str, int]:
    """(token string, id) of the token the template writes right after an assistant turn's
    content: rendered from a one-token assistant turn.

    Raises:
        ChatTemplateError: no chat template, or what follows the content is not a special token
            (the message names the template and what it wrote).
    """
    facts = _facts(tokenizer)
    if facts.eot is not None:
        return facts.eot
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "tokenizer")
        raise ChatTemplateError(f"{name}: the tokenizer has no chat template")
    user = [{"role": "user", "content": "1+1?"}]
    prompt = render(tokenizer, user, True)
    full = render(tokenizer, user + [{"role": "assistant", "content": PROBE}], False)
    if not full.startswith(prompt):
        raise ChatTemplateError(
            f"{template_name(tokenizer)}: a rendered conversation does not start with its rendered generation "
            f"prompt ({prompt[-40:]!r} vs {full[len(prompt) - 40 : len(prompt) + 20]!r})"
        )
    tail = full[len(prompt) :]
    k = tail.rfind(PROBE)
    after = tail[k + len(PROBE) :] if k >= 0 else ""
    m = facts.pattern.match(after) if facts.pattern is not None and k >= 0 else None
    if m is None:
        raise ChatTemplateError(
            f"{template_name(tokenizer)}: after an assistant turn's content it writes {after[:40]!r}, which does not "
            f"start with a special token of the tokenizer ({sorted(facts.controls)[:8]}...): the pipeline cannot tell "
            "which token ends a turn. Set `student.chat_template` to a template that closes assistant turns with a "
            "special token (as ChatML's <|im_end|> or Llama-3's <|eot_id|>)."
        )
    facts.eot = (m.group(), facts.controls[m.group()])
    return facts.eot


def end_of_turn_id(tokenizer) -> int:
    """The id of :func:`end_of_turn`."""
    return end_of_turn(tokenizer)[1]


def default_system_turn(tokenizer) -> dict | None:
    """The system turn a template writes by itself when a conversation has none (SmolLM2: "You
    are a helpful AI assistant named SmolLM, ..."; Qwen2.5-Math: "Please reason step by step,
    ..."), as ``{"content": str, "tokens": int}`` (tokens of the whole turn, control tokens
    included); None when it writes none or ``student.system_prompt`` is set."""
    if template_settings(tokenizer)["system_prompt"] is not None:
        return None
    user = [{"role": "user", "content": _SENTINEL.format(1)}]
    head_user = render(tokenizer, user, True).split(_SENTINEL.format(1))[0]
    sys_text = render(tokenizer, [{"role": "system", "content": _SENTINEL.format(0)}] + user, True)
    head_sys, _, rest = sys_text.partition(_SENTINEL.format(0))
    mid = rest.split(_SENTINEL.format(1))[0]
    if not (head_user.startswith(head_sys) and head_user.endswith(mid)) or len(head_user) < len(head_sys) + len(mid):
        return None
    content = head_user[len(head_sys) : len(head_user) - len(mid)]
    eot_text = end_of_turn(tokenizer)[0]
    user_header = (mid.rsplit(eot_text, 1)[-1] if eot_text in mid else mid).lstrip()  # a turn's "\n" is its own
    n = len(encode_rendered(tokenizer, [(head_user, [])])[0]) - len(encode_rendered(tokenizer, [(user_header, [])])[0])
    bos = getattr(tokenizer, "bos_token", None)
    if bos and head_user.startswith(bos) and not user_header.startswith(bos):
        n -= 1
    return {"content": content, "tokens": n} if content or head_sys else None


# ------------------------------------------------------------------------------ spans


def render_with_spans(tokenizer, messages: list[dict], generation_prompt: bool, where: str = ""):
    """(text, content spans) of ``messages`` rendered: each message's content located in the text
    through a rendering with placeholder contents (a template that trims a content, as Llama-3's
    ``| trim``, is followed).

    Raises:
        ChatTemplateError: the template writes a message's content otherwise (names ``where``).
    """
    text = render(tokenizer, messages, generation_prompt)
    skeleton = render(
        tokenizer, [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)], generation_prompt
    )
    pieces, rest = [], skeleton
    for i in range(len(messages)):
        k = rest.find(_SENTINEL.format(i))
        if k < 0:
            raise ChatTemplateError(f"{where}: {template_name(tokenizer)} does not write message {i}'s content")
        pieces.append(rest[:k])
        rest = rest[k + len(_SENTINEL.format(i)) :]
    pieces.append(rest)
    if not text.startswith(pieces[0]):
        raise ChatTemplateError(f"{where}: {template_name(tokenizer)} renders the text before the first message "
                                "differently for this conversation")  # fmt: skip
    pos, spans = len(pieces[0]), []
    for i, m in enumerate(messages):
        content, nxt, last = str(m.get("content") or ""), pieces[i + 1], i == len(messages) - 1
        for cand in dict.fromkeys((content, content.strip())):
            ok = text[pos:] == cand + nxt if last else text.startswith(cand + nxt, pos)
            if ok:
                spans.append((pos, pos + len(cand)))
                pos += len(cand) + len(nxt)
                break
        else:
            shown = text[pos : pos + 60]
            raise ChatTemplateError(
                f"{where}: {template_name(tokenizer)} rewrites the {m.get('role')} turn's content "
                f"(it renders {shown!r}...; the content starts {content[:40]!r})"
            )
    return text, spans


def prompt_ids(tokenizer, prompts: list[list[dict]], where: list[str] | None = None,
               suffix: str = "") -> list[np.ndarray]:  # fmt: skip
    """Ids of each conversation's generation prompt (``add_generation_prompt``) + ``suffix``
    (plain text, e.g. a forced ``<think>\\n``): contents as plain text, the template's control
    tokens as control ids."""
    where = where or [f"prompt {i}" for i in range(len(prompts))]
    items = []
    for msgs, w in zip(prompts, where):
        text, spans = render_with_spans(tokenizer, msgs, True, w)
        if suffix:
            spans = spans + [(len(text), len(text) + len(suffix))]
            text += suffix
        items.append((text, spans))
    return encode_rendered(tokenizer, items)


def response_ids(tokenizer, contents: list[str]) -> list[np.ndarray]:
    """THE response as trained: each content as plain text, then the end-of-turn id (int32)."""
    eot = np.array([end_of_turn_id(tokenizer)], dtype=np.int32)
    return [np.concatenate([ids, eot]) for ids in encode_plain(tokenizer, contents)]


def response_lengths(tokenizer, contents: list[str], batch: int | None = None,
                     max_chars: int | None = None) -> list[int]:  # fmt: skip
    """``len`` of each :func:`response_ids` result (content tokens + 1 end-of-turn token): the
    unit of ``max_response_length`` in curation and training."""
    end_of_turn(tokenizer)  # a template without one stops here, not in training
    return [n + 1 for n in plain_lengths(tokenizer, contents, batch, max_chars)]


@dataclass
class RowCheck:
    """A conversation whose template rendering differs from prompt + response as trained."""

    example: str
    detail: str


def check_rendering(tokenizer, conversations: list[list[dict]], prompts: list[np.ndarray],
                    responses: list[np.ndarray], ids: list[str]) -> list[RowCheck]:  # fmt: skip
    """Render every conversation (prompt turns + one assistant turn) with the template and compare
    with ``prompt + response`` as trained: text first (the content must follow the generation
    prompt verbatim and be closed by the end-of-turn token), then ids (one more tokenisation per
    row: a merge across the prompt/content boundary shows here). Returns the rows that differ."""
    eot_text, _ = end_of_turn(tokenizer)
    bad: list[RowCheck] = []
    items, index = [], []
    for k, (conv, ex) in enumerate(zip(conversations, ids)):
        content = str(conv[-1].get("content") or "")
        prompt_text = render(tokenizer, conv[:-1], True)
        full = render(tokenizer, conv, False)
        if not full.startswith(prompt_text):
            bad.append(RowCheck(ex, "the rendered conversation does not start with the rendered generation prompt"))
            continue
        tail = full[len(prompt_text) :]
        if not tail.startswith(content + eot_text):
            diff = next((j for j, (a, b) in enumerate(zip(tail, content + eot_text)) if a != b),
                        min(len(tail), len(content) + len(eot_text)))  # fmt: skip
            lo, hi, want = max(0, diff - 20), diff + 40, content + eot_text
            bad.append(RowCheck(ex, f"the template writes the assistant turn as {tail[lo:hi]!r} where the "
                                    f"content + {eot_text} reads {want[lo:hi]!r} (character {diff})"))  # fmt: skip
            continue
        try:
            _, spans = render_with_spans(tokenizer, conv[:-1], True, ex)
        except ChatTemplateError as exc:
            bad.append(RowCheck(ex, str(exc)))
            continue
        spans = spans + [(len(prompt_text), len(prompt_text) + len(content))]
        items.append((full, spans))
        index.append(k)
    for k, full_ids in zip(index, encode_rendered(tokenizer, items)):
        want = np.concatenate([prompts[k], responses[k]])
        if len(full_ids) < len(want) or not np.array_equal(full_ids[: len(want)], want):
            n = next((j for j, (a, b) in enumerate(zip(full_ids, want)) if a != b), min(len(full_ids), len(want)))
            bad.append(RowCheck(ids[k], f"the rendered conversation tokenises differently from prompt + response "
                                        f"from token {n} (prompt has {len(prompts[k])} tokens): "
                                        f"{tokenizer.decode(full_ids[max(0, n - 3) : n + 5].tolist())!r} vs "
                                        f"{tokenizer.decode(want[max(0, n - 3) : n + 5].tolist())!r}"))  # fmt: skip
    return bad
