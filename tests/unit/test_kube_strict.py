"""The double refuses what a real API server refuses (tests/kube_fake/strict.py, syntax.py,
cel.py, kueue.py): one test per rejection, each with a case it must refuse and one it must
accept; the Job-file path of `infra job submit` against it; and everything infra renders (every
example and golden blueprint, both serving runtimes, with the Kueue install) accepted."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.kube import jobs
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from tests.kube_fake import cel, crds, syntax
from tests.kube_fake.server import FakeKube
from tests.unit.kube_fixtures import FIXTURES, fake, install_crds, lab  # noqa: F401
from tests.unit.test_kube_capacity import BLUEPRINTS

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


# --- syntax every object must have (tests/kube_fake/syntax.py) ---------------------------------


def _apply(fake, obj: dict) -> tuple[int, dict]:  # noqa: F811
    """Server-side apply of ``obj`` at its path (as infra's client does)."""
    res = fake.resource(obj["apiVersion"], obj["kind"])
    ns = obj["metadata"].get("namespace")
    path = res.prefix + (f"/namespaces/{ns}" if res.namespaced else "") + f"/{res.plural}/{obj['metadata']['name']}"
    return _call(fake, "PATCH", path, obj, "?fieldManager=t&force=true")


def _job(name: str = "j", restart: str | None = "Never", **pod: object) -> dict:
    spec = {"containers": [{"name": "main", "image": "busybox"}], **pod}
    if restart is not None:
        spec["restartPolicy"] = restart
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "a"},
            "spec": {"template": {"spec": spec}}}


def _refused(fake, obj: dict, code: int, *needles: str) -> dict:  # noqa: F811
    got, status = _apply(fake, obj)
    assert got == code, status
    assert all(n in status["message"] for n in needles), status["message"]
    return status


@pytest.mark.parametrize("obj, needle", [
    (_job("My_Job"), 'metadata.name: Invalid value: "My_Job": a lowercase RFC 1123 subdomain'),
    (_job("j" * 64), 'spec.template.labels: Invalid value: "' + "j" * 64 + '": must be no more than 63 characters'),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}},
     'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label'),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc", "namespace": "a"},
      "spec": {"ports": [{"port": 80}]}}, 'metadata.name: Invalid value: "1svc": a DNS-1035 label'),
    ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a%b"}},
     "metadata.name: Invalid value: \"a%b\": may not contain '%'"),
    ({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": "Team_Q", "namespace": "a"},
      "spec": {"clusterQueue": "q"}}, 'metadata.name: Invalid value: "Team_Q": a lowercase RFC 1123 subdomain'),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c" * 53, "namespace": "a"},
      "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
          "restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}}}}},
     "must be no more than 52 characters"),
], ids=["subdomain", "job-name-label", "namespace-label", "service-dns1035", "rbac-path-segment", "custom-resource",
        "cronjob-52"])
def test_a_name_the_kind_does_not_accept_is_422(fake, obj, needle):  # noqa: F811
    _ns(fake, "a")
    status = _refused(fake, obj, 422, needle)
    assert status["reason"] == "Invalid"
    assert fake.objects(obj["kind"]) == [] or obj["kind"] == "Namespace" and len(fake.objects("Namespace")) == 5


def test_names_each_kind_accepts_are_stored(fake):  # noqa: F811
    _ns(fake, "a")
    accepted = [
        _job("train.resnet-50"),  # a subdomain
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a.b", "namespace": "a"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:infra:Reader"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-1", "namespace": "a"},
         "spec": {"ports": [{"port": 80}]}},
    ]
    for obj in accepted:
        assert _apply(fake, obj)[0] == 201, obj


@pytest.mark.parametrize("labels, needle", [
    ({"team": "bad value!"}, 'metadata.labels: Invalid value: "bad value!": a valid label must be an empty string'),
    ({"team": "v" * 64}, "must be no more than 63 characters"),
    ({"-team": "x"}, 'metadata.labels: Invalid value: "-team": name part must consist of alphanumeric'),
    ({"Example.com/team": "x"}, "prefix part a lowercase RFC 1123 subdomain"),
    ({"example.com/": "x"}, "name part must be non-empty"),
    ({"a/b/c": "x"}, "a qualified name must consist of"),
    ({"infra.dev/" + "t" * 64: "x"}, "name part must be no more than 63 characters"),
], ids=["value-charset", "value-length", "key-start", "key-prefix-case", "key-empty-name", "key-two-slashes",
        "key-length"])
