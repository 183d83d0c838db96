"""Snakemake adapter: prepare a pretrained student or a reference model (hub or local copy)."""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.model.base import prepare_base  # noqa: E402

spec = snakemake.params.get("student") or snakemake.params.ref
prepare_base(
    snakemake.output[0],
    hub_name=spec.get("hub_name"),
    revision=spec.get("revision"),
    local_path=spec.get("local_path"),
    config_overrides=spec.get("config_overrides"),
    chat_template=spec.get("chat_template"),
    template_date=spec.get("template_date"),
    system_prompt=spec.get("system_prompt"),
    license=spec.get("license"),
    trust_remote_code=spec.get("trust_remote_code", snakemake.params.get("trust_remote_code", False)),
)
