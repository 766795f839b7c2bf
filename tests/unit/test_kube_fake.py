"""The fake API server answers like a real one about where objects live, and knows that from
Kubernetes (the official client's generated routes, the CRDs stored in it), not from infra."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from orchestrator import conventions
from orchestrator.kube import rest
from tests.conftest import REPO
from tests.kube_fake import crds as kube_crds
from tests.kube_fake import discovery
from tests.kube_fake.fixtures import add_namespace
from tests.kube_fake.server import FakeKube
from tests.unit.kube_fixtures import fake, install_crds  # noqa: F401

KUBE_FAKE = REPO / "tests" / "kube_fake"
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound",
             "message": "the server could not find the requested resource"}
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _call(server: FakeKube, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _quota(ns: str = "x", name: str = "q") -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": ns},
            "spec": {"hard": {"pods": "10"}}}


def _binding(ns: str = "x") -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": []}


# --- it never learns from the code under test --------------------------------------------------


def test_the_fake_never_imports_orchestrator():
    sources = sorted(KUBE_FAKE.rglob("*.py"))
    assert {p.name for p in sources} >= {"server.py", "discovery.py", "fixtures.py"}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}:{node.lineno}: imports from outside tests/kube_fake"
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # import_module("..."); the path of a vendored upstream file it reads (crds.py) is no import
                vendored = node.value.startswith("orchestrator/data/vendor/")
                names = [node.value] if node.value.startswith("orchestrator") and not vendored else []
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "orchestrator"], f"{path.name}:{node.lineno}"
    probe = ("import sys, tests.kube_fake.fixtures, tests.kube_fake.crds as c, tests.kube_fake.discovery as d; "
             "d.builtin(); c.all_crds(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'orchestrator'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "[]\n"), out.stderr


def test_builtin_routes_come_from_the_kubernetes_client():
    kinds = discovery.builtin().kinds
    assert kinds[("v1", "ResourceQuota")] == discovery.Resource("", "v1", "resourcequotas", "ResourceQuota", True)
    assert kinds[("rbac.authorization.k8s.io/v1", "RoleBinding")].plural == "rolebindings"
    assert kinds[("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")].namespaced is False
    assert kinds[("scheduling.k8s.io/v1", "PriorityClass")].namespaced is False
    assert kinds[("v1", "Namespace")].namespaced is False
    assert kinds[("v1", "Event")].plural == "events"  # the client names its model CoreV1Event
    assert ("kueue.x-k8s.io/v1beta2", "ClusterQueue") not in kinds  # custom kinds come from CRDs only
    templates = discovery.builtin().templates
    assert templates["/api/v1/resourcequotas"] == {"GET"}
    assert templates["/api/v1/namespaces/{namespace}/pods/{name}/log"] == {"GET"}


# --- wrong paths are refused like a real server refuses them -----------------------------------


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/namespaces/x/resourcequota"),  # singular
    ("GET", "/api/v1/namespaces/x/resourcequota/q"),
    ("PATCH", "/api/v1/namespaces/x/resourcequota/q?fieldManager=t"),
    ("POST", f"{RBAC}/namespaces/x/rolebinding"),
    ("GET", f"{RBAC}/namespaces/x/rolebinding/rb"),
    ("POST", "/apis/apps/v1/namespaces/x/resourcequotas"),  # the right plural in the wrong group
    ("GET", "/apis/rbac.authorization.k8s.io/v1beta1/namespaces/x/rolebindings"),  # a version no longer served
    ("GET", "/apis/scheduling.k8s.io/v1/namespaces/x/priorityclasses/p"),  # cluster-scoped, under a namespace
    ("POST", "/api/v1/namespaces/x/namespaces"),
    ("GET", "/api/v1/resourcequotas/q"),  # a namespaced object outside its namespace
    ("GET", "/apis/example.com/v1/widgets"),
    ("GET", "/api/v1/namespaces/x/pods/p/logs"),
    ("POST", "/apis/kueue.x-k8s.io/v1beta2/localqueues"),  # namespaced CRD: create outside a namespace
    ("GET", "/apis/kueue.x-k8s.io/v1beta2/namespaces/x/clusterqueues"),  # cluster-scoped CRD in a namespace
    ("GET", "/apis/kueue.x-k8s.io/v1alpha1/clusterqueues"),  # a version the CRD does not serve
])
def test_wrong_paths_are_404_with_a_status_body(fake, method, path):  # noqa: F811
    code, body = _call(fake, method, path, _quota() if method != "GET" else None)
    assert (code, body) == (404, NOT_FOUND)
    assert fake.objects("ResourceQuota") == []


def test_create_at_the_all_namespaces_path_is_not_allowed(fake):  # noqa: F811
    code, body = _call(fake, "POST", "/api/v1/resourcequotas", _quota())
    assert (code, body["reason"]) == (405, "MethodNotAllowed")
    assert fake.objects("ResourceQuota") == []


def test_the_right_paths_work_and_list_across_namespaces(fake):  # noqa: F811
    for ns in ("a", "b", "x"):
        add_namespace(fake, ns)
    assert _call(fake, "POST", "/api/v1/namespaces/a/resourcequotas", _quota("a"))[0] == 201
    apply = json.dumps(_quota("b"))  # JSON is YAML
    req = urllib.request.Request(fake.url + "/api/v1/namespaces/b/resourcequotas/q?fieldManager=t",
                                 data=apply.encode(), method="PATCH",
                                 headers={"Content-Type": "application/apply-patch+yaml"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    assert _call(fake, "POST", f"{RBAC}/namespaces/x/rolebindings", _binding())[0] == 201
    code, listed = _call(fake, "GET", "/api/v1/resourcequotas")
    assert (code, listed["kind"]) == (200, "ResourceQuotaList")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [("a", "q"), ("b", "q")]
    assert _call(fake, "GET", f"{RBAC}/namespaces/x/rolebindings/rb")[1]["kind"] == "RoleBinding"


@pytest.mark.parametrize("path,body,why", [
    ("/api/v1/namespaces/x/resourcequotas", {**_binding(), "apiVersion": "v1", "kind": "LimitRange"}, "does not match"),
    (f"{RBAC}/namespaces/x/rolebindings", {**_binding(), "apiVersion": "v1"}, "does not match"),
    ("/api/v1/namespaces/y/resourcequotas", _quota("x"), "namespace of the provided object does not match"),
])
def test_a_body_that_does_not_fit_its_path_is_400(fake, path, body, why):  # noqa: F811
    code, status = _call(fake, "POST", path, body)
    assert (code, status["reason"]) == (400, "BadRequest") and why in status["message"]


def test_custom_kinds_are_served_once_their_crd_is_established():
    bare = FakeKube().start()
    try:
        path = "/apis/kueue.x-k8s.io/v1beta2/namespaces/x/localqueues"
        assert _call(bare, "GET", path) == (404, NOT_FOUND)
        with pytest.raises(LookupError, match="does not serve LocalQueue"):
            bare.put({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": "q"}})
        install_crds(bare, groups=("kueue.x-k8s.io",), established=False)
        assert _call(bare, "GET", path) == (404, NOT_FOUND)
        install_crds(bare, groups=("kueue.x-k8s.io",))
        assert _call(bare, "GET", path)[0] == 200
        assert _call(bare, "GET", "/apis/mlops.seldon.io/v1alpha1/namespaces/x/models") == (404, NOT_FOUND)
    finally:
        bare.stop()


# --- the CRDs it serves are upstream releases ----------------------------------------------------

KUEUE_RELEASE = REPO / "orchestrator" / "data" / "vendor" / "kueue-v0.19.2"


def test_the_kueue_crds_are_the_vendored_releases(fake):  # noqa: F811
    sha = hashlib.sha256((KUEUE_RELEASE / "manifests.yaml").read_bytes()).hexdigest()
    assert sha == (KUEUE_RELEASE / "manifests.yaml.sha256").read_text().split()[0]
    assert sha in (REPO / "tests" / "fixtures" / "kube" / "crds" / "README.md").read_text()
    released = {d["metadata"]["name"]: d for d in yaml.load_all((KUEUE_RELEASE / "manifests.yaml").read_bytes(),
                                                                 Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                if d and d["kind"] == "CustomResourceDefinition"}
    served = {c["metadata"]["name"]: c for c in fake.crds() if c["spec"]["group"] == "kueue.x-k8s.io"}
    assert sorted(served) == sorted(released) and len(served) == 11
    for name, crd in served.items():
        assert crd["spec"] == released[name]["spec"], name  # unmodified
    group, version = conventions.KUEUE_API.split("/")
    for kind in ("ResourceFlavor", "ClusterQueue", "LocalQueue", "Workload"):
        crd = next(c for c in served.values() if c["spec"]["names"]["kind"] == kind)
        assert any(v["name"] == version and v["served"] for v in crd["spec"]["versions"]), kind
    hooks = [h["name"] for c in fake.objects("ValidatingWebhookConfiguration") for h in c["webhooks"]]
    assert {"vclusterqueue.kb.io", "vresourceflavor.kb.io"} <= set(hooks)


def test_a_changed_kueue_release_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "manifests.yaml"
    copy.write_bytes((KUEUE_RELEASE / "manifests.yaml").read_bytes() + b"# edited\n")
    (tmp_path / "manifests.yaml.sha256").write_text((KUEUE_RELEASE / "manifests.yaml.sha256").read_text())
    monkeypatch.setattr(kube_crds, "KUEUE_RELEASE", copy)
    kube_crds.kueue_release.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="sha256"):
            kube_crds.kueue_release()
    finally:
        kube_crds.kueue_release.cache_clear()


def test_the_seldon_crds_are_the_released_files_the_readme_names(fake):  # noqa: F811
    folder = REPO / "tests" / "fixtures" / "kube" / "crds"
    readme = (folder / "README.md").read_text()
    files = sorted(p.name for p in folder.glob("seldon_*.yaml"))
    assert files == ["seldon_models.yaml", "seldon_seldonruntimes.yaml", "seldon_servers.yaml"]
    for name in [*files, "LICENSE-seldon-core-v2"]:
        row = next(line for line in readme.splitlines() if line.startswith(f"| {name} |"))
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() in row, name
    assert "60b7401ae5052ccf183c1453575611085bca4bb3" in readme  # the release commit (tag v2.6.0, Apache-2.0)
    assert "Apache License" in (folder / "LICENSE-seldon-core-v2").read_text()  # not the BSL of v2.7.0 on
    served = {c["spec"]["names"]["kind"] for c in fake.crds() if c["spec"]["group"] == "mlops.seldon.io"}
    assert served == {"Model", "Server", "SeldonRuntime"}


# --- infra's static table agrees with the server -----------------------------------------------


@pytest.mark.parametrize("res", rest._TABLE, ids=lambda r: r.kind)
def test_infra_paths_are_the_servers_paths(fake, res):  # noqa: F811
    served = fake.resource(res.api_version, res.kind)
    assert (res.plural, res.namespaced) == (served.plural, served.namespaced)
    for namespace in ("x", None):
        method = "POST" if namespace else "GET"  # create in a namespace (or the cluster); list all
        route = discovery.resolve(method, res.path(namespace), fake.crds())
        assert isinstance(route, discovery.Route), f"{method} {res.path(namespace)}: {route}"
        assert route.resource == served
    route = discovery.resolve("PATCH", res.path("x", "n"), fake.crds())
    assert isinstance(route, discovery.Route) and route.name == "n", route
