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
    for name in [n for n in os.environ if n.startswith("ARM_")]:
        monkeypatch.delenv(name)  # no service principal here: the Azure CLI's sign-in
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


SERVER = ["--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630", "--tenant-id", AZ["tenant_id"]]
SP = {"ARM_CLIENT_ID": "00000000-0000-4000-8000-0000000000c1", "ARM_TENANT_ID": AZ["tenant_id"]}


def _signed_in_az(tmp_path: Path) -> dict[str, str]:
    """An Azure CLI on PATH with a token cache: the `az login` source."""
    (tmp_path / ".azure").mkdir()
    (tmp_path / ".azure" / "msal_token_cache.json").write_text("{}")
    _bin(tmp_path, "az")
    return {"HOME": str(tmp_path)}


@pytest.mark.parametrize(("env", "mode"), [
    ("az", ["--login", "azurecli"]),
    ({**SP, "ARM_CLIENT_SECRET": "s3cret"}, ["--login", "spn", "--client-id", SP["ARM_CLIENT_ID"]]),
    ({**SP, "ARM_CLIENT_CERTIFICATE_PATH": "/run/sp.pem"},
     ["--login", "spn", "--client-id", SP["ARM_CLIENT_ID"], "--client-certificate", "/run/sp.pem"]),
    ({**SP, "ARM_USE_OIDC": "true", "ARM_OIDC_TOKEN_FILE_PATH": "/var/run/token"},
     ["--login", "workloadidentity", "--client-id", SP["ARM_CLIENT_ID"], "--federated-token-file", "/var/run/token"]),
    ({"ARM_USE_MSI": "true"}, ["--login", "msi"]),
    ({"ARM_USE_MSI": "true", "ARM_CLIENT_ID": SP["ARM_CLIENT_ID"]},
     ["--login", "msi", "--client-id", SP["ARM_CLIENT_ID"]]),
], ids=["azurecli", "spn-secret", "spn-certificate", "workloadidentity", "msi", "msi-user-assigned"])
def test_the_aks_login_mode_follows_the_credentials_found(tmp_path, monkeypatch, env, mode) -> None:
    monkeypatch.setenv("PATH", _bin(tmp_path, "kubelogin"))
    env = dict(_signed_in_az(tmp_path) if env == "az" else env, PATH=str(tmp_path))
    from orchestrator.providers.azure.kubeconfig import aks_kubeconfig

    args = aks_kubeconfig(_bp("azure-gpu"), AZ, env)["users"][0]["user"]["exec"]["args"]
    assert args == ["get-token", *mode, *SERVER]
    assert "s3cret" not in str(args)  # the secret reaches kubelogin through its environment only
    if "ARM_CLIENT_SECRET" in env:
        assert env["AAD_SERVICE_PRINCIPAL_CLIENT_SECRET"] == "s3cret"


def test_oidc_without_a_token_file_or_cli_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", _bin(tmp_path, "kubelogin"))
    from orchestrator.providers.azure.kubeconfig import aks_kubeconfig

    with pytest.raises(KubernetesError) as err:
        aks_kubeconfig(_bp("azure-gpu"), AZ, {**SP, "ARM_USE_OIDC": "true", "PATH": str(tmp_path)})
    assert err.value.message == "kubelogin cannot use an OIDC token request URL (ARM_USE_OIDC without a token file)"


@pytest.mark.parametrize(("env", "args"), [
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/run/key.json"}, ["--use_application_default_credentials"]),
    ("adc-file", ["--use_application_default_credentials"]),
    ({"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.x"}, []),  # not ADC: the plugin falls back to gcloud's sign-in
], ids=["key-file", "gcloud-adc-file", "gcloud-login"])
def test_the_gke_plugin_uses_application_default_credentials_where_terraform_did(tmp_path, monkeypatch, env, args):
    monkeypatch.setenv("PATH", _bin(tmp_path, "gke-gcloud-auth-plugin"))
    if env == "adc-file":
        (tmp_path / ".config" / "gcloud").mkdir(parents=True)
        (tmp_path / ".config" / "gcloud" / "application_default_credentials.json").write_text("{}")
        env = {"HOME": str(tmp_path)}
    from orchestrator.providers.gcp.kubeconfig import gke_kubeconfig

    assert gke_kubeconfig(_bp("gcp-gpu"), GKE, env)["users"][0]["user"]["exec"]["args"] == args


def test_registry_still_refuses_a_provider_marked_not_renderable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AzureProvider, "renderable", False)
    with pytest.raises(UsageError, match="provider 'azure' cannot be rendered or applied yet"):
        registry.get("azure")
    assert os.environ.get("PATH")  # monkeypatch restores nothing else
