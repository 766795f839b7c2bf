"""The pipeline (``orchestrator.stages``) with an in-process stand-in for the Terraform CLI.

The fake replaces only the external process (``terraform init/plan/apply/output``) and records
each call; the stages, the lock, the record writing are the real ones. What is checked: the lock
is held while a stage runs, a plan without changes is never applied, every outcome is written
to a record file, and each command runs its stages in the documented order
(docs/records.md, "Stages per command").
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from orchestrator import records
from orchestrator.blueprint.loader import load
from orchestrator.engines.tfjson import ApplyResult, PlanResult
from orchestrator.errors import Cancelled, ConfirmationRequired, Interrupted, LockedError, TerraformError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.records_heads import HEAD_DIR_ENV
from orchestrator.stages.context import Context, RunState, new_record
from orchestrator.stages.pipeline import pipeline, run
from orchestrator.workspace import STATE_DIR_ENV, Workspace
from tests.conftest import EXAMPLES

CHANGES = PlanResult(has_changes=True, add=2,
                     by_type={"aws_eks_cluster": {"add": 1}, "aws_security_group_rule": {"add": 1}},
                     changes=[("aws_security_group_rule.api", "create"), ("aws_eks_cluster.this", "create")])
NO_CHANGES = PlanResult(has_changes=False)
OUTPUTS = {"cluster_name": "demo", "cluster_endpoint": "https://demo.example", "cluster_ca": "Y2E="}
EARLY = "output while planning"


def _in_order(calls: list[str]) -> list[str]:
    """The calls made in the run's own thread, in order (the early output read runs beside the plan)."""
    return [c for c in calls if c != EARLY]


class FakeTerraform:
    """Stands in for the terraform CLI: answers ``plan`` with a given result, records each call,
    and can be told to fail ``apply`` or to block inside ``plan``."""

    binary = "terraform"

    def __init__(self, plan: PlanResult, apply_error: BaseException | None = None,
                 in_plan: threading.Event | None = None, release: threading.Event | None = None) -> None:
        self.result = plan
        self.apply_error = apply_error
        self.plan_error: BaseException | None = None
        self.in_plan = in_plan
        self.release = release
        self.calls: list[str] = []

    def init(self, backend_config: dict[str, str] | None = None) -> None:
        self.calls.append("init")

    def version(self) -> dict[str, object]:
        return {"terraform_version": "1.9.8", "provider_selections": {"registry/hashicorp/aws": "5.80.0"}}

    def plan(self, plan_file: Path, destroy: bool = False) -> PlanResult:
        self.calls.append("plan -destroy" if destroy else "plan")
        if self.in_plan is not None and self.release is not None:
            self.in_plan.set()
            assert self.release.wait(30), "the test never released the plan"
        return self.result

    def apply(self, plan_file: Path, total: int | None = None) -> ApplyResult:
        self.calls.append("apply")
        if self.apply_error is not None:
            raise self.apply_error
        return ApplyResult(add=self.result.add, change=self.result.change, destroy=self.result.destroy)

    def plan_and_apply(self, on_plan, *, destroy: bool = False) -> tuple[PlanResult, ApplyResult]:
        """One ``terraform apply -auto-approve``: the plan goes to ``on_plan`` while it applies."""
        self.calls.append("plan+apply -destroy" if destroy else "plan+apply")
        if self.plan_error is not None:
            raise self.plan_error
        on_plan(self.result)
        if self.apply_error is not None:
            raise self.apply_error
        if not self.result.has_changes:
            return self.result, ApplyResult()
        return self.result, ApplyResult(add=self.result.add, change=self.result.change, destroy=self.result.destroy)

    def state_resources(self) -> list[dict]:
        return [{"mode": "managed", "type": "aws_vpc", "name": "this"},
                {"mode": "managed", "type": "aws_security_group", "name": "node", "module": "module.cluster"},
                {"mode": "data", "type": "aws_availability_zones", "name": "available"}]

    def refresh_state(self, targets=()) -> None:
        self.calls.append(" ".join(["refresh", *targets]))

    def output(self) -> dict[str, object]:
        if threading.current_thread() is not threading.main_thread():  # `up` reads them while it plans
            self.calls.append(EARLY)
            # with changes, what the apply makes differs from what was there: the early read is stale
            return {**OUTPUTS, "cluster_endpoint": "https://before.example"} if self.result.has_changes else OUTPUTS
        self.calls.append("output")
        return dict(OUTPUTS)


