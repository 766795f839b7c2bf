"""Kubeconfigs from AKS and GKE outputs: exec plugins (kubelogin, gke-gcloud-auth-plugin), no token
on disk; a missing plugin binary is a KubernetesError (exit 5) naming it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import KubernetesError, UsageError
from orchestrator.providers import registry
from orchestrator.providers.azure import AzureProvider

REPO = Path(__file__).resolve().parents[2]
AZ = {"cluster_name": "prod-weu", "cluster_endpoint": "https://prod-weu.privatelink.westeurope.azmk8s.io:443",
      "cluster_ca": "Q0E=", "tenant_id": "11111111-2222-4333-8444-555555555555"}
GKE = {"cluster_name": "prod-usc", "cluster_endpoint": "https://10.40.0.2", "cluster_ca": "Q0E="}


def _bin(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path)


def _bp(name: str):
    return load(REPO / "examples" / f"{name}.yaml").model


def test_aks_kubeconfig_runs_kubelogin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _bin(tmp_path, "kubelogin"))
    cfg = registry.get("azure").kubeconfig(_bp("azure-gpu"), AZ)
    assert cfg["users"][0]["user"]["exec"]["command"] == "kubelogin"
    assert cfg["users"][0]["user"]["exec"]["args"] == [
        "get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630",
        "--tenant-id", "11111111-2222-4333-8444-555555555555"]
    assert cfg["clusters"][0]["cluster"]["server"] == AZ["cluster_endpoint"]
    assert "token" not in str(cfg["users"][0]["user"]).replace("get-token", "")


def test_gke_kubeconfig_runs_the_auth_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _bin(tmp_path, "gke-gcloud-auth-plugin"))
    cfg = registry.get("gcp").kubeconfig(_bp("gcp-gpu"), GKE)
    assert cfg["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert cfg["contexts"] == [{"name": "prod-usc", "context": {"cluster": "prod-usc", "user": "prod-usc-gcloud"}}]


@pytest.mark.parametrize(("provider", "example", "outputs", "plugin"), [
    ("azure", "azure-gpu", AZ, "kubelogin"), ("gcp", "gcp-gpu", GKE, "gke-gcloud-auth-plugin")])
def test_missing_plugin_is_a_kubernetes_error(provider, example, outputs, plugin, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # empty folder: no plugin
    with pytest.raises(KubernetesError) as err:
        registry.get(provider).kubeconfig(_bp(example), outputs)
    assert err.value.exit_code == 5
    assert err.value.message.startswith(f"{plugin} is not on PATH")


def test_registry_still_refuses_a_provider_marked_not_renderable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AzureProvider, "renderable", False)
    with pytest.raises(UsageError, match="provider 'azure' cannot be rendered or applied yet"):
        registry.get("azure")
    assert os.environ.get("PATH")  # monkeypatch restores nothing else
