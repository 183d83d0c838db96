"""A setting is documented once, beside its dataclass field (``metadata={"help": ...}``);
``python -m redi.config_docs`` writes config/schema.yaml's descriptions and config/README.md's
tables from it. The shipped files must be what it writes, and it must name what is missing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import yaml

from redi import config_docs
from redi.config_docs import README, ROOT, SCHEMA, Section, render_readme, render_schema


def test_schema_and_readme_are_written_from_the_fields():
    stale = [str(p.relative_to(ROOT)) for p in config_docs.stale()]
    assert not stale, f"{stale} differ from the fields' help: run `{config_docs.COMMAND}`"


def test_every_documented_field_is_described_in_the_schema_and_the_readme():
    schema = yaml.safe_load(SCHEMA.read_text())
    readme = README.read_text()
    for section in config_docs.sections():
        for key, _default, meaning in config_docs.rows(section):
            assert f"| `{key}` |" in readme and meaning in readme, key
        for path in section.schema_paths:
            node = schema
            for part in path:
                node = node[part]
            for f in dataclasses.fields(section.kind):
                if f.name in node:
                    assert node[f.name]["description"].startswith(" ".join(f.metadata["help"].split())), f.name


@dataclass
class Inner:
    depth: int = field(default=2, metadata={"help": "How deep."})


@dataclass
class Toy:
    rate: float = field(default=1e-4, metadata={"help": "A rate | with a bar."})
    mode: str = field(default="auto", metadata={"help": "Which mode."})
    inner: Inner = field(default_factory=Inner, metadata={"help": "Nested settings."})


SCHEMA_TEXT = """\
properties:
  toy:
    type: object
    properties:
      rate: {type: number, description: Old text.}   # a comment that stays
      mode:
        oneOf:
          - {enum: [auto, x]}
          - {type: array}
      inner:
        type: object
        properties:
          depth: {type: integer}
      other: {type: string}
"""
README_TEXT = "# t\n<!-- BEGIN generated: toy (x) -->\nold table\n<!-- END generated: toy -->\ntail\n"
TOY = Section("toy", Toy, (("properties", "toy", "properties"),))


def test_the_generator_writes_descriptions_and_rows_and_keeps_the_rest():
    out = render_schema(SCHEMA_TEXT, (TOY,))
    assert "# a comment that stays" in out and "other: {type: string}" in out
    toy = yaml.safe_load(out)["properties"]["toy"]
    assert toy["properties"]["rate"] == {"type": "number", "description": "A rate | with a bar."}
    assert toy["properties"]["mode"]["description"] == "Which mode. A list sweeps."
    assert toy["properties"]["inner"]["description"] == "Nested settings."
    assert toy["properties"]["inner"]["properties"]["depth"]["description"] == "How deep."
    assert render_schema(out, (TOY,)) == out  # idempotent
    readme = render_readme(README_TEXT, (TOY,))
    assert readme.splitlines() == [
        "# t",
        "<!-- BEGIN generated: toy (x) -->",
        "| key | default | meaning |",
        "|---|---|---|",
        "| `rate` | 1e-4 | A rate \\| with a bar. |",
        "| `mode` | `auto` | Which mode. |",
        "| `inner.depth` | 2 | How deep. |",
        "<!-- END generated: toy -->",
        "tail",
    ]
    assert render_readme(readme, (TOY,)) == readme


def test_a_new_field_without_help_or_schema_entry_is_named():
    @dataclass
    class Undocumented(Toy):
        fresh: bool = False  # a comment is not documentation

    with pytest.raises(ValueError, match=r"Undocumented\.fresh has no documentation.*python -m redi.config_docs"):
        render_schema(SCHEMA_TEXT, (Section("toy", Undocumented, TOY.schema_paths),))

    @dataclass
    class Unvalidated(Toy):
        fresh: bool = field(default=False, metadata={"help": "New."})

    with pytest.raises(ValueError, match=r"Unvalidated\.fresh is not in config/schema.yaml \(properties.toy"):
        render_schema(SCHEMA_TEXT, (Section("toy", Unvalidated, TOY.schema_paths),))
    with pytest.raises(ValueError, match="lacks the lines '<!-- BEGIN generated: toy"):
        render_readme("# no markers\n", (TOY,))


def test_the_command_checks_the_shipped_files():
    result = subprocess.run([sys.executable, "-m", "redi.config_docs", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_workflow_keys_are_documented_in_the_schema_and_per_job_fields_on_the_field_only():
    """A key with no dataclass field (``schema_keys``) has its home in the schema's description:
    its README rows come from there (a block of keys: one row per key); a field set per job
    (``omit``) needs no schema entry."""

    @dataclass
    class WithJobField(Toy):
        per_job: int = field(default=3, metadata={"help": "Set per job."})

    text = SCHEMA_TEXT.replace(
        "other: {type: string}", "other: {type: string, default: x, description: The other key.}"
    )
    text += "      block:\n        type: object\n        properties:\n          a: {default: [1], description: A.}\n"
    section = Section("toy", WithJobField, TOY.schema_paths, omit=("per_job",), schema_keys=("other", "block"))
    out = render_schema(text, (section,))
    assert "Set per job" not in out
    readme = render_readme(README_TEXT, (section,), yaml.safe_load(out))
    assert "| `other` | `x` | The other key. |" in readme and "| `block.a` | `[1]` | A. |" in readme
    assert "per_job" not in readme
    with pytest.raises(ValueError, match="toy.other has no description"):
        render_readme(README_TEXT, (section,), yaml.safe_load(SCHEMA_TEXT))
