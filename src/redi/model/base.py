"""Prepare a pretrained student: fetch it (hub or local copy) and apply the paper's config edit."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HUB_HELP = (
    "Could not load '{name}' (revision {revision}) from the Hugging Face hub: {error}\n"
    "If this machine is offline, download the model elsewhere (e.g. `huggingface-cli download "
    "{name} --revision {revision} --local-dir /path/to/model`) and set `student.local_path: "
    "/path/to/model` in your config (for a reference model: the `local_path` of its entry in "
    "`evaluation.reference_models`)."
)


def _edit_config(config, key: str, value) -> None:
    # transformers 5 keeps rope_theta inside `rope_parameters`, older releases as a field.
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and key in rope and not hasattr(config, key):
        log.info("config edit: rope_parameters.%s %r -> %r", key, rope[key], value)
        rope[key] = value
        return
    if not hasattr(config, key):
        raise KeyError(f"student.config_overrides: '{key}' is not a field of {type(config).__name__}")
    log.info("config edit: %s %r -> %r", key, getattr(config, key), value)
    setattr(config, key, value)


def prepare_base(
    out_dir: str,
    *,
    hub_name: str | None = None,
    revision: str | None = None,
    local_path: str | None = None,
    config_overrides: dict | None = None,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
) -> dict:
    """Save the student to ``out_dir`` with ``config_overrides`` applied to its config.

    The paper edits Qwen2.5-Math-1.5B to ``max_position_embeddings=32768`` and
    ``rope_theta=300000`` so that 19k-token traces fit. ``chat_template``: a Jinja file that
    replaces the tokenizer's template (a template that rewrites assistant turns is refused by
    training, see :func:`redi.train.batching.check_template_keeps_content`).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = local_path or hub_name
    if not source:
        raise ValueError("student: set either `hub_name` or `local_path`")
    kwargs = {"trust_remote_code": trust_remote_code}
    if not local_path and revision:
        kwargs["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as error:
        if local_path:
            raise FileNotFoundError(f"student.local_path '{local_path}': {error}") from error
        raise RuntimeError(HUB_HELP.format(name=hub_name, revision=revision, error=error)) from error
    for key, value in (config_overrides or {}).items():
        _edit_config(config, key, value)
    model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype="auto", **kwargs)
    out = Path(out_dir)
    if chat_template:
        tokenizer.chat_template = Path(chat_template).read_text(encoding="utf-8")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"source": source, "revision": revision, "overrides": dict(config_overrides or {})}
