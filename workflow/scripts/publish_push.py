"""Snakemake adapter: push a final model folder with its full card to the Hugging Face hub.

Off by default (``publish.push_to_hub``); never run in tests. Needs hub access and a token
(``HF_TOKEN`` or ``huggingface-cli login``).
input:  ``model`` (results/train/{run}/model), ``card`` (results/cards/{run}/README.md)
output: ``receipt`` (results/cards/{run}/pushed.json: repo id and commit)
params: ``repo_id``, ``private``
"""

import json

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])  # noqa: F821

from huggingface_hub import HfApi  # noqa: E402

sm = snakemake  # noqa: F821
api = HfApi()
api.create_repo(sm.params.repo_id, private=bool(sm.params.private), exist_ok=True)
api.upload_folder(repo_id=sm.params.repo_id, folder_path=str(sm.input.model), ignore_patterns=["README.md"])
info = api.upload_file(repo_id=sm.params.repo_id, path_or_fileobj=str(sm.input.card), path_in_repo="README.md")
with open(sm.output.receipt, "w") as handle:
    json.dump({"repo_id": sm.params.repo_id, "commit": getattr(info, "oid", None) or str(info)}, handle, indent=1)
