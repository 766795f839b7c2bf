"""Apply, prune and wait against the fake API server."""

from __future__ import annotations

import pytest

from orchestrator.errors import KubernetesError
from orchestrator.kube.apply import Options, apply_all, readiness
from orchestrator.render.kubernetes import render_objects
from tests.kube_fake.server import FakeKube
from tests.unit.kube_fixtures import client, fake, install_crds, kubeconfig, lab  # noqa: F401


class Clock:
    """A fake monotonic clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


# the device plugin's status while every GPU pool is at zero nodes: rolled out (nothing to wait for)
SCALED_TO_ZERO = {"observedGeneration": 1, "desiredNumberScheduled": 0, "numberAvailable": 0,
                  "updatedNumberScheduled": 0, "currentNumberScheduled": 0, "numberReady": 0}


def opts(**kw) -> Options:
    clock = Clock()
    return Options(sleep=clock.sleep, clock=clock, **kw)


def test_apply_creates_everything_in_order(client, fake, lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    result = apply_all(client, objs, bp.name, opts())
    assert len(result.applied) == len(objs) == len(result.created)
    assert result.server_version == "v1.30.0-fake"
    patched = [r["path"] for r in fake.requests if r["method"] == "PATCH"]
    assert patched[0] == "/api/v1/namespaces/nlp-team"
    first_kueue = next(i for i, p in enumerate(patched) if "kueue" in p)
    assert all("kueue" not in p for p in patched[:first_kueue]) and "networkpolicies" in patched[first_kueue - 1]
    assert patched[-3:] == [  # the inference Deployments, then their Services, last (conventions.KIND_ORDER)
        "/apis/apps/v1/namespaces/vision/deployments/resnet50",
        "/api/v1/namespaces/nlp-team/services/bert",
        "/api/v1/namespaces/vision/services/resnet50",
    ]
    assert fake.get("kueue.x-k8s.io/v1beta2", "ClusterQueue", "vision")["spec"]["cohortName"] == "infra-gpu"
    # the CRDs were checked before anything was applied
    crd_gets = [i for i, r in enumerate(fake.requests) if "customresourcedefinitions" in r["path"]]
    assert crd_gets and max(crd_gets) < next(i for i, r in enumerate(fake.requests) if r["method"] == "PATCH")
    again = apply_all(client, objs, bp.name, opts())
    assert again.created == [] and len(again.applied) == len(objs) and again.pruned == []


def test_apply_survives_a_429_storm_with_backoff(client, fake, lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    fake.fail_next(9, 429, retry_after=0.2, method="PATCH")  # throttled from the start, with Retry-After
    for team in ("vision", "nlp", "research"):  # and again on each queue, without
        fake.fail_next(6, 429, path_regex=f"clusterqueues/{team}$", method="PATCH")
    result = apply_all(client, objs, bp.name, opts())
    assert len(result.applied) == len(objs)
    statuses = [r.get("status") for r in fake.requests if r["method"] == "PATCH"]
    assert statuses.count(429) == 27 and statuses.count(201) == len(objs)
    slept = client.retry.slept
    assert slept[:9] == [0.2] * 9  # Retry-After honoured
    assert slept[9:] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0] * 3  # exponential backoff (jitter pinned), per request


def test_prune_deletes_only_what_infra_rendered_before_for_this_environment(client, fake, lab):  # noqa: F811
    bp, _ = lab
    apply_all(client, render_objects(bp), bp.name, opts())
    foreign = [  # same kinds, but not ours to delete
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other-env", "namespace": "vision", "labels": {
            "app.kubernetes.io/managed-by": "infra", "infra.dev/environment": "other"}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "helm", "namespace": "vision", "labels": {
            "app.kubernetes.io/managed-by": "Helm", "infra.dev/environment": bp.name}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain", "namespace": "vision"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrendered-kind", "namespace": "vision",
                                                               "labels": {"app.kubernetes.io/managed-by": "infra",
                                                                          "infra.dev/environment": bp.name}}},
    ]
    for obj in foreign:
        fake.put(obj)
    bp.inference.models = bp.inference.models[1:]  # resnet50 removed
    bp.teams = [t for t in bp.teams if t.name != "research"]  # a team removed
    result = apply_all(client, render_objects(bp), bp.name, opts())
    assert "Deployment/vision/resnet50" in result.pruned and "Service/vision/resnet50" in result.pruned
    assert "ClusterQueue/research" in result.pruned and "LocalQueue/research/research" in result.pruned
    assert "ResourceQuota/research/team-quota" in result.pruned
    assert fake.get("apps/v1", "Deployment", "resnet50", "vision") is None
    assert result.stale_namespaces == ["research"]
    assert fake.get("v1", "Namespace", "research") is not None  # namespaces are never pruned
    for obj in foreign:
        assert fake.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], "vision") is not None
    deletes = [r["path"] for r in fake.requests if r["method"] == "DELETE"]
    assert len(deletes) == len(result.pruned)


def test_no_prune_keeps_everything(client, fake, lab):  # noqa: F811
    bp, _ = lab
    apply_all(client, render_objects(bp), bp.name, opts())
    bp.inference = None
    result = apply_all(client, render_objects(bp), bp.name, opts(prune=False))
    assert result.pruned == [] and fake.get("apps/v1", "Deployment", "resnet50", "vision") is not None


def test_prune_skips_apis_the_cluster_does_not_serve(client, fake, lab):  # noqa: F811
    bp, _ = lab
    fake.fail_next(1, 404, path_regex="^/apis/mlops.seldon.io/v1alpha1/models$")
    result = apply_all(client, render_objects(bp), bp.name, opts())
    assert result.pruned == []


def test_missing_kueue_fails_before_anything_is_applied(kubeconfig, lab):  # noqa: F811
    from orchestrator.kube.client import Client

    bare = FakeKube().start()
    try:
        install_crds(bare, groups=("mlops.seldon.io",))
        c = Client.from_kubeconfig(bare.write_kubeconfig(kubeconfig.parent / "bare"))
        bp, _ = lab
        with pytest.raises(KubernetesError, match="Kueue is not installed: the cluster has no CRD") as info:
            apply_all(c, render_objects(bp), bp.name, opts())
        assert "install Kueue" in info.value.hint
        assert not [r for r in bare.requests if r["method"] == "PATCH"]
    finally:
        bare.stop()


def test_crds_must_be_established_in_time(client, fake, lab):  # noqa: F811
    bp, _ = lab
    install_crds(fake, groups=("kueue.x-k8s.io",), established=False)
    o = opts(timeout=10)
    with pytest.raises(KubernetesError, match="is not Established after 10s"):
        apply_all(client, render_objects(bp), bp.name, o)
    assert o.clock.sleeps == [2.0] * 5


def test_old_kueue_without_v1beta2_is_explained(client, fake, lab):  # noqa: F811
    bp, _ = lab
    crd = fake.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "clusterqueues.kueue.x-k8s.io")
    crd["spec"]["versions"] = [{"name": "v1beta1", "served": True}]
    with pytest.raises(KubernetesError, match="does not serve v1beta2") as info:
        apply_all(client, render_objects(bp), bp.name, opts())
    assert "v0.15" in info.value.hint


def test_wait_until_ready_then_time_out_when_not(client, fake, lab):  # noqa: F811
    bp, _ = lab
    fake.auto_ready = False
    fake.on_create.append(lambda obj: obj["kind"] == "DaemonSet" and obj.update(status=SCALED_TO_ZERO))
    objs = render_objects(bp)
    o = opts(timeout=20)
    with pytest.raises(KubernetesError, match=r"\d+ objects not ready after 20s: ClusterQueue/vision: not active") as e:
        apply_all(client, objs, bp.name, o)
    assert "--timeout" in e.value.hint

    def become_ready(seconds: float) -> None:  # the controllers catch up while we wait
        fake.auto_ready = True
        for obj in fake.objects():
            if obj["kind"] in ("Deployment", "DaemonSet", "ClusterQueue", "LocalQueue"):
                fake.put(obj)

    o = opts(timeout=20)
    o.sleep = become_ready
    result = apply_all(client, objs, bp.name, o)
    assert result.not_ready == []


def test_readiness_rules():
    dep = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 1, "availableReplicas": 2, "updatedReplicas": 2}}
    assert readiness(dep) == (False, "the controller has not seen the latest spec yet")
    dep["status"]["observedGeneration"] = 2
    assert readiness(dep) == (True, "2/2 replicas available")
    ds = {"kind": "DaemonSet", "metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    assert readiness(ds) == (True, "0/0 nodes available")  # GPU pools scaled to zero
    cq = {"kind": "ClusterQueue", "status": {"conditions": [
        {"type": "Active", "status": "False", "reason": "FlavorNotFound", "message": "flavor h100 missing"}]}}
    assert readiness(cq) == (False, "not active: FlavorNotFound flavor h100 missing")
    model = {"kind": "Model", "status": {"conditions": [{"type": "ModelReady", "status": "True"}]}}
    assert readiness(model) == (True, "ready")
    assert readiness({"kind": "Role"}) == (True, "applied")
