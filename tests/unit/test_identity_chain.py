"""The identity chain (CHECKLISTS §5): IdP group -> cloud principal -> Kubernetes group ->
RoleBinding. Every group a RoleBinding names must be one some identity carries, per provider;
validate refuses groups the provider's RBAC cannot see, and model URIs its servers cannot read.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from orchestrator.blueprint import catalog, semantics
from orchestrator.blueprint.loader import load
from orchestrator.conventions import BIND_ANNOTATIONS, MODEL_URI_ANNOTATION
from orchestrator.errors import BlueprintError
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.kubernetes import render_objects
from tests.blueprints import with_way_in
from tests.conftest import EXAMPLES, REPO

BLUEPRINTS = sorted([*EXAMPLES.glob("*.yaml"), *(REPO / "tests/golden/inputs").glob("*.yaml")])
GUID = "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f"


def _carried(provider: str, tfvars: dict) -> set[str] | None:
    """The groups some identity carries into the cluster (None: the cluster's IdP, not ours)."""
    if provider == "aws":  # access entries map members to kubernetes_groups
        return {g for m in tfvars["access_members"] for g in m["kubernetes_groups"]}
    if provider == "azure":  # AKS tokens carry these group object IDs (Cluster User role granted)
        return set(tfvars["team_group_object_ids"])
    if provider == "gcp":  # Google Groups for RBAC: emails under gke-security-groups@<domain>
        domain = tfvars["security_group"].split("@", 1)[1] if tfvars["security_group"] else None
        return {"*@" + domain} if domain else set()
    return None


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_rolebinding_group_is_carried_by_some_identity(path: Path) -> None:
    bp = load(path).model
    provider = get_provider(bp.provider)
    carried = _carried(bp.provider, provider.terraform_variables(bp)) if provider.terraform_module else None
    bound = {s["name"] for o in render_objects(bp) if o["kind"] == "RoleBinding"
             for s in o.get("subjects") or [] if s["kind"] == "Group"}
    assert bound == {g for t in bp.teams for g in t.groups}
    if carried is None:  # bare metal: groups come from the site's own authenticator
        return
    assert bound, path  # not vacuous: every cloud example binds groups
    for group in bound:
        assert group in carried or "*@" + group.split("@", 1)[-1] in carried, (path.name, group)


def _bp(tmp_path: Path, provider: str, region: str, pool: str, teams: str, extra: str = "") -> Path:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(f"blueprint: 1\nname: t-env\nprovider: {provider}\nregion: {region}\nnode_pools:\n"
                    f"  - {pool}\nteams:\n{teams}{extra}"))
    return path


AKS = ("azure", "westeurope", "{name: system, instance_type: Standard_D4s_v5, min: 1, max: 2}")
GKE = ("gcp", "us-central1", "{name: system, instance_type: n2-standard-4, min: 1, max: 2}")
EKS = ("aws", "us-east-1", "{name: system, instance_type: m6i.large, min: 1, max: 2}")


def _problems(path: Path) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        load(path)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


def test_aks_refuses_a_group_that_is_not_an_entra_object_id(tmp_path):
    path = _bp(tmp_path, *AKS, f"  - {{name: vision, groups: [{GUID}, vision-devs]}}\n")
    assert _problems(path) == [
        "8:67 teams[0].groups[1]: must be an Entra ID group object ID (a GUID such as "
        "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f): AKS tokens carry group object IDs, so a RoleBinding to a name "
        "binds nobody"]


def test_gke_refuses_a_group_that_is_not_an_email_or_of_another_domain(tmp_path):
    path = _bp(tmp_path, *GKE, "  - {name: vision, groups: [vision-devs]}\n")
    assert _problems(path) == [
        "8:29 teams[0].groups[0]: must be a Google Group's email (e.g. ml-devs@example.com): GKE's Google Groups "
        "for RBAC binds group emails under gke-security-groups@<domain>"]
    path = _bp(tmp_path, *GKE, "  - {name: a, groups: [a@example.com]}\n  - {name: b, groups: [b@other.org]}\n")
    assert _problems(path) == [
        "9:24 teams[1].groups[0]: GKE binds the groups of one domain (gke-security-groups@example.com): a group of "
        "other.org reaches nobody; use groups of example.com"]


def test_eks_warns_about_groups_no_member_carries(tmp_path):
    path = _bp(tmp_path, *EKS, "  - {name: vision, groups: [vision-devs]}\n")
    found = semantics.warnings(load(path).model)
    assert (("teams", 0, "groups"), "no access entry carries vision-devs: list the IAM principals of team 'vision' "
            "in members (EKS maps them to these groups), or nobody but admins can use it") in found
    carried = _bp(tmp_path, *EKS, "  - {name: vision, groups: [vision-devs], "
                                  "members: ['arn:aws:iam::123456789012:role/v']}\n")
    assert not [w for w in semantics.warnings(load(carried).model) if "access entry" in w[1]]