def test_a_label_a_server_refuses_is_422(fake, labels, needle):  # noqa: F811
    _ns(fake, "a")
    obj = {**_cm(), "metadata": {"name": "c", "namespace": "a", "labels": labels}}
    _refused(fake, obj, 422, needle)
    assert fake.objects("ConfigMap") == []


def test_labels_annotations_and_selectors_are_checked_wherever_they_are(fake):  # noqa: F811
    _ns(fake, "a")
    good = {"example.com/team": "", "infra.dev/team": "nlp_1.x", "A": "B"}
    assert _apply(fake, {**_cm(), "metadata": {"name": "c", "namespace": "a", "labels": good,
                                               "annotations": {"Example.com/Note": "any text, even this!"}}})[0] == 201
    cm = {**_cm(), "metadata": {"name": "d", "namespace": "a", "annotations": {"bad key!": "x"}}}
    _refused(fake, cm, 422, 'metadata.annotations: Invalid value: "bad key!"')
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"},
                  "spec": {"selector": {"matchLabels": {"app": "x"}},
                           "template": {"metadata": {"labels": {"app": "x", "tier": "front end"}},
                                        "spec": {"containers": [{"name": "m", "image": "busybox"}]}}}}
    _refused(fake, deployment, 422, 'spec.template.labels: Invalid value: "front end"')
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "p", "namespace": "a"}, "spec": {"podSelector": {"matchLabels": {"app": "a b"}}}}
    _refused(fake, policy, 422, 'spec.podSelector.matchLabels: Invalid value: "a b"')


def test_a_job_restart_policy_other_than_never_or_on_failure_is_422(fake):  # noqa: F811
    _ns(fake, "a")
    for restart in ("Always", None):  # None: the server defaults it to Always
        _refused(fake, _job(restart=restart), 422, 'spec.template.spec.restartPolicy: Unsupported value: "Always": '
                                                   'supported values: "OnFailure", "Never"')
    assert fake.objects("Job") == []
    assert _apply(fake, _job("n", "Never"))[0] == 201 and _apply(fake, _job("f", "OnFailure"))[0] == 201
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"},
                  "spec": {"selector": {"matchLabels": {"app": "x"}},
                           "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                               "restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}}}
    _refused(fake, deployment, 422, 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
                                    '"Always"')


def _quota(**hard: object) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "a"},
            "spec": {"hard": hard}}


def test_a_quantity_that_does_not_parse_is_refused_like_a_server_decoding_it(fake):  # noqa: F811
    _ns(fake, "a")
    for bad in ("8GB", "1cpu", "2.5.1", "1e", "Gi", ""):
        code, status = _call(fake, "POST", "/api/v1/namespaces/a/resourcequotas", _quota(memory=bad))
        assert (code, status["reason"]) == (400, "BadRequest"), (bad, status)
        assert status["message"].startswith('ResourceQuota in version "v1" cannot be handled as a ResourceQuota: ')
    assert "quantities must match the regular expression" in _refused(fake, _quota(memory="8GB"), 400)["message"]
    assert fake.objects("ResourceQuota") == []
    ok = _quota(memory="8G", **{"limits.memory": "8Gi", "requests.cpu": "500m", "requests.nvidia.com/gpu": 4,
                                "limits.cpu": "1.5", "requests.storage": "1e3", "pods": "10", "count/jobs.batch": 5})
    assert _apply(fake, ok)[0] == 201
    job = _job(**{"containers": [{"name": "m", "image": "busybox", "resources": {"limits": {"cpu": "1cpu"}}}]})
    _refused(fake, job, 400, 'Job in version "v1" cannot be handled as a Job: quantities must match')


def test_resource_quota_names_and_values_a_server_refuses_are_422(fake):  # noqa: F811
    _ns(fake, "a")
    _refused(fake, _quota(cpu="-1"), 422, 'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0')
    _refused(fake, _quota(pods="1.5"), 422, 'spec.hard[pods]: Invalid value: "1.5": must be an integer')
    _refused(fake, _quota(**{"limit.cpu": "1"}), 422, 'spec.hard[limit.cpu]: Invalid value: "limit.cpu": must be a '
                                                      "standard resource for quota")
    assert fake.objects("ResourceQuota") == []


