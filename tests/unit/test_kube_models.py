"""``infra model``: deploy (blueprint or ad-hoc), list, delete against the fake API."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import kube_cmd
from orchestrator.errors import KubernetesError, UsageError
from orchestrator.kube.apply import Options, apply_all
from orchestrator.render.kubernetes import render_objects
from tests.kube_fake.server import FakeKube
from tests.unit.kube_fixtures import THREE_TEAMS, client, fake, install_crds, kubeconfig, lab, team_namespaces  # noqa: F401


@pytest.fixture(autouse=True)
def _namespaces(team_namespaces):  # noqa: F811 - jobs and models go into existing namespaces
    return team_namespaces


@pytest.fixture()
def cli(kubeconfig):  # noqa: F811
    app = typer.Typer()
    kube_cmd.register(app)
    runner = CliRunner()

    def invoke(*args: str, kubeconfig_path=kubeconfig):
        result = runner.invoke(app, [*args, "--kubeconfig", str(kubeconfig_path)])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def test_deploy_blueprint_models(cli, fake):  # noqa: F811
    result = cli("model", "deploy", "resnet50", "-b", str(THREE_TEAMS), "--timeout", "5")
    assert result.exit_code == 0, result.output
    dep = fake.get("apps/v1", "Deployment", "resnet50", "vision")
    assert dep["metadata"]["labels"]["infra.dev/environment"] == "gpu-lab"
    assert fake.get("v1", "Service", "resnet50", "vision") is not None
    assert fake.get("apps/v1", "Deployment", "bert", "nlp-team") is None  # only the named model
    assert "applied 2 objects (2 created)" in result.output
    with pytest.raises(UsageError, match="no model named ghost"):
        cli("model", "deploy", "ghost", "-b", str(THREE_TEAMS))


def test_adhoc_model_is_never_pruned_by_handoff(cli, fake, client, lab):  # noqa: F811
    result = cli("model", "deploy", "--uri", "gs://bucket/yolo.onnx", "--name", "yolo", "--team", "vision",
                 "--gpu", "1", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] == ["Deployment/vision/yolo", "Service/vision/yolo"]
    dep = fake.get("apps/v1", "Deployment", "yolo", "vision")
    labels = dep["metadata"]["labels"]
    assert labels["infra.dev/ad-hoc"] == "true" and "infra.dev/environment" not in labels
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    bp, _ = lab
    result = apply_all(client, render_objects(bp), bp.name, Options(wait=False))
    assert result.pruned == [] and fake.get("apps/v1", "Deployment", "yolo", "vision") is not None


def test_list_and_delete(cli, fake):  # noqa: F811
    cli("model", "deploy", "-b", str(THREE_TEAMS), "--no-wait")
    cli("model", "deploy", "--uri", "https://x.example/m.onnx", "--name", "adhoc", "--team", "t", "--no-wait")
    rows = json.loads(cli("model", "list", "-o", "json").output)
    assert [(r["name"], r["namespace"], r["runtime"], r["source"]) for r in rows] == [
        ("bert", "nlp-team", "onnx", "blueprint gpu-lab"),
        ("adhoc", "t", "onnx", "ad-hoc"),
        ("resnet50", "vision", "onnx", "blueprint gpu-lab"),
    ]
    assert rows[2]["endpoint"] == "http://resnet50.vision.svc:8000/v2/models/resnet50/infer"
    assert rows[2]["status"] == "2/2 replicas available" and rows[2]["uri"] == "s3://models/resnet50.onnx"
    assert "resnet50" in cli("model", "list", "--team", "vision").output

    result = cli("model", "delete", "adhoc", "-n", "t", "-o", "json")
    assert json.loads(result.output) == {"deleted": ["Deployment/t/adhoc", "Service/t/adhoc"], "warning": None}
    result = cli("model", "delete", "resnet50", "--team", "vision", "-b", str(THREE_TEAMS))
    assert "deleted Deployment/vision/resnet50" in result.output
    assert "part of blueprint 'gpu-lab'" in result.output  # CliRunner mixes stderr in
    with pytest.raises(KubernetesError, match="no model resnet50 in namespace vision"):
        cli("model", "delete", "resnet50", "--team", "vision")


def test_seldon_model_needs_seldon_installed(cli, tmp_path):
    bare = FakeKube().start()
    try:
        install_crds(bare, groups=("kueue.x-k8s.io",))
        kc = bare.write_kubeconfig(tmp_path / "bare")
        with pytest.raises(KubernetesError, match="Seldon Core v2 is not installed"):
            cli("model", "deploy", "--uri", "s3://b/m/", "--name", "m", "--team", "t", "--runtime", "seldon",
                kubeconfig_path=kc)
    finally:
        bare.stop()


def test_seldon_adhoc_model(cli, fake):  # noqa: F811
    result = cli("model", "deploy", "--uri", "s3://b/m/", "--name", "m", "--team", "t", "--runtime", "seldon",
                 "--gpu", "2", "--timeout", "5")
    assert result.exit_code == 0, result.output
    model = fake.get("mlops.seldon.io/v1alpha1", "Model", "m", "t")
    assert model["spec"]["requirements"] == ["onnx"] and model["spec"]["server"] == "triton-gpu"
    server = fake.get("mlops.seldon.io/v1alpha1", "Server", "triton-gpu", "t")
    assert server["spec"]["podSpec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "2"
    rows = json.loads(cli("model", "list", "-o", "json").output)
    assert [(r["name"], r["runtime"], r["status"]) for r in rows] == [("m", "seldon", "ready")]


def test_model_usage_errors(cli):
    with pytest.raises(UsageError, match="needs --name and --team"):
        cli("model", "deploy", "--uri", "s3://b/m.onnx")
    with pytest.raises(UsageError, match="say which models"):
        cli("model", "deploy")
    with pytest.raises(UsageError, match="invalid model"):
        cli("model", "deploy", "--uri", "ftp://x/m.onnx", "--name", "m", "--team", "t")
