"""Every package a rule's job imports is in the environment that runs it (``envs/*.yaml``).

Snakemake runs a conda job as ``source activate <env>; python <script>`` with ``PYTHONPATH``
removed, so a job sees only its env's packages; when Snakemake itself runs from a venv that has
a package, a single-process job can still borrow it through the script preamble and hide the gap,
while the workers ``accelerate launch`` starts cannot (the tracking default, TensorBoard, was
missing from the training and vLLM envs this way). This test reads each rule's env and script
from the workflow as Snakemake loads it (``config/test.yaml``, ``config/teacher.yaml`` and
``config/paper.yaml`` between them define every rule), collects the third-party modules the
script can import (its own imports and, transitively, those of every ``redi`` module it reaches,
function-level ones included; tracking's default backends for jobs that reach ``redi.tracking``)
and checks each is provided by a distribution in the env's resolved requirements (the pip list
and its dependencies, from the installed distributions' metadata).

Not required: imports guarded by ``except ImportError`` (optional accelerators) or
``if TYPE_CHECKING:``, and modules only
the vLLM backend reaches, outside the vLLM env. ``vllm`` itself is not installed in the test
environment, so what it brings is taken from its published requirements (``VLLM_PROVIDES``).
The CI rehearsal (``.ci/rehearsal.py``) runs the jobs for real in envs built from these files.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SCRIPTS = ROOT / "workflow" / "scripts"
CONFIGS = ["config/test.yaml", "config/teacher.yaml", "config/paper.yaml"]
VLLM_BACKEND = "redi.eval.backends.vllm_backend"
# vllm==0.33.0's own requirements (its wheel's METADATA, Requires-Dist) that the eval jobs import
VLLM_PROVIDES = {"torch", "transformers", "tokenizers", "numpy", "safetensors", "huggingface-hub", "sentencepiece"}


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _optional(node: ast.AST, parents: dict) -> bool:
    """Inside ``try: ... except ImportError`` (or ModuleNotFoundError), or ``if TYPE_CHECKING:``."""
    while node in parents:
        node, child = parents[node], node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and child in node.body:
            return True
        if isinstance(node, ast.Try) and child in node.body:
            for handler in node.handlers:
                names = [n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)] if handler.type else []
                if {"ImportError", "ModuleNotFoundError"} & set(names):
                    return True
    return False


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


@cache
def module_info(path: Path, module: str):
    """What importing, and calling into, a module imports.

    Returns (top, defs, aliases): ``top`` the module-level imports as (module, names) pairs
    (names None for ``import m``); ``defs`` each top-level function or class -> (its own imports
    as (module, names), the names its body reads, the ``alias.attr`` pairs it reads); ``aliases``
    each name a module-level import binds -> (module, name or None). Imports guarded by
    ``except ImportError`` are left out (optional).
    """
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def imports_in(nodes):
        out = []
        for node in nodes:
            if not isinstance(node, ast.Import | ast.ImportFrom) or _optional(node, parents):
                continue
            if isinstance(node, ast.Import):
                out += [(alias.name, None, alias.asname or alias.name.split(".")[0]) for alias in node.names]
            else:
                base = _absolute(node, package)
                out += [(base, alias.name, alias.asname or alias.name) for alias in node.names]
        return out

    top_nodes, defs = [], {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = list(ast.walk(stmt))
            names = {n.id for n in body if isinstance(n, ast.Name)}
            attrs = {
                (n.value.id, n.attr) for n in body if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            }
            defs[stmt.name] = ([(m, n) for m, n, _ in imports_in(body)], names, attrs)
        else:
            top_nodes += list(ast.walk(stmt))
    top = imports_in(top_nodes)
    aliases = {bound: (m, n) for m, n, bound in top}
    return [(m, n) for m, n, _ in top], defs, aliases


def third_party_imports(script: Path, vllm_env: bool) -> dict[str, str]:
    """Top-level third-party module -> the ``redi`` module that imports it, over what a job of
    ``script`` can run: every module it loads (module-level imports) and, for each function or
    class it can call, that definition's own imports, followed through ``redi`` modules."""
    found: dict[str, str] = {}
    loaded: set[str] = set()
    called: set[tuple[str, str]] = set()
    todo: list[tuple[str, str | None]] = [("__main__", None)]  # (module, definition or None = load)
    files = {"__main__": script}

    def file_of(name: str) -> Path | None:
        if name in files:
            return files[name]
        return SCRIPTS / "_bootstrap.py" if name == "_bootstrap" else module_file(name)

    def use(module: str, name: str | None, by: str) -> None:
        top = module.split(".")[0]
        if top not in ("redi", "_bootstrap"):
            if top and top not in sys.stdlib_module_names and top not in ("__future__", "snakemake"):
                found.setdefault(top, by)
            return
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c loads a, a.b, a.b.c
            todo.append((".".join(parts[:i]), None))
        if name is None:
            return
        if file_of(f"{module}.{name}") is not None:  # from package import submodule
            todo.append((f"{module}.{name}", None))
        else:
            todo.append((module, name))

    while todo:
        module, name = todo.pop()
        if module == VLLM_BACKEND and not vllm_env:
            continue
        path = file_of(module)
        if path is None:
            continue
        top, defs, aliases = module_info(path, module)
        if module not in loaded:
            loaded.add(module)
            for m, n in top:
                use(m, n, module)
            if module == "__main__":  # the script's own body calls what it imports
                for m, n in top:
                    if n is not None:
                        use(m, n, module)
                        if file_of(f"{m}.{n}") is None:
                            todo.append((m, n))
        if name is None or (module, name) in called or name not in defs:
            continue
        called.add((module, name))
        imports, names, attrs = defs[name]
        for m, n in imports:
            use(m, n, module)
            if n is not None and file_of(f"{m}.{n}") is None:
                todo.append((m, n))
            elif n is None:
                todo += [(m, a) for alias, a in attrs if alias == m.split(".")[-1]]
        for ref in names & set(defs):  # other definitions of this module it uses
            todo.append((module, ref))
        for ref in names & set(aliases):  # names imported at module level that it calls
            m, n = aliases[ref]
            if n is not None and file_of(f"{m}.{n}") is None:
                todo.append((m, n))
        for alias, attr in attrs:  # module.function through a module-level alias
            if alias in aliases:
                m, n = aliases[alias]
                todo.append((f"{m}.{n}" if n is not None else m, attr))
    if any(m == "redi.tracking" for m, _ in called):
        from redi.tracking import BACKENDS, DEFAULTS

        for backend in DEFAULTS["report_to"]:
            found.setdefault(BACKENDS[backend][0], "redi.tracking (tracking's default)")
    return found


