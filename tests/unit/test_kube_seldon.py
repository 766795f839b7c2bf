"""Seldon's runtime and the order model servers are applied in: a SeldonRuntime per team
namespace that hosts Seldon models; the handoff applies model servers only after the NVIDIA
device plugin rolled out and, with Seldon, after each SeldonRuntime is Ready; without Seldon
Core v2's CRDs it stops (exit 5) before anything is applied."""

from __future__ import annotations

import pytest

from orchestrator.errors import KubernetesError
from orchestrator.kube.apply import Options, apply_all
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from tests.unit.kube_fixtures import THREE_TEAMS, client, fake, kubeconfig, lab  # noqa: F401
from tests.unit.test_kube_install import Clock, _small_install

SELDON = "mlops.seldon.io/v1alpha1"
ROLLED_OUT_AT_ZERO = {"observedGeneration": 1, "desiredNumberScheduled": 0, "numberAvailable": 0,
                      "updatedNumberScheduled": 0, "currentNumberScheduled": 0, "numberReady": 0}


def _seldon(bp):
    bp.inference.runtime = "seldon"
    for m in bp.inference.models:
        m.uri = m.uri.rsplit("/", 1)[0] + "/"
    return bp


def _drop_seldon_crds(fake):  # noqa: F811
    for crd in fake.crds():
        if crd["spec"]["group"] == "mlops.seldon.io":
            fake.store.pop(("apiextensions.k8s.io", "customresourcedefinitions", "", crd["metadata"]["name"]))


def _not_ready_at_first(fake, kinds):  # noqa: F811
    """Objects of ``kinds`` are created without a status: their controller has not reported yet."""
    fake.on_create.append(lambda obj: obj.get("kind") in kinds and obj.pop("status", None))


def test_one_seldon_runtime_per_team_namespace_with_seldon_models(lab):  # noqa: F811
    bp, _ = lab
    assert not [o for o in render_objects(bp) if o["kind"] == "SeldonRuntime"]  # onnx: none
    files = render_kubernetes(_seldon(bp))
    assert sorted(p for p in files if "seldon-runtime" in p) == [
        "inference/nlp-seldon-runtime.yaml", "inference/vision-seldon-runtime.yaml"]
    runtimes = [o for o in render_objects(bp) if o["kind"] == "SeldonRuntime"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"], o["spec"]) for o in runtimes] == [
        ("nlp-team", "seldon", {"seldonConfig": "default"}), ("vision", "seldon", {"seldonConfig": "default"})]
    assert runtimes[0]["apiVersion"] == SELDON
    assert runtimes[0]["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "infra", "infra.dev/environment": "gpu-lab",
        "infra.dev/component": "inference", "infra.dev/team": "nlp"}  # research hosts no model: no runtime


def test_team_namespaces_serving_seldon_admit_the_seldon_operator(lab):  # noqa: F811
    """Seldon's operator (seldon-system) calls each runtime's scheduler: the team's default-deny
    ingress must let it in, only where the team serves Seldon models, and only from there."""
    bp, _ = lab

    def operator_policies():
        return sorted((o["metadata"]["namespace"], o["spec"]["ingress"][0]["from"]) for o in render_objects(bp)
                      if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-seldon-operator")

    assert operator_policies() == []  # onnx
    _seldon(bp)
    only_seldon_system = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "seldon-system"}}}]
    assert operator_policies() == [("nlp-team", only_seldon_system), ("vision", only_seldon_system)]


