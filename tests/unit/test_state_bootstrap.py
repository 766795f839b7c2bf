"""``infra state bootstrap``: the s3 bucket against the sandbox's emulator (created once, then
found as it is; a half-made bucket is completed), checked with boto3; the gcs and azurerm
commands; nothing for local state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import sandbox
from orchestrator.state_bootstrap import bootstrap
from tests.conftest import EXAMPLES, require_module

INFRA = Path(sys.executable).with_name("infra")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    require_module("moto.server", "moto[server] (the sandbox emulator)")
    boto3 = require_module("boto3", "boto3 (the sandbox extra)")
    root = tmp_path_factory.mktemp("state-bootstrap")
    text = (EXAMPLES / "sandbox.yaml").read_text()
    (root / "env.yaml").write_text(text + "\nstate: {backend: s3, bucket: demo-tf-state}\n")
    (root / "half.yaml").write_text(text + "\nstate: {backend: s3, bucket: half-made}\n")
    try:
        yield root, boto3
    finally:
        sandbox.stop(root / ".infra")


def _s3(root: Path, boto3):
    info = json.loads((root / ".infra" / "sandbox" / "server.json").read_text())
    return boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{info['port']}",
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox")


def _infra(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_", "AWS_"))}
    return subprocess.run([str(INFRA), *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_s3_bucket_is_created_versioned_encrypted_private_and_found_again(project) -> None:
    root, boto3 = project
    first = _infra(root, "state", "bootstrap", "env.yaml", "--sandbox")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "state backend s3: s3://demo-tf-state (sandbox) created",
        "  set   bucket created in us-east-1", "  set   versioning enabled",
        "  set   default encryption AES256", "  set   public access blocked"]
    s3 = _s3(root, boto3)
    assert s3.get_bucket_versioning(Bucket="demo-tf-state")["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket="demo-tf-state")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_public_access_block(Bucket="demo-tf-state")["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    second = _infra(root, "state", "bootstrap", "env.yaml", "--sandbox", "--output", "json")
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert (doc["created"], doc["changed"]) == (False, [])
    assert doc["unchanged"] == ["bucket exists", "versioning enabled", "default encryption AES256",
                                "public access blocked"]


def test_a_half_made_bucket_is_completed(project) -> None:
    root, boto3 = project
    sandbox.start(root / ".infra")
    _s3(root, boto3).create_bucket(Bucket="half-made")
    result = bootstrap(root / "half.yaml", sandbox=True, root=root)
    assert (result.created, result.ok) == (False, ["bucket exists"])
    assert result.done == ["versioning enabled", "default encryption AES256", "public access blocked"]
    assert _s3(root, boto3).get_bucket_versioning(Bucket="half-made")["Status"] == "Enabled"


def test_gcs_and_azurerm_print_the_commands(tmp_path: Path) -> None:
    gcs = bootstrap(EXAMPLES / "gcp-gpu.yaml", root=tmp_path)
    assert gcs.commands == [
        'gcloud storage buckets create gs://acme-ml-tf-state --project="$GOOGLE_CLOUD_PROJECT" '
        "--location=us-central1 --uniform-bucket-level-access --public-access-prevention",
        "gcloud storage buckets update gs://acme-ml-tf-state --versioning"]
    azure = bootstrap(EXAMPLES / "azure-gpu.yaml", root=tmp_path)
    assert azure.target == "acmemltfstate/tfstate"
    assert azure.commands[0] == "az group create --name infra-tfstate --location westeurope"
    assert azure.commands[-1] == "az storage container create --name tfstate --account-name acmemltfstate " \
                                 "--auth-mode login"
    assert "--allow-shared-key-access false" in azure.commands[1]
    assert "--enable-versioning true" in azure.commands[2]


def test_local_state_and_bare_metal_need_nothing(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "sandbox.yaml", tmp_path / "env.yaml")
    local = _infra(tmp_path, "state", "bootstrap", "env.yaml")
    assert local.returncode == 0, local.stderr
    state = tmp_path / ".infra" / "env" / "demo" / "terraform.tfstate"
    assert local.stdout == f"state backend local: nothing to create: state lives in {state}\n"
    metal = bootstrap(EXAMPLES / "onprem-gpu.yaml", root=tmp_path)
    assert (metal.backend, metal.note) == ("none", "provider baremetal keeps no Terraform state: nothing to create")