@cache
def rule_envs() -> dict[tuple[str, str], set[str]]:
    """(env file, script) -> the rules that run that script in that env, over the configs."""
    from helpers import parsed_workflow

    pairs: dict[tuple[str, str], set[str]] = {}
    for config in CONFIGS:
        with parsed_workflow(config) as workflow:
            for rule in workflow.rules:
                if rule.script and rule.conda_env:
                    env = (Path(rule.basedir) / str(rule.conda_env)).resolve().relative_to(ROOT)
                    script = (Path(rule.basedir) / str(rule.script)).resolve().relative_to(ROOT)
                    pairs.setdefault((str(env), str(script)), set()).add(rule.name)
    return pairs


def env_requirements(env_file: Path) -> list[Requirement]:
    spec = yaml.safe_load(env_file.read_text())
    pip = [dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    return [Requirement(line) for group in pip for line in group]


def resolved(requirements: list[Requirement]) -> set[str]:
    """Canonical names of the requirements and, through installed metadata, their dependencies."""
    out: set[str] = set()
    todo = [(r, tuple(sorted(r.extras))) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        key = name + "[" + ",".join(extras) + "]"
        if key in out:
            continue
        out.add(name)
        out.add(key)
        if name == "vllm":
            out |= VLLM_PROVIDES
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (*extras, "")):
                todo.append((dep, tuple(sorted(dep.extras))))
    return {n for n in out if "[" not in n}


def providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in md.packages_distributions().get(module, [])} or {canonicalize_name(module)}


def test_rules_of_every_env_are_found():
    envs = {env for env, _ in rule_envs()}
    assert envs == {f"envs/{p.name}" for p in (ROOT / "envs").glob("*.yaml")}, envs


@pytest.mark.parametrize("env_file", sorted(p.name for p in (ROOT / "envs").glob("*.yaml")))
def test_every_import_of_a_rule_is_in_its_env(env_file):
    env = f"envs/{env_file}"
    have = resolved(env_requirements(ROOT / env))
    missing = []
    for (rule_env, script), rules in sorted(rule_envs().items()):
        if rule_env != env:
            continue
        for module, via in sorted(third_party_imports(ROOT / script, vllm_env="vllm" in have).items()):
            if not providers(module) & have:
                missing.append(f"{module} (imported by {via}; rules {sorted(rules)} run {script})")
    assert not missing, f"{env} lacks: " + "; ".join(missing)


def test_tracking_default_is_required_of_training_jobs():
    """The check sees what broke the training and evaluation jobs: tracking's default backend,
    which the trainer imports through transformers' callbacks (no import statement names it)."""
    imports = third_party_imports(SCRIPTS / "train_run.py", vllm_env=False)
    assert imports.get("tensorboard", "").startswith("redi.tracking"), imports
    assert "tensorboard" not in third_party_imports(SCRIPTS / "data_verify.py", vllm_env=False)


def test_env_files_pin_the_cpu_torch_wheel():
    """Envs that install torch pin the version whose CPU wheel CI installs (anything else pulls
    GBs of CUDA builds)."""
    for env_file in (ROOT / "envs").glob("*.yaml"):
        for req in env_requirements(env_file):
            if canonicalize_name(req.name) == "torch":
                assert re.fullmatch(r"==\d+\.\d+\.\d+", str(req.specifier)), (env_file, req)