@pytest.mark.parametrize("text, value", [
    ("8G", 8 * 10**9), ("8Gi", 8 * 2**30), ("500m", Decimal("0.5")), ("1.5", Decimal("1.5")), (4, 4),
    ("1e3", 1000), ("2E", 2 * 10**18), ("+1Ki", 1024), ("-1", -1), ("1.G", 10**9), ("100n", Decimal("1E-7")),
])
def test_quantities_parse_like_kubernetes(text, value):
    assert syntax.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["8GB", "1cpu", "1.2.3", "1e", "Gi", "", "1 Gi", True, None, "0x10"])
def test_quantities_kubernetes_refuses_do_not_parse(text):
    with pytest.raises(ValueError):
        syntax.parse_quantity(text)


# --- Kueue: the CRDs' CEL rules (422) and the release's webhooks (403) ---------------------------

KUEUE = "/apis/kueue.x-k8s.io/v1beta2"


def _cq(*resources: dict, covered: tuple[str, ...] = ("cpu", "memory"), cohort: str | None = "c",
        name: str = "q") -> dict:
    spec: dict = {"resourceGroups": [{"coveredResources": list(covered),
                                      "flavors": [{"name": "f", "resources": list(resources)}]}]}
    if cohort:
        spec["cohortName"] = cohort
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def _r(name: str, nominal: object, **limits: object) -> dict:
    return {"name": name, "nominalQuota": nominal, **limits}


def test_every_cel_rule_of_the_served_crds_compiles():
    found = [rule for crd in crds.all_crds() for v in crd["spec"]["versions"] for rule in cel.rules(v["schema"])]
    assert len(found) == 79  # Kueue v0.19.2's rules, both versions (Seldon's CRDs carry none)
    for rule in set(found):
        cel.program(rule)


def test_kueue_cel_rules_of_the_release_are_422(fake):  # noqa: F811
    _ns(fake, "a")
    # clusterqueues: borrowingLimit without a cohort; a flavor with fewer resources than covered
    _refused(fake, _cq(_r("cpu", 4, borrowingLimit=1), covered=("cpu",), cohort=None), 422,
             'ClusterQueue.kueue.x-k8s.io "q" is invalid: spec: Invalid value: "object": borrowingLimit must be nil '
             "when cohort is empty")
    _refused(fake, _cq(_r("cpu", 4)), 422, 'spec.resourceGroups[0]: Invalid value: "object": flavors must have the '
                                           "same number of resources as the coveredResources")
    # resourceflavors: a topology needs node labels; tolerations' operator
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "f"},
              "spec": {"topologyName": "t", "nodeLabels": {}}}
    _refused(fake, flavor, 422, "at least one nodeLabel is required when topology is set")
    flavor["spec"] = {"tolerations": [{"key": "k", "operator": "Sometimes"}]}
    _refused(fake, flavor, 422, "spec.tolerations", "supported toleration values: 'Equal'(default), 'Exists'")
    assert fake.objects("ClusterQueue") == fake.objects("ResourceFlavor") == []


def test_kueue_transition_rules_judge_updates_only(fake):  # noqa: F811
    _ns(fake, "a")
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "f"},
              "spec": {"topologyName": "t", "nodeLabels": {"pool": "a"}}}
    assert _apply(fake, flavor)[0] == 201
    flavor["spec"]["nodeLabels"] = {"pool": "b"}
    _refused(fake, flavor, 422, "nodeLabels are immutable when topologyName is set")
    queue = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": "q", "namespace": "a"},
             "spec": {"clusterQueue": "one"}}
    assert _apply(fake, queue)[0] == 201
    queue["spec"]["clusterQueue"] = "two"
    _refused(fake, queue, 422, 'spec.clusterQueue: Invalid value: "string": field is immutable')
    assert fake.get("kueue.x-k8s.io/v1beta2", "LocalQueue", "q", "a")["spec"]["clusterQueue"] == "one"


