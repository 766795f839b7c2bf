"""The typed Python API (``orchestrator.api``): each command's work through it, typed results with
checked values, typed errors carrying the documented exit codes. Real loader, renderer, records and
(for jobs) the Kubernetes test double; plan/up/status/history/verify/down against the AWS emulator
with real Terraform are in tests/integration/test_api_sandbox.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator import api
from tests.blueprints import LABS_ROLLOUT, UNREACHABLE_LAB
from tests.conftest import EXAMPLES
from tests.unit.kube_fixtures import THREE_TEAMS, fake, kubeconfig, team_namespaces  # noqa: F401

BAD = """blueprint: 1
name: bad
provider: aws
region: us-east-1
kubernetes: {private_access: {via: inside_network}}
node_pools:
  - name: system
    instance_type: m6i.large
    min: 3
    max: 1
"""


def _onprem(tmp_path: Path) -> Path:
    """The on-prem example with its SSH key read from a file here (no hosts are contacted by a plan)."""
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    text = (EXAMPLES / "onprem-gpu.yaml").read_text().replace("${file:~/.ssh/id_ed25519}", f"${{file:{key}}}")
    assert str(key) in text
    file = tmp_path / "onprem.yaml"
    file.write_text(text)
    return file


# --- load and validate ----------------------------------------------------------------------------


def test_load_returns_the_typed_environment() -> None:
    env = api.load(EXAMPLES / "sandbox.yaml")
    assert isinstance(env, api.Environment)
    assert (env.name, env.provider, env.path) == ("demo", "aws", EXAMPLES / "sandbox.yaml")
    assert len(env.sha256) == 64 and [p.name for p in env.blueprint.node_pools] == ["system", "a100", "l4"]


def test_load_of_a_bad_blueprint_raises_a_located_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    with pytest.raises(api.BlueprintError) as info:
        api.load(bad)
    assert info.value.exit_code == 2
    [problem] = info.value.problems
    assert isinstance(problem, api.Problem)
    assert (problem.file, problem.line, problem.column, problem.path) == (str(bad), 9, 10, "node_pools[0].min")
    assert problem.message == "must be <= max (1)"


def test_validate_reports_every_file_without_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    missing = tmp_path / "missing.yaml"
    report = api.validate([EXAMPLES / "sandbox.yaml", bad, missing], root=tmp_path)
    assert isinstance(report, api.ValidationReport)
    good, wrong, unread = report.files
    assert (good.kind, good.ok, good.name, good.problems, good.error) == ("blueprint", True, "demo", [], None)
    assert (wrong.ok, wrong.name, wrong.file) == (False, None, str(bad))
    assert [(p.file, p.line, p.path) for p in wrong.problems] == [(str(bad), 9, "node_pools[0].min")]
    assert unread.ok is False and unread.problems == [] and unread.error.startswith(f"cannot read blueprint {missing}")
    assert (report.ok, report.problem_count, report.unreadable, report.exit_code) == (False, 1, 1, 2)
    assert wrong.as_json() == {"file": str(bad), "ok": False, "problems": [str(wrong.problems[0])]}
    assert api.validate([EXAMPLES / "sandbox.yaml"], root=tmp_path).exit_code == 0


def test_validate_a_selection_without_a_rollout_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(api.UsageError) as info:
        api.validate([EXAMPLES / "sandbox.yaml"], include=["demo"], root=tmp_path)
    assert info.value.exit_code == 2 and "rollout file" in info.value.message


# --- render ---------------------------------------------------------------------------------------


def test_render_writes_the_tree_and_returns_its_files(tmp_path: Path) -> None:
    [first] = api.render([EXAMPLES / "sandbox.yaml"], out=tmp_path / "out", root=tmp_path)
    assert isinstance(first, api.Rendered) and first.name == "demo"
    assert first.root == tmp_path / "out" / "demo" and set(first.parts) == {"terraform", "kubernetes"}
    on_disk = sorted(p for p in first.root.rglob("*") if p.is_file())
    assert first.files == on_disk and tmp_path / "out/demo/terraform/main.tf" in first.files
    assert first.counts() == {"written": len(on_disk), "unchanged": 0, "removed": 0} and first.changed
    [again] = api.render([EXAMPLES / "sandbox.yaml"], out=tmp_path / "out", root=tmp_path)
    assert again.counts() == {"written": 0, "unchanged": len(on_disk), "removed": 0} and not again.changed
    assert again.files == first.files
    assert json.loads(json.dumps(again.as_json()))["changed"] is False


def test_render_of_several_files_checks_all_first(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    with pytest.raises(api.BlueprintError):
        api.render([EXAMPLES / "sandbox.yaml", bad], out=tmp_path / "out", root=tmp_path)
    assert not (tmp_path / "out").exists()  # a problem renders nothing
    both = api.render([EXAMPLES / "sandbox.yaml", EXAMPLES / "aws-gpu.yaml"], out=tmp_path / "out", root=tmp_path)
    assert [r.name for r in both] == ["demo", api.load(EXAMPLES / "aws-gpu.yaml").name]


# --- plan, history, verify, down without a cloud (bare metal) --------------------------------------


def test_plan_history_and_verify_on_bare_metal(tmp_path: Path) -> None:
    file = _onprem(tmp_path)
    events: list[api.ProgressEvent] = []
    result = api.plan(file, root=tmp_path, progress=events.append)
    assert isinstance(result, api.RunResult)
    assert (result.command, result.env, result.provider, result.outcome) == ("plan", "onprem", "baremetal", "success")
    assert [s.name for s in result.stages] == ["render", "hosts"] and result.plan is None and not result.applied
    assert result.stages[1].detail == "4 hosts to configure with ansible/site.yml (no cloud resources)"
    assert [e.message for e in events if e.kind == "stage"] == ["render", "hosts"]
    assert result.cost is not None and result.cost.note  # bare metal: owned hardware, no list price
    second = api.plan(file, root=tmp_path)
    hist = api.history(file, root=tmp_path)
    assert isinstance(hist, api.History) and hist.env == "onprem"
    assert [(e.seq, e.id, e.command, e.outcome) for e in hist.entries] == [
        (1, result.run_id, "plan", "success"), (2, second.run_id, "plan", "success")]
    assert hist.count == 2 and hist.problems == [] and hist.verified is None
    assert all(isinstance(e, api.HistoryEntry) and e.ok and not e.restorable for e in hist.entries)
    assert [e.id for e in api.history("onprem", root=tmp_path, limit=1).entries] == [second.run_id]
    checked = api.verify(file, root=tmp_path)
    assert checked.verified is True and checked.count == 2


def test_verify_of_an_edited_record_raises_exit_8(tmp_path: Path) -> None:
    file = _onprem(tmp_path)
    api.plan(file, root=tmp_path)
    [record] = (tmp_path / ".infra" / "records" / "onprem").glob("*.json")
    data = json.loads(record.read_text())
    data["outcome"] = "failed"
    record.write_text(json.dumps(data))
    found = api.history(file, root=tmp_path, verify=True)  # no raise: the problems are in the result
    assert found.verified is False and found.entries[0].outcome == "failed"
    with pytest.raises(api.AuditError) as info:
        api.verify(file, root=tmp_path)
    assert info.value.exit_code == 8
    assert any("modified after it was written" in p for p in info.value.problems)


def test_down_on_bare_metal_is_a_typed_usage_error(tmp_path: Path) -> None:
    with pytest.raises(api.UsageError) as info:
        api.down(_onprem(tmp_path), auto_approve=True, root=tmp_path)
    assert info.value.exit_code == 2 and "no cloud resources to destroy" in info.value.message


def test_history_of_something_that_is_not_an_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(api.UsageError, match="neither an environment name"):
        api.history("Not/A/Name", root=tmp_path)
    assert api.history("nothing-here", root=tmp_path).entries == []


def test_status_of_a_bare_metal_environment_never_configured(tmp_path: Path) -> None:
    st = api.status(_onprem(tmp_path), root=tmp_path)
    assert isinstance(st, api.EnvStatus)
    assert (st.name, st.provider, st.deployed, st.state, st.last_run) == (
        "onprem", "baremetal", False, "not configured", None)
    assert sorted(st.outputs["hosts"]) == ["cp-1", "dgx-01", "dgx-02", "infer-01"]


# --- jobs against the Kubernetes test double ----------------------------------------------------


@pytest.fixture()
def cluster(kubeconfig, fake, team_namespaces):  # noqa: F811
    return {"kubeconfig": kubeconfig}


def test_job_submit_status_list_cancel(cluster, fake) -> None:  # noqa: F811
    info = api.submit_job(team="nlp", image="pytorch", command="python -c 'print(1)'", gpus=1, name="j1",
                          blueprint=THREE_TEAMS, **cluster)
    assert info == api.JobInfo(name="j1", namespace="nlp-team", team="nlp", queue="nlp", state="Queued", gpus=1,
                               created=info.created)
    job = fake.get("batch/v1", "Job", "j1", "nlp-team")
    assert job["spec"]["suspend"] is True
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-c", "print(1)"]
    st = api.job_status("j1", team="nlp", blueprint=THREE_TEAMS, **cluster)
    assert isinstance(st, api.JobStatus) and st.job.name == "j1" and st.job.state == "Queued"
    assert st.workload is None and st.conditions == [] and "Kueue" in st.explanation
    listed = api.list_jobs(namespace="nlp-team", **cluster)
    assert [(j.name, j.state, j.gpus) for j in listed] == [("j1", "Queued", 1)]
    with pytest.raises(api.KubernetesError) as info:
        list(api.job_logs("j1", namespace="nlp-team", **cluster))
    assert info.value.exit_code == 5 and "has no pods yet" in info.value.message
    assert api.cancel_job("j1", namespace="nlp-team", **cluster) == "nlp-team"
    assert api.list_jobs(namespace="nlp-team", **cluster) == []
    with pytest.raises(api.KubernetesError) as info:
        api.job_status("j1", namespace="nlp-team", **cluster)
    assert info.value.exit_code == 5 and "not found" in info.value.message


def test_job_submit_without_a_team_is_a_usage_error(cluster) -> None:
    with pytest.raises(api.UsageError, match="--team is required") as info:
        api.submit_job(team="", image="busybox", command="true", **cluster)
    assert info.value.exit_code == 2


def test_a_missing_example_is_still_a_typed_error(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "sandbox.yaml", tmp_path / "env.yml")
    assert api.load(tmp_path / "env.yml").name == "demo"
    with pytest.raises(api.UsageError) as info:
        api.load(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2 and info.value.message.startswith("cannot read blueprint")


# --- configure, handoff, models, report, state, sandbox, init, graph ------------------------------

LAB, ROLLOUT = UNREACHABLE_LAB, LABS_ROLLOUT


def _labs(tmp_path: Path) -> Path:
    for name in ("lab-a", "lab-b", "lab-c"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name))
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    return tmp_path / "rollout.yaml"


def test_configure_in_check_mode_names_the_unreachable_host_with_exit_4(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.format(name="lab"))
    events: list[api.ProgressEvent] = []
    with pytest.raises(api.AnsibleError) as info:  # real ansible-playbook, check mode, a closed port
        api.configure(tmp_path / "lab.yaml", check=True, root=tmp_path, progress=events.append)
    assert info.value.exit_code == 4 and "node-1 unreachable" in info.value.message
    assert [e.message for e in events if e.kind == "stage"] == ["render", "configure"]
    [entry] = api.history("lab", root=tmp_path).entries
    assert (entry.command, entry.outcome) == ("configure", "failed")


def test_configure_of_a_cloud_environment_has_no_hosts_to_configure(tmp_path: Path) -> None:
    result = api.configure(EXAMPLES / "sandbox.yaml", root=tmp_path)
    assert isinstance(result, api.RunResult)
    assert (result.command, result.env, result.provider, result.outcome) == ("configure", "demo", "aws", "success")
    assert [(s.name, s.status) for s in result.stages] == [("render", "ok"), ("configure", "ok")]
    assert result.stages[1].detail == "skipped: no hosts to configure (managed node groups only)"
    assert result.plan is None and not result.applied and (tmp_path / "build/demo/terraform/main.tf").is_file()


def test_handoff_applies_the_rendered_manifests_to_the_cluster(tmp_path: Path, kubeconfig, fake) -> None:  # noqa: F811
    result = api.handoff(THREE_TEAMS, kubeconfig=kubeconfig, wait=False, root=tmp_path)
    assert (result.command, result.env, result.outcome) == ("handoff", "gpu-lab", "success")
    assert [(s.name, s.status) for s in result.stages] == [("render", "ok"), ("handoff", "ok")]
    assert fake.get("v1", "Namespace", "nlp-team") is not None
    assert fake.get("kueue.x-k8s.io/v1beta1", "ClusterQueue", "nlp") is not None
    assert fake.get("apps/v1", "Deployment", "resnet50", "vision") is not None
    [entry] = api.history("gpu-lab", root=tmp_path).entries
    assert (entry.id, entry.command, entry.outcome) == (result.run_id, "handoff", "success")


def test_model_deploy_list_delete(cluster, fake) -> None:  # noqa: F811
    deployed = api.deploy_models(["resnet50"], blueprint=THREE_TEAMS, wait=False, **cluster)
    assert isinstance(deployed, api.ModelDeployment)
    assert deployed.created == ["Deployment/vision/resnet50", "Service/vision/resnet50"]
    assert deployed.applied == deployed.created and deployed.waited_s == 0 and deployed.not_ready == []
    adhoc = api.deploy_models(uri="https://x.example/m.onnx", name="adhoc", team="t", wait=False, **cluster)
    assert adhoc.created == ["Deployment/t/adhoc", "Service/t/adhoc"]
    listed = api.list_models(**cluster)
    assert all(isinstance(m, api.ModelInfo) for m in listed)
    assert [(m.name, m.namespace, m.runtime, m.source) for m in listed] == [
        ("adhoc", "t", "onnx", "ad-hoc"), ("resnet50", "vision", "onnx", "blueprint gpu-lab")]
    assert listed[1].endpoint == "http://resnet50.vision.svc:8000/v2/models/resnet50/infer"
    assert listed[1].uri == "s3://models/resnet50.onnx" and listed[1].team == "vision"
    assert api.delete_model("adhoc", namespace="t", **cluster) == api.ModelDeletion(
        deleted=["Deployment/t/adhoc", "Service/t/adhoc"], warning=None)
    gone = api.delete_model("resnet50", team="vision", blueprint=THREE_TEAMS, **cluster)
    assert gone.deleted[0] == "Deployment/vision/resnet50" and "part of blueprint 'gpu-lab'" in gone.warning
    assert api.list_models(**cluster) == []
    with pytest.raises(api.KubernetesError) as info:
        api.delete_model("resnet50", team="vision", **cluster)
    assert info.value.exit_code == 5 and "no model resnet50 in namespace vision" in info.value.message
    with pytest.raises(api.UsageError, match="no model named ghost"):
        api.deploy_models(["ghost"], blueprint=THREE_TEAMS, wait=False, **cluster)


def test_report_writes_the_page_and_names_its_environments(tmp_path: Path) -> None:
    rollout = _labs(tmp_path)
    api.plan(tmp_path / "lab-a.yaml", root=tmp_path)
    page = api.report([rollout], html=tmp_path / "out.html", root=tmp_path)
    assert isinstance(page, api.Report) and page.path == tmp_path / "out.html"
    assert page.environments == ["lab-a", "lab-b", "lab-c"] and page.waves == [["lab-a", "lab-c"], ["lab-b"]]
    text = page.path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "lab-b" in text and page.title in text
    assert page.path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(api.UsageError, match="is a folder") as info:
        api.report([rollout], html=tmp_path, root=tmp_path)
    assert info.value.exit_code == 2


def test_graph_is_the_rollouts_order(tmp_path: Path) -> None:
    found = api.graph(_labs(tmp_path))
    assert isinstance(found, api.RolloutGraph)
    assert (found.name, found.max_parallel, found.waves) == ("labs", 2, [["lab-a", "lab-c"], ["lab-b"]])
    assert found.after == {"lab-a": [], "lab-b": ["lab-a"], "lab-c": []}
    assert set(found.providers.values()) == {"baremetal"}
    assert found.text.splitlines()[1:] == ["  1. lab-a (baremetal)", "  1. lab-c (baremetal)",
                                           "  2. lab-b (baremetal)  after lab-a"]
    assert "  lab_a --> lab_b" in found.mermaid.splitlines()
    assert api.graph(tmp_path / "rollout.yaml", reverse=True).waves == [["lab-b", "lab-c"], ["lab-a"]]


def test_init_writes_the_scaffold_once(tmp_path: Path) -> None:
    written = api.init(tmp_path / "repo", state_bucket="acme-state")
    repo = tmp_path / "repo"
    assert sorted(str(p.relative_to(repo)) for p in written) == [
        ".github/actionlint.yaml", ".github/workflows/infra.yml", ".gitignore", "README.md", "blueprints/dev.yaml",
        "blueprints/prod.yaml", "rollout.yaml"]
    assert all(p.is_file() for p in written) and "acme-state-dev" in (repo / "blueprints/dev.yaml").read_text()
    assert api.validate([repo / "rollout.yaml"], root=repo).ok
    with pytest.raises(api.UsageError, match="exists already") as info:
        api.init(repo)
    assert info.value.exit_code == 2


def test_state_bootstrap_says_what_each_backend_needs(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.format(name="lab"))
    none = api.bootstrap_state(tmp_path / "lab.yaml", root=tmp_path)
    assert isinstance(none, api.StateBootstrap)
    assert (none.backend, none.target, none.created, none.commands) == ("none", "-", False, [])
    local = api.bootstrap_state(EXAMPLES / "sandbox.yaml", root=tmp_path)
    assert (local.backend, local.target) == ("local", str(tmp_path / ".infra/env/demo/terraform.tfstate"))
    gcs = api.bootstrap_state(EXAMPLES / "gcp-gpu.yaml", root=tmp_path)
    assert gcs.backend == "gcs" and gcs.commands and any("acme-ml-tf-state" in c for c in gcs.commands)
    assert gcs.as_json()["commands"] == gcs.commands and not gcs.created


def test_sandbox_status_without_an_emulator_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator import sandbox

    monkeypatch.delenv(sandbox.ENDPOINT_ENV, raising=False)
    assert api.sandbox_status(root=tmp_path) is None
    assert api.sandbox_stop(root=tmp_path) is None


def test_rollback_refuses_an_unknown_run_and_one_that_applied_nothing(tmp_path: Path) -> None:
    file = _onprem(tmp_path)
    planned = api.plan(file, root=tmp_path)
    with pytest.raises(api.UsageError, match="no run 'nope' recorded for onprem") as info:
        api.rollback("onprem", "nope", auto_approve=True, root=tmp_path)
    assert info.value.exit_code == 2
    with pytest.raises(api.UsageError, match=f"run {planned.run_id} of onprem cannot be rolled back to"):
        api.rollback(file, planned.run_id, auto_approve=True, root=tmp_path)
    with pytest.raises(api.UsageError, match="neither an environment name"):
        api.rollback("Not/A/Name", planned.run_id, root=tmp_path)
    assert api.history("onprem", root=tmp_path).count == 1  # nothing recorded by a refusal


def test_drift_on_bare_metal_checks_the_hosts_and_fails_typed_when_unreachable(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.format(name="lab"))
    with pytest.raises(api.AnsibleError) as info:  # check mode over a host that does not answer
        api.drift(tmp_path / "lab.yaml", root=tmp_path)
    assert info.value.exit_code == 4 and "node-1 unreachable" in info.value.message
    [entry] = api.history("lab", root=tmp_path).entries
    assert (entry.command, entry.outcome) == ("drift", "failed")
