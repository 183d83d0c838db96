"""Prepare a pretrained student: fetch it (hub or local copy), apply a model-specific config edit,
fix its chat template's settings and name it.

What a prepared student directory holds besides the model and tokenizer:

* ``redi_source.json`` (:data:`redi.provenance.HUB_MODEL_RECORD`): the student's name
  (:func:`student_record`), read into every provenance record (training ``summary.json``,
  evaluation ``metrics.json``) and model card;
* in ``tokenizer_config.json`` (key ``redi_chat``, :func:`redi.chat_template.store_settings`):
  the date a clock-reading template renders with, the system turn (None = the template's own
  default) and the same student record, so every checkpoint saved with this tokenizer carries
  them.

Config edits are model-specific: the paper's ``max_position_embeddings 32768`` /
``rope_theta 300000`` are for Qwen2.5-Math-1.5B (4,096 / 10,000 before). The named form
``{model, expect, set}`` refuses a student whose own values differ from ``expect``; the bare form
``{key: value}`` still applies but warns for every value it changes.
"""

from __future__ import annotations

import hashlib
import json
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
NAMED_OVERRIDE_KEYS = {"model", "expect", "set"}


def _current(config, key: str):
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and key in rope and not hasattr(config, key):
        return rope[key]
    if not hasattr(config, key):
        raise KeyError(f"student.config_overrides: '{key}' is not a field of {type(config).__name__}")
    return getattr(config, key)


def _edit_config(config, key: str, value) -> None:
    # transformers 5 keeps rope_theta inside `rope_parameters`, older releases as a field.
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and key in rope and not hasattr(config, key):
        rope[key] = value
        return
    if not hasattr(config, key):
        raise KeyError(f"student.config_overrides: '{key}' is not a field of {type(config).__name__}")
    setattr(config, key, value)


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def apply_overrides(config, overrides: dict | None, student: str) -> dict:
    """Apply ``student.config_overrides`` to ``config``; returns ``{key: [old, new]}``.

    ``overrides``: ``{key: value}`` (applied; a WARNING names each value it changes), or the named
    form ``{"model": hub id the edit is meant for, "expect": {key: the model's original value},
    "set": {key: value}}``.

    Raises:
        ValueError: the named form's ``expect`` differs from the student's own values (the message
            names the model the edit is meant for, the key, the value expected and the value
            found), or the named form has other keys.
        KeyError: a key that is not a field of the config.
    """
    overrides = dict(overrides or {})
    named = "set" in overrides and set(overrides) <= NAMED_OVERRIDE_KEYS
    if not named and set(overrides) & NAMED_OVERRIDE_KEYS and "set" not in overrides:
        raise ValueError("student.config_overrides: the named form needs `set` (and `model`, `expect`)")
    edits = dict(overrides["set"] or {}) if named else overrides
    meant_for = overrides.get("model") if named else None
    for key, want in (overrides.get("expect") or {} if named else {}).items():
        found = _current(config, key)
        if not _same(found, want):
            raise ValueError(
                f"student.config_overrides are meant for {meant_for or 'another model'} ({key} = {want!r} before "
                f"the edit), but the student {student} has {key} = {found!r}: the edit would change a model it was "
                "not written for. Remove student.config_overrides or write the edit this student needs."
            )
    changes = {}
    for key, value in edits.items():
        old = _current(config, key)
        _edit_config(config, key, value)
        changes[key] = [old, value]
        if not _same(old, value):
            how = (f"meant for {meant_for}" if meant_for else
                   "not named for a model (write {model, expect, set} to have it checked)")  # fmt: skip
            log.warning("config edit of %s: %s %r -> %r (student.config_overrides, %s)", student, key, old, value, how)
    return changes


