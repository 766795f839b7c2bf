"""The typed Python API (``orchestrator.api``) end to end on the embedded AWS emulator: real
terraform, real AWS provider, real moto, in this process.

One small environment (one pool) goes through plan (saved) -> up of that plan (with a progress
callback) -> status -> history -> verify -> drift -> rollback to the up -> down (with a confirm
callback), and every answer is
a typed result whose values are checked: the plan's counts, each stage, the outcome, the
outputs, the records, the chain. The CLI does the same work through these functions
(tests/integration/test_aws_sandbox.py runs it as a subprocess).
"""

from __future__ import annotations

import pytest

from orchestrator import api
from orchestrator.workspace import Workspace
from tests.conftest import require_module

pytestmark = pytest.mark.integration

BP = """blueprint: 1
name: apit
provider: aws
region: us-east-1
network: {cidr: 10.41.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {private_access: {via: inside_network}}
"""


@pytest.fixture(scope="module")
def life(tmp_path_factory, tf_mirror):
    """plan(out) -> up(plan_dir) -> status -> history -> verify -> drift -> rollback -> down, once; each
    result kept."""
    require_module("boto3", "boto3 (the sandbox extra: pip install -e '.[sandbox]')")
    from orchestrator import sandbox

    root = tmp_path_factory.mktemp("api-sandbox")
    file = root / "apit.yaml"
    file.write_text(BP)
    found: dict = {"root": root, "events": [], "asked": []}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFRA_TF_PLUGIN_MIRROR", tf_mirror)
        mp.delenv("INFRA_STATE_DIR", raising=False)
        try:
            found["plan"] = api.plan(file, sandbox=True, out=root / "plans", root=root)
            found["up"] = api.up(file, sandbox=True, plan_dir=root / "plans", auto_approve=True, root=root,
                                 progress=found["events"].append)
            found["status"] = api.status(file, sandbox=True, root=root)
            found["history"] = api.history(file, root=root)
            found["verify"] = api.verify(file, root=root)
            found["drift"] = api.drift(file, sandbox=True, root=root)
            found["rollback"] = api.rollback(file, found["up"].run_id, sandbox=True, auto_approve=True, root=root)
            try:
                api.rollback("apit", "no-such-run", sandbox=True, auto_approve=True, root=root)
            except api.UsageError as exc:
                found["refused"] = exc
            found["rolled"] = api.history("apit", root=root, limit=2)

            def confirm(plan: api.PlanSummary) -> bool:
                found["asked"].append(plan)
                return True

            found["down"] = api.down(file, sandbox=True, confirm=confirm, root=root)
            found["after"] = api.history("apit", root=root, limit=2)
        finally:
            sandbox.stop(Workspace(root=root, name="-").state_dir)
    return found


def test_plan_is_typed_and_counts_what_up_creates(life) -> None:
    plan = life["plan"]
    assert isinstance(plan, api.RunResult) and isinstance(plan.plan, api.PlanSummary)
    assert (plan.command, plan.env, plan.provider, plan.sandbox, plan.outcome) == ("plan", "apit", "aws", True,
                                                                                  "success")
    assert [s.name for s in plan.stages] == ["render", "plan", "save-plan"]
    assert all(isinstance(s, api.StageResult) and s.status == "ok" for s in plan.stages)
    assert plan.plan.has_changes and plan.plan.add > 20 and (plan.plan.change, plan.plan.destroy) == (0, 0)
    assert plan.plan.by_type["aws_vpc"]["add"] == 1 and plan.plan.by_type["aws_eks_cluster"]["add"] == 1
    assert ("module.cluster.aws_vpc.this", "create") in plan.plan.changes and not plan.applied
    assert sum(1 for _, action in plan.plan.changes if action == "create") >= plan.plan.add
    assert [p.pool for p in plan.cost.pools] == ["system"] and plan.cost.total("min") > 0
    assert (life["root"] / "plans" / "apit" / "manifest.json").is_file()