@pytest.mark.parametrize(("cloud", "uri", "message"), [
    (AKS, "az://models/m.onnx", "az:// is not a form the model fetcher reads: write the blob's URL, "
                                "https://<account>.blob.core.windows.net/<container>/<path>"),
    (AKS, "s3://models/m.onnx", "a model server on azure cannot read s3:// (no credentials for it there): "
                                "use https://, file://"),
    (GKE, "s3://models/m.onnx", "a model server on gcp cannot read s3:// (no credentials for it there): "
                                "use gs://, https://, file://"),
    (EKS, "gs://models/m.onnx", "a model server on aws cannot read gs:// (no credentials for it there): "
                                "use s3://, https://, file://"),
])
def test_model_uris_a_cloud_cannot_read_are_refused_at_the_uri(tmp_path, cloud, uri, message):
    group = {"azure": GUID, "gcp": "v@example.com"}.get(cloud[0], "v")
    extra = f"inference:\n  models:\n    - {{name: m, uri: '{uri}', team: vision}}\n"
    path = _bp(tmp_path, *cloud, f"  - {{name: vision, groups: ['{group}']}}\n", extra)
    assert _problems(path) == [f"11:22 inference.models[0].uri: {message}"]


def test_a_blob_url_is_what_aks_model_servers_read(tmp_path):
    extra = ("inference:\n  models:\n"
             "    - {name: m, uri: 'https://acct.blob.core.windows.net/models/m.onnx', team: vision}\n")
    assert load(_bp(tmp_path, *AKS, f"  - {{name: vision, groups: ['{GUID}']}}\n", extra)).model


# --- every model server reaches its model: service account -> cloud identity -> object -------------

def model_identity_problems(provider: str, objs: list[dict], tfvars: dict) -> list[str]:
    """What stops a model server from reading its model with its pod's identity: no service account,
    one the namespace lacks, one Terraform binds to no identity, an identity whose policy misses the
    object, or no egress to the cloud's identity endpoint. Reads only rendered objects, Terraform
    variables and the catalog (each fact from its public source there)."""
    settings = catalog.setting(provider, "workload_identity")
    problems: list[str] = []
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "ServiceAccount"}
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    readers = {(r["namespace"], r["service_account"]): r for r in tfvars.get("model_readers") or []}
    for dep in (o for o in objs if o["kind"] == "Deployment" and MODEL_URI_ANNOTATION in o["metadata"].get(
            "annotations", {})):
        uri, ns, name = dep["metadata"]["annotations"][MODEL_URI_ANNOTATION], dep["metadata"]["namespace"], \
            dep["metadata"]["name"]
        if not settings or not uri.startswith(settings["scheme"]):
            continue
        bucket, _, key = uri[len(settings["scheme"]):].partition("/")
        if settings.get("host_suffix"):  # https://<account><suffix>/<container>/<key>
            if not bucket.endswith(settings["host_suffix"]):
                continue
            container, _, key = key.partition("/")
            bucket = f"{bucket.removesuffix(settings['host_suffix'])}/{container}"
        pod = dep["spec"]["template"]
        account = pod["spec"].get("serviceAccountName")
        if not account:
            problems.append(f"{ns}/{name}: fetches {uri} with no service account (the node's identity)")
            continue
        if (ns, account) not in accounts:
            problems.append(f"{ns}/{name}: service account {account} is not rendered in {ns}")
        reader = readers.get((ns, account))
        if reader is None:
            problems.append(f"{ns}/{name}: Terraform binds {ns}/{account} to no cloud identity")
            continue
        for key_, value in (settings.get("pod_labels") or {}).items():
            if pod["metadata"].get("labels", {}).get(key_) != value:
                problems.append(f"{ns}/{name}: its pods lack the label {key_}={value} the identity webhook needs")
        if settings.get("client_id_annotation"):  # filled at the handoff from the identity's output
            sa = accounts.get((ns, account), {})
            bind = json.loads(sa.get("metadata", {}).get("annotations", {}).get(BIND_ANNOTATIONS, "{}"))
            if bind.get(settings["client_id_annotation"]) != f"{settings['client_id_output']}.{reader['team']}":
                problems.append(f"{ns}/{name}: service account {account} is not bound to the client ID of "
                                f"team {reader['team']}'s identity")
        if not any(f"{bucket}/{key}" == o or (o.endswith("*") and f"{bucket}/{key}".startswith(o[:-1]))
                   for o in reader["objects"]):
            problems.append(f"{ns}/{name}: the identity of {ns}/{account} may not read {uri}")
        if bucket not in reader["buckets"]:
            problems.append(f"{ns}/{name}: the identity of {ns}/{account} is granted nothing on bucket {bucket}")
        labels = pod["metadata"].get("labels", {})
        for endpoint in settings["endpoints"]:
            if not any(p["metadata"]["namespace"] == ns and "Egress" in p["spec"].get("policyTypes", [])
                       and all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
                       and any(t.get("ipBlock", {}).get("cidr") == endpoint["cidr"]
                               and {"protocol": "TCP", "port": endpoint["port"]} in rule.get("ports", [])
                               for rule in p["spec"].get("egress", []) for t in rule.get("to", []))
                       for p in policies):
                problems.append(f"{ns}/{name}: no egress to the identity endpoint "
                                f"{endpoint['cidr']}:{endpoint['port']}")
    return problems


