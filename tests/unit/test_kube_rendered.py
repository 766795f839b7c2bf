"""The handoff applies what the render stage wrote to build/<name>/kubernetes/, read in
kustomization order and sorted for apply; a folder it cannot trust is refused, not guessed at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import KubernetesError
from orchestrator.kube.rendered import read_install, read_rendered
from orchestrator.progress import Progress
from orchestrator.records import RunRecord
from orchestrator.render.kubernetes import render_kubernetes, render_objects
from orchestrator.render.writer import write_tree
from orchestrator.stages.context import Context, RunState
from orchestrator.stages.handoff import HandoffStage
from orchestrator.workspace import Workspace
from tests.unit.kube_fixtures import fake, kubeconfig, lab, three_teams  # noqa: F401

HEADER = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "kubernetes"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def _obj(kind: str, name: str, api: str = "v1") -> str:
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n"


def test_reads_back_exactly_the_rendered_objects_in_apply_order(lab, tmp_path):  # noqa: F811
    bp, _ = lab
    folder = tmp_path / "kubernetes"
    write_tree(folder, render_kubernetes(bp))
    objs = read_rendered(folder)
    assert objs == render_objects(bp)
    # 11 + 11 + 10 per team file (+ 2 where the team's models are in s3: its model-server service
    # account and egress to the Pod Identity Agent), 3 + 1 + 4 cluster (priority classes, device
    # plugin, admission policies + bindings), 2 + 3 kueue (flavors h100 and system, the CPU pool; l4
    # serves), 2 + 2 inference, and the cluster-autoscaler's objects (docs/providers.md); the Kueue
    # install is read apart
    from orchestrator.blueprint import storage
    from orchestrator.render.kubernetes import autoscaler

    assert len(storage.readers(bp)) == 1
    assert len(objs) == 49 + 2 + len(autoscaler.cluster_autoscaler(bp) or [])
    installed = read_install(folder)
    assert len(installed) == 79 and installed[0]["kind"] == "Namespace"
    assert not {o["kind"] for o in installed} & {"ClusterQueue", "LocalQueue", "ResourceFlavor"}
    assert [o["kind"] for o in objs[:4]] == ["Namespace", "Namespace", "Namespace", "PriorityClass"]
    assert [o["metadata"]["name"] for o in objs[:3]] == ["nlp-team", "research", "vision"]
    assert [o["kind"] for o in objs[-2:]] == ["Service", "Service"]


def test_kustomization_order_within_a_kind_and_kind_order_across(tmp_path):
    folder = _folder(tmp_path, {
        "kustomization.yaml": HEADER + "  - z.yaml\n  - a.yaml\n",
        "a.yaml": _obj("Endpoints", "unknown-kind-last") + "---\n" + _obj("ConfigMap", "a1"),
        "z.yaml": _obj("Service", "z1") + "---\n" + _obj("Namespace", "ns-z"),
    })
    names = [o["metadata"]["name"] for o in read_rendered(folder)]
    assert names == ["ns-z", "z1", "unknown-kind-last", "a1"]


def test_only_listed_files_are_read(tmp_path):
    folder = _folder(tmp_path, {
        "kustomization.yaml": HEADER + "  - a.yaml\n",
        "a.yaml": _obj("Namespace", "a"),
        "stray.yaml": _obj("Namespace", "stray"),
    })
    assert [o["metadata"]["name"] for o in read_rendered(folder)] == ["a"]


@pytest.mark.parametrize("files, message", [
    ({}, "kustomization.yaml is missing"),
    ({"kustomization.yaml": HEADER + "  - gone.yaml\n"}, "gone.yaml is missing"),
    ({"kustomization.yaml": HEADER + "  - ../../etc/passwd\n"}, "lists '../../etc/passwd', which is outside"),
    ({"kustomization.yaml": HEADER + "  - /etc/passwd\n"}, "lists '/etc/passwd', which is outside the folder"),
    ({"kustomization.yaml": "kind: ConfigMap\n"}, "kustomization.yaml is not one Kustomization"),
    ({"kustomization.yaml": HEADER + "  - {a: 1}\n"}, "resources must be a list of file paths"),
    ({"kustomization.yaml": HEADER + "  - a.yaml\n", "a.yaml": "a: [1\n"}, "a.yaml is not YAML: "),
    ({"kustomization.yaml": HEADER + "  - a.yaml\n", "a.yaml": "- 1\n"}, "a.yaml holds a document that is not an"),
])
def test_a_folder_it_cannot_trust_is_refused(tmp_path, files, message):
    folder = _folder(tmp_path, files)
    folder.mkdir(exist_ok=True)
    with pytest.raises(KubernetesError) as info:
        read_rendered(folder)
    assert info.value.message.startswith(f"cannot read the rendered manifests in {folder}: ")
    assert message in info.value.message
    assert "`infra render FILE` writes them again" in info.value.hint


def test_a_named_pipe_or_a_symlink_is_refused_without_reading_it(tmp_path):
    folder = _folder(tmp_path, {"kustomization.yaml": HEADER + "  - pipe.yaml\n", "real.yaml": _obj("Namespace", "x")})
    os.mkfifo(folder / "pipe.yaml")  # opening it would block
    with pytest.raises(KubernetesError, match="pipe.yaml is not a regular file"):
        read_rendered(folder)
    (folder / "kustomization.yaml").write_text(HEADER + "  - link.yaml\n")
    (folder / "link.yaml").symlink_to(folder / "real.yaml")
    with pytest.raises(KubernetesError, match="link.yaml is not a regular file"):
        read_rendered(folder)


def _ctx(tmp_path: Path, sandbox: bool):
    from orchestrator.providers.registry import get
    from orchestrator.render import render

    loaded = three_teams()
    ws = Workspace(root=tmp_path, name=loaded.model.name, sandbox=sandbox)
    render(loaded.model, get("aws"), ws.build_dir.parent)
    record = RunRecord(env=loaded.model.name, command="handoff", blueprint_path=str(loaded.path),
                       blueprint_sha256=loaded.sha256, sandbox=sandbox)
    return Context(loaded=loaded, provider=get("aws"), ws=ws, progress=Progress(interactive=False, quiet=True),
                   confirm=lambda plan: False, state=RunState(record=record))


def test_the_stage_applies_the_files_not_a_second_rendering(tmp_path, fake, kubeconfig):  # noqa: F811
    ctx = _ctx(tmp_path, sandbox=False)
    team_file = ctx.ws.build_dir / "kubernetes" / "teams" / "vision.yaml"
    text = team_file.read_text()
    assert "requests.nvidia.com/gpu: '12'" in text
    team_file.write_text(text.replace("requests.nvidia.com/gpu: '12'", "requests.nvidia.com/gpu: '7'"))
    HandoffStage(kubeconfig=kubeconfig, wait=False).run(ctx)
    assert fake.get("v1", "ResourceQuota", "team-quota", "vision")["spec"]["hard"]["requests.nvidia.com/gpu"] == "7"


def test_the_stage_validates_the_files_before_applying(tmp_path, fake, kubeconfig):  # noqa: F811
    ctx = _ctx(tmp_path, sandbox=False)
    team_file = ctx.ws.build_dir / "kubernetes" / "teams" / "vision.yaml"
    team_file.write_text(team_file.read_text().replace("  hard:\n", "  hardd:\n", 1))
    with pytest.raises(KubernetesError, match=r"problems in the rendered manifests: ResourceQuota/vision/team-quota"):
        HandoffStage(kubeconfig=kubeconfig, wait=False).run(ctx)
    assert not [r for r in fake.requests if r["method"] == "PATCH"]


def test_the_sandbox_stage_without_a_render_says_what_to_run(tmp_path):
    ctx = _ctx(tmp_path, sandbox=True)
    (ctx.ws.build_dir / "kubernetes" / "kustomization.yaml").unlink()
    with pytest.raises(KubernetesError, match="kustomization.yaml is missing") as info:
        HandoffStage().run(ctx)
    assert "infra render FILE" in info.value.hint
