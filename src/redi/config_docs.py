"""One home for a setting's documentation: the config dataclass field.

Each field of a documented config dataclass carries its meaning as ``field(metadata={"help":
...})`` (as TRL's ``DPOConfig`` documents every knob beside it). This module writes that text
into the two places a user reads it:

* ``config/schema.yaml``: the ``description`` of the field's schema property (of each schema
  node that holds the key; a stage-2 sweep key adds "A list sweeps."); the rest of the file,
  types, bounds and defaults, is left byte for byte as it is;
* ``config/README.md``: the table between ``<!-- BEGIN generated: NAME ... -->`` and
  ``<!-- END generated: NAME -->``, one row per field (a nested dataclass as ``outer.inner``)
  with its default.

A section's keys that have no dataclass field (the ``evaluation`` section's workflow keys:
which benchmarks, the schedules, reference models, the job layout; ``Section.schema_keys``) are
documented once in their schema ``description``, and their README rows are written from it.
Fields a job gets from elsewhere (``Section.omit``: an evaluation's ``n_samples`` from its
schedule) are documented on the field only.

Run ``python -m redi.config_docs`` after changing a field's help or adding a field (a new field
needs its help and its schema property, whose type and bounds stay hand-written);
``--check`` only reports stale files, and ``tests/test_one_home_config_docs.py`` fails, naming
this command, while either file differs from what it would write.

Errors (``ValueError``): a field without ``help``, a field with no schema property, a missing
README marker; each message names the field, the schema path or the marker.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
README = ROOT / "config" / "README.md"
COMMAND = "python -m redi.config_docs"


@dataclass(frozen=True)
class Section:
    """One documented dataclass: where its fields live in the schema and the README."""

    name: str  # README marker name
    kind: type  # the dataclass whose fields are the keys
    schema_paths: tuple[tuple[str, ...], ...]  # schema ``properties`` mappings holding its keys
    key_header: str = "key"  # the README table's first column
    default_text: Callable[[str, Any], str | None] | None = None  # a field's default cell, or None
    omit: tuple[str, ...] = ()  # fields set per job, not by the config: documented on the field only
    schema_keys: tuple[str, ...] = ()  # config keys with no dataclass field (the workflow's own):
    #   their home is the schema's `description`; the README rows are generated from it


def _per_objective(key: str, default: Any) -> str | None:
    """A ``RunConfig`` default left to the objective registry: each objective's value."""
    from redi.train import objectives

    if default is not None:
        return None
    values = {n: objectives.get(n).defaults[key] for n in objectives.names() if key in objectives.get(n).defaults}
    return ("per objective: " + ", ".join(f"{n} {_literal(v)}" for n, v in values.items())) if values else None


def sections() -> tuple[Section, ...]:
    from redi.data.config import CurationConfig
    from redi.eval.config import WORKFLOW_KEYS, EvalConfig
    from redi.report.config import CONFIG_KEYS, ReportConfig
    from redi.train.config import RunConfig

    return (
        Section(
            "training",
            RunConfig,
            (("definitions", "run_common", "properties"), ("definitions", "stage2_run", "properties")),
            key_header="run key",
            default_text=_per_objective,
        ),
        Section("curation", CurationConfig, (("properties", "curation", "properties"),)),
        Section(
            "evaluation",
            EvalConfig,
            (("properties", "evaluation", "properties"),),
            omit=("n_samples", "limit", "split", "verify_workers", "trust_remote_code"),
            schema_keys=WORKFLOW_KEYS,
        ),
        Section(
            "report",
            ReportConfig,
            (("properties", "report", "properties"),),
            omit=tuple(f.name for f in dataclasses.fields(ReportConfig) if f.name not in CONFIG_KEYS),
        ),
    )


# ----------------------------------------------------------------------------- fields


def _help(kind: type, f: dataclasses.Field) -> str:
    text = f.metadata.get("help")
    if not text:
        raise ValueError(
            f"{kind.__name__}.{f.name} has no documentation: give it field(..., metadata={{'help': '...'}}) "
            f"and run `{COMMAND}`"
        )
    return " ".join(str(text).split())


