"""What a real AKS or GKE cluster needs that no emulator shows (issue 13): one device plugin per GPU
node, one machine type per node pool, identities in each cloud's own form, zone names in each
cloud's spelling. Expectations are literal; the AKS spot taint is in test_provider_equivalence.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError, KubernetesError
from orchestrator.kube.apply import apply_all
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from tests.blueprints import with_way_in
from tests.unit.kube_fixtures import client, fake, kubeconfig  # noqa: F401
from tests.unit.test_kube_apply import opts

REPO = Path(__file__).resolve().parents[2]
HEAD = {
    "azure": "blueprint: 1\nname: t-env\nprovider: azure\nregion: westeurope\n",  # lines 1-4
    "gcp": "blueprint: 1\nname: t-env\nprovider: gcp\nregion: us-central1\n",
    "aws": "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\n",
}
SYSTEM = {"azure": "Standard_D4s_v5", "gcp": "n2-standard-4", "aws": "m6i.large"}
GUID = "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f"


def _path(tmp_path: Path, provider: str, body: str) -> Path:
    path = tmp_path / "bp.yaml"
    pools = f"node_pools:\n  - {{name: system, instance_type: {SYSTEM[provider]}, min: 1, max: 2}}\n"  # lines 5-6
    body = body if body.startswith("  - ") else textwrap.dedent(body).lstrip("\n")  # more pools, or more keys
    path.write_text(with_way_in(HEAD[provider] + pools + body))
    return path


def _problems(tmp_path: Path, provider: str, body: str) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        load(_path(tmp_path, provider, body))
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


def _tfvars(tmp_path: Path, provider: str, body: str) -> dict:
    return get_provider(provider).terraform_variables(load(_path(tmp_path, provider, body)).model)


# --- the device plugin: GKE runs its own ------------------------------------------------------------

@pytest.mark.parametrize(("example", "rendered"), [("aws-gpu", True), ("azure-gpu", True), ("gcp-gpu", False),
                                                   ("onprem-gpu", True)])
def test_the_device_plugin_is_rendered_only_where_the_cloud_runs_none(example: str, rendered: bool) -> None:
    bp = load(REPO / "examples" / f"{example}.yaml").model
    assert ("cluster/device-plugin.yaml" in render_kubernetes(bp)) is rendered
    assert any(o["kind"] == "DaemonSet" for o in render_objects(bp)) is rendered


def test_on_gke_model_servers_wait_for_no_device_plugin(client, fake) -> None:  # noqa: F811
    """The handoff waits for the DaemonSets it applied before the first model server: on GKE there is
    none, so nothing holds the model servers back; what is not ready is reported at the end."""
    bp = load(REPO / "examples" / "gcp-gpu.yaml").model
    fake.auto_ready = False
    with pytest.raises(KubernetesError, match=r"objects not ready after 5s") as info:
        apply_all(client, render_objects(bp), bp.name, opts(timeout=5))
    assert "no model server was applied" not in info.value.message
    assert fake.get("apps/v1", "Deployment", "resnet50", "vision") is not None


# --- one machine type per node pool on AKS and GKE --------------------------------------------------

def test_aks_and_gke_pools_take_one_machine_type(tmp_path: Path) -> None:
    pool = "  - {name: t4, instance_types: [%s, %s], gpu: {type: t4, count: 1}, min: 0, max: 2}\n"
    assert _problems(tmp_path, "azure", pool % ("Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3")) == [
        "7:16 node_pools[1].instance_types: AKS node pools have one VM size: give one"]
    assert _problems(tmp_path, "gcp", pool % ("n1-standard-4", "n1-standard-8")) == [
        "7:16 node_pools[1].instance_types: GKE node pools have one machine type: give one"]
    one = _tfvars(tmp_path, "gcp", pool.replace(", %s", "") % "n1-standard-8")
    assert [p["machine_type"] for p in one["node_pools"]] == ["n2-standard-4", "n1-standard-8"]
    two = _tfvars(tmp_path, "aws", pool % ("g4dn.xlarge", "g4dn.2xlarge"))  # EKS node groups take several
    assert [p["instance_types"] for p in two["node_pools"]] == [["m6i.large"], ["g4dn.xlarge", "g4dn.2xlarge"]]


# --- identities: Entra object IDs on Azure, Google identities on GCP --------------------------------

def test_azure_admins_and_members_are_entra_object_ids(tmp_path: Path) -> None:
    tfvars = _tfvars(tmp_path, "azure", f"""
        access: {{admins: [{GUID.upper()}]}}
        teams:
          - {{name: vision, groups: [{GUID}], members: [11111111-2222-4333-8444-555555555555, {GUID}]}}
          - {{name: nlp, groups: [{GUID}], members: [11111111-2222-4333-8444-555555555555]}}
        """)
    assert tfvars["admin_group_object_ids"] == [GUID]  # lowercased, as Entra ID writes them
    assert tfvars["member_object_ids"] == [GUID, "11111111-2222-4333-8444-555555555555"]
    assert tfvars["creator_admin"] is False


def test_gcp_admins_and_members_are_google_identities(tmp_path: Path) -> None:
    tfvars = _tfvars(tmp_path, "gcp", """
        access: {admins: [group:ml-admins@example.com, ana@example.com]}
        teams:
          - name: vision
            groups: [vision-devs@example.com]
            members: [bo@example.com, "serviceAccount:ci@acme.iam.gserviceaccount.com", ci@acme.iam.gserviceaccount.com]
        """)
    assert tfvars["cluster_admins"] == ["group:ml-admins@example.com", "user:ana@example.com"]
    assert tfvars["cluster_viewers"] == ["serviceAccount:ci@acme.iam.gserviceaccount.com", "user:bo@example.com"]


def test_identities_in_another_cloud_s_form_are_located(tmp_path: Path) -> None:
    arn = "arn:aws:iam::123456789012:role/ml-admins"
    assert _problems(tmp_path, "azure", f"access: {{admins: [{arn}]}}\n") == [
        "7:19 access.admins[0]: must be an Entra ID object ID on azure: a GUID such as "
        "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f (of a group or a user)"]
    assert _problems(tmp_path, "gcp", f"teams:\n  - {{name: t, groups: [g@example.com], members: [{GUID}]}}\n") == [
        "8:50 teams[0].members[0]: must be a Google identity on gcp: an email, or user:, group: or "
        "serviceAccount: and an email (e.g. group:ml-admins@example.com)"]
    assert _problems(tmp_path, "aws", f"access: {{admins: [{GUID}]}}\n") == [  # AWS: as before
        "7:19 access.admins[0]: must be an IAM role or user ARN such as arn:aws:iam::123456789012:role/ml-admins"]


# --- zone names in each cloud's spelling -------------------------------------------------------------

def test_zone_names_are_each_cloud_s_own(tmp_path: Path) -> None:
    assert _tfvars(tmp_path, "gcp", "network: {zones: [us-central1-a, us-central1-c]}\n")["zones"] == [
        "us-central1-a", "us-central1-c"]
    assert _tfvars(tmp_path, "azure", "network: {zones: ['1', '3']}\n")["zones"] == ["1", "3"]
    assert _tfvars(tmp_path, "azure", "network: {zones: 2}\n")["zones"] == ["1", "2"]
    assert _problems(tmp_path, "gcp", "network: {zones: [us-east-1a, us-east-1b]}\n") == [
        "7:19 network.zones[0]: must be a zone name such as us-central1-a"]
    assert _problems(tmp_path, "azure", "network: {zones: [westeurope-1, westeurope-2]}\n") == [
        '7:19 network.zones[0]: must be a zone name such as "1"']

