"""Azure and GCP without credentials: `infra plan` stops before terraform with one line naming
what is missing (exit 3), and a provider missing from the plugin mirror is one line too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.engines.terraform import Terraform
from orchestrator.errors import TerraformError
from orchestrator.providers.azure.credentials import CREDENTIALS as AZURE
from orchestrator.providers.gcp.credentials import CREDENTIALS as GCP
from tests.conftest import EXAMPLES, require

INFRA = Path(sys.executable).with_name("infra")
AZURE_NO_SIGN_IN = ("no sign-in found (az login; or ARM_CLIENT_ID and ARM_TENANT_ID with ARM_CLIENT_SECRET, "
                    "ARM_CLIENT_CERTIFICATE_PATH or ARM_USE_OIDC=true; or ARM_USE_MSI=true)")
GCP_NO_PROJECT = "GOOGLE_CLOUD_PROJECT or GOOGLE_PROJECT or GCLOUD_PROJECT or CLOUDSDK_CORE_PROJECT is not set"
GCP_NO_CREDENTIALS = ("no credentials found (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CREDENTIALS, "
                      "~/.config/gcloud/application_default_credentials.json or a Compute Engine metadata server)")


def _fake_az(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "az").chmod(0o755)
    return str(bin_dir)


def test_azure_needs_a_subscription_and_a_sign_in(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert AZURE.missing({"HOME": home, "PATH": ""}) == [
        "ARM_SUBSCRIPTION_ID is not set", AZURE_NO_SIGN_IN]
    sub = {"HOME": home, "PATH": "", "ARM_SUBSCRIPTION_ID": "0000"}
    assert AZURE.missing(sub) == [AZURE_NO_SIGN_IN]
    secret = {**sub, "ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t", "ARM_CLIENT_SECRET": "s"}
    assert AZURE.missing(secret) == []
    assert AZURE.missing({**secret, "ARM_CLIENT_SECRET": ""}) == [AZURE_NO_SIGN_IN]
    assert AZURE.missing({**sub, "ARM_USE_MSI": "true"}) == []
    assert AZURE.missing({**sub, "ARM_USE_MSI": "false"}) == [AZURE_NO_SIGN_IN]
    # az on PATH counts once it has signed in (its token cache exists)
    with_az = {**sub, "PATH": _fake_az(tmp_path)}
    assert AZURE.missing(with_az) == [AZURE_NO_SIGN_IN]
    (tmp_path / "home" / ".azure").mkdir(parents=True)
    (tmp_path / "home" / ".azure" / "msal_token_cache.json").write_text("{}")
    assert AZURE.missing(with_az) == []
    assert AZURE.missing({**with_az, "PATH": ""}) == [AZURE_NO_SIGN_IN]


def test_gcp_needs_a_project_and_application_default_credentials(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert GCP.missing({"HOME": str(home)}) == [GCP_NO_PROJECT, GCP_NO_CREDENTIALS]
    project = {"HOME": str(home), "GOOGLE_CLOUD_PROJECT": "acme-ml"}
    assert GCP.missing(project) == [GCP_NO_CREDENTIALS]
    assert GCP.missing({**project, "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}) == []
    assert GCP.missing({"HOME": str(home), "CLOUDSDK_CORE_PROJECT": "p", "GOOGLE_CREDENTIALS": "{}"}) == []
    adc = home / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    assert GCP.missing(project) == []
    config = tmp_path / "gcloud-config"  # CLOUDSDK_CONFIG moves gcloud's folder
    config.mkdir()
    elsewhere = {"HOME": str(tmp_path), "GOOGLE_CLOUD_PROJECT": "p", "CLOUDSDK_CONFIG": str(config)}
    assert GCP.missing(elsewhere) == [GCP_NO_CREDENTIALS]
    (config / "application_default_credentials.json").write_text("{}")
    assert GCP.missing(elsewhere) == []


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """No cloud variables, an empty home, terraform still on PATH (it must not be reached)."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "INFRA_TODAY")  # the suite's date (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.mark.parametrize(("example", "expected"), [
    ("azure-gpu.yaml", [
        f"error: azure: no credentials for Terraform: ARM_SUBSCRIPTION_ID is not set; {AZURE_NO_SIGN_IN}",
        "hint: sign in with `az login` (or export a service principal's ARM_* variables) and export "
        "ARM_SUBSCRIPTION_ID; docs/providers.md, \"Credentials\""]),
    ("gcp-gpu.yaml", [
        f"error: gcp: no credentials for Terraform: {GCP_NO_PROJECT}; {GCP_NO_CREDENTIALS}",
        "hint: run `gcloud auth application-default login` (or point GOOGLE_APPLICATION_CREDENTIALS at a key) "
        "and export GOOGLE_CLOUD_PROJECT; docs/providers.md, \"Credentials\""]),
])
def test_plan_without_credentials_is_one_line_and_exit_3(tmp_path: Path, example: str, expected: list[str]) -> None:
    shutil.copy(EXAMPLES / example, tmp_path / example)
    require(shutil.which("az", path=_clean_env(tmp_path)["PATH"]) is None, "a PATH without the Azure CLI")
    run = subprocess.run([str(INFRA), "plan", example], cwd=tmp_path, env=_clean_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stderr.splitlines() == expected
    assert "==> plan" in run.stdout and "terraform init" not in run.stdout  # stopped before terraform ran


def test_a_provider_missing_from_the_mirror_is_one_line(tmp_path: Path) -> None:
    require(shutil.which("terraform") is not None, "the terraform CLI on PATH")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (tmp_path / "main.tf").write_text('terraform {\n  required_providers {\n'
                                      '    azurerm = { source = "hashicorp/azurerm" }\n  }\n}\n')
    tf = Terraform(tmp_path, data_dir=tmp_path / ".tfdata", config_dir=tmp_path / "cfg",
                   env={"INFRA_TF_PLUGIN_MIRROR": str(mirror)})
    with pytest.raises(TerraformError) as err:
        tf.init()
    assert err.value.message == f"terraform init: provider hashicorp/azurerm is not in the provider mirror {mirror}"
    assert err.value.hint == ("add it to the mirror (`terraform providers mirror DIR` on a machine that can "
                              "download it) or unset INFRA_TF_PLUGIN_MIRROR to download it")
