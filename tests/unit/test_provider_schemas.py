"""The Azure and GCP renders against the azurerm and google providers' own schemas, offline.

Those providers cannot be downloaded here, so ``terraform validate`` cannot run on the renders;
tests/provider_schema.py reads the schemas from the prebuilt CDK-for-Terraform packages
(``make provider-schemas`` fetches them with pip into ``$INFRA_TEST_CACHE/schemas/``) and
checks every resource and data source type, argument, nested block and required argument.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.terraform import render_terraform
from tests import provider_schema
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
# blueprint -> the Terraform provider its render uses
CASES = {"azure-gpu": "azurerm", "gcp-gpu": "google"}
# The provider versions the check ran against (the cdktf packages' generation source).
CHECKED = {"azurerm": "4.55.0", "google": "6.50.0"}


def _schema(provider: str) -> dict:
    require(provider_schema.wheel(provider) is not None,
            f"the {provider_schema.PACKAGES[provider]} wheel under {provider_schema.SCHEMAS} (make provider-schemas)")
    require(provider_schema.HCL2_PYTHON.is_file(),
            f"python-hcl2 at {provider_schema.HCL2_PYTHON} (make provider-schemas)")
    schema = provider_schema.load(provider)
    assert schema is not None
    return schema


def _render(example: str, tmp_path: Path) -> list[Path]:
    bp = load(REPO / "examples" / f"{example}.yaml").model
    for rel, text in render_terraform(bp, get_provider(bp.provider)).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return sorted(tmp_path.rglob("*.tf"))


@pytest.mark.parametrize("example", sorted(CASES))
def test_render_matches_the_provider_schema(example: str, tmp_path: Path) -> None:
    schema = _schema(CASES[example])
    assert schema["provider_version"] == CHECKED[CASES[example]]
    documents = provider_schema.parse_hcl(_render(example, tmp_path))
    assert provider_schema.check(documents, {CASES[example]: schema}) == []
    kinds = {t for d in documents.values() for e in d.get("resource", []) for t in e}
    assert len(kinds) >= 5  # the check saw the module's resources, not an empty parse


@pytest.mark.parametrize(("example", "pinned"), [("azure-gpu", ">= 4.20, < 5.0"), ("gcp-gpu", ">= 6.20, < 7.0")])
def test_required_providers_admit_the_checked_version(example: str, pinned: str) -> None:
    """The rendered pin is the range the schema check covers (its major, from the checked release)."""
    provider = CASES[example]
    module = "azure_gpu_cluster" if provider == "azurerm" else "gcp_gpu_cluster"
    for path in (REPO / "terraform" / "modules" / module / "versions.tf",
                 REPO / "templates" / "terraform" / example.split("-")[0] / "versions.tf"):
        assert re.search(rf'version = "{re.escape(pinned)}"', path.read_text()), path


def _mutated(tmp_path: Path, example: str, old: str, new: str) -> dict:
    files = _render(example, tmp_path)
    main = next(p for p in files if p.as_posix().endswith("_gpu_cluster/main.tf"))
    text = main.read_text()
    assert old in text
    main.write_text(text.replace(old, new, 1))
    return provider_schema.parse_hcl(files)


def test_check_fails_on_a_misspelled_argument(tmp_path: Path) -> None:
    schema = _schema("azurerm")
    docs = _mutated(tmp_path, "azure-gpu", "local_account_disabled ", "local_accounts_disabled")
    assert provider_schema.check(docs, {"azurerm": schema}) == [
        "main.tf: resource azurerm_kubernetes_cluster.this: unknown argument 'local_accounts_disabled'"]


def test_check_fails_on_a_misspelled_nested_argument(tmp_path: Path) -> None:
    schema = _schema("google")
    docs = _mutated(tmp_path, "gcp-gpu", "gpu_driver_version", "driver_version")
    at = ("main.tf: resource google_container_node_pool.pool.node_config.guest_accelerator"
          ".gpu_driver_installation_config")
    assert provider_schema.check(docs, {"google": schema}) == [
        f"{at}: unknown argument 'driver_version'", f"{at}: missing required argument 'gpu_driver_version'"]


def test_check_fails_on_a_missing_required_argument(tmp_path: Path) -> None:
    schema = _schema("azurerm")
    docs = _mutated(tmp_path, "azure-gpu", "kubernetes_cluster_id = azurerm_kubernetes_cluster.this.id", "")
    assert provider_schema.check(docs, {"azurerm": schema}) == [
        "main.tf: resource azurerm_kubernetes_cluster_node_pool.pool: "
        "missing required argument 'kubernetes_cluster_id'"]


def test_check_fails_on_an_unknown_resource_type(tmp_path: Path) -> None:
    schema = _schema("google")
    docs = _mutated(tmp_path, "gcp-gpu", 'resource "google_container_node_pool"',
                    'resource "google_container_nodepool"')
    assert provider_schema.check(docs, {"google": schema}) == [
        "main.tf: resource google_container_nodepool.pool: unknown resource type for google 6.50.0"]