@pytest.fixture(autouse=True)
def _no_heads(monkeypatch):
    for name in (STATE_DIR_ENV, HEAD_DIR_ENV, records.HMAC_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


def _context(tmp_path: Path, engine: FakeTerraform, command: str = "up", confirm=lambda plan: True,
             example: str = "sandbox.yaml", approves_any: bool = False) -> Context:
    """``example`` as ``command`` runs it; ``sandbox`` workspace, so the handoff validates only."""
    loaded = load(EXAMPLES / example)
    provider = get(loaded.model.provider)
    sandbox = provider.sandbox
    return Context(
        loaded=loaded, provider=provider, ws=Workspace(root=tmp_path, name=loaded.model.name, sandbox=sandbox),
        progress=Progress(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False),
        confirm=confirm, state=RunState(record=new_record(loaded, command, sandbox)),
        make_terraform=lambda ctx: engine, approves_any=approves_any,
    )


def _written(tmp_path: Path, env: str = "demo") -> list[dict]:
    """The record files on disk, oldest first."""
    folder = tmp_path / ".infra" / "records" / env
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _stages(record: dict) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in record["stages"]]


# --- the lock -----------------------------------------------------------------------------------


def test_a_second_run_while_a_stage_runs_is_refused_by_the_lock(tmp_path: Path) -> None:
    in_plan, release = threading.Event(), threading.Event()
    first = FakeTerraform(CHANGES, in_plan=in_plan, release=release)
    errors: list[BaseException] = []

    def first_run() -> None:
        try:
            run(_context(tmp_path, first, "plan"), "plan")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert in_plan.wait(30), "the first run never reached its plan"
        second = FakeTerraform(CHANGES)
        with pytest.raises(LockedError):
            run(_context(tmp_path, second, "plan"), "plan")
        assert second.calls == []  # refused before any stage ran
    finally:
        release.set()
        thread.join(30)
    assert errors == []
    # the refused run is recorded too (docs/records.md: every run writes one), before the first ends
    assert [(r["command"], r["outcome"]) for r in _written(tmp_path)] == [("plan", "locked"), ("plan", "success")]
    run(_context(tmp_path, FakeTerraform(NO_CHANGES), "plan"), "plan")  # released: the next run proceeds
    assert [r["outcome"] for r in _written(tmp_path)] == ["locked", "success", "no-changes"]


# --- no changes, no apply -----------------------------------------------------------------------


def test_a_plan_without_changes_is_never_applied(tmp_path: Path) -> None:
    engine = FakeTerraform(NO_CHANGES)
    asked: list[PlanResult] = []
    ctx = run(_context(tmp_path, engine, confirm=lambda plan: asked.append(plan) or True), "up")
    # the outputs were read while it planned; nothing applied, so they are used: no second call
    assert _in_order(engine.calls) == ["init", "plan"] and engine.calls.count(EARLY) == 1
    assert ctx.state.outputs == OUTPUTS
    assert asked == [] and ctx.state.applied is False
    [record] = _written(tmp_path)
    assert record["outcome"] == "no-changes"
    assert record["stages"][2]["detail"] == "skipped: the plan has no changes"
    assert record["plan"] == {"has_changes": False, "add": 0, "change": 0, "destroy": 0, "by_type": {}}


