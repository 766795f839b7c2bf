"""The capacity model holds (docs/kubernetes.md, "Capacity"): checked on the *rendered* objects
of every example and golden blueprint, against capacities counted here from the blueprint's
own numbers (max nodes or hosts x gpu.count), and `infra validate` refuses an over-promise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.blueprint import catalog
from orchestrator.blueprint.loader import load
from orchestrator.render.kubernetes import render_objects
from tests.blueprints import with_way_in

REPO = Path(__file__).resolve().parents[2]
INFRA = Path(sys.executable).with_name("infra")
GPU = "nvidia.com/gpu"
BLUEPRINTS = sorted(
    [*REPO.glob("examples/*.yaml"), *REPO.glob("tests/golden/inputs/*.yaml"),
     REPO / "tests/fixtures/kube/three-teams.yaml"]
)


def _gib(text: str) -> int:
    assert text.endswith("Gi"), text
    return int(text[:-2])


# MIG instances per GPU for a profile's size, written out here from NVIDIA's MIG user guide (not
# read from infra's data) for the sizes the examples use.
MIG_INSTANCES = {"1g.5gb": 7, "1g.10gb": 7, "2g.20gb": 3, "7g.80gb": 1}


def _pool_capacity(bp, pool) -> tuple[int, int, int]:
    """(nvidia.com/gpu, vCPUs, GiB) a pool holds, counted from the blueprint: max nodes or its
    hosts; of several instance types the smallest (any may come up); a MIG GPU counts its instances."""
    nodes = pool.max if pool.max is not None else sum(1 for h in bp.hosts if h.pool == pool.name)
    known = [m for m in (catalog.lookup(bp.provider, t) for t in pool.all_instance_types) if m]
    vcpus, memory = (min(m.vcpus for m in known), int(min(m.memory_gib for m in known))) if known else (64, 256)
    units = MIG_INSTANCES[pool.mig.profile.removeprefix("all-")] if pool.mig else 1
    return nodes * (pool.gpu.count if pool.gpu else 0) * units, nodes * vcpus, nodes * memory


def _serving_gpus(objs: list[dict], namespace: str) -> int:
    total = 0
    for obj in objs:
        if obj["kind"] not in ("Deployment", "Server") or obj["metadata"].get("namespace") != namespace:
            continue
        spec = obj["spec"]
        pod = spec["template"]["spec"] if "template" in spec else spec.get("podSpec", {})
        per_pod = sum(int(c.get("resources", {}).get("requests", {}).get(GPU, 0)) for c in pod.get("containers", []))
        total += spec.get("replicas", 1) * per_pod
    return total


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_blueprint_keeps_its_promises(path: Path) -> None:
    bp = load(path).model
    assert not bp.overcommit
    objs = render_objects(bp)
    queues = [o for o in objs if o["kind"] == "ClusterQueue"]
    flavors = {o["metadata"]["name"] for o in objs if o["kind"] == "ResourceFlavor"}
    # Per flavor: the teams' nominal GPUs, CPU and memory fit what the pool holds.
    for name in flavors - {"default"}:
        pool = bp.pool(name)
        assert pool is not None and pool.purpose != "inference"
        assert pool.gpu is not None or pool.purpose in (None, "training"), name  # GPU or CPU pools only
        gpus, vcpus, memory = _pool_capacity(bp, pool)
        shares = [r for q in queues for f in q["spec"]["resourceGroups"][0]["flavors"] if f["name"] == name
                  for r in f["resources"]]
        assert sum(r["nominalQuota"] for r in shares if r["name"] == GPU) <= gpus, name
        assert sum(r["nominalQuota"] for r in shares if r["name"] == "cpu") <= vcpus, name
        assert sum(_gib(r["nominalQuota"]) for r in shares if r["name"] == "memory") <= memory, name
        # Others borrow only what is lent: a team lends at most its nominal quota (Kueue's webhook
        # refuses more), so what the teams lend on a pool never exceeds what they are guaranteed.
        gpu_shares = [r for r in shares if r["name"] == GPU]
        assert all(r.get("lendingLimit", r["nominalQuota"]) <= r["nominalQuota"] for r in gpu_shares), name
        assert sum(r.get("lendingLimit", r["nominalQuota"]) for r in gpu_shares) <= gpus, name
    # Per team: the namespace's quota admits what Kueue admits plus what its model servers hold.
    for team in bp.teams:
        queue = next(q for q in queues if q["metadata"]["name"] == team.name)
        gpu = [r for f in queue["spec"]["resourceGroups"][0]["flavors"] for r in f["resources"] if r["name"] == GPU]
        admitted = sum(r["nominalQuota"] + r["borrowingLimit"] for r in gpu)
        # lending_limit is the team's lendingLimit in all (absent: Kueue lends everything).
        lent = [r["lendingLimit"] for r in gpu if "lendingLimit" in r]
        assert (sum(lent) if lent else None) == team.lending_limit, team.name
        assert not lent or len(lent) == len(gpu), team.name
        quota = next(o for o in objs if o["kind"] == "ResourceQuota"
                     and o["metadata"]["namespace"] == team.effective_namespace)
        serving = _serving_gpus(objs, team.effective_namespace)
        assert int(quota["spec"]["hard"][f"requests.{GPU}"]) >= admitted + serving, team.name


def test_the_examples_quotas_in_numbers() -> None:
    objs = render_objects(load(REPO / "examples/aws-gpu.yaml").model)
    nominal = {
        q["metadata"]["name"]: {f["name"]: f["resources"][2]["nominalQuota"]
                                for f in q["spec"]["resourceGroups"][0]["flavors"]}
        for q in objs if q["kind"] == "ClusterQueue"
    }
    # h100: 8 x 8 = 64 GPUs; vision's 2 resnet50 replicas (1 GPU each, on l4) come out of its 32.
    # system: the CPU pool (Jobs without GPUs), first, with no GPUs.
    assert nominal == {"vision": {"system": 0, "h100": 30}, "nlp": {"system": 0, "h100": 24},
                       "research": {"system": 0, "h100": 8}}
    quotas = {o["metadata"]["namespace"]: o["spec"]["hard"][f"requests.{GPU}"]
              for o in objs if o["kind"] == "ResourceQuota"}
    assert quotas == {"vision": "48", "nlp": "32", "research": "8"}
    resnet = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "resnet50")
    terms = resnet["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "infra.dev/pool", "operator": "In", "values": ["l4"]}]}]


OVER = """blueprint: 1
name: lab
provider: baremetal
node_pools:
  - name: dgx
    gpu: {type: h100, count: 8}
