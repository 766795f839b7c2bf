"""Terraform root module for one environment: templates + vendored module + tfvars (pure)."""

from __future__ import annotations

import json

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
        "variables.tf": (module_src / "variables.tf").read_text(),
    }
    for path in sorted((template_dir / provider.name).iterdir()):
        if not path.is_file():  # sandbox/ holds the --sandbox overrides, never part of build/
            continue
        if path.name.endswith(".j2"):
            files[path.name[:-3]] = render_template(template_dir, f"{provider.name}/{path.name}", context)
        else:
            files[path.name] = path.read_text()
    for path in sorted(module_src.glob("*.tf")):
        files[f"modules/{provider.terraform_module}/{path.name}"] = path.read_text()
    return files


def render_sandbox_overrides(provider: Provider, endpoint: str) -> dict[str, str]:
    """The files a ``--sandbox`` run adds to its private copy of the root module, keyed by path
    relative to it: ``templates/terraform/<provider>/sandbox/`` (whose ``module/`` stands for
    ``modules/<terraform_module>/``; ``*.j2`` get the provider's endpoints, all at ``endpoint``)
    and the local backend override every sandbox run uses."""
    template_dir = paths.templates() / "terraform"
    source = template_dir / provider.name / "sandbox"
    endpoints = sorted(provider.sandbox_endpoints(endpoint).items())
    context = {"endpoints": _aligned([(service, _hcl_value(url)) for service, url in endpoints])}
    files = {"backend_override.tf": (template_dir / "common" / "sandbox_backend_override.tf").read_text()}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source).as_posix()
        if rel.startswith("module/"):
            rel = f"modules/{provider.terraform_module}/{rel.removeprefix('module/')}"
        if rel.endswith(".j2"):
            files[rel[:-3]] = render_template(template_dir, path.relative_to(template_dir).as_posix(), context)
        else:
            files[rel] = path.read_text()
    return files