def test_outputs_that_could_not_be_read_while_planning_are_read_again(tmp_path: Path) -> None:
    class EarlyReadFails(FakeTerraform):
        def output(self) -> dict[str, object]:
            if threading.current_thread() is not threading.main_thread():
                self.calls.append(EARLY)
                raise TerraformError("state snapshot was being written")
            return super().output()

    engine = EarlyReadFails(NO_CHANGES)
    ctx = run(_context(tmp_path, engine), "up")
    assert _in_order(engine.calls) == ["init", "plan", "output"] and ctx.state.outputs == OUTPUTS


def test_a_destroy_plan_without_changes_is_never_applied(tmp_path: Path) -> None:
    engine = FakeTerraform(NO_CHANGES)
    run(_context(tmp_path, engine, "down"), "down")
    assert engine.calls == ["init", "plan -destroy"]
    assert [r["outcome"] for r in _written(tmp_path)] == ["no-changes"]


# --- every outcome is recorded ------------------------------------------------------------------


def test_success_is_recorded(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES)
    ctx = run(_context(tmp_path, engine), "up")
    # refreshed where other resources change attributes (data/terraform/settling.yaml): `infra drift` starts clean
    assert _in_order(engine.calls) == ["init", "plan", "apply", "refresh module.cluster.aws_security_group.node",
                                       "output"]
    assert ctx.state.applied is True and ctx.state.outputs == OUTPUTS  # read after the apply, not the early ones
    [record] = _written(tmp_path)
    assert (record["command"], record["outcome"], record["error"]) == ("up", "success", None)
    assert record["versions"]["terraform"] == "1.9.8"
    assert record["stages"][2]["detail"] == "2 added, 0 changed, 0 destroyed"


def test_a_failed_apply_is_recorded(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES, apply_error=TerraformError("aws_eks_cluster.this: creating EKS cluster: denied"))
    with pytest.raises(TerraformError):
        run(_context(tmp_path, engine), "up")
    [record] = _written(tmp_path)
    assert record["outcome"] == "failed"
    assert record["error"] == "aws_eks_cluster.this: creating EKS cluster: denied"
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "failed")]


def test_a_declined_confirmation_is_recorded_as_cancelled(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES)
    with pytest.raises(Cancelled):
        run(_context(tmp_path, engine, confirm=lambda plan: False), "up")
    assert _in_order(engine.calls) == ["init", "plan"]
    [record] = _written(tmp_path)
    assert record["outcome"] == "cancelled"
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "failed")]


def test_a_confirmation_that_cannot_be_asked_is_recorded_as_cancelled(tmp_path: Path) -> None:
    def no_terminal(plan: PlanResult) -> bool:
        raise ConfirmationRequired("refusing to apply without confirmation: standard input is not a terminal")

    engine = FakeTerraform(CHANGES)
    with pytest.raises(ConfirmationRequired):
        run(_context(tmp_path, engine, confirm=no_terminal), "up")
    assert _in_order(engine.calls) == ["init", "plan"]
    assert [r["outcome"] for r in _written(tmp_path)] == ["cancelled"]


@pytest.mark.parametrize("interrupt", [Interrupted("interrupted: terraform saved its state"), KeyboardInterrupt()])
def test_an_interrupted_apply_is_recorded(tmp_path: Path, interrupt: BaseException) -> None:
    engine = FakeTerraform(CHANGES, apply_error=interrupt)
    with pytest.raises(type(interrupt)):
        run(_context(tmp_path, engine), "up")
    [record] = _written(tmp_path)
    assert record["outcome"] == "interrupted"
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "failed")]


# --- the stage order per provider and command (docs/records.md) ---------------------------------


def _names(stages) -> list[str]:
    return [s.name for s in stages]


def test_cloud_stage_order_per_command() -> None:
    aws = get("aws")
    assert _names(pipeline("plan", aws)) == ["render", "plan"]
    assert _names(pipeline("up", aws)) == ["render", "plan", "apply", "outputs", "configure", "handoff"]
    assert _names(pipeline("down", aws)) == ["render", "plan-destroy", "apply"]


def test_bare_metal_stage_order_per_command() -> None:
    baremetal = get("baremetal")
    assert _names(pipeline("plan", baremetal)) == ["render", "hosts"]
    assert _names(pipeline("up", baremetal)) == ["render", "configure", "handoff"]