def test_lending_limit_above_the_nominal_quota_is_denied_by_the_kueue_webhook(fake):  # noqa: F811
    status = _refused(fake, _cq(_r("cpu", 4, lendingLimit=8), _r("memory", "1Gi", lendingLimit="2Gi")), 403,
                      'admission webhook "vclusterqueue.kb.io" denied the request: ',
                      'spec.resourceGroups[0].flavors[0].resources[0].lendingLimit: Invalid value: "8": must be less '
                      "than or equal to the nominalQuota",
                      "resources[1].lendingLimit: Invalid value: \"2Gi\"")
    assert status["reason"] == "Forbidden" and fake.objects("ClusterQueue") == []
    assert _apply(fake, _cq(_r("cpu", 4, lendingLimit=4), _r("memory", "1Gi", lendingLimit="512Mi")))[0] == 201
    # the rule is the webhook's, not the CRDs': without Kueue's webhook configuration it is not enforced
    bare = FakeKube().start()
    try:
        install_crds(bare, groups=("kueue.x-k8s.io",), webhooks=False)
        assert _apply(bare, _cq(_r("cpu", 4, lendingLimit=8), _r("memory", "1Gi")))[0] == 201
    finally:
        bare.stop()


def test_flavor_resources_out_of_the_covered_order_are_denied_by_the_kueue_webhook(fake):  # noqa: F811
    _refused(fake, _cq(_r("memory", "1Gi"), _r("cpu", 4)), 403,
             'spec.resourceGroups[0].flavors[0].resources[0].name: Invalid value: "memory": must match the name in '
             "coveredResources", 'resources[1].name: Invalid value: "cpu"')
    twice = _cq(_r("cpu", 4), covered=("cpu",))
    twice["spec"]["resourceGroups"].append({"coveredResources": ["cpu"], "flavors": [{"name": "f", "resources": [
        _r("cpu", 1)]}]})
    _refused(fake, twice, 403, 'spec.resourceGroups[1].coveredResources[0]: Duplicate value: "cpu"',
             'spec.resourceGroups[1].flavors[0].name: Duplicate value: "f"')
    _refused(fake, _cq(_r("cpu", -1), _r("memory", "1Gi")), 403,
             'resources[0].nominalQuota: Invalid value: "-1": must be greater than or equal to 0')
    selector = _cq(_r("cpu", 4), _r("memory", "1Gi"))
    selector["spec"]["namespaceSelector"] = {"matchLabels": {"nospecialchars^=@": "bar"}}
    _refused(fake, selector, 403, 'spec.namespaceSelector.matchLabels: Invalid value: "nospecialchars^=@"')
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "f"},
              "spec": {"nodeLabels": {"pool": "a b"}}}
    _refused(fake, flavor, 403, 'admission webhook "vresourceflavor.kb.io" denied the request: spec.nodeLabels: '
                                'Invalid value: "a b"')
    assert fake.objects("ClusterQueue") == fake.objects("ResourceFlavor") == []


# --- everything infra renders passes ----------------------------------------------------------


def _cases() -> list[tuple[object, str]]:
    cases = []
    for path in BLUEPRINTS:
        inference = load(path).model.inference
        cases += [(path, "as written")] + ([(path, "seldon")] if inference and inference.models else [])
    return cases


def test_the_kueue_install_is_accepted_by_the_strict_double(fake, lab):  # noqa: F811
    bp, _ = lab
    installed = [d for d in yaml.load_all(render_kubernetes(bp)["install/kueue.yaml"], Loader=LOADER) if d]
    installed.sort(key=lambda o: (o["kind"] != "CustomResourceDefinition", o["kind"] != "Namespace"))
    for obj in installed:
        code, status = _apply(fake, obj)
        assert code in (200, 201), f"{obj['kind']}/{obj['metadata']['name']}: {status.get('message')}"
    assert len(installed) == 79


@pytest.mark.parametrize("path, runtime", _cases(), ids=lambda v: getattr(v, "stem", v))
def test_everything_infra_renders_is_accepted_by_the_strict_double(fake, path, runtime):  # noqa: F811
    bp = load(path).model
    if runtime == "seldon":
        bp.inference.runtime = "seldon"
        for m in bp.inference.models:
            m.uri = m.uri.rsplit("/", 1)[0] + "/"
    objs = render_objects(bp)
    for obj in objs:
        code, status = _apply(fake, obj)
        assert code in (200, 201), f"{obj['kind']}/{obj['metadata']['name']}: {status.get('message')}"
    kinds = {o["kind"] for o in fake.objects()}
    assert {"ClusterQueue", "LocalQueue", "ResourceFlavor", "ResourceQuota", "Namespace"} <= kinds
    assert ("Model" in kinds) == (runtime == "seldon")
