"""Kueue is installed from build/<name>/kubernetes/install/ and enforced: applied first, its CRDs
Established and its webhook serving before any queue; admission policies keep the inference
priority class to model servers; for every example and golden blueprint."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.errors import KubernetesError
from orchestrator.kube.apply import Options, apply_all
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from tests.kube_fake.crds import kueue_crd
from tests.unit.kube_fixtures import client, fake, install_crds, kubeconfig, lab  # noqa: F401
from tests.unit.test_kube_capacity import BLUEPRINTS

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Clock:
    def __init__(self, on_sleep=None) -> None:
        self.now, self.sleeps, self.on_sleep = 0.0, 0, on_sleep

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep(self.sleeps)

    def __call__(self) -> float:
        return self.now


def _small_install() -> list[dict]:
    """The shape of the Kueue release, small: a CRD, the namespace, the webhook Service."""
    crd = copy.deepcopy(kueue_crd("resourceflavors"))  # from the vendored release
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kueue-webhook-service", "namespace": "kueue-system"},
         "spec": {"ports": [{"port": 443, "targetPort": 9443}], "selector": {"control-plane": "controller-manager"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}},
        crd,
    ]


def _slice() -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "kueue-webhook-service-abc", "namespace": "kueue-system",
                         "labels": {"kubernetes.io/service-name": "kueue-webhook-service"}},
            "endpoints": [{"addresses": ["10.244.1.7"], "conditions": {"ready": True}}]}


def _bare_fake(fake):  # noqa: F811
    """The cluster before Kueue: no Kueue CRDs or webhooks, no endpoints controller answering for us."""
    for crd in fake.crds():
        if crd["spec"]["group"] == "kueue.x-k8s.io":
            fake.store.pop(("apiextensions.k8s.io", "customresourcedefinitions", "", crd["metadata"]["name"]))
    fake.store.pop(("admissionregistration.k8s.io", "validatingwebhookconfigurations", "",
                    "kueue-validating-webhook-configuration"))
    fake.on_create.remove(fake._endpoints_controller)


def test_the_install_comes_first_and_queues_wait_for_the_webhook(client, fake, lab):  # noqa: F811
    bp, _ = lab
    _bare_fake(fake)
    clock = Clock(on_sleep=lambda n: n == 3 and fake.put(_slice()))  # the webhook pod is ready after 3 polls
    flavors = [o for o in render_objects(bp) if o["kind"] == "ResourceFlavor"]
    apply_all(client, flavors, bp.name, Options(sleep=clock.sleep, clock=clock, wait=False, prune=False),
              install=_small_install())
    patched = [r["path"] for r in fake.requests if r["method"] == "PATCH"]
    assert patched[0] == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/resourceflavors.kueue.x-k8s.io"
    assert patched[1:3] == ["/api/v1/namespaces/kueue-system",
                            "/api/v1/namespaces/kueue-system/services/kueue-webhook-service"]
    assert clock.sleeps == 3  # it polled the webhook's endpoints until one was ready
    slice_gets = [i for i, r in enumerate(fake.requests) if "endpointslices" in r["path"]]
    first_flavor = next(i for i, r in enumerate(fake.requests) if "resourceflavors/" in r["path"])
    assert len(slice_gets) == 4 and max(slice_gets) < first_flavor


def test_without_a_ready_webhook_no_queue_is_applied(client, fake, lab):  # noqa: F811
    bp, _ = lab
    _bare_fake(fake)
    clock = Clock()
    flavors = [o for o in render_objects(bp) if o["kind"] == "ResourceFlavor"]
    with pytest.raises(KubernetesError, match=r"Kueue's webhook \(kueue-system/kueue-webhook-service\) has no "
                                              r"ready endpoint after 30s") as info:
        apply_all(client, flavors, bp.name, Options(sleep=clock.sleep, clock=clock, timeout=30.0),
                  install=_small_install())
    assert "endpointslices" in info.value.hint
    assert not [r for r in fake.requests if "resourceflavors/" in r["path"] and r["method"] == "PATCH"]


def test_a_crd_never_established_stops_the_install(client, fake, lab):  # noqa: F811
    bp, _ = lab
    _bare_fake(fake)
    fake.auto_ready = False  # the API server never establishes the CRD
    clock = Clock()
    with pytest.raises(KubernetesError, match=r"CRDs not Established \(resourceflavors.kueue.x-k8s.io"):
        apply_all(client, [], bp.name, Options(sleep=clock.sleep, clock=clock, timeout=10.0), install=_small_install())
    assert [r["path"] for r in fake.requests if r["method"] == "PATCH"] == [
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/resourceflavors.kueue.x-k8s.io"]


_VISIBILITY = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
               "metadata": {"name": "v1beta1.visibility.kueue.x-k8s.io"},
               "spec": {"group": "visibility.kueue.x-k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                        "versionPriority": 100, "insecureSkipTLSVerify": True,
                        "service": {"name": "kueue-visibility-server", "namespace": "kueue-system"}}}


def test_the_install_waits_until_its_apiservices_are_available(client, fake, lab):  # noqa: F811
    """The double's aggregator reports the visibility API unavailable (its Service unreachable from
    the control plane): the handoff stops naming it, and applies no queue; once Available, it goes on."""
    bp, _ = lab
    _bare_fake(fake)
    fake.on_create.append(lambda obj: obj.get("kind") == "APIService" and fake.put({**obj, "status": {
        "conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck",
                        "message": "failing or missing response from https://10.96.0.12:443"}]}}))
    clock = Clock(on_sleep=lambda n: n == 1 and fake.put(_slice()))
    flavors = [o for o in render_objects(bp) if o["kind"] == "ResourceFlavor"]
    with pytest.raises(KubernetesError, match=r"^APIService v1beta1.visibility.kueue.x-k8s.io not Available "
                                              r"after 20s$") as info:
        apply_all(client, flavors, bp.name, Options(sleep=clock.sleep, clock=clock, timeout=20.0),
                  install=[*_small_install(), copy.deepcopy(_VISIBILITY)])
    assert "8082" in info.value.hint and "control plane" in info.value.hint
    assert not [r for r in fake.requests if "resourceflavors/" in r["path"] and r["method"] == "PATCH"]


def test_an_available_apiservice_lets_the_install_go_on(client, fake, lab):  # noqa: F811
    bp, _ = lab
    _bare_fake(fake)
    clock = Clock(on_sleep=lambda n: n == 1 and fake.put(_slice()))
    flavors = [o for o in render_objects(bp) if o["kind"] == "ResourceFlavor"]
    apply_all(client, flavors, bp.name, Options(sleep=clock.sleep, clock=clock, timeout=20.0, wait=False,
                                                prune=False), install=[*_small_install(), copy.deepcopy(_VISIBILITY)])
    assert "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.visibility.kueue.x-k8s.io" in fake.paths("GET")


def _team_labels(objs: list[dict]) -> list[dict]:
    return [o["metadata"]["labels"] for o in objs if o["kind"] == "Namespace"]


def _selects(selector: dict, labels: dict) -> bool:
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "Exists"  # the only operator we render; anything else needs thought here
        if expr["key"] not in labels:
            return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_environment_installs_kueue_first_and_queues_every_team_job(path: Path) -> None:
    bp = load(path).model
    files = render_kubernetes(bp)
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["resources"][0] == "install/kueue.yaml"
    installed = [d for d in yaml.load_all(files["install/kueue.yaml"], Loader=LOADER) if d]
    config_map = next(d for d in installed if d["kind"] == "ConfigMap")
    config = yaml.safe_load(config_map["data"]["controller_manager_config.yaml"])
    assert config["manageJobsWithoutQueueName"] is True
    objs = render_objects(bp)
    namespaces = _team_labels(objs)
    assert namespaces and all(_selects(config["managedJobsNamespaceSelector"], labels) for labels in namespaces)
    assert not _selects(config["managedJobsNamespaceSelector"], {"kubernetes.io/metadata.name": "kube-system"})
    # the install holds no object the environment renders itself (it is never pruned, never relabelled)
    assert not {(d["kind"], d["metadata"]["name"]) for d in installed} & {
        (o["kind"], o["metadata"]["name"]) for o in objs}


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_the_admission_policies_cover_every_team_and_spare_the_model_servers(path: Path) -> None:
    bp = load(path).model
    objs = render_objects(bp)
    policies = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ValidatingAdmissionPolicy"}
    bindings = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ValidatingAdmissionPolicyBinding"}
    assert sorted(policies) == sorted(bindings) == ["infra-inference-priority", "infra-team-jobs-queued"]
    for binding in bindings.values():
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert all(_selects(binding["spec"]["matchResources"]["namespaceSelector"], labels)
                   for labels in _team_labels(objs))
    inference = policies["infra-inference-priority"]["spec"]
    rules = {(g, r) for rule in inference["matchConstraints"]["resourceRules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("batch", "jobs"), ("batch", "cronjobs")} <= rules
    expressions = " ".join(v["expression"] for v in inference["validations"])
    assert expressions.count("'infra-inference'") == 3  # Job, CronJob and Pod checks name the class
    assert "r.kind in ['ReplicaSet', 'StatefulSet']" in expressions
    # every model server is a Deployment (pods owned by a ReplicaSet) or a Seldon Server (StatefulSet)
    for o in objs:
        spec = (o.get("spec") or {})
        pod = ((spec.get("template") or {}).get("spec") or spec.get("podSpec") or {})
        if pod.get("priorityClassName") == "infra-inference":
            assert o["kind"] in ("Deployment", "Server"), o["metadata"]["name"]
    queued = policies["infra-team-jobs-queued"]["spec"]["validations"][0]["expression"]
    assert "'kueue.x-k8s.io/queue-name'" in queued and "namespaceObject.metadata.labels['infra.dev/team']" in queued


def test_clusters_before_1_30_get_no_admission_policies(lab) -> None:  # noqa: F811
    bp, _ = lab
    old = bp.model_copy(update={"kubernetes": bp.kubernetes.model_copy(update={"version": "1.29"})})
    assert not [o for o in render_objects(old) if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert [o for o in render_objects(bp) if o["kind"] == "ValidatingAdmissionPolicy"]


def test_bare_metal_https_egress_excludes_pods_services_and_hosts() -> None:
    from orchestrator.providers import baremetal

    bp = load(Path(__file__).resolve().parents[2] / "examples" / "onprem-gpu.yaml").model
    policy = next(o for o in render_objects(bp) if o["kind"] == "NetworkPolicy"
                  and o["metadata"]["name"] == "allow-egress-https")
    assert policy["spec"]["egress"][0]["to"][0]["ipBlock"]["except"] == [
        "10.0.0.0/16", "10.244.0.0/16", "10.96.0.0/12", "10.1.0.10/32", "10.1.0.11/32", "10.1.0.12/32", "10.1.0.21/32"]
    defaults = yaml.safe_load((Path(__file__).resolve().parents[2] / "ansible" / "roles" / "kubernetes_node"
                               / "defaults" / "main.yml").read_text())
    assert defaults["kubernetes_node_pod_subnet"] == baremetal.KUBEADM_POD_SUBNET == "10.244.0.0/16"
    assert defaults["kubernetes_node_service_subnet"] == baremetal.KUBEADM_SERVICE_SUBNET == "10.96.0.0/12"