def test_model_servers_wait_for_the_device_plugin_then_the_seldon_runtimes(client, fake, lab):  # noqa: F811
    bp = _seldon(lab[0])
    _not_ready_at_first(fake, ("DaemonSet", "SeldonRuntime"))
    marks = []

    def controllers(n: int) -> None:  # one step per poll: the plugin (scaled to zero), then one runtime each
        ds = fake.get("apps/v1", "DaemonSet", "nvidia-device-plugin", "kube-system")
        if ds is not None and "status" not in ds:
            ds["status"] = dict(ROLLED_OUT_AT_ZERO)
            return marks.append(("device plugin rolled out", len(fake.requests)))
        for obj in fake.objects("SeldonRuntime"):
            if "status" not in obj:
                obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
                return marks.append((f"runtime {obj['metadata']['namespace']} ready", len(fake.requests)))

    clock = Clock(on_sleep=controllers)
    result = apply_all(client, render_objects(bp), bp.name, Options(sleep=clock.sleep, clock=clock, timeout=60),
                       install=_small_install())
    assert [m for m, _ in marks] == ["device plugin rolled out", "runtime nlp-team ready", "runtime vision ready"]
    timeline = [(i, r["path"]) for i, r in enumerate(fake.requests) if r["method"] == "PATCH"]
    (_, plugin_at), (_, _), (_, runtimes_ready_at) = marks
    assert timeline[0][1].endswith("/customresourcedefinitions/resourceflavors.kueue.x-k8s.io")  # Kueue first
    daemonset = next(i for i, p in timeline if p.endswith("/daemonsets/nvidia-device-plugin"))
    runtimes = [i for i, p in timeline if "/seldonruntimes/" in p]
    servers = [i for i, p in timeline if "/servers/" in p or "/models/" in p]
    cluster = [i for i, p in timeline if "mlops.seldon.io" not in p]
    assert daemonset <= max(cluster) < plugin_at < min(runtimes)
    assert max(runtimes) < runtimes_ready_at < min(servers) and len(servers) == 3
    assert [p.rsplit("/", 3)[-3:] for _, p in timeline[-5:]] == [
        ["nlp-team", "seldonruntimes", "seldon"], ["vision", "seldonruntimes", "seldon"],
        ["vision", "servers", "triton-gpu"], ["nlp-team", "models", "bert"], ["vision", "models", "resnet50"]]
    assert result.applied[-3:] == ["Server/vision/triton-gpu", "Model/nlp-team/bert", "Model/vision/resnet50"]


def test_a_seldon_runtime_never_ready_times_out_naming_it(client, fake, lab):  # noqa: F811
    bp = _seldon(lab[0])
    _not_ready_at_first(fake, ("SeldonRuntime",))
    clock = Clock()
    with pytest.raises(KubernetesError) as info:
        apply_all(client, render_objects(bp), bp.name, Options(sleep=clock.sleep, clock=clock, timeout=30, wait=False))
    assert str(info.value) == ("SeldonRuntime/nlp-team/seldon is not Ready after 30s: not ready: no status yet "
                               "(and 1 more); no model server was applied after it")
    assert "kubectl -n nlp-team get seldonruntime,pods" in info.value.hint
    assert clock.now == 30.0
    assert not [r for r in fake.requests if r["method"] == "PATCH" and ("/servers/" in r["path"]
                                                                          or "/models/" in r["path"])]


def test_a_device_plugin_never_rolled_out_keeps_model_servers_back(client, fake, lab):  # noqa: F811
    bp, _ = lab
    _not_ready_at_first(fake, ("DaemonSet",))
    clock = Clock()
    with pytest.raises(KubernetesError, match=r"^DaemonSet/kube-system/nvidia-device-plugin is not rolled out after "
                                              r"20s: the controller has not seen the latest spec yet;") as info:
        apply_all(client, render_objects(bp), bp.name, Options(sleep=clock.sleep, clock=clock, timeout=20))
    assert "kubectl -n kube-system get daemonset,pods" in info.value.hint
    assert not [r for r in fake.requests if r["method"] == "PATCH" and "/namespaces/vision/deployments/" in r["path"]]


def test_without_seldon_core_the_handoff_fails_at_once_and_applies_nothing(client, fake, lab):  # noqa: F811
    _drop_seldon_crds(fake)
    bp = _seldon(lab[0])
    clock = Clock()
    with pytest.raises(KubernetesError) as info:
        apply_all(client, render_objects(bp), bp.name, Options(sleep=clock.sleep, clock=clock),
                  install=_small_install())
    assert info.value.exit_code == 5  # what `infra handoff` exits with (cli/main.py prints message and hint)
    assert info.value.lines() == ["Seldon Core v2 is not installed: the cluster has no CRD models.mlops.seldon.io, "
                                  "seldonruntimes.mlops.seldon.io, servers.mlops.seldon.io"]
    assert info.value.hint.startswith("install Seldon Core v2's operator first (cluster-wide")
    assert "infra does not install it" in info.value.hint
    assert not [r for r in fake.requests if r["method"] in ("PATCH", "POST", "DELETE")]  # nothing, Kueue included
    assert clock.now == 0  # no waiting for what is not there


def test_the_double_validates_seldon_runtimes_against_the_upstream_crd(client, fake, lab):  # noqa: F811
    from orchestrator.kube.client import ApiError

    runtime = next(o for o in render_objects(_seldon(lab[0])) if o["kind"] == "SeldonRuntime")
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nlp-team"}})
    bad = {**runtime, "spec": {"seldonConfig": "default", "replicas": 2}}  # not a field of SeldonRuntimeSpec
    with pytest.raises(ApiError) as info:
        client.apply(bad)
    assert info.value.status == 422 and "replicas" in str(info.value)
    _, created = client.apply(runtime)
    assert created and fake.get(SELDON, "SeldonRuntime", "seldon", "nlp-team")["spec"] == {"seldonConfig": "default"}
