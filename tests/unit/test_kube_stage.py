"""The handoff stage: applies what the render stage wrote (sandbox: validates only), kubeconfig
from outputs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from orchestrator.cli import kube_cmd
from orchestrator.errors import KubernetesError
from orchestrator.ops import kubeconfig as kc
from orchestrator.progress import Progress
from orchestrator.records import RunRecord
from orchestrator.render import render
from orchestrator.stages.context import Context, RunState
from orchestrator.stages.handoff import HandoffStage
from orchestrator.workspace import Workspace, write_private
from tests.unit.kube_fixtures import THREE_TEAMS, fake, kubeconfig, lab, three_teams  # noqa: F401

OUTPUTS = {"cluster_name": "gpu-lab", "cluster_endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
           "cluster_ca": "LS0tLS1CRUdJTi0tLS0t"}


def ctx_for(tmp_path: Path, sandbox: bool, outputs=None, rendered: bool = True):
    """A context as the pipeline hands it to the handoff stage: after the render stage (``rendered``)."""
    loaded = three_teams()
    from orchestrator.providers.registry import get

    ws = Workspace(root=tmp_path, name=loaded.model.name, sandbox=sandbox)
    if rendered:
        render(loaded.model, get("aws"), ws.build_dir.parent)
    record = RunRecord(env=loaded.model.name, command="handoff", blueprint_path=str(loaded.path),
                       blueprint_sha256=loaded.sha256, sandbox=sandbox)
    return Context(loaded=loaded, provider=get("aws"), ws=ws, progress=Progress(interactive=False, quiet=True),
                   confirm=lambda plan: False, state=RunState(record=record, outputs=dict(outputs or {})))


def test_sandbox_renders_and_validates_but_does_not_apply(tmp_path):
    ctx = ctx_for(tmp_path, sandbox=True)
    detail = HandoffStage().run(ctx)
    n = int(detail.split()[3])
    assert detail == f"rendered and validated {n} manifests; not applied (the sandbox has no Kubernetes API)"
    assert n > 30
    assert not (ctx.ws.env_dir / "kubeconfig").exists()


def test_eks_kubeconfig_uses_the_exec_plugin_and_is_private(tmp_path):
    ctx = ctx_for(tmp_path, sandbox=False, outputs=OUTPUTS)
    path, context = kc.resolve(ctx.ws, ctx.bp, ctx.provider, ctx.state.outputs)
    assert path == ctx.ws.env_dir / "kubeconfig" and context == "gpu-lab"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    cluster = data["clusters"][0]["cluster"]
    assert cluster == {"server": OUTPUTS["cluster_endpoint"], "certificate-authority-data": OUTPUTS["cluster_ca"]}
    user = data["users"][0]["user"]
    assert set(user) == {"exec"}  # no token, no password, no client key
    assert user["exec"]["command"] == "aws"
    assert user["exec"]["args"] == ["--region", "us-east-1", "eks", "get-token", "--cluster-name", "gpu-lab",
                                    "--output", "json"]
    assert user["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def test_kubeconfig_from_saved_outputs_and_errors(tmp_path):
    ctx = ctx_for(tmp_path, sandbox=False)
    with pytest.raises(KubernetesError, match="no Terraform outputs for 'gpu-lab'") as info:
        kc.resolve(ctx.ws, ctx.bp, ctx.provider, None)
    assert "--kubeconfig" in info.value.hint
    write_private(ctx.ws.outputs_file, '{"cluster_name": "gpu-lab"}')
    with pytest.raises(KubernetesError, match="lack cluster_endpoint, cluster_ca"):
        kc.resolve(ctx.ws, ctx.bp, ctx.provider, None)
    with pytest.raises(KubernetesError, match="does not exist"):
        kc.resolve(ctx.ws, ctx.bp, ctx.provider, None, tmp_path / "nope")
    given = tmp_path / "given"
    given.write_text("{}")
    assert kc.resolve(ctx.ws, ctx.bp, ctx.provider, None, given, "ctx") == (given, "ctx")


def test_stage_applies_to_the_cluster(tmp_path, fake, kubeconfig):  # noqa: F811
    ctx = ctx_for(tmp_path, sandbox=False)
    detail = HandoffStage(kubeconfig=kubeconfig, timeout=5).run(ctx)
    assert detail.startswith("applied ") and "created), pruned 0" in detail
    assert ctx.state.record.versions["kubernetes"] == "v1.30.0-fake"
    assert fake.get("v1", "ResourceQuota", "team-quota", "vision")["spec"]["hard"]["requests.nvidia.com/gpu"] == "12"


def test_handoff_command_in_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFRA_STATE_DIR", str(tmp_path / ".infra"))
    app = typer.Typer()
    kube_cmd.register(app)
    result = CliRunner().invoke(app, ["handoff", str(THREE_TEAMS), "--sandbox"])
    assert result.exit_code == 0, result.output
    assert "not applied (the sandbox has no Kubernetes API)" in result.output
    assert (tmp_path / "build" / "gpu-lab" / "terraform").is_dir()
    records = list((tmp_path / ".infra" / "records" / "gpu-lab").glob("*.json"))
    assert len(records) == 1 and '"handoff"' in records[0].read_text()


def test_handoff_command_applies_with_a_kubeconfig(tmp_path, monkeypatch, fake, kubeconfig):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFRA_STATE_DIR", str(tmp_path / ".infra"))
    app = typer.Typer()
    kube_cmd.register(app)
    result = CliRunner().invoke(app, ["handoff", str(THREE_TEAMS), "--kubeconfig", str(kubeconfig), "--no-wait"])
    assert result.exit_code == 0, result.output
    assert "handoff" in result.output and "applied" in result.output
    assert fake.get("kueue.x-k8s.io/v1beta2", "LocalQueue", "nlp", "nlp-team") is not None


def test_prepared_validation_gives_the_same_result_and_its_failure_surfaces_when_the_stage_runs(tmp_path):
    """``prepare`` (the pipeline calls it once the render is written) validates in a thread while
    Terraform runs; ``run`` then uses that result, and a manifest that fails is reported by ``run``."""
    ctx = ctx_for(tmp_path, sandbox=True)
    direct = HandoffStage().run(ctx)
    stage = HandoffStage()
    stage.prepare(ctx)
    started = stage._early
    assert started is not None
    stage.prepare(ctx)  # once
    assert stage._early is started
    assert stage.run(ctx) == direct and started.done()

    folder = ctx.ws.build_dir / "kubernetes"
    for bad in sorted(p for p in folder.rglob("*.yaml") if "install" not in p.relative_to(folder).parts):
        docs = [d for d in yaml.safe_load_all(bad.read_text()) if d]
        quotas = [d for d in docs if d.get("kind") == "ResourceQuota"]
        if quotas:
            quotas[0]["spec"]["hard"] = "not a map"  # a schema violation
            bad.write_text(yaml.safe_dump_all(docs))
            break
    else:
        raise AssertionError("no ResourceQuota rendered for three-teams")
    failing = HandoffStage()
    failing.prepare(ctx)  # the thread finds the problem; nothing is raised here
    with pytest.raises(KubernetesError, match="problems in the rendered manifests"):
        failing.run(ctx)


def test_manifests_validated_once_are_not_validated_again_until_they_change(tmp_path, monkeypatch):
    from orchestrator.stages import handoff

    ctx = ctx_for(tmp_path, sandbox=True)
    HandoffStage().run(ctx)
    stamp = ctx.ws.env_dir / handoff.VALIDATED
    assert stat.S_IMODE(stamp.stat().st_mode) == 0o600
    calls: list[int] = []
    real = handoff.require_valid
    monkeypatch.setattr(handoff, "require_valid",
                        lambda objs, minor, progress: calls.append(len(objs)) or real(objs, minor, progress))
    first = HandoffStage().run(ctx)
    assert calls == []  # the same files, the same validator: passed before

    def no_reading(folder):
        raise AssertionError("the sandbox read manifests that passed before")

    monkeypatch.setattr(handoff, "read_all", no_reading)  # the sandbox only counts them: not read again
    assert HandoffStage().run(ctx) == first
    monkeypatch.undo()
    monkeypatch.setattr(handoff, "require_valid",
                        lambda objs, minor, progress: calls.append(len(objs)) or real(objs, minor, progress))

    team = next((ctx.ws.build_dir / "kubernetes" / "teams").glob("*.yaml"))
    docs = list(yaml.safe_load_all(team.read_text()))
    namespace = next(d for d in docs if d and d.get("kind") == "Namespace")
    namespace["spec"] = {"bogus": 1}  # a field no Namespace has: the strict schema refuses it
    team.write_text(yaml.safe_dump_all(docs))
    for attempt in (1, 2):  # a failed validation is never kept as a pass
        with pytest.raises(KubernetesError, match="bogus"):
            HandoffStage().run(ctx)
        assert len(calls) == attempt
