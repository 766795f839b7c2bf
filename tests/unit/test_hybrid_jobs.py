"""``infra job submit --burst`` and ``infra job status`` against two API doubles, manager and worker
(docs/hybrid.md). Each double holds what ``infra handoff`` applies from its environment's render
(Kueue's CRDs and webhooks, team namespaces, queues, the MultiKueue objects); what Kueue and
MultiKueue would do between the commands (admit a Job, dispatch its Workload, create the remote
copy) is done here by hand, in the objects' real shapes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.blueprint.rollout import load_rollout
from orchestrator.cli import kube_cmd
from orchestrator.errors import UsageError
from orchestrator.kube.client import Client
from orchestrator.kube.rest import RetryPolicy
from orchestrator.render.kubernetes import render_objects
from orchestrator.render.kubernetes.placement import CHECKS
from tests.kube_fake.fixtures import install_crds
from tests.kube_fake.server import FakeKube

HYBRID = Path(__file__).resolve().parents[1] / "fixtures" / "hybrid"
ONPREM = HYBRID / "onprem.yaml"
QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE = "kueue.x-k8s.io/v1beta2"


@pytest.fixture(scope="module")
def rollout():
    return load_rollout(HYBRID / "rollout.yaml", CHECKS)


@pytest.fixture()
def pair(rollout, tmp_path):
    """Manager (onprem) and worker (aws-burst) doubles, each holding its environment's render."""
    servers, configs = {}, {}
    for side, env in (("manager", "onprem"), ("worker", "aws-burst")):
        server = servers[side] = FakeKube().start()
        install_crds(server)
        server.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}})
        configs[side] = server.write_kubeconfig(tmp_path / side)
        client = Client.from_kubeconfig(configs[side], retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
        for obj in render_objects(rollout.env(env).loaded.model):
            client.apply(obj)
        client.close()
        server.requests.clear()
    yield servers, configs
    for server in servers.values():
        server.stop()


@pytest.fixture()
def cli(pair):
    _, configs = pair
    app = typer.Typer()
    kube_cmd.register(app)
    runner = CliRunner()

    def invoke(*args: str, side: str = "manager"):
        result = runner.invoke(app, [*args, "--kubeconfig", str(configs[side])])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def _submit(cli, gpus: int, name: str, *more: str):
    return cli("job", "submit", "--team", "vision", "-b", str(ONPREM), "--image", "pytorch", "--command", "train",
               "--gpus", str(gpus), "--name", name, "--burst", *more, "-o", "json")


def test_a_job_no_local_flavor_can_run_lands_in_the_burst_queue(cli, pair):
    servers, _ = pair
    # 8 GPUs in one pod: the on-prem l40s nodes hold 4 each (the AWS h100 nodes hold 8)
    result = _submit(cli, 8, "big", "--burst-after", "600")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["queue"] == "vision-burst" and "4" in info["burst"] and "l40s" in info["burst"]
    job = servers["manager"].get("batch/v1", "Job", "big", "vision")
    assert job["metadata"]["labels"][QUEUE] == "vision-burst"
    assert job["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue" and job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"]["infra.dev/burst"].startswith("cannot run locally")
    # created once, straight in the burst queue: no local round trip, no waiting
    assert servers["manager"].paths("POST") == ["/apis/batch/v1/namespaces/vision/jobs"]
    assert servers["manager"].paths("DELETE") == []
    assert servers["worker"].requests == []  # MultiKueue, not infra, talks to the worker


def test_a_job_that_fits_and_is_admitted_stays_local(cli, pair):
    servers, _ = pair
    manager = servers["manager"]

    def kueue_admits(obj):  # Kueue admitting a Job of the local queue: it unsuspends it
        if obj.get("kind") == "Job" and obj["metadata"]["labels"].get(QUEUE) == "vision":
            obj["spec"]["suspend"] = False

    manager.on_create.append(kueue_admits)
    result = _submit(cli, 2, "small", "--burst-after", "30")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["queue"] == "vision" and info["burst"] is None and info["state"] != "Queued"
    job = manager.get("batch/v1", "Job", "small", "vision")
    assert job["metadata"]["labels"][QUEUE] == "vision" and "managedBy" not in job["spec"]
    assert manager.paths("DELETE") == []


def test_a_job_that_fits_but_stays_pending_moves_to_the_burst_queue(cli, pair):
    servers, _ = pair
    manager = servers["manager"]
    result = _submit(cli, 2, "waits", "--burst-after", "0.2")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["queue"] == "vision-burst" and "pending after 0.2 s" in info["burst"]
    job = manager.get("batch/v1", "Job", "waits", "vision")
    assert job["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue" and job["spec"]["suspend"] is True
    # first in the local queue, then deleted and created again (managedBy is immutable)
    assert manager.paths("POST") == ["/apis/batch/v1/namespaces/vision/jobs"] * 2
    assert manager.paths("DELETE") == ["/apis/batch/v1/namespaces/vision/jobs/waits"]


def test_zero_wait_keeps_a_job_that_fits_local(cli, pair):
    servers, _ = pair
    result = _submit(cli, 1, "quick", "--burst-after", "0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["queue"] == "vision"
    assert servers["manager"].paths("DELETE") == []


def test_burst_needs_a_team_with_burst(cli, pair):
    servers, _ = pair
    with pytest.raises(UsageError, match="team nlp of blueprint onprem has no burst: entry"):
        cli("job", "submit", "--team", "nlp", "-b", str(ONPREM), "--image", "x", "--command", "true", "--burst")
    with pytest.raises(UsageError, match="--burst needs --blueprint"):
        cli("job", "submit", "--team", "vision", "--image", "x", "--command", "true", "--burst")
    assert servers["manager"].paths("POST") == []  # refused before anything was created


def _dispatch(servers, name: str, worker: str = "aws-burst") -> None:
    """What MultiKueue does: the manager's Workload gets the worker's name; the Job and a Workload
    are created on the worker, in the same namespace and under the same queue name."""
    manager = servers["manager"]
    job = manager.get("batch/v1", "Job", name, "vision")
    pod_set = {"name": "main", "count": 1, "template": copy.deepcopy(job["spec"]["template"])}
    workload = {"apiVersion": KUEUE, "kind": "Workload",
                "metadata": {"name": f"job-{name}-1a2b3", "namespace": "vision",
                             "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                  "uid": job["metadata"]["uid"], "controller": True}]},
                "spec": {"queueName": "vision-burst", "podSets": [pod_set]}}
    remote = copy.deepcopy(workload)
    workload["status"] = {
        "clusterName": worker,
        "admissionChecks": [{"name": "vision-burst", "state": "Ready", "lastTransitionTime": "2026-12-07T08:00:00Z",
                             "message": f'The workload got reservation on "{worker}"'}],
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "",
                        "lastTransitionTime": "2026-12-07T08:00:00Z"},
                       {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "",
                        "lastTransitionTime": "2026-12-07T08:00:00Z"}]}
    manager.put(workload)
    copy_job = {k: copy.deepcopy(job[k]) for k in ("apiVersion", "kind", "spec")}
    copy_job["metadata"] = {"name": name, "namespace": "vision", "labels": dict(job["metadata"]["labels"])}
    copy_job["spec"].pop("managedBy")  # the worker's own Job controller runs it
    for key in ("selector",):
        copy_job["spec"].pop(key, None)
    copy_job["spec"]["template"]["metadata"] = {}
    worker_client = servers["worker"]
    # the remote copy must get past the worker's API server (strict schema, namespace, quantities)
    import urllib.request

    req = urllib.request.Request(f"{worker_client.url}/apis/batch/v1/namespaces/vision/jobs",
                                 data=json.dumps(copy_job).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:  # noqa: S310 - the local double
        assert resp.status == 201
    remote["metadata"]["labels"]["kueue.x-k8s.io/multikueue-origin"] = "multikueue"
    servers["worker"].put(remote)


def test_status_names_the_worker_cluster_the_workload_was_dispatched_to(cli, pair):
    servers, _ = pair
    assert _submit(cli, 8, "big", "--burst-after", "0").exit_code == 0
    before = json.loads(cli("job", "status", "big", "--team", "vision", "-o", "json").output)
    assert before["cluster"] is None and before["queue"] == "vision-burst"
    _dispatch(servers, "big")
    info = json.loads(cli("job", "status", "big", "--team", "vision", "-o", "json").output)
    assert info["cluster"] == "aws-burst"
    assert info["explanation"].startswith("dispatched by MultiKueue to worker cluster aws-burst")
    text = cli("job", "status", "big", "--team", "vision").output
    assert "on worker cluster aws-burst" in text
    # the worker holds the remote copy under the same name, queue and namespace
    remote = servers["worker"].get("batch/v1", "Job", "big", "vision")
    assert remote["metadata"]["labels"][QUEUE] == "vision-burst"


def test_status_reads_the_multikueue_check_message_when_cluster_name_is_unset():
    from orchestrator.kube.jobs import dispatched_to

    wl = {"status": {"admissionChecks": [{"name": "vision-burst", "state": "Ready",
                                          "message": 'The workload got reservation on "aws-burst"'}]}}
    assert dispatched_to(wl) == "aws-burst"
    assert dispatched_to({"status": {"admissionChecks": [{"name": "x", "state": "Rejected",
                                                          "message": 'reservation on "aws-burst"'}]}}) is None
    assert dispatched_to({"status": {}}) is None and dispatched_to(None) is None


def test_logs_follow_the_job_to_the_worker_it_was_dispatched_to(cli, pair, tmp_path, monkeypatch):
    from orchestrator.workspace import Workspace, write_private

    servers, configs = pair
    assert _submit(cli, 8, "big", "--burst-after", "0").exit_code == 0
    _dispatch(servers, "big")
    worker = servers["worker"]
    worker.put({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "big-x7k2p", "namespace": "vision",
                             "labels": {"batch.kubernetes.io/job-name": "big"}},
                "spec": {"containers": [{"name": "main", "image": "pytorch"}]}})
    worker.logs[("vision", "big-x7k2p")] = ["epoch 1 on h100", "epoch 2 on h100"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="runs on worker cluster aws-burst; no kubeconfig for it"):
        cli("job", "logs", "big", "--team", "vision")
    write_private(Workspace(root=tmp_path, name="aws-burst").env_dir / "kubeconfig", configs["worker"].read_text())
    result = cli("job", "logs", "big", "--team", "vision")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["epoch 1 on h100", "epoch 2 on h100"]
    assert any(p.endswith("/pods/big-x7k2p/log") for p in worker.paths("GET"))
