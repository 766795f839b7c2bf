"""Bursting through MultiKueue (docs/hybrid.md): what a bare-metal manager and an AWS worker render,
applied to two API doubles that hold Kueue v0.19.2's CRDs (schemas and CEL rules) and webhooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.rollout import load_rollout
from orchestrator.conventions import KUSTOMIZATION
from orchestrator.kube.client import Client
from orchestrator.kube.rest import RetryPolicy
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from orchestrator.render.kubernetes.placement import CHECKS
from tests.kube_fake.fixtures import install_crds
from tests.kube_fake.server import FakeKube

HYBRID = Path(__file__).resolve().parents[1] / "fixtures" / "hybrid"
ROLLOUT = HYBRID / "rollout.yaml"
KUEUE = "kueue.x-k8s.io/v1beta2"
# The rights MultiKueue's worker-side client uses for batch/Job (kubernetes-sigs/kueue,
# site/static/examples/multikueue/create-multikueue-kubeconfig.sh, jobset left out): nothing else.
MULTIKUEUE_NEEDS = {
    ("batch", "jobs"): {"create", "delete", "get", "list", "watch"},
    ("batch", "jobs/status"): {"get"},
    ("kueue.x-k8s.io", "workloads"): {"create", "delete", "get", "list", "watch"},
    ("kueue.x-k8s.io", "workloads/status"): {"get", "patch", "update"},
}


@pytest.fixture(scope="module")
def rollout():
    return load_rollout(ROLLOUT, CHECKS)


@pytest.fixture()
def pair(tmp_path):
    """Two API servers, manager and worker, each with Kueue's CRDs and webhooks installed."""
    servers = {name: FakeKube().start() for name in ("manager", "worker")}
    clients = {}
    for name, server in servers.items():
        install_crds(server)
        server.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}})
        clients[name] = Client.from_kubeconfig(server.write_kubeconfig(tmp_path / name),
                                               retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    yield servers, clients
    for c in clients.values():
        c.close()
    for server in servers.values():
        server.stop()


def _objects(rollout, name):
    return render_objects(rollout.env(name).loaded.model)


def _of(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def test_the_rollout_validates_and_each_side_renders_only_its_part(rollout):
    manager, worker = _objects(rollout, "onprem"), _objects(rollout, "aws-burst")
    assert {o["kind"] for o in manager} >= {"MultiKueueCluster", "MultiKueueConfig", "AdmissionCheck"}
    assert not _of(worker, "MultiKueueCluster") and not _of(manager, "ServiceAccount")
    (cluster,) = _of(manager, "MultiKueueCluster")
    assert cluster["metadata"]["name"] == "aws-burst"
    assert cluster["spec"]["clusterSource"] == {"kubeConfig": {"locationType": "Secret",
                                                               "location": "multikueue-aws-burst"}}
    (check,) = _of(manager, "AdmissionCheck")
    assert check["spec"]["controllerName"] == "kueue.x-k8s.io/multikueue"
    burst_cq = next(o for o in _of(manager, "ClusterQueue") if o["metadata"]["name"] == "vision-burst")
    assert burst_cq["spec"]["admissionChecksStrategy"] == {"admissionChecks": [{"name": "vision-burst"}]}
    gpu = burst_cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": 16}
    # the local queue has no admission check: local work never waits for MultiKueue
    local_cq = next(o for o in _of(manager, "ClusterQueue") if o["metadata"]["name"] == "vision")
    assert "admissionChecksStrategy" not in local_cq["spec"]
    # no kubeconfig, token or Secret in the manager's render: the token is written at `infra up`
    assert not _of(manager, "Secret")
    files = render_kubernetes(rollout.env("onprem").loaded.model)
    assert "token" not in files["hybrid/manager.yaml"] and "kubeconfig:" not in files["hybrid/manager.yaml"]
    assert "hybrid/manager.yaml" in files[KUSTOMIZATION] and "hybrid/worker.yaml" not in files


def test_every_multikueue_object_is_valid_against_kueue_v0_19_2(rollout, pair):
    servers, clients = pair
    for side, env in (("manager", "onprem"), ("worker", "aws-burst")):
        for obj in _objects(rollout, env):
            clients[side].apply(obj)  # a 400/403/422 from the strict double raises
    manager, worker = servers["manager"], servers["worker"]
    assert manager.get(KUEUE, "MultiKueueCluster", "aws-burst") is not None
    assert manager.get(KUEUE, "AdmissionCheck", "vision-burst") is not None
    assert manager.get(KUEUE, "LocalQueue", "vision-burst", "vision")["spec"]["clusterQueue"] == "vision-burst"
    # the worker: the manager's burst queue name exists in the team namespace and feeds the team's queue
    assert worker.get(KUEUE, "LocalQueue", "vision-burst", "vision")["spec"]["clusterQueue"] == "vision"
    token = worker.get("v1", "Secret", "multikueue-onprem-token", "kueue-system")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "multikueue-onprem"


def test_a_multikueue_object_kueue_refuses_is_refused(pair):
    """The double is strict: a MultiKueueCluster with both sources breaks the CRD's CEL rule."""
    from orchestrator.kube.client import ApiError

    _, clients = pair
    bad = {"apiVersion": KUEUE, "kind": "MultiKueueCluster", "metadata": {"name": "w"},
           "spec": {"clusterSource": {"kubeConfig": {"location": "s"}, "clusterProfileRef": {"name": "p"}}}}
    with pytest.raises(ApiError) as err:
        clients["manager"].apply(bad)
    assert err.value.status == 422 and "exactly one of the fields" in str(err.value)


def test_worker_rbac_grants_exactly_what_multikueue_needs(rollout):
    objs = _objects(rollout, "aws-burst")
    account = {"kind": "ServiceAccount", "name": "multikueue-onprem", "namespace": "kueue-system"}
    crbs = [b for b in _of(objs, "ClusterRoleBinding") if account in b["subjects"]]
    bindings = [b for b in _of(objs, "RoleBinding") if account in b["subjects"]]
    bound = {b["roleRef"]["name"] for b in crbs + bindings}
    roles = {o["metadata"]["name"]: o for o in _of(objs, "ClusterRole") if o["metadata"]["name"] in bound}
    granted: dict[tuple[str, str], set[str]] = {}
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    granted.setdefault((group, res), set()).update(rule["verbs"])
    assert granted == MULTIKUEUE_NEEDS
    # watching is cluster-wide (MultiKueue's informers list every namespace); writing only in team namespaces
    (crb,) = crbs
    assert crb["roleRef"]["name"] == "infra-multikueue-watch"
    assert all(r["verbs"] == ["get", "list", "watch"] for r in roles["infra-multikueue-watch"]["rules"])
    assert {b["roleRef"]["name"] for b in bindings} == {"infra-multikueue-write"}
    assert {b["metadata"]["namespace"] for b in bindings} == {"vision"}  # the team namespaces, nothing else
    for b in [crb, *bindings]:
        assert b["subjects"] == [account]
    (sa,) = [o for o in _of(objs, "ServiceAccount") if o["metadata"]["name"] == "multikueue-onprem"]
    assert sa["automountServiceAccountToken"] is False


def test_queue_policy_admits_the_burst_queue_only_where_bursting(rollout):
    """MultiKueue creates the Job on the worker under the manager's burst queue name; the team
    namespace's admission policy must admit it there (and nowhere it was not asked for)."""
    def expression(bp):
        policy = next(o for o in render_objects(bp) if o["kind"] == "ValidatingAdmissionPolicy"
                      and o["metadata"]["name"] == "infra-team-jobs-queued")
        return policy["spec"]["validations"][0]["expression"]

    assert "-burst" in expression(rollout.env("aws-burst").loaded.model)
    assert "-burst" in expression(rollout.env("onprem").loaded.model)
    assert "-burst" not in expression(load(Path("examples/onprem-gpu.yaml")).model)


def test_the_policy_expression_decides_as_meant():
    """Evaluate the rendered CEL expression (cel-python, as the double does for CRD rules)."""
    import celpy

    from orchestrator.render.kubernetes.admission import _queue_expression

    env = celpy.Environment()
    program = env.program(env.compile(_queue_expression(True)))

    def allowed(queue, team):
        obj = {"metadata": {"labels": {"kueue.x-k8s.io/queue-name": queue}}}
        ns = {"metadata": {"labels": {"infra.dev/team": team} if team else {}}}
        return bool(program.evaluate({"object": celpy.json_to_cel(obj), "namespaceObject": celpy.json_to_cel(ns)}))

    assert allowed("vision", "vision") and allowed("vision-burst", "vision")
    assert not allowed("nlp-burst", "vision") and not allowed("other", "vision") and not allowed("-burst", "")


def test_the_handoff_validator_accepts_both_sides_with_the_shipped_schemas(rollout):
    """``infra handoff`` validates before applying (kube.validate, the schemas shipped in
    templates/kubernetes/schemas/): the MultiKueue kinds must be known there, patterns read as Go does."""
    from orchestrator.kube.validate import require_valid, validate_objects

    for env in ("onprem", "aws-burst"):
        bp = rollout.env(env).loaded.model
        require_valid(render_objects(bp), bp.kubernetes.version)
    check = next(o for o in _objects(rollout, "onprem") if o["kind"] == "AdmissionCheck")

    def with_kind(kind):
        return {**check, "spec": {**check["spec"], "parameters": {**check["spec"]["parameters"], "kind": kind}}}

    report = validate_objects([with_kind("9Config")], "1.33")
    assert len(report.problems) == 1 and "spec.parameters.kind" in report.problems[0]
    assert validate_objects([with_kind("multiKUEUEconfig")], "1.33").ok  # (?i): case-insensitive, as on the server
