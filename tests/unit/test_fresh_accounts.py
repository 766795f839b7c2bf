"""What a fresh cloud account lacks, and what `infra` does about it: the GKE project's APIs are
turned on by Terraform, AKS's EncryptionAtHost is explained (or opted out of), and a
deletion-protected cluster is refused by `infra down` before anything is destroyed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import TerraformError
from orchestrator.providers.registry import get as get_provider
from orchestrator.stages.terraform import provider_hints
from tests.blueprints import with_way_in
from tests.conftest import EXAMPLES, REPO

GOLDEN = REPO / "tests" / "golden"


def infra(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI through its error boundary (exit codes as users see them)."""
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def test_gke_turns_on_the_apis_every_other_resource_needs_first() -> None:
    module = GOLDEN / "prod-usc" / "terraform" / "modules" / "gcp_gpu_cluster"
    apis = (module / "apis.tf").read_text()
    assert re.search(r'toset\(\["compute.googleapis.com", "container.googleapis.com", "iam.googleapis.com"\]\)', apis)
    assert "disable_on_destroy = false" in apis  # other workloads of the project may use them
    # everything else hangs off the network or the node service account, which wait for the APIs
    assert "depends_on = [google_project_service.this]" in (module / "network.tf").read_text().split(
        'resource "google_compute_subnetwork"')[0]
    assert "depends_on = [google_project_service.this]" in (module / "iam.tf").read_text().split(
        'resource "google_project_iam_member"')[0]


def _bp(tmp_path: Path, example: str, kubernetes_extra: str) -> Path:
    text = (EXAMPLES / f"{example}.yaml").read_text()
    text = text.replace("  public_endpoint: false\n", "  public_endpoint: false\n" + kubernetes_extra, 1)
    path = tmp_path / f"{example}.yaml"
    path.write_text(text)
    return path


def test_aks_encryption_at_host_is_on_unless_the_blueprint_opts_out(tmp_path) -> None:
    azure = get_provider("azure")
    assert azure.terraform_variables(load(EXAMPLES / "azure-gpu.yaml").model)["encryption_at_host"] is True
    off = load(_bp(tmp_path, "azure-gpu", "  encryption_at_host: false\n")).model
    assert azure.terraform_variables(off)["encryption_at_host"] is False
    main = (REPO / "terraform" / "modules" / "azure_gpu_cluster" / "main.tf").read_text()
    assert main.count("host_encryption_enabled") == 2  # the system pool and every user pool
    assert all("var.encryption_at_host" in line for line in main.splitlines() if "host_encryption_enabled" in line)


def test_encryption_at_host_is_an_aks_setting_only(tmp_path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in("blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\nnode_pools:\n"
                                "  - {name: s, instance_type: m6i.large, min: 1, max: 2}\n"
                                "kubernetes:\n  encryption_at_host: false\n"))
    result = infra("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:8:23 kubernetes.encryption_at_host: is an AKS setting" in result.stderr


@pytest.mark.parametrize(("provider", "message", "hint"), [
    ("azure", "creating Kubernetes Cluster: unexpected status 400 (400 Bad Request) with error: "
              "BadRequest: Subscription does not enable EncryptionAtHost.", "az feature register --namespace"),
    ("gcp", "Error creating Network: googleapi: Error 403: Compute Engine API has not been used in project 1 "
            "before or it is disabled.", "gcloud services enable"),
    ("gcp", "Error: Cannot destroy cluster because deletion_protection is set to true.",
     "kubernetes.deletion_protection: false"),
])
def test_what_a_fresh_account_lacks_gets_a_hint_that_says_what_to_do(provider, message, hint) -> None:
    class Ctx:  # what provider_hints reads of a stage's context
        pass

    ctx = Ctx()
    ctx.provider = get_provider(provider)
    with pytest.raises(TerraformError) as err, provider_hints(ctx):
        raise TerraformError(message, "the provider's own first sentence")
    assert hint in err.value.hint
    with pytest.raises(TerraformError) as other, provider_hints(ctx):
        raise TerraformError("Error: something else", "the provider's own first sentence")
    assert other.value.hint == "the provider's own first sentence"


def test_down_refuses_a_deletion_protected_cluster_before_terraform(tmp_path) -> None:
    """GKE protects clusters by default; `down` says how to lift it and changes nothing (no
    Terraform, no run record). Declared false, it goes on to Terraform (here: no credentials, exit 3)."""
    env = {name: "" for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS",
                                 "INFRA_SKIP_CREDENTIALS_CHECK")} | {"HOME": str(tmp_path)}
    path = tmp_path / "gcp-gpu.yaml"
    path.write_text((EXAMPLES / "gcp-gpu.yaml").read_text())
    result = infra("down", str(path), "--auto-approve", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: {path}:11:1 kubernetes.deletion_protection: the cluster is deletion-protected (the gcp default); "
        "nothing was destroyed")
    assert f"infra up {path}" in result.stderr
    assert not (tmp_path / ".infra" / "records").exists()
    assert get_provider("gcp").terraform_variables(load(path).model)["deletion_protection"] is True

    lifted = _bp(tmp_path, "gcp-gpu", "  deletion_protection: false\n")
    assert get_provider("gcp").terraform_variables(load(lifted).model)["deletion_protection"] is False
    result = infra("down", str(lifted), "--auto-approve", cwd=tmp_path, env=env)
    assert result.returncode == 3 and "no credentials for Terraform" in result.stderr, result.stderr


def test_an_eks_cluster_is_protected_by_infra_down_when_the_blueprint_asks(tmp_path) -> None:
    """EKS has no deletion protection in the AWS provider infra pins: infra's own check is it."""
    path = _bp(tmp_path, "aws-gpu", "  deletion_protection: true\n")
    result = infra("down", str(path), "--auto-approve", cwd=tmp_path, env={"REGISTRY_PASSWORD": "x"})
    assert result.returncode == 2, result.stderr
    assert "kubernetes.deletion_protection: the cluster is deletion-protected; nothing was destroyed" in result.stderr
    assert load(EXAMPLES / "aws-gpu.yaml").model.deletion_protected is False  # EKS's default: none
    assert not (tmp_path / ".infra" / "records").exists()


def test_a_rollouts_down_refuses_a_protected_environment_too(tmp_path) -> None:
    """The guard sits where every down gets its stages, so a rollout cannot go around it."""
    _bp(tmp_path, "aws-gpu", "  deletion_protection: true\n")
    (tmp_path / "rollout.yaml").write_text("rollout: 1\nname: one\nenvironments:\n  - path: aws-gpu.yaml\n")
    result = infra("down", "rollout.yaml", "--auto-approve", cwd=tmp_path, env={"REGISTRY_PASSWORD": "x"})
    assert result.returncode == 2, result.stdout + result.stderr
    log = (result.stdout + result.stderr + "".join(
        p.read_text() for p in (tmp_path / ".infra").rglob("*.log")))
    assert "kubernetes.deletion_protection: the cluster is deletion-protected; nothing was destroyed" in log
    assert not list((tmp_path / ".infra").rglob("terraform.tfstate"))
