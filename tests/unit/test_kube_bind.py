"""Values only Terraform knows reach the cluster at the handoff: the AKS model-server service
account gets its managed identity's client ID from the Terraform outputs (kube/bind.py), applied
to the Kubernetes test double; without the output, the handoff stops before applying anything."""

from __future__ import annotations

import json

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import KubernetesError
from orchestrator.kube.bind import bind_outputs
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.records import RunRecord
from orchestrator.render import render
from orchestrator.render.kubernetes import render_objects
from orchestrator.stages.context import Context, RunState
from orchestrator.stages.handoff import HandoffStage
from orchestrator.workspace import Workspace
from tests.conftest import EXAMPLES
from tests.unit.kube_fixtures import fake, kubeconfig  # noqa: F401

CLIENT_ID = "5f0c8a3e-1b2d-4e6f-8a9b-0c1d2e3f4a5b"
ANNOTATION = "azure.workload.identity/client-id"


def _account(objs):
    return next(o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["namespace"] == "vision")


def test_bound_annotations_come_from_the_named_output_and_nothing_else_changes() -> None:
    objs = render_objects(load(EXAMPLES / "azure-gpu.yaml").model)
    bound = bind_outputs(objs, {"model_reader_client_ids": {"vision": CLIENT_ID}, "cluster_name": "x"})
    assert _account(bound)["metadata"]["annotations"][ANNOTATION] == CLIENT_ID
    assert ANNOTATION not in _account(objs)["metadata"]["annotations"]  # the render is left as reviewed
    assert [o for o in bound if o["kind"] != "ServiceAccount"] == [o for o in objs if o["kind"] != "ServiceAccount"]


@pytest.mark.parametrize("outputs", [{}, {"model_reader_client_ids": {"nlp": CLIENT_ID}},
                                     {"model_reader_client_ids": {"vision": ""}}])
def test_a_missing_output_is_one_line_naming_it(outputs) -> None:
    objs = render_objects(load(EXAMPLES / "azure-gpu.yaml").model)
    with pytest.raises(KubernetesError) as err:
        bind_outputs(objs, outputs)
    assert err.value.message == ("ServiceAccount vision/model-server: annotation azure.workload.identity/client-id "
                                 "comes from the Terraform output model_reader_client_ids.vision, which this "
                                 "environment's outputs lack")
    assert err.value.exit_code == 5


def _ctx(tmp_path, outputs):
    loaded = load(EXAMPLES / "azure-gpu.yaml")
    ws = Workspace(root=tmp_path, name=loaded.model.name, sandbox=False)
    render(loaded.model, get("azure"), ws.build_dir.parent)
    record = RunRecord(env=loaded.model.name, command="handoff", blueprint_path=str(loaded.path),
                       blueprint_sha256=loaded.sha256, sandbox=False)
    return Context(loaded=loaded, provider=get("azure"), ws=ws, progress=Progress(interactive=False, quiet=True),
                   confirm=lambda plan: False, state=RunState(record=record, outputs=outputs))


def test_the_handoff_applies_the_client_id_from_the_saved_outputs(tmp_path, fake, kubeconfig):  # noqa: F811
    ctx = _ctx(tmp_path, {})
    ctx.ws.outputs_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.ws.outputs_file.write_text(json.dumps({"model_reader_client_ids": {"vision": CLIENT_ID}}))
    HandoffStage(kubeconfig=kubeconfig, wait=False).run(ctx)  # `infra handoff`: outputs of the last up
    account = fake.get("v1", "ServiceAccount", "model-server", "vision")
    assert account["metadata"]["annotations"][ANNOTATION] == CLIENT_ID
    assert account["automountServiceAccountToken"] is False
    deployment = fake.get("apps/v1", "Deployment", "resnet50", "vision")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "model-server"
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def test_the_handoff_without_the_output_applies_nothing(tmp_path, fake, kubeconfig):  # noqa: F811
    with pytest.raises(KubernetesError, match="model_reader_client_ids.vision"):
        HandoffStage(kubeconfig=kubeconfig, wait=False).run(_ctx(tmp_path, {}))
    assert fake.get("v1", "Namespace", "vision") is None