def test_up_applies_the_saved_plan_and_reports_progress(life) -> None:
    up, plan = life["up"], life["plan"]
    assert (up.command, up.outcome, up.applied) == ("up", "success", True)
    assert [s.name for s in up.stages] == ["render", "saved-plan", "apply", "outputs", "configure", "handoff"]
    assert up.stages[2].detail == f"{plan.plan.add} added, 0 changed, 0 destroyed"
    assert up.outputs["cluster_name"] == "apit" and str(up.outputs["vpc_id"]).startswith("vpc-")
    assert dict(up.output_rows)["cluster"] == "apit"
    events = life["events"]
    assert all(isinstance(e, api.ProgressEvent) for e in events)
    assert [e.message for e in events if e.kind == "stage"] == [s.name for s in up.stages]
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) >= plan.plan.add and {e.status for e in steps} >= {"created"}
    assert steps[-1].done == steps[-1].total  # the counter reaches the total
    assert any(e.kind == "info" and e.message.startswith("sandbox: AWS emulator at http://127.0.0.1:") for e in events)


def test_status_history_and_verify_after_up(life) -> None:
    st = life["status"]
    assert isinstance(st, api.EnvStatus)
    assert (st.name, st.provider, st.deployed, st.state) == ("apit", "aws", True, "deployed")
    assert st.outputs["vpc_id"] == life["up"].outputs["vpc_id"] and st.sandbox_server is not None
    assert st.last_run == {**st.last_run, "id": life["up"].run_id, "command": "up", "outcome": "success"}
    hist = life["history"]
    assert [(e.command, e.outcome, e.id) for e in hist.entries] == [
        ("plan", "success", life["plan"].run_id), ("up", "success", life["up"].run_id)]
    assert hist.count == 2 and hist.problems == [] and hist.verified is None
    assert hist.entries[1].restorable and not hist.entries[0].restorable
    assert hist.entries[1].plan["add"] == life["plan"].plan.add
    ver = life["verify"]
    assert ver.verified is True and ver.count == 2 and ver.heads_matched


def test_down_asks_with_the_destroy_plan_and_removes_everything(life) -> None:
    down, [asked] = life["down"], life["asked"]
    assert isinstance(asked, api.PlanSummary) and asked.destroy == life["plan"].plan.add and asked.add == 0
    assert (down.command, down.outcome, down.applied) == ("down", "success", True)
    assert [s.name for s in down.stages] == ["render", "plan-destroy", "apply"]
    assert down.plan is not None and down.plan.destroy == asked.destroy
    assert [(e.command, e.outcome) for e in life["after"].entries] == [
        ("up", life["rollback"].run.outcome), ("down", "success")]
    assert life["after"].count == 5  # plan, up, drift, rollback, down


def test_drift_right_after_up_finds_none(life) -> None:
    drift = life["drift"]
    assert isinstance(drift, api.DriftResult) and isinstance(drift.run, api.RunResult)
    assert (drift.drifted, drift.items, drift.exit_code) == (False, [], 0)
    assert (drift.run.command, drift.run.outcome, drift.run.applied) == ("drift", "no-changes", False)
    assert [(s.name, s.detail) for s in drift.run.stages][1:] == [("drift", "no drift")]


def test_rollback_to_the_first_up_is_a_typed_run_recorded_as_a_rollback(life) -> None:
    back = life["rollback"]
    assert isinstance(back, api.RollbackResult) and back.rollback_of == life["up"].run_id
    assert back.run.run_id not in (life["up"].run_id, life["drift"].run.run_id)
    assert (back.run.env, back.run.sandbox, back.run.outcome) == ("apit", True, "no-changes")
    assert back.run.plan is not None and not back.run.plan.has_changes and not back.run.applied
    assert back.blueprint_file.name == f"rollback-{life['up'].run_id}.yaml"  # under .infra/ (gone with down)
    assert back.blueprint_file.is_relative_to(life["root"] / ".infra")
    newest = life["rolled"].entries[-1]
    assert (newest.id, newest.command, newest.rollback_of) == (back.run.run_id, "up", life["up"].run_id)
    refused = life["refused"]
    assert refused.exit_code == 2 and "no run 'no-such-run' recorded for apit" in refused.message
