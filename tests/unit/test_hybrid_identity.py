"""The worker's MultiKueue token reaches the manager's Secret, and nowhere public (docs/hybrid.md)."""

from __future__ import annotations

import base64
import itertools
import stat

import pytest
import yaml

from orchestrator.errors import KubernetesError
from orchestrator.kube.client import Client
from orchestrator.kube.rest import RetryPolicy
from orchestrator.ops.hybrid import hand_token
from tests.unit.test_hybrid_jobs import pair, rollout  # noqa: F401 - the two doubles with their renders

_TOKENS = itertools.count(1)


def _token_controller(obj):
    """What kube-controller-manager does to a new service-account-token Secret: fill it."""
    if obj.get("kind") == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        obj["data"] = {"token": base64.b64encode(f"sa-token-{next(_TOKENS)}".encode()).decode(),
                       "ca.crt": base64.b64encode(b"worker-ca").decode()}


@pytest.fixture()
def clients(pair):  # noqa: F811
    servers, configs = pair
    servers["worker"].on_create.append(_token_controller)
    made = {side: Client.from_kubeconfig(configs[side], retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
            for side in configs}
    yield servers, made
    for c in made.values():
        c.close()


def _manager_kubeconfig(servers):
    secret = servers["manager"].get("v1", "Secret", "multikueue-aws-burst", "kueue-system")
    return secret, yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))


def test_the_token_goes_to_the_manager_secret_and_a_private_copy(clients, tmp_path):
    servers, c = clients
    url = servers["worker"].url
    copy = hand_token(c["worker"], c["manager"], "aws-burst", "onprem", url, tmp_path)
    secret, config = _manager_kubeconfig(servers)
    assert config["clusters"][0]["cluster"] == {"server": url, "certificate-authority-data":
                                                base64.b64encode(b"worker-ca").decode()}
    first = config["users"][0]["user"]["token"]
    assert first.startswith("sa-token-") and "exec" not in config["users"][0]["user"]
    # the manager's own prune keys on the environment label: this Secret has none
    assert "infra.dev/environment" not in secret["metadata"]["labels"]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and first in copy.read_text()
    # the kubeconfig works: a client made from it reaches the worker with that token
    probe = Client.from_kubeconfig(copy, retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    try:
        probe.server_version()
    finally:
        probe.close()
    assert servers["worker"].requests[-1]["auth"] == f"Bearer {first}"


def test_each_handoff_rotates_the_token(clients, tmp_path):
    servers, c = clients
    url = servers["worker"].url
    hand_token(c["worker"], c["manager"], "aws-burst", "onprem", url, tmp_path)
    _, before = _manager_kubeconfig(servers)
    hand_token(c["worker"], c["manager"], "aws-burst", "onprem", url, tmp_path)
    _, after = _manager_kubeconfig(servers)
    assert before["users"][0]["user"]["token"] != after["users"][0]["user"]["token"]
    deletes = [p for p in servers["worker"].paths("DELETE") if p.endswith("/secrets/multikueue-onprem-token")]
    assert len(deletes) == 2  # the old token Secret goes, so the old token stops working


def test_an_unreachable_worker_api_is_refused_before_anything_is_written(clients, tmp_path):
    servers, c = clients
    with pytest.raises(KubernetesError, match="does not answer"):
        hand_token(c["worker"], c["manager"], "aws-burst", "onprem", "https://127.0.0.1:1", tmp_path)
    assert servers["manager"].get("v1", "Secret", "multikueue-aws-burst", "kueue-system") is None
    assert not list(tmp_path.glob("multikueue-*"))


def test_a_token_that_never_comes_is_an_error(pair, tmp_path):  # noqa: F811 - no token controller here
    servers, configs = pair
    worker = Client.from_kubeconfig(configs["worker"], retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    manager = Client.from_kubeconfig(configs["manager"], retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    now = [0.0]

    def sleep(s):
        now[0] += s

    try:
        with pytest.raises(KubernetesError, match="did not fill kueue-system/multikueue-onprem-token within 5 s"):
            hand_token(worker, manager, "aws-burst", "onprem", servers["worker"].url, tmp_path, sleep=sleep,
                       clock=lambda: now[0], within=5)
    finally:
        worker.close()
        manager.close()


def test_the_worker_handoff_finds_each_manager_by_its_saved_kubeconfig(clients, rollout, pair, tmp_path):  # noqa: F811
    from types import SimpleNamespace

    from orchestrator.ops.hybrid import hand_tokens
    from orchestrator.workspace import Workspace, write_private

    servers, c = clients
    _, configs = pair
    worker_bp = rollout.env("aws-burst").loaded.model
    ctx = SimpleNamespace(bp=worker_bp, ws=Workspace(root=tmp_path, name="aws-burst"))
    with pytest.raises(KubernetesError, match="no kubeconfig for onprem .*must be up first"):
        hand_tokens(ctx, c["worker"], servers["worker"].url)
    write_private(Workspace(root=tmp_path, name="onprem").env_dir / "kubeconfig", configs["manager"].read_text())
    assert hand_tokens(ctx, c["worker"], servers["worker"].url) == ["MultiKueue token handed to onprem"]
    assert servers["manager"].get("v1", "Secret", "multikueue-aws-burst", "kueue-system") is not None
    assert (ctx.ws.env_dir / "multikueue-onprem.kubeconfig").is_file()


def test_the_workers_handoff_stage_hands_the_token_over(rollout, tmp_path):  # noqa: F811
    """``infra handoff`` of the worker, end to end against two doubles: applies the worker's render,
    then writes the manager's Secret with the manager's saved kubeconfig."""
    from orchestrator.progress import Progress
    from orchestrator.providers.registry import get
    from orchestrator.records import RunRecord
    from orchestrator.render import render
    from orchestrator.stages.context import Context, RunState
    from orchestrator.stages.handoff import HandoffStage
    from orchestrator.workspace import Workspace, write_private
    from tests.kube_fake.fixtures import install_crds
    from tests.kube_fake.server import FakeKube

    manager, worker = FakeKube().start(), FakeKube().start()
    try:
        for server in (manager, worker):
            install_crds(server)
        manager.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}})
        worker.on_create.append(_token_controller)
        loaded = rollout.env("aws-burst").loaded
        ws = Workspace(root=tmp_path, name="aws-burst")
        render(loaded.model, get("aws"), ws.build_dir.parent)
        write_private(Workspace(root=tmp_path, name="onprem").env_dir / "kubeconfig",
                      manager.write_kubeconfig(tmp_path / "m").read_text())
        record = RunRecord(env="aws-burst", command="handoff", blueprint_path=str(loaded.path),
                           blueprint_sha256=loaded.sha256, sandbox=False)
        ctx = Context(loaded=loaded, provider=get("aws"), ws=ws, progress=Progress(interactive=False, quiet=True),
                      confirm=lambda plan: False, state=RunState(record=record, outputs={}))
        HandoffStage(kubeconfig=worker.write_kubeconfig(tmp_path / "w"), timeout=5).run(ctx)
        assert worker.get("kueue.x-k8s.io/v1beta2", "LocalQueue", "vision-burst", "vision") is not None
        secret = manager.get("v1", "Secret", "multikueue-aws-burst", "kueue-system")
        config = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
        assert config["clusters"][0]["cluster"]["server"] == worker.url
        assert config["users"][0]["user"]["token"].startswith("sa-token-")
    finally:
        manager.stop()
        worker.stop()