def test_up_runs_and_records_the_stages_in_order(tmp_path: Path) -> None:
    run(_context(tmp_path, FakeTerraform(CHANGES)), "up")
    [record] = _written(tmp_path)
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "ok"), ("outputs", "ok"),
                               ("configure", "ok"), ("handoff", "ok")]


def test_down_runs_and_records_the_stages_in_order(tmp_path: Path) -> None:
    engine = FakeTerraform(PlanResult(has_changes=True, destroy=2, changes=[("aws_vpc.this", "delete")]))
    ctx = run(_context(tmp_path, engine, "down"), "down")
    assert engine.calls == ["init", "plan -destroy", "apply"] and ctx.state.applied is True
    [record] = _written(tmp_path)
    assert (record["command"], record["outcome"]) == ("down", "success")
    assert _stages(record) == [("render", "ok"), ("plan-destroy", "ok"), ("apply", "ok")]


def test_bare_metal_plan_runs_no_terraform(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES)
    run(_context(tmp_path, engine, "plan", example="onprem-gpu.yaml"), "plan")
    assert engine.calls == []
    [record] = _written(tmp_path, load(EXAMPLES / "onprem-gpu.yaml").model.name)
    assert (record["outcome"], _stages(record)) == ("success", [("render", "ok"), ("hosts", "ok")])


# --- --auto-approve: plan and apply in one terraform call (issue 24) ----------------------------


def test_auto_approved_up_plans_and_applies_in_one_call_recording_both_stages(tmp_path: Path) -> None:
    shown: list[PlanResult] = []
    engine = FakeTerraform(CHANGES)
    ctx = _context(tmp_path, engine, confirm=lambda plan: shown.append(plan) or True, approves_any=True)
    run(ctx, "up")
    assert _in_order(engine.calls) == ["init", "plan+apply", "refresh module.cluster.aws_security_group.node",
                                       "output"]
    assert shown == [CHANGES]  # the plan is shown (the CLI prints its table) while terraform applies it
    [record] = _written(tmp_path)
    assert record["outcome"] == "success"
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "ok"), ("outputs", "ok"),
                               ("configure", "ok"), ("handoff", "ok")]
    assert [s["detail"] for s in record["stages"][1:3]] == ["2 to add, 0 to change, 0 to destroy",
                                                            "2 added, 0 changed, 0 destroyed"]
    assert record["plan"]["by_type"] == CHANGES.by_type
    text = ctx.progress.stream.getvalue()  # the plan's result before the apply's header, each once
    assert text.index("2 to add") < text.index("==> apply") < text.index("2 added")
    assert text.count("==> apply") == 1 and text.count("==> plan") == 1


def test_auto_approved_down_destroys_in_one_call(tmp_path: Path) -> None:
    engine = FakeTerraform(PlanResult(has_changes=True, destroy=2, changes=[("aws_vpc.this", "delete")]))
    ctx = run(_context(tmp_path, engine, "down", approves_any=True), "down")
    assert engine.calls == ["init", "plan+apply -destroy"] and ctx.state.applied is True
    [record] = _written(tmp_path)
    assert _stages(record) == [("render", "ok"), ("plan-destroy", "ok"), ("apply", "ok")]


def test_auto_approved_up_with_nothing_to_change_applies_nothing(tmp_path: Path) -> None:
    engine = FakeTerraform(NO_CHANGES)
    ctx = run(_context(tmp_path, engine, approves_any=True), "up")
    assert _in_order(engine.calls) == ["init", "plan+apply"]  # outputs: the ones read while planning
    assert ctx.state.applied is False and ctx.state.outputs == OUTPUTS
    [record] = _written(tmp_path)
    assert record["outcome"] == "no-changes"
    assert record["stages"][2]["detail"] == "skipped: the plan has no changes"