def weights_sha256(path: str | Path) -> str | None:
    """sha256 over the weight files of a model directory (name + content, sorted), or None."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin", ".gguf")) if (
        p.is_dir()) else []  # fmt: skip
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def student_record(*, hub_name, revision, local_path, config, license: str | None = None) -> dict:  # noqa: A002
    """The student's name: ``hub`` + ``revision`` (a hub model), or ``local_path`` +
    ``weights_sha256``; ``name_or_path`` (the config's ``_name_or_path``, the name its authors
    saved it under) and ``license`` (``student.license``) either way."""
    return {
        "hub": None if local_path else hub_name,
        "revision": None if local_path else revision,
        "local_path": str(local_path) if local_path else None,
        "weights_sha256": weights_sha256(local_path) if local_path else None,
        "name_or_path": getattr(config, "_name_or_path", None) or None,
        "license": license,
    }


def trusts_remote_code(model_path, configured: bool = False) -> bool:
    """Whether loading ``model_path`` may run the model's own code: ``configured`` (a stage's own
    key), or the ``student.trust_remote_code`` recorded when the student was prepared (in the
    tokenizer's ``tokenizer_config.json``, so every checkpoint trained from it carries it). Reads
    the JSON only: deciding runs no code."""
    if configured:
        return True
    try:
        cfg = json.loads((Path(model_path) / "tokenizer_config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False
    student = ((cfg.get("redi_chat") or {}) if isinstance(cfg, dict) else {}).get("student") or {}
    return student.get("trust_remote_code") is True


def describe_student(record: dict | None) -> str:
    """One line naming a student record (cards, summaries, logs)."""
    if not record:
        return "unknown student"
    if record.get("hub"):
        text = f"{record['hub']}" + (f" (revision {record['revision']})" if record.get("revision") else "")
    elif record.get("local_path"):
        sha = record.get("weights_sha256")
        text = f"local copy {record['local_path']}" + (f" (weights sha256 {sha[:16]})" if sha else "")
    else:
        text = "the pipeline's tiny student"
    if record.get("name_or_path"):
        text += f", saved as {record['name_or_path']!r}"
    return text


def prepare_base(
    out_dir: str,
    *,
    hub_name: str | None = None,
    revision: str | None = None,
    local_path: str | None = None,
    config_overrides: dict | None = None,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
    template_date: str | None = None,
    system_prompt: str | None = None,
    license: str | None = None,  # noqa: A002
) -> dict:
    """Save the student to ``out_dir`` (module doc) and return its record.

    ``config_overrides``: :func:`apply_overrides` (the paper's Qwen2.5-Math edit makes 19k-token
    traces fit). ``chat_template``: a Jinja file that replaces the tokenizer's template (a template
    that rewrites assistant turns is refused by training, see
    :func:`redi.train.batching.check_template_keeps_content`). ``template_date`` (YYYY-MM-DD) and
    ``system_prompt``: :func:`redi.chat_template.store_settings`. ``license``: the student's
    license as the model cards should state it.

    Raises:
        FileNotFoundError / RuntimeError: the local copy or the hub model cannot be loaded (the
            message says how to use a local copy offline); ValueError / KeyError: see
            :func:`apply_overrides`; :class:`redi.chat_template.ChatTemplateError`: the template
            does not close an assistant turn with a special token.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from redi.chat_template import default_system_turn, end_of_turn, reads_clock, store_settings
    from redi.provenance import HUB_MODEL_RECORD

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
    record = student_record(hub_name=hub_name, revision=revision, local_path=local_path, config=config,
                            license=license)  # fmt: skip
    record["trust_remote_code"] = bool(trust_remote_code)  # read by curation, training, evaluation
    changes = apply_overrides(config, config_overrides, describe_student(record))
    model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype="auto", **kwargs)
    out = Path(out_dir)
    if chat_template:
        tokenizer.chat_template = Path(chat_template).read_text(encoding="utf-8")
        record["chat_template"] = str(chat_template)
    store_settings(tokenizer, date=template_date, system_prompt=system_prompt, student=record)
    eot_text, eot_id = end_of_turn(tokenizer)
    settings = store_settings(tokenizer, date=template_date, system_prompt=system_prompt, student=record)
    record.update(end_of_turn=eot_text, template_reads_clock=reads_clock(tokenizer), template_date=settings["date"],
                  system_prompt=system_prompt, default_system_turn=default_system_turn(tokenizer),
                  config_overrides=changes)  # fmt: skip
    store_settings(tokenizer, date=template_date, system_prompt=system_prompt, student=record)
    if record["template_reads_clock"]:
        log.warning("%s reads the clock; every prompt is rendered with the fixed date %s (student.template_date)",
                    describe_student(record), record["template_date"])  # fmt: skip
    if record["default_system_turn"]:
        turn = record["default_system_turn"]
        log.warning("the chat template adds a default system turn to every example (%d tokens: %r); "
                    "set student.system_prompt to change it", turn["tokens"], turn["content"])  # fmt: skip
    gen = model.generation_config
    stops = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    if eot_id not in stops:  # generation stops where the template ends a turn
        gen.eos_token_id = [eot_id] + [s for s in stops if s is not None]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / HUB_MODEL_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    log.info("student: %s", describe_student(record))
    return {"source": source, "revision": revision, "overrides": {k: v[1] for k, v in changes.items()},
            "student": record}  # fmt: skip