def _nested(f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (``collapse: CollapseConfig``), else None."""
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        return f.default_factory  # type: ignore[return-value]
    return None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _literal(value: Any) -> str:
    """A default as the YAML a user would write: ``true``, ``null``, ``1e-4``, ``[cn_k12]``."""
    from redi.fmt import format_number

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value)


def _default_cell(value: Any) -> str:
    if value == "":
        return "—"
    return f"`{_literal(value)}`" if isinstance(value, (str, list, dict)) else _literal(value)


def _fields(kind: type, section: Section, top: bool) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(kind) if not (top and f.name in section.omit)]


def rows(section: Section, schema: dict | None = None) -> list[tuple[str, str, str]]:
    """``(key, default cell, help)`` of every leaf field, nested dataclasses as ``outer.inner``,
    then of every ``schema_keys`` key from ``schema`` (the parsed config/schema.yaml)."""
    out: list[tuple[str, str, str]] = []

    def walk(kind: type, prefix: str) -> None:
        for f in _fields(kind, section, not prefix):
            inner = _nested(f)
            if inner is not None:
                _help(kind, f)
                walk(inner, f"{prefix}{f.name}.")
                continue
            value = _default(f)
            cell = section.default_text(f.name, value) if section.default_text and not prefix else None
            out.append((prefix + f.name, cell or _default_cell(value), _help(kind, f)))

    walk(section.kind, "")
    if section.schema_keys:
        props = _schema_properties(schema or yaml.safe_load(SCHEMA.read_text()), section)
        for key in section.schema_keys:
            out += _schema_rows(props, key, key, section.name)
    return out


def _schema_properties(schema: dict, section: Section) -> dict:
    node = schema
    for key in section.schema_paths[0]:
        node = node[key]
    return node


def _schema_rows(props: dict, key: str, where: str, name: str) -> list[tuple[str, str, str]]:
    """README rows of a schema-documented key: one per leaf (``outer.inner``), its description;
    ``name``: the section, for errors (``evaluation.held_out_selection``)."""
    prop = props.get(key)
    if prop is None:
        raise ValueError(f"config/schema.yaml has no {name}.{where}")
    if "properties" in prop:  # a block of keys: one row per key
        return [
            row
            for inner in prop["properties"]
            for row in _schema_rows(prop["properties"], inner, f"{where}.{inner}", name)
        ]
    if not prop.get("description"):
        raise ValueError(f"config/schema.yaml: {name}.{where} has no description (its documentation's home)")
    return [(where, _schema_default(prop.get("default")), " ".join(prop["description"].split()))]


def _schema_default(value: Any) -> str:
    if isinstance(value, dict):
        return "`{" + ", ".join(value) + "}`" if value else "`{}`"
    return _default_cell(value)


# ----------------------------------------------------------------------------- schema


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if k.value == key:
            return v
    return None


def _node(root: yaml.Node, path: tuple[str, ...]) -> yaml.MappingNode:
    node = root
    for key in path:
        node = _child(node, key) if isinstance(node, yaml.MappingNode) else None
        if node is None:
            raise ValueError(f"config/schema.yaml has no {'.'.join(path)}")
    if not isinstance(node, yaml.MappingNode):
        raise ValueError(f"config/schema.yaml: {'.'.join(path)} is not a mapping")
    return node


def _set_description(text: str, prop: yaml.Node, where: str, description: str) -> tuple[int, int, str]:
    """The splice ``(start, end, new text)`` that makes ``description`` the property's own."""
    if not isinstance(prop, yaml.MappingNode):
        raise ValueError(f"config/schema.yaml: {where} is not a mapping; cannot document it")
    quoted = json.dumps(description, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    current = _child(prop, "description")
    if current is not None:
        return current.start_mark.index, current.end_mark.index, quoted
    if prop.flow_style:
        end = prop.end_mark.index - 1
        if text[end] != "}":
            raise ValueError(f"config/schema.yaml: cannot place a description in {where}")
        return end, end, (", " if prop.value else "") + f"description: {quoted}"
    first = prop.value[0][0].start_mark
    line_start = first.index - first.column
    return line_start, line_start, " " * first.column + f"description: {quoted}\n"


def _sweeps(prop: yaml.Node) -> bool:
    """A stage-2 key that also takes a list (``oneOf`` with an array)."""
    one_of = _child(prop, "oneOf") if isinstance(prop, yaml.MappingNode) else None
    return one_of is not None and any(
        isinstance(alt, yaml.MappingNode) and getattr(_child(alt, "type"), "value", None) == "array"
        for alt in one_of.value
    )


def _schema_splices(text: str, root: yaml.Node, section: Section) -> list[tuple[int, int, str]]:
    splices = []

    def walk(kind: type, props: list[tuple[yaml.MappingNode, str]], top: bool) -> None:
        for f in _fields(kind, section, top):
            help_text = _help(kind, f)
            found = []
            for mapping, where in props:
                prop = _child(mapping, f.name)
                if prop is not None:
                    found.append((prop, f"{where}.{f.name}"))
            if not found:
                paths = " or ".join(where for _, where in props)
                raise ValueError(f"{kind.__name__}.{f.name} is not in config/schema.yaml ({paths}): add its "
                                 f"type there, then run `{COMMAND}`")  # fmt: skip
            for prop, where in found:
                description = help_text + (" A list sweeps." if top and _sweeps(prop) else "")
                splices.append(_set_description(text, prop, where, description))
            inner = _nested(f)
            if inner is not None:
                walk(inner, [(_node(prop, ("properties",)), f"{where}.properties") for prop, where in found], False)

    walk(section.kind, [(_node(root, path), ".".join(path)) for path in section.schema_paths], True)
    return splices


def render_schema(text: str, secs: tuple[Section, ...]) -> str:
    """``text`` (config/schema.yaml) with every section's descriptions from the fields' help."""
    root = yaml.compose(text)
    splices = sorted((s for sec in secs for s in _schema_splices(text, root, sec)), reverse=True)
    for start, end, new in splices:
        text = text[:start] + new + text[end:]
    yaml.safe_load(text)  # still a YAML document
    return text


# ----------------------------------------------------------------------------- README


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN generated: {name}", f"<!-- END generated: {name} -->"


def table(section: Section, schema: dict | None = None) -> str:
    lines = [f"| {section.key_header} | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {default} | {meaning} |" for key, default, meaning in _cells(rows(section, schema))]
    return "\n".join(lines)


def _cells(found: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [(key, default, meaning.replace("|", "\\|")) for key, default, meaning in found]


def render_readme(text: str, secs: tuple[Section, ...], schema: dict | None = None) -> str:
    """``text`` (config/README.md) with each section's generated table replaced; ``schema``: the
    parsed config/schema.yaml the schema-documented rows come from (default: the file)."""
    for sec in secs:
        begin, end = _markers(sec.name)
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            raise ValueError(f"config/README.md lacks the lines '{begin} ({COMMAND}) -->' ... '{end}'")
        head = text.index("\n", i) + 1
        text = text[:head] + table(sec, schema) + "\n" + text[j:]
    return text


# ----------------------------------------------------------------------------- command


def render(schema: Path = SCHEMA, readme: Path = README) -> dict[Path, str]:
    """``{file: the text it should have}`` for the schema and the README."""
    secs = sections()
    schema_text = render_schema(schema.read_text(), secs)
    return {schema: schema_text, readme: render_readme(readme.read_text(), secs, yaml.safe_load(schema_text))}


def stale(schema: Path = SCHEMA, readme: Path = README) -> list[Path]:
    return [path for path, text in render(schema, readme).items() if path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    args = ap.parse_args(argv)
    out = render()
    changed = [path for path, text in out.items() if path.read_text() != text]
    if args.check:
        for path in changed:
            print(f"{path.relative_to(ROOT)} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        path.write_text(out[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
