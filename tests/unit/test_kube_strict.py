"""The double refuses what a real API server refuses (tests/kube_fake/strict.py): one test per
rejection, then the Job-file path of `infra job submit` against it."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request

import yaml

from orchestrator.kube import jobs
from orchestrator.render.kubernetes import render_objects
from tests.unit.kube_fixtures import FIXTURES, fake, lab  # noqa: F401

APPLY = "application/apply-patch+yaml"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
GPU = "nvidia.com/gpu"


def _call(fake, method: str, path: str, body: dict | None = None, query: str = "") -> tuple[int, dict]:  # noqa: F811
    data = json.dumps(body).encode() if body is not None else None
    ctype = APPLY if method == "PATCH" else "application/json"
    req = urllib.request.Request(fake.url + path + query, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ns(fake, name: str) -> None:  # noqa: F811
    assert _call(fake, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": name}})[0] == 201


def _cm(ns: str = "a", **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": data}


def _binding(role: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": "a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}


def test_an_unknown_kind_is_404(fake):  # noqa: F811
    _ns(fake, "a")
    body = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "a"}}
    code, status = _call(fake, "PATCH", "/api/v1/namespaces/a/widgets/w", body, "?fieldManager=t")
    assert (code, status["reason"]) == (404, "NotFound")
    assert fake.objects("Widget") == []


def test_a_missing_namespace_is_404(fake):  # noqa: F811
    code, status = _call(fake, "POST", "/api/v1/namespaces/nowhere/configmaps", _cm("nowhere"))
    assert (code, status["reason"], status["message"]) == (404, "NotFound", 'namespaces "nowhere" not found')
    code, _ = _call(fake, "PATCH", "/api/v1/namespaces/nowhere/configmaps/c", _cm("nowhere"), "?fieldManager=t")
    assert code == 404 and fake.objects("ConfigMap") == []


def test_an_unknown_field_is_422(fake):  # noqa: F811
    _ns(fake, "a")
    code, status = _call(fake, "POST", "/api/v1/namespaces/a/configmaps", {**_cm(), "spec": {"k": "v"}})
    assert (code, status["reason"]) == (422, "Invalid") and "'spec' was unexpected" in status["message"]
    queue = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "q"},
             "spec": {"cohort": "old-field-of-v1beta1"}}
    code, status = _call(fake, "PATCH", "/apis/kueue.x-k8s.io/v1beta2/clusterqueues/q", queue, "?fieldManager=t")
    assert (code, status["reason"]) == (422, "Invalid") and "'cohort' was unexpected" in status["message"]


def test_a_roleref_change_is_422(fake):  # noqa: F811
    _ns(fake, "a")
    path = f"{RBAC}/namespaces/a/rolebindings/rb"
    assert _call(fake, "PATCH", path, _binding("reader"), "?fieldManager=infra&force=true")[0] == 201
    code, status = _call(fake, "PATCH", path, _binding("admin"), "?fieldManager=infra&force=true")
    assert (code, status["reason"]) == (422, "Invalid") and "cannot change roleRef" in status["message"]
    assert fake.get("rbac.authorization.k8s.io/v1", "RoleBinding", "rb", "a")["roleRef"]["name"] == "reader"


def test_server_side_apply_keeps_owners_and_409s_without_force(fake):  # noqa: F811
    _ns(fake, "a")
    path = "/api/v1/namespaces/a/configmaps/c"
    assert _call(fake, "PATCH", path, _cm(k="by-kubectl", mine="x"), "?fieldManager=kubectl")[0] == 201
    code, status = _call(fake, "PATCH", path, _cm(k="by-infra"), "?fieldManager=infra&force=false")
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl": .data.k', "field": ".data.k"}]
    code, obj = _call(fake, "PATCH", path, _cm(k="by-infra"), "?fieldManager=infra&force=true")
    assert code == 200 and obj["data"] == {"k": "by-infra", "mine": "x"}  # kubectl's other field stays
    owners = {m["manager"]: sorted(m["fieldsV1"]) for m in obj["metadata"]["managedFields"]}
    assert owners == {"infra": ["f:data.k"], "kubectl": ["f:data.mine"]}
    code, obj = _call(fake, "PATCH", path, _cm(), "?fieldManager=infra&force=false")  # infra lets go of k
    assert code == 200 and obj["data"] == {"mine": "x"}


def test_requests_above_limits_are_422(fake):  # noqa: F811
    _ns(fake, "a")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "a"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox",
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}}}
    code, status = _call(fake, "POST", "/apis/batch/v1/namespaces/a/jobs", job)
    assert (code, status["reason"]) == (422, "Invalid")
    assert "must be less than or equal to cpu limit of 1" in status["message"]


def _team_namespace(fake, bp) -> None:  # noqa: F811
    """What the handoff put in namespace vision: the Namespace and its LimitRange (defaults)."""
    for obj in render_objects(bp):
        if obj["kind"] == "Namespace" and obj["metadata"]["name"] == "vision" or \
                obj["kind"] == "LimitRange" and obj["metadata"]["namespace"] == "vision":
            fake.put(obj)


def test_a_job_file_is_prepared_into_what_a_strict_server_accepts(fake, lab):  # noqa: F811
    bp, _ = lab
    _team_namespace(fake, bp)
    job = yaml.safe_load((FIXTURES / "job.yaml").read_text())
    # Yesterday's preparation set requests (2 CPU / 8Gi) and left limits to the LimitRange
    # defaults (1 CPU / 2Gi): requests above limits, refused.
    before = copy.deepcopy(job)
    container = before["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["requests"] = {"cpu": "2", "memory": "8Gi", GPU: "4"}
    before["metadata"]["namespace"] = "vision"
    code, status = _call(fake, "POST", "/apis/batch/v1/namespaces/vision/jobs", before)
    assert (code, status["reason"]) == (422, "Invalid") and "cpu limit of 1" in status["message"]

    prepared = jobs.prepare_job(job, "vision", "vision", [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}])
    code, created = _call(fake, "POST", "/apis/batch/v1/namespaces/vision/jobs", prepared)
    assert code == 201, created
    spec = created["spec"]
    assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "vision" and spec["suspend"] is True
    resources = spec["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "2", "memory": "8Gi", GPU: "4"},
                         "limits": {"cpu": "2", "memory": "8Gi", GPU: "4"}}
    assert spec["podFailurePolicy"] == {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    assert spec["template"]["spec"]["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
