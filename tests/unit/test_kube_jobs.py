"""``infra job``: submit, list, status (why pending), logs, cancel against the fake API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import kube_cmd
from orchestrator.errors import UsageError
from orchestrator.kube import jobs
from orchestrator.kube.explain import Quota, explain, quota_from
from tests.unit.kube_fixtures import FIXTURES, THREE_TEAMS, client, fake, kubeconfig, team_namespaces  # noqa: F401


@pytest.fixture(autouse=True)
def _namespaces(team_namespaces):  # noqa: F811 - jobs and models go into existing namespaces
    return team_namespaces

GPU = "nvidia.com/gpu"


@pytest.fixture()
def cli(kubeconfig):  # noqa: F811
    app = typer.Typer()
    kube_cmd.register(app)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [*args, "--kubeconfig", str(kubeconfig)])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def test_submit_gpus_creates_a_suspended_queued_job(cli, fake):  # noqa: F811
    result = cli("job", "submit", "--gpus", "2", "--team", "vision", "--image", "busybox",
                 "--command", "nvidia-smi", "--name", "smoke", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["queue"] == "vision"
    job = fake.get("batch/v1", "Job", "smoke", "vision")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "vision"
    assert job["spec"]["suspend"] is True
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == "main" and container["image"] == "busybox" and container["command"] == ["nvidia-smi"]
    assert container["resources"]["requests"][GPU] == container["resources"]["limits"][GPU] == "2"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["priorityClassName"] == "infra-batch" and pod["restartPolicy"] == "Never"
    post = [r for r in fake.requests if r["method"] == "POST"]
    assert [r["path"] for r in post] == ["/apis/batch/v1/namespaces/vision/jobs"]


def test_submit_with_the_blueprint_uses_the_team_namespace_and_pool_taints(cli, fake):  # noqa: F811
    result = cli("job", "submit", "--gpus", "1", "--team", "nlp", "--image", "pytorch", "--command",
                 "python -c 'print(1)'", "--name", "j1", "-b", str(THREE_TEAMS))
    assert result.exit_code == 0, result.output
    assert "job j1 queued in nlp (namespace nlp-team, 1 GPUs)" in result.output
    pod = fake.get("batch/v1", "Job", "j1", "nlp-team")["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "-c", "print(1)"]
    assert {"key": "capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule"} in pod["tolerations"]


def test_submit_survives_throttling(cli, fake):  # noqa: F811
    fake.fail_next(3, 429, retry_after=0.01, method="POST")
    assert cli("job", "submit", "--team", "vision", "--image", "busybox", "--command", "true").exit_code == 0
    assert len(fake.objects("Job")) == 1


def test_submit_a_job_file(cli, fake):  # noqa: F811
    result = cli("job", "submit", str(FIXTURES / "job.yaml"), "--team", "vision")
    assert result.exit_code == 0, result.output
    job = fake.get("batch/v1", "Job", "train-resnet", "vision")
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "vision"
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"][GPU] == res["limits"][GPU] == "4" and res["requests"]["cpu"] == "2"
    assert job["spec"]["template"]["spec"]["tolerations"][0]["key"] == GPU


def test_prepare_job_rejects_what_kueue_or_quota_would():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}, "spec": {"template": {"spec": {
        "containers": [{"name": "main", "image": "i", "resources": {"requests": {GPU: 1}, "limits": {GPU: 2}}}]}}}}
    with pytest.raises(UsageError, match="request \\(1\\) must equal its limit \\(2\\)"):
        jobs.prepare_job(job, "vision", "vision", [])
    with pytest.raises(UsageError, match="batch/v1 Job"):
        jobs.prepare_job({"apiVersion": "v1", "kind": "Pod"}, "vision", "vision", [])
    with pytest.raises(UsageError, match="names namespace 'other'"):
        jobs.prepare_job({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"namespace": "other"}},
                         "vision", "vision", [])


def test_a_job_file_that_is_a_named_pipe_is_bad_input_not_a_hang(tmp_path):
    fifo = tmp_path / "job.yaml"
    os.mkfifo(fifo)  # read_text() would block here until someone writes to it
    infra = Path(sys.executable).with_name("infra")
    proc = subprocess.run([str(infra), "job", "submit", str(fifo), "--team", "vision"], cwd=tmp_path,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"error: cannot read job file {fifo}: not a regular file (a named pipe)\n"


def test_a_job_file_that_is_not_yaml_is_located(cli, tmp_path):
    bad = tmp_path / "job.yaml"
    bad.write_text("apiVersion: batch/v1\nkind: Job\nspec: [1\n")
    with pytest.raises(UsageError) as info:
        cli("job", "submit", str(bad), "--team", "vision")
    assert info.value.message.startswith(f"{bad}:4:1: job file is not valid YAML: ")
    too_many = tmp_path / "two.yaml"
    too_many.write_text("kind: Job\n---\nkind: Job\n")
    with pytest.raises(UsageError, match="must hold exactly one Job \\(found 2 documents\\)"):
        cli("job", "submit", str(too_many), "--team", "vision")


def test_usage_errors(cli):
    with pytest.raises(UsageError, match="--team is required"):
        cli("job", "submit", "--image", "x", "--command", "y")
    with pytest.raises(UsageError, match="--image and --command are required"):
        cli("job", "submit", "--team", "vision")
    with pytest.raises(UsageError, match="no team 'ghost'"):
        cli("job", "status", "x", "--team", "ghost", "-b", str(THREE_TEAMS))


def _workload(job, conditions, status_extra=None):
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": f"job-{job['metadata']['name']}-1a2b3", "namespace": job["metadata"]["namespace"],
                         "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]}},
            "status": {"conditions": conditions, **(status_extra or {})}}


PENDING = {"type": "QuotaReserved", "status": "False", "reason": "Pending",
           "message": "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in "
                      "flavor h100, 2 more needed"}


def test_status_explains_a_pending_job_from_workload_and_quota(cli, fake):  # noqa: F811
    cli("job", "submit", "--gpus", "2", "--team", "vision", "--image", "busybox", "--command", "nvidia-smi",
        "--name", "smoke")
    job = fake.get("batch/v1", "Job", "smoke", "vision")
    fake.put(_workload(job, [PENDING]))
    fake.put({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
              "metadata": {"name": "vision", "namespace": "vision"}, "spec": {"clusterQueue": "vision"},
              "status": {"flavorsReservation": [{"name": "h100", "resources": [{"name": GPU, "total": "8"}]}]}})
    fake.put({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "vision"},
              "spec": {"resourceGroups": [{"coveredResources": [GPU], "flavors": [
                  {"name": "h100", "resources": [{"name": GPU, "nominalQuota": 8, "borrowingLimit": 4}]}]}]},
              "status": {"conditions": [{"type": "Active", "status": "True"}]}})
    result = cli("job", "status", "smoke", "--team", "vision")
    assert result.exit_code == 0, result.output
    assert "smoke (vision): Queued, 2 GPUs" in result.output
    sentence = result.output.splitlines()[1].strip()
    assert sentence == ("waiting for quota: it needs 2 more nvidia.com/gpu than is free in flavor h100; the team holds "
                        "8 of its 8 guaranteed GPUs there and may borrow up to 4 more from idle teams; Kueue admits "
                        "it when running jobs finish or borrowed GPUs return.")
    data = json.loads(cli("job", "status", "smoke", "--team", "vision", "-o", "json").output)
    assert data["workload"] == "job-smoke-1a2b3" and data["conditions"][0]["reason"] == "Pending"


def test_status_when_team_members_cannot_read_cluster_queues(cli, fake):  # noqa: F811
    cli("job", "submit", "--gpus", "2", "--team", "vision", "--image", "b", "--command", "c", "--name", "j")
    fake.put(_workload(fake.get("batch/v1", "Job", "j", "vision"), [PENDING]))
    fake.put({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
              "metadata": {"name": "vision", "namespace": "vision"}, "spec": {"clusterQueue": "vision"}})
    fake.fail_next(5, 403, path_regex="/clusterqueues/")
    out = cli("job", "status", "j", "--team", "vision", "-b", str(THREE_TEAMS)).output
    assert "the team holds 0 of its 8 guaranteed GPUs there and may borrow up to 4 more" in out


def _job(**status):
    return {"metadata": {"name": "j", "namespace": "vision"}, "spec": {"suspend": not status}, "status": status}


@pytest.mark.parametrize(("conditions", "expected"), [
    ([{"type": "QuotaReserved", "status": "False", "reason": "Inadmissible",
       "message": "LocalQueue vision doesn't exist"}], "cannot be admitted: LocalQueue vision doesn't exist."),
    ([{"type": "QuotaReserved", "status": "True"}, {"type": "Admitted", "status": "True"},
      {"type": "PodsReady", "status": "True"}], "running: admitted to h100 and all its pods are ready."),
    ([{"type": "QuotaReserved", "status": "True"}, {"type": "Admitted", "status": "True"}],
     "admitted to h100; its pods are being scheduled and started."),
    ([{"type": "QuotaReserved", "status": "True"}], "quota reserved in h100; waiting for admission checks to pass."),
    ([{"type": "Evicted", "status": "True", "reason": "Preempted", "message": "preempted by a higher priority job"}],
     "evicted (Preempted): preempted by a higher priority job; Kueue will queue it again."),
    ([], "queued in vision; Kueue has not evaluated it yet."),
])
def test_explanations(conditions, expected):
    wl = {"metadata": {"name": "w"}, "status": {"conditions": conditions, "admission": {
        "podSetAssignments": [{"name": "main", "flavors": {GPU: "h100", "cpu": "h100"}}]}}}
    assert explain(_job(), wl, "vision") == expected


def test_explanations_without_workload_or_for_finished_jobs():
    assert explain(_job(), None, "vision").startswith("waiting for Kueue: no Workload exists yet")
    assert explain(_job(), None, None).startswith("not queued")
    done = {"metadata": {"name": "j", "namespace": "v"}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the limit"},
    ]}}
    assert explain(done, None, "v") == "finished: it failed (BackoffLimitExceeded: Job has reached the limit)."
    cq = {"metadata": {"name": "vision"}, "status": {"conditions": [
        {"type": "Active", "status": "False", "reason": "FlavorNotFound", "message": "Can't admit new workloads"}]}}
    wl = {"status": {"conditions": [PENDING]}}
    assert explain(_job(), wl, "vision", None, cq).startswith("cannot be admitted: ClusterQueue vision is inactive")


def test_quota_from_fallback():
    q = quota_from(None, None, (8, None))
    assert q == Quota({"*": 8}, None, {})


def test_list_logs_follow_and_cancel(cli, fake):  # noqa: F811
    for name in ("a", "b"):
        cli("job", "submit", "--team", "vision", "--image", "busybox", "--command", "echo hi", "--name", name)
    fake.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "unqueued", "namespace": "vision"}})
    rows = json.loads(cli("job", "list", "--team", "vision", "-o", "json").output)
    assert [(r["name"], r["state"], r["queue"]) for r in rows] == [("a", "Queued", "vision"), ("b", "Queued", "vision")]
    assert "a" in cli("job", "list").output

    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a-xyz", "namespace": "vision",
                                                              "labels": {"batch.kubernetes.io/job-name": "a"}},
              "spec": {"containers": [{"name": "main"}]}})
    fake.logs[("vision", "a-xyz")] = ["epoch 1", "epoch 2", "done"]
    assert cli("job", "logs", "a", "--team", "vision").output == "epoch 1\nepoch 2\ndone\n"
    assert cli("job", "logs", "a", "-f", "--team", "vision").output == "epoch 1\nepoch 2\ndone\n"
    log_req = fake.requests[-1]
    assert log_req["path"] == "/api/v1/namespaces/vision/pods/a-xyz/log"
    assert log_req["query"] == {"container": "main", "follow": "true"}
    lines = cli("job", "logs", "a", "-f", "--team", "vision", "-o", "json").output.splitlines()
    assert json.loads(lines[-1]) == {"job": "a", "line": "done"}

    from orchestrator.errors import KubernetesError

    with pytest.raises(KubernetesError, match="job b has no pods yet: waiting for Kueue"):
        cli("job", "logs", "b", "--team", "vision")

    assert "job a cancelled" in cli("job", "cancel", "a", "--team", "vision").output
    assert fake.get("batch/v1", "Job", "a", "vision") is None
    with pytest.raises(KubernetesError, match="job a not found"):
        cli("job", "cancel", "a", "--team", "vision")
