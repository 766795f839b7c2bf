"""Issue 13 follow-ups that no emulator shows. GKE partitions a MIG pool's GPUs itself
(``gpu_partition_size``, one size per node pool, from GKE's list for the machine's GPU): each
partition is one ``nvidia.com/gpu`` on nodes labelled ``cloud.google.com/gke-gpu-partition-size``,
which the Kueue flavor selects and the node pool must not list. AKS's default (system) node pool
cannot be spot. Expectations are literal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.kubernetes import render_objects
from tests import provider_schema
from tests.blueprints import with_way_in
from tests.unit.test_aks_gke_nodes_and_identities import _path, _problems, _tfvars
from tests.unit.test_kube_capacity import _validate
from tests.unit.test_provider_schemas import _mutated, _schema

A100 = ("  - {name: a100, instance_type: a2-highgpu-1g, gpu: {type: a100, count: 1}, min: 0, max: 2, "
        "mig: {profile: %s}}\n")
H100 = "  - {name: h100, instance_type: %s, gpu: {type: h100, count: 8}, min: 0, max: 1, mig: {profile: %s}}\n"
AZURE = ("  - {name: a100, instance_type: Standard_NC24ads_A100_v4, gpu: {type: a100, count: 1}, min: 0, max: 2, "
         "capacity_type: spot}\n")


# --- GKE: mig -> gpu_partition_size, the flavor selects GKE's partition label -----------------------

def test_a_gke_mig_profile_becomes_the_node_pool_partition_size(tmp_path: Path) -> None:
    tfvars = _tfvars(tmp_path, "gcp", A100 % "all-1g.5gb" + H100 % ("a3-highgpu-8g", "all-disabled"))
    pools = {p["name"]: p for p in tfvars["node_pools"]}
    assert {n: p["gpu_partition_size"] for n, p in pools.items()} == {"system": "", "a100": "1g.5gb", "h100": ""}
    # GKE refuses cloud.google.com/ labels in node_config.labels: the node pool lists only ours.
    assert pools["a100"]["labels"] == {"infra.dev/gpu-type": "a100", "infra.dev/pool": "a100",
                                       "nvidia.com/gpu.present": "true"}


def test_on_gke_the_flavor_selects_the_partition_label_and_pods_ask_for_nvidia_gpu(tmp_path: Path) -> None:
    team = "teams:\n  - {name: vision, gpu_quota: 4}\n"
    bp = load(_path(tmp_path, "gcp", A100 % "all-1g.5gb" + H100 % ("a3-highgpu-8g", "all-disabled") + team)).model
    objs = render_objects(bp)
    flavors = {o["metadata"]["name"]: o["spec"]["nodeLabels"] for o in objs if o["kind"] == "ResourceFlavor"}
    assert flavors == {
        "system": {"infra.dev/pool": "system"},  # the CPU pool: Jobs without GPUs
        "a100": {"cloud.google.com/gke-gpu-partition-size": "1g.5gb", "infra.dev/gpu-type": "a100",
                 "infra.dev/pool": "a100", "nvidia.com/gpu.present": "true"},
        "h100": {"infra.dev/gpu-type": "h100", "infra.dev/pool": "h100", "nvidia.com/gpu.present": "true"},
    }
    queues = [o for o in objs if o["kind"] == "ClusterQueue"]
    assert [g["coveredResources"] for q in queues for g in q["spec"]["resourceGroups"]] == [
        ["cpu", "memory", "nvidia.com/gpu"]]
    assert "nvidia.com/mig-" not in json.dumps(objs)  # GKE exposes partitions as nvidia.com/gpu
    assert not any(o["kind"] == "DaemonSet" for o in objs)  # GKE runs its own device plugin


def test_elsewhere_a_mig_pool_flavor_has_no_gke_label(tmp_path: Path) -> None:
    """On hosts infra partitions the GPUs itself (the MIG manager): no cloud label to select."""
    (tmp_path / "bp.yaml").write_text(with_way_in(
        "blueprint: 1\nname: t-env\nprovider: baremetal\nnode_pools:\n"
        "  - {name: a100, gpu: {type: a100, count: 8}, mig: {profile: all-1g.5gb}}\n"
        "hosts:\n  - {name: cp, address: 10.0.0.1, roles: [control_plane]}\n"
        "  - {name: g1, address: 10.0.0.2, roles: [worker], pool: a100}\n"))
    bp = load(tmp_path / "bp.yaml").model
    flavors = [o["spec"]["nodeLabels"] for o in render_objects(bp) if o["kind"] == "ResourceFlavor"]
    assert flavors == [{"infra.dev/gpu-type": "a100", "infra.dev/pool": "a100", "nvidia.com/gpu.present": "true"}]


@pytest.mark.parametrize(("pool", "sizes"), [
    (A100 % "all-7g.40gb", {"system": "", "a100": "7g.40gb"}),
    (H100 % ("a3-highgpu-8g", "all-1g.20gb"), {"system": "", "h100": "1g.20gb"}),
    ((H100 % ("a3-ultragpu-8g", "all-1g.18gb")).replace("h100", "h200"), {"system": "", "h200": "1g.18gb"}),
])
def test_gke_takes_the_sizes_it_offers_for_the_gpu(tmp_path: Path, pool: str, sizes: dict) -> None:
    assert {p["name"]: p["gpu_partition_size"] for p in _tfvars(tmp_path, "gcp", pool)["node_pools"]} == sizes


def test_gke_refuses_a_partition_size_the_gpu_does_not_offer(tmp_path: Path) -> None:
    assert _problems(tmp_path, "gcp", A100 % "all-1g.10gb") == [
        "7:108 node_pools[1].mig.profile: GKE partitions the a100 GPUs of a2-highgpu-1g into one of "
        "all-1g.5gb, all-2g.10gb, all-3g.20gb or all-7g.40gb (one size per pool), not all-1g.10gb"]
    assert _problems(tmp_path, "gcp", A100.replace("a2-highgpu-1g", "a2-ultragpu-1g") % "all-1g.5gb") == [
        "7:109 node_pools[1].mig.profile: GKE partitions the a100 GPUs of a2-ultragpu-1g into one of "
        "all-1g.10gb, all-2g.20gb, all-3g.40gb or all-7g.80gb (one size per pool), not all-1g.5gb"]
    assert _problems(tmp_path, "gcp", A100 % "all-balanced") == [
        "7:108 node_pools[1].mig.profile: GKE partitions the a100 GPUs of a2-highgpu-1g into one of "
        "all-1g.5gb, all-2g.10gb, all-3g.20gb or all-7g.40gb (one size per pool), not all-balanced"]


def test_gke_refuses_mig_on_a_machine_without_known_partition_sizes(tmp_path: Path) -> None:
    assert _problems(tmp_path, "gcp", H100 % ("a3-megagpu-8g", "all-1g.10gb")) == [
        "7:93 node_pools[1].mig: GKE partitions no GPU of a3-megagpu-8g that infra knows of: remove mig "
        "or use a machine type it partitions (e.g. a3-highgpu-1g)"]


def test_infra_validate_names_the_line_of_a_bad_gke_partition(tmp_path: Path) -> None:
    proc = _validate(tmp_path, _path(tmp_path, "gcp", A100 % "all-4g.20gb").read_text())
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "bp.yaml:7:108 node_pools[1].mig.profile: GKE partitions the a100 GPUs of a2-highgpu-1g into one of "
        "all-1g.5gb, all-2g.10gb, all-3g.20gb or all-7g.40gb (one size per pool), not all-4g.20gb",
        "1 problem found",
    ]


def test_gpu_partition_size_is_checked_against_the_google_schema(tmp_path: Path) -> None:
    """The argument sits in the node pool's guest_accelerator (google 6.50.0): the render passes
    (test_provider_schemas), and a misspelling of it is caught."""
    schema = _schema("google")
    docs = _mutated(tmp_path, "gcp-gpu", "gpu_partition_size =", "gpu_partition_sizes =")
    assert provider_schema.check(docs, {"google": schema}) == [
        "main.tf: resource google_container_node_pool.pool.node_config.guest_accelerator: "
        "unknown argument 'gpu_partition_sizes'"]


# --- AKS: the default (system) node pool is never spot ---------------------------------------------

def _azure_system_spot(tmp_path: Path, field: str) -> list[str]:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in("blueprint: 1\nname: t-env\nprovider: azure\nregion: westeurope\nnode_pools:\n"
                    f"  - {{name: system, instance_type: Standard_D4s_v5, min: 1, max: 2, {field}}}\n"))
    return _problems_of(path)


def _problems_of(path: Path) -> list[str]:
    from orchestrator.errors import BlueprintError

    with pytest.raises(BlueprintError) as info:
        load(path)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize(("field", "where"), [("spot: true", "6:74 node_pools[0].spot"),
                                              ("capacity_type: spot", "6:83 node_pools[0].capacity_type")])
def test_aks_refuses_a_spot_system_pool(tmp_path: Path, field: str, where: str) -> None:
    assert _azure_system_spot(tmp_path, field) == [
        f"{where}: this pool becomes AKS's system (default) node pool, which cannot be spot: make it "
        "on_demand and put spot capacity in another pool (or give an on-demand pool purpose: system)"]


def test_aks_takes_spot_pools_beside_an_on_demand_system_pool(tmp_path: Path) -> None:
    spot_cpu = "  - {name: batch, instance_type: Standard_D4s_v5, min: 0, max: 2, spot: true}\n"
    tfvars = _tfvars(tmp_path, "azure", spot_cpu + AZURE)
    assert tfvars["system_pool"]["name"] == "system"
    assert {p["name"]: p["spot"] for p in tfvars["node_pools"]} == {"batch": True, "a100": True}


def test_an_on_demand_purpose_system_pool_lets_the_first_cpu_pool_be_spot(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in("blueprint: 1\nname: t-env\nprovider: azure\nregion: westeurope\nnode_pools:\n"
                    "  - {name: batch, instance_type: Standard_D4s_v5, min: 0, max: 2, spot: true}\n"
                    "  - {name: sys, instance_type: Standard_D4s_v5, min: 1, max: 2, purpose: system}\n"))
    tfvars = get_provider("azure").terraform_variables(load(path).model)
    assert tfvars["system_pool"]["name"] == "sys"
    assert [(p["name"], p["spot"]) for p in tfvars["node_pools"]] == [("batch", True)]


def test_spot_system_pools_are_only_refused_where_the_cloud_refuses_them(tmp_path: Path) -> None:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in("blueprint: 1\nname: t-env\nprovider: gcp\nregion: us-central1\nnode_pools:\n"
                    "  - {name: system, instance_type: n2-standard-4, min: 1, max: 2, spot: true}\n"))
    assert [p["spot"] for p in get_provider("gcp").terraform_variables(load(path).model)["node_pools"]] == [True]
