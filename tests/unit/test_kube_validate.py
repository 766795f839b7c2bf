"""Every rendered manifest passes schema validation: core kinds with kubernetes-validate
(strict) for the blueprint's Kubernetes version, Kueue kinds against the CRDs of the vendored
Kueue release, Seldon kinds against Seldon Core v2's released CRDs (tests/fixtures/kube/crds/,
see the README there): the CRDs the test double serves (tests/kube_fake/crds.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from orchestrator import paths
from orchestrator.blueprint.loader import load
from orchestrator.kube import validate
from orchestrator.render.kubernetes import render_objects
from tests.conftest import EXAMPLES, require
from tests.kube_fake import crds as kube_crds
from tests.unit.kube_fixtures import CRDS, lab  # noqa: F401

try:
    import kubernetes_validate  # noqa: F401

    HAVE_KV = True
except ImportError:
    HAVE_KV = False


@pytest.fixture(scope="module")
def crd_schemas():
    schemas = validate.schemas_from_crds(CRDS)  # infra's own reader, on the Seldon files
    assert schemas == {k: v for k, v in kube_crds.schemas().items() if k[0].startswith("mlops.seldon.io/")}
    return kube_crds.schemas()


@pytest.fixture(autouse=True)
def _needs_kubernetes_validate():
    require(HAVE_KV, "kubernetes-validate (pip install kubernetes-validate)")


def _assert_valid(objs, version, schemas):
    custom = [o for o in objs if (o["apiVersion"], o["kind"]) in schemas]
    report = validate.validate_objects(objs, version, schemas)
    assert report.problems == []
    assert report.checked == len(objs)
    return custom


@pytest.mark.parametrize("runtime", ["onnx", "seldon"])
def test_three_teams_manifests_validate_strictly(lab, crd_schemas, runtime):  # noqa: F811
    bp, _ = lab
    bp.inference.runtime = runtime
    if runtime == "seldon":
        for m in bp.inference.models:
            m.uri = m.uri.rsplit("/", 1)[0] + "/"
    objs = render_objects(bp)
    custom = _assert_valid(objs, bp.kubernetes.version, crd_schemas)
    kinds = {o["kind"] for o in custom}
    assert {"ResourceFlavor", "ClusterQueue", "LocalQueue"} <= kinds
    assert ("Model" in kinds) == ("SeldonRuntime" in kinds) == (runtime == "seldon")
    core = {o["kind"] for o in objs} - kinds
    assert {"Namespace", "ResourceQuota", "LimitRange", "Role", "RoleBinding", "NetworkPolicy", "PriorityClass",
            "DaemonSet"} <= core


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_blueprints_validate(example, crd_schemas):
    loaded = load(EXAMPLES / example)
    objs = render_objects(loaded.model)
    _assert_valid(objs, loaded.model.kubernetes.version, crd_schemas)


@pytest.mark.parametrize("version", ["1.26", "1.29", "1.30", "1.33"])
def test_validates_for_each_kubernetes_version(lab, crd_schemas, version):  # noqa: F811
    bp, _ = lab
    bp.kubernetes.version = version
    _assert_valid(render_objects(bp), version, crd_schemas)


def test_require_valid_uses_the_shipped_schemas(lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    assert validate.require_valid(objs, bp.kubernetes.version) is objs


def test_schema_version_maps_to_the_closest_bundled_one():
    from kubernetes_validate.utils import all_versions

    bundled = all_versions()
    assert validate.schema_version("1.30") == "1.30.0"
    assert validate.schema_version("1.99") == bundled[-1]
    assert validate.schema_version("1.10") == bundled[0]


def test_v1beta2_rejects_the_v1beta1_cohort_field(lab, crd_schemas):  # noqa: F811
    bp, _ = lab
    cq = copy.deepcopy(next(o for o in render_objects(bp) if o["kind"] == "ClusterQueue"))
    cq["spec"]["cohort"] = cq["spec"].pop("cohortName")
    problems = validate.validate_objects([cq], "1.30", crd_schemas).problems
    assert len(problems) == 1 and "'cohort' was unexpected" in problems[0] and problems[0].startswith("ClusterQueue/")


def test_strict_core_validation_rejects_unknown_and_wrong_fields(lab, crd_schemas):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    rq = copy.deepcopy(next(o for o in objs if o["kind"] == "ResourceQuota"))
    rq["spec"]["hardd"] = rq["spec"].pop("hard")
    dep = copy.deepcopy(next(o for o in objs if o["kind"] == "Deployment"))
    dep["spec"]["replicas"] = "two"
    problems = validate.validate_objects([rq, dep], "1.30", crd_schemas).problems
    assert any(p.startswith("ResourceQuota/") and "hardd" in p for p in problems)
    assert any(p.startswith("Deployment/") and ": spec.replicas: 'two' is not of type" in p for p in problems)


def test_seldon_model_without_storage_uri_is_invalid(crd_schemas):
    model = {"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model", "metadata": {"name": "m", "namespace": "x"},
             "spec": {"requirements": ["onnx"]}}
    problems = validate.validate_objects([model], "1.30", crd_schemas).problems
    assert problems and "'storageUri' is a required property" in problems[0]


def test_shipped_schemas_match_the_crds(crd_schemas):
    """templates/kubernetes/schemas/ = the CRDs' schemas minus descriptions (regenerate if this fails)."""
    shipped = sorted((paths.templates() / "kubernetes" / "schemas").glob("*.json"))
    assert len(shipped) == 9
    for path in shipped:
        data = json.loads(path.read_text())
        expected = validate.without_descriptions(crd_schemas[(data["apiVersion"], data["kind"])])
        assert data["schema"] == expected, f"{path.name} drifted from the CRDs (tests/fixtures/kube/crds/README.md)"
        assert data["source"]


def test_fixture_crds_are_the_ones_their_readme_sources():
    # The three files the README's table gives a source, a commit and a checksum for, and nothing else.
    assert sorted(p.name for p in Path(CRDS).glob("*.yaml")) == [
        "seldon_models.yaml", "seldon_seldonruntimes.yaml", "seldon_servers.yaml",
    ]