def _rendered(bp):
    provider = get_provider(bp.provider)
    tfvars = provider.terraform_variables(bp) if provider.terraform_module else {}
    return render_objects(bp), tfvars


BLOB = "https://acct.blob.core.windows.net/"
MODELS = ("inference:\n  models:\n"
          "    - {{name: a, uri: '{scheme}models/vision/a.onnx', team: vision}}\n"
          "    - {{name: b, uri: '{scheme}shared/zoo/', team: vision}}\n"
          "    - {{name: c, uri: '{scheme}nlp-models/c.onnx', team: nlp}}\n"
          "    - {{name: d, uri: 'https://example.com/d.onnx', team: nlp}}\n")


def _two_teams(tmp_path: Path, cloud: tuple, scheme: str) -> Path:
    group = {"gcp": "x@example.com", "azure": GUID}.get(cloud[0], "x")
    teams = f"  - {{name: vision, groups: ['{group}']}}\n  - {{name: nlp, groups: ['{group}']}}\n"
    return _bp(tmp_path, *cloud, teams, MODELS.format(scheme=scheme))


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_model_server_has_an_identity_that_reads_its_model(path: Path) -> None:
    bp = load(path).model
    assert model_identity_problems(bp.provider, *_rendered(bp)) == []


CLOUDS = [(EKS, "s3://", ""), (GKE, "gs://", ""), (AKS, BLOB, "acct/")]


@pytest.mark.parametrize(("cloud", "scheme", "account"), CLOUDS, ids=["eks", "gke", "aks"])
def test_each_team_reads_exactly_its_own_models(tmp_path, cloud, scheme, account) -> None:
    bp = load(_two_teams(tmp_path, cloud, scheme)).model
    objs, tfvars = _rendered(bp)
    assert model_identity_problems(bp.provider, objs, tfvars) == []
    by_team = {r["team"]: r for r in tfvars["model_readers"]}
    assert by_team["vision"]["objects"] == [f"{account}models/vision/a.onnx", f"{account}shared/zoo/*"]
    assert by_team["vision"]["buckets"] == [f"{account}models", f"{account}shared"]
    assert by_team["nlp"]["objects"] == [f"{account}nlp-models/c.onnx"]  # its other https:// model needs none
    assert {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs if o["kind"] == "ServiceAccount"
            and o["metadata"]["namespace"] != "kube-system"} == {("vision", "model-server"), ("nlp", "model-server")}


def _break(objs: list[dict], tfvars: dict, how: str, account: str = "") -> tuple[list[dict], dict]:
    objs, tfvars = copy.deepcopy(objs), copy.deepcopy(tfvars)
    dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "a")
    if how == "no service account":
        del dep["spec"]["template"]["spec"]["serviceAccountName"]
    elif how == "account not rendered":
        objs = [o for o in objs if not (o["kind"] == "ServiceAccount" and o["metadata"]["namespace"] == "vision")]
    elif how == "no binding":
        tfvars["model_readers"] = [r for r in tfvars["model_readers"] if r["team"] != "vision"]
    elif how == "another object":
        vision = next(r for r in tfvars["model_readers"] if r["team"] == "vision")
        vision["objects"][0] = f"{account}models/vision/other.onnx"
    elif how == "no egress":
        objs = [o for o in objs if o["metadata"]["name"] != "allow-model-identity"]
    elif how == "no pod label":
        del dep["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"]
    elif how == "unbound client id":
        sa = next(o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["namespace"] == "vision")
        del sa["metadata"]["annotations"][BIND_ANNOTATIONS]
    return objs, tfvars


BREAKS = [
    ("no service account", "vision/a: fetches {s}models/vision/a.onnx with no service account"),
    ("account not rendered", "vision/a: service account model-server is not rendered in vision"),
    ("no binding", "vision/a: Terraform binds vision/model-server to no cloud identity"),
    ("another object", "vision/a: the identity of vision/model-server may not read {s}models/vision/a.onnx"),
]
ONLY = {  # links only some clouds have
    "eks": [("no egress", "vision/a: no egress to the identity endpoint 169.254.170.23/32:80")],
    "gke": [("no egress", "vision/a: no egress to the identity endpoint 169.254.169.254/32:80")],
    "aks": [("no pod label", "vision/a: its pods lack the label azure.workload.identity/use=true"),
            ("unbound client id", "vision/a: service account model-server is not bound to the client ID of team "
                                  "vision's identity")],
}


@pytest.mark.parametrize(("cloud", "scheme", "account", "how", "says"), [
    pytest.param(cloud, scheme, account, how, says, id=f"{name}-{how}")
    for (cloud, scheme, account), name in zip(CLOUDS, ("eks", "gke", "aks"), strict=True)
    for how, says in BREAKS + ONLY[name]
])
def test_the_model_identity_check_fails_on_each_broken_link(tmp_path, cloud, scheme, account, how, says) -> None:
    bp = load(_two_teams(tmp_path, cloud, scheme)).model
    problems = model_identity_problems(bp.provider, *_break(*_rendered(bp), how, account))
    assert problems and problems[0].startswith(says.format(s=scheme)), problems