hosts:
  - {name: cp-01, address: 10.1.0.10, roles: [control_plane]}
  - {name: gpu-01, address: 10.1.0.11, roles: [worker], pool: dgx}
  - {name: gpu-02, address: 10.1.0.12, roles: [worker], pool: dgx}
teams:
  - {name: vision, gpu_quota: 12}
  - {name: nlp, gpu_quota: 6}
"""


def _validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bp.yaml").write_text(with_way_in(text))
    return subprocess.run([str(INFRA), "validate", "bp.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_validate_rejects_guarantees_a_pool_cannot_hold(tmp_path: Path) -> None:
    proc = _validate(tmp_path, OVER)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "bp.yaml:13:28 teams[1].gpu_quota: node pool 'dgx' holds 16 GPUs (2 node(s) x 8) but teams "
        "vision (12), nlp (6) are guaranteed 18 there: lower gpu_quota, raise the pool's max, or set "
        "overcommit: true",
        "1 problem found",
    ]


def test_overcommit_true_turns_the_error_into_a_warning(tmp_path: Path) -> None:
    proc = _validate(tmp_path, OVER + "overcommit: true\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok: lab\n"
    assert proc.stderr.startswith("warning: bp.yaml:13:28 teams[1].gpu_quota: node pool 'dgx' holds 16 GPUs")


@pytest.mark.parametrize(("extra", "expected"), [
    ("inference:\n  models:\n    - {name: m, uri: s3://b/m.onnx, gpu: 1, team: vision}\n",
     "bp.yaml:16:42 inference.models[0].gpu: model 'm' needs GPUs but team 'vision' has no GPU node pool "
     "with purpose: inference (model servers run only there)"),
    ("", None),
])
def test_gpu_models_need_an_inference_pool(tmp_path: Path, extra: str, expected: str | None) -> None:
    text = OVER.replace("gpu_quota: 12", "gpu_quota: 10") + extra
    proc = _validate(tmp_path, text)
    if expected is None:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2 and proc.stderr.splitlines()[0] == expected


def test_serving_gpus_come_out_of_gpu_quota(tmp_path: Path) -> None:
    text = (OVER.replace("    gpu: {type: h100, count: 8}\n", "    gpu: {type: h100, count: 8}\n"
                         "  - {name: infer, gpu: {type: l4, count: 1}, purpose: inference}\n")
            .replace("roles: [worker], pool: dgx}\nteams:", "roles: [worker], pool: dgx}\n"
                     "  - {name: gpu-03, address: 10.1.0.13, roles: [worker], pool: infer}\nteams:")
            .replace("gpu_quota: 6", "gpu_quota: 0"))
    text += "inference:\n  models:\n    - {name: m, uri: s3://b/m.onnx, gpu: 1, team: nlp}\n"
    proc = _validate(tmp_path, text)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "bp.yaml:15:28 teams[1].gpu_quota: team 'nlp' has model servers holding 1 GPUs but gpu_quota 0: "
        "serving GPUs come out of gpu_quota",
        "1 problem found",
    ]


def test_lending_limit_is_split_over_the_nominal_quota_per_pool() -> None:
    """edge-eu: nominal 2 on l40s + 6 on h100; lending_limit 3 -> 0.75 + 2.25 -> 1 + 2 (largest
    remainder); aws-gpu: research lends nothing, the other teams have no lendingLimit."""
    def lending(path: str) -> dict:
        objs = render_objects(load(REPO / path).model)
        return {q["metadata"]["name"]: {f["name"]: f["resources"][2].get("lendingLimit")
                                        for f in q["spec"]["resourceGroups"][0]["flavors"]}
                for q in objs if q["kind"] == "ClusterQueue"}
    assert lending("tests/golden/inputs/edge-eu.yaml") == {"edge": {"l40s": 1, "h100": 2}}
    assert lending("examples/aws-gpu.yaml") == {"vision": {"system": None, "h100": None},
                                                "nlp": {"system": None, "h100": None},
                                                "research": {"system": 0, "h100": 0}}


def test_lending_limit_keeps_cpu_and_memory_too() -> None:
    """research (aws-gpu) lends none of its GPUs: none of its CPU or memory either, on its GPU
    pool and on the CPU pool; teams without lending_limit lend everything (no lendingLimit)."""
    objs = render_objects(load(REPO / "examples/aws-gpu.yaml").model)
    queues = {q["metadata"]["name"]: q for q in objs if q["kind"] == "ClusterQueue"}
    for flavor in queues["research"]["spec"]["resourceGroups"][0]["flavors"]:
        assert [r.get("lendingLimit") for r in flavor["resources"]] in ([0, "0Gi", 0], [0, 0, 0]), flavor
    for flavor in queues["vision"]["spec"]["resourceGroups"][0]["flavors"]:
        assert all("lendingLimit" not in r for r in flavor["resources"]), flavor


def test_lending_limit_never_exceeds_a_pools_nominal_quota(tmp_path: Path) -> None:
    """Pools of 1, 3 and 3 GPUs; gpu_quota 4 is nominal 0 + 2 + 2 (0.57, 1.71, 1.71). Lending 3
    split by the nominal quota is 0 + 1.5 + 1.5 -> 0 + 2 + 1; split by the pools' GPUs it would
    be 1 + 1 + 1, a lendingLimit of 1 on a pool with nominalQuota 0, which Kueue refuses."""
    text = """blueprint: 1
