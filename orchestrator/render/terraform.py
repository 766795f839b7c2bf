"""Terraform root module for one environment: templates + vendored module + tfvars (pure).

The files shipped with infra (the module, the static ``.tf`` files, the folder listings) are
read once per process and the templates compiled once (``jinja.environment``): rendering many
environments in one process (``infra render DIR``, a rollout) reads each of them once.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from .. import paths
from ..blueprint.models import Blueprint
from ..providers.base import Provider
from .jinja import render_template


def _hcl_value(value) -> str:
    """An HCL literal; ``${`` and ``%{`` are escaped so that Terraform never evaluates them (docs/security.md)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _aligned(pairs: list[tuple[str, str]]) -> list[str]:
    """``key = value`` lines with the ``=`` aligned, as ``terraform fmt`` writes them."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{k.ljust(width)} = {v}" for k, v in pairs]


@cache
def _read(path: Path) -> str:
    """A file shipped with infra (never changes while infra runs)."""
    return path.read_text()


@cache
def _files(folder: Path, pattern: str | None = None) -> tuple[Path, ...]:
    """The plain files of a shipped folder (matching ``pattern``), sorted."""
    return tuple(sorted(p for p in (folder.glob(pattern) if pattern else folder.iterdir()) if p.is_file()))


@cache
def _tree(folder: Path) -> tuple[Path, ...]:
    """Every plain file under a shipped folder, sorted."""
    return tuple(sorted(p for p in folder.rglob("*") if p.is_file()))


def tfvars(bp: Blueprint, provider: Provider) -> dict:
    return provider.terraform_variables(bp)


def render_terraform(bp: Blueprint, provider: Provider) -> dict[str, str]:
    """Every file of build/<name>/terraform/, keyed by path relative to that folder."""
    if provider.terraform_module is None:
        return {}
    variables = tfvars(bp, provider)
    module_src = paths.terraform_modules() / provider.terraform_module
    template_dir = paths.templates() / "terraform"
    backend_type, backend_settings = provider.backend(bp)
    context = {
        "name": bp.name,
        "module": provider.terraform_module,
        "module_args": _aligned([(k, f"var.{k}") for k in sorted(variables) if k != "region"]),
        "backend_type": backend_type,
        "backend_settings": _aligned([(k, _hcl_value(v)) for k, v in sorted(backend_settings.items())]),
    }
    files: dict[str, str] = {
        "terraform.tfvars.json": json.dumps(variables, indent=2, sort_keys=True) + "\n",
        "backend.tf": render_template(template_dir, "common/backend.tf.j2", context),
        "variables.tf": _read(module_src / "variables.tf"),
    }
    for path in _files(template_dir / provider.name):  # not sandbox/: the --sandbox overrides, never in build/
        if path.name.endswith(".j2"):
            files[path.name[:-3]] = render_template(template_dir, f"{provider.name}/{path.name}", context)
        else:
            files[path.name] = _read(path)
    for path in _files(module_src, "*.tf"):
        files[f"modules/{provider.terraform_module}/{path.name}"] = _read(path)
    return files


def render_sandbox_backend(settings: dict, endpoint: str) -> str:
    """``backend_override.tf`` of a sandbox run whose blueprint keeps its state in S3: the same bucket,
    key and lock file, in the emulator at ``endpoint``."""
    pairs = [(k, _hcl_value(v)) for k, v in sorted(settings.items())]
    pairs += [("endpoints", f"{{ s3 = {_hcl_value(endpoint)} }}"), ("use_path_style", "true"),
              ("access_key", '"sandbox"'), ("secret_key", '"sandbox"'), ("skip_credentials_validation", "true"),
              ("skip_requesting_account_id", "true"), ("skip_metadata_api_check", "true"),
              ("skip_region_validation", "true")]
    template_dir = paths.templates() / "terraform"
    return render_template(template_dir, "common/sandbox_backend_s3_override.tf.j2", {"settings": _aligned(pairs)})


def render_sandbox_overrides(provider: Provider, endpoint: str) -> dict[str, str]:
    """The files a ``--sandbox`` run adds to its private copy of the root module, keyed by path
    relative to it: ``templates/terraform/<provider>/sandbox/`` (whose ``module/`` stands for
    ``modules/<terraform_module>/``; ``*.j2`` get the provider's endpoints, all at ``endpoint``)
    and the local backend override every sandbox run uses."""
    template_dir = paths.templates() / "terraform"
    source = template_dir / provider.name / "sandbox"
    endpoints = sorted(provider.sandbox_endpoints(endpoint).items())
    context = {"endpoints": _aligned([(service, _hcl_value(url)) for service, url in endpoints])}
    files = {"backend_override.tf": _read(template_dir / "common" / "sandbox_backend_override.tf")}
    for path in _tree(source):
        rel = path.relative_to(source).as_posix()
        if rel.startswith("module/"):
            rel = f"modules/{provider.terraform_module}/{rel.removeprefix('module/')}"
        if rel.endswith(".j2"):
            files[rel[:-3]] = render_template(template_dir, path.relative_to(template_dir).as_posix(), context)
        else:
            files[rel] = _read(path)
    return files