def test_one_call_failing_after_the_plan_is_an_apply_failure(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES, apply_error=TerraformError("aws_eks_cluster.this: creating EKS cluster: denied"))
    with pytest.raises(TerraformError):
        run(_context(tmp_path, engine, approves_any=True), "up")
    [record] = _written(tmp_path)
    assert record["outcome"] == "failed"
    assert _stages(record) == [("render", "ok"), ("plan", "ok"), ("apply", "failed")]
    assert record["plan"]["add"] == 2  # what was planned is recorded though the apply failed


@pytest.mark.parametrize("error", [TerraformError("Unsupported argument: main.tf:3"), KeyboardInterrupt()])
def test_one_call_failing_before_the_plan_is_a_plan_failure(tmp_path: Path, error: BaseException) -> None:
    engine = FakeTerraform(CHANGES)
    engine.plan_error = error
    with pytest.raises(type(error)):
        run(_context(tmp_path, engine, approves_any=True), "up")
    [record] = _written(tmp_path)
    assert _stages(record) == [("render", "ok"), ("plan", "failed")]
    assert record["outcome"] == ("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")


def test_without_auto_approve_the_plan_is_confirmed_before_any_apply(tmp_path: Path) -> None:
    engine = FakeTerraform(CHANGES)
    with pytest.raises(Cancelled):
        run(_context(tmp_path, engine, confirm=lambda plan: False, approves_any=False), "up")
    assert _in_order(engine.calls) == ["init", "plan"]


def test_an_apply_that_changes_no_settling_type_refreshes_nothing(tmp_path: Path) -> None:
    """Day 2: resizing a pool changes no resource another resource sets attributes on; but after an
    apply that stopped half-way, whatever it did is settled by the next one."""
    resize = PlanResult(has_changes=True, change=1, by_type={"aws_eks_node_group": {"change": 1}},
                        changes=[('aws_eks_node_group.pool["gpu"]', "update")])
    run(_context(tmp_path, FakeTerraform(CHANGES), approves_any=True), "up")  # settled: refreshed after it
    engine = FakeTerraform(resize)
    run(_context(tmp_path, engine, approves_any=True), "up")
    assert _in_order(engine.calls) == ["init", "plan", "apply", "output"]

    with pytest.raises(Interrupted):
        run(_context(tmp_path, FakeTerraform(resize, apply_error=Interrupted("interrupted")), approves_any=True),
            "up")
    after = FakeTerraform(resize)
    run(_context(tmp_path, after, approves_any=True), "up")
    assert _in_order(after.calls) == ["init", "plan+apply", "refresh module.cluster.aws_security_group.node",
                                      "output"]


def test_auto_approved_up_with_the_inputs_it_last_applied_plans_alone(tmp_path: Path) -> None:
    """The same inputs as the last apply: no change expected, so a plan alone (no apply walk);
    other inputs: one call. Either way what is applied is the plan."""
    first = FakeTerraform(CHANGES)
    ctx = _context(tmp_path, first, approves_any=True)
    ctx.ws.terraform_dir.mkdir(parents=True)
    (ctx.ws.terraform_dir / "main.tf").write_text("# one\n")
    run(ctx, "up")
    assert _in_order(first.calls)[:2] == ["init", "plan+apply"]

    unchanged = FakeTerraform(NO_CHANGES)
    run(_context(tmp_path, unchanged, approves_any=True), "up")
    assert _in_order(unchanged.calls) == ["init", "plan"]

    drifted = FakeTerraform(CHANGES)  # same inputs, yet something to change (drift to revert)
    run(_context(tmp_path, drifted, approves_any=True), "up")
    assert _in_order(drifted.calls)[:3] == ["init", "plan", "apply"]

    (ctx.ws.terraform_dir / "main.tf").write_text("# two\n")
    edited = FakeTerraform(CHANGES)
    run(_context(tmp_path, edited, approves_any=True), "up")
    assert _in_order(edited.calls)[:2] == ["init", "plan+apply"]
    assert [r["outcome"] for r in _written(tmp_path)] == ["success", "no-changes", "success", "success"]