name: lab
provider: baremetal
node_pools:
  - {name: a, gpu: {type: h100, count: 1}}
  - {name: b, gpu: {type: h100, count: 3}}
  - {name: c, gpu: {type: h100, count: 3}}
hosts:
  - {name: cp-01, address: 10.1.0.10, roles: [control_plane]}
  - {name: gpu-01, address: 10.1.0.11, roles: [worker], pool: a}
  - {name: gpu-02, address: 10.1.0.12, roles: [worker], pool: b}
  - {name: gpu-03, address: 10.1.0.13, roles: [worker], pool: c}
teams:
  - {name: vision, gpu_quota: 4, lending_limit: 3, groups: [v]}
"""
    (tmp_path / "bp.yaml").write_text(with_way_in(text))
    queue = next(o for o in render_objects(load(tmp_path / "bp.yaml").model) if o["kind"] == "ClusterQueue")
    gpu = [f["resources"][2] for f in queue["spec"]["resourceGroups"][0]["flavors"]]
    assert [(r["nominalQuota"], r["lendingLimit"]) for r in gpu] == [(0, 0), (2, 2), (2, 1)]


def test_validate_rejects_lending_more_than_the_nominal_quota(tmp_path: Path) -> None:
    text = OVER.replace("gpu_quota: 12}", "gpu_quota: 10, lending_limit: 11}")
    proc = _validate(tmp_path, text)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "bp.yaml:12:50 teams[0].lending_limit: team 'vision' can lend at most its nominal quota, 10 GPUs "
        "(gpu_quota 10 less 0 for its model servers), not 11",
        "1 problem found",
    ]


def test_validate_warns_about_a_team_without_groups(tmp_path: Path) -> None:
    text = OVER.replace("gpu_quota: 12}", "gpu_quota: 10, groups: [vision-devs]}").replace(
        "  - {name: nlp, gpu_quota: 6}\n", "  - name: nlp\n    gpu_quota: 6\n")
    proc = _validate(tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok: lab\n"
    assert proc.stderr.splitlines()[0] == ("warning: bp.yaml:13:5 teams[1]: no groups: nobody but cluster admins "
                                           "can submit jobs to team 'nlp' (no RoleBinding is rendered)")


_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def _node_taints(raw: list) -> list[dict]:
    """Terraform's taints for a pool (aws/gcp: blocks with NO_SCHEDULE-style effects; azure:
    ``key=value:Effect`` strings) as Kubernetes taints."""
    taints = []
    for t in raw:
        if isinstance(t, str):
            key_value, effect = t.rsplit(":", 1)
            key, _, value = key_value.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
        else:
            taints.append({"key": t["key"], "value": t.get("value", ""), "effect": _EFFECTS[t["effect"]]})
    return taints


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    return any(t.get("key") == taint["key"] and t.get("effect") in (None, "", taint["effect"])
               and (t.get("operator") == "Exists" or t.get("value", "") == taint["value"]) for t in tolerations)


@pytest.mark.parametrize("path", [p for p in BLUEPRINTS if load(p).model.provider != "baremetal"],
                         ids=lambda p: p.stem)
def test_every_flavor_selects_and_tolerates_the_nodes_terraform_makes(path: Path) -> None:
    """Emulators are blind to this: a Kueue ResourceFlavor whose nodeLabels a pool's nodes do not
    carry, or whose tolerations miss a taint the cloud puts on them (AKS spot), admits jobs whose
    pods never schedule. Checked against the node labels and taints the Terraform variables give
    each pool, on every cloud example and golden case."""
    from orchestrator.providers import registry

    bp = load(path).model
    tfvars = registry.get(bp.provider).terraform_variables(bp)
    system = [tfvars["system_pool"]] if "system_pool" in tfvars else []  # AKS
    pools = {p["name"]: p for p in [*tfvars["node_pools"], *system]}
    flavors = [o for o in render_objects(bp) if o["kind"] == "ResourceFlavor" and o["spec"].get("nodeLabels")]
    assert flavors or not any(p.gpu.count for p in bp.node_pools)
    for flavor in flavors:
        pool = pools[flavor["metadata"]["name"]]
        labels = dict(pool.get("labels") or pool.get("node_labels") or {})
        if pool.get("gpu_partition_size"):  # GKE labels a MIG pool's nodes itself (not listed by the pool)
            labels["cloud.google.com/gke-gpu-partition-size"] = pool["gpu_partition_size"]
        assert flavor["spec"]["nodeLabels"].items() <= labels.items(), (path.stem, pool["name"])
        for taint in _node_taints(pool.get("taints") or pool.get("node_taints") or []):
            if taint["effect"] != "PreferNoSchedule":
                assert _tolerates(flavor["spec"].get("tolerations") or [], taint), (path.stem, pool["name"], taint)
