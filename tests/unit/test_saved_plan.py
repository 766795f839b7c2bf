"""Saved plans (``infra plan --out DIR`` / ``infra up --plan DIR``, orchestrator/stages/saved_plan.py).

The digests and the refusal reasons are checked as functions; the stages run for real: the
pipeline, the render, the records and the real terraform CLI, which plans and applies a tiny root
module of ``terraform_data`` resources (built into Terraform: no provider to download) with the
local backend in the environment's folder, as ``up`` uses it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import records
from orchestrator.blueprint.loader import load
from orchestrator.engines.terraform import Terraform
from orchestrator.errors import UsageError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.records_heads import HEAD_DIR_ENV
from orchestrator.secrets import resolve
from orchestrator.stages import saved_plan
from orchestrator.stages.context import Context, RunState, new_record
from orchestrator.stages.pipeline import run
from orchestrator.workspace import STATE_DIR_ENV, Workspace
from tests.blueprints import with_way_in
from tests.conftest import require

INFRA = Path(sys.executable).with_name("infra")
CANARY = "s3cr3t-canary-value-8d1f"
BLUEPRINT = """blueprint: 1
name: demo
provider: aws
region: us-east-1
network: {{cidr: 10.20.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: {max}}}
secrets:
  registry_password: ${{env:SAVED_PLAN_CANARY}}
"""


def _blueprint(max: int) -> str:
    return with_way_in(BLUEPRINT.format(max=max))


TINY = """terraform {{
  backend "local" {{}}
}}
resource "terraform_data" "one" {{
  input = "{value}"
}}
"""


# --- what changed, as words ---------------------------------------------------------------------


def _now(**over) -> dict:
    now = {
        "environment": "demo", "sandbox": False,
        "blueprint": {"sha256": "b1", "merged": {"name": "demo", "node_pools": [{"name": "system", "max": 2}]}},
        "inputs": {"sha256": "i1", "files": {"terraform/main.tf": "aa", "terraform/terraform.tfvars.json": "bb"}},
        "versions": {"infra": "0.1.0", "terraform": "1.11.4",
                     "providers": {"registry.example/hashicorp/aws": "5.80.0"}},
        "state": {"serial": 4, "lineage": "L1"},
    }
    now.update(over)
    return now


def test_nothing_changed_gives_no_reason() -> None:
    assert saved_plan.differences(_now(), _now()) == []


def test_a_changed_blueprint_is_named_by_field_and_value() -> None:
    now = _now(blueprint={"sha256": "b2", "merged": {"name": "demo", "node_pools": [{"name": "system", "max": 6}],
                                                      "tags": {"team": "ml"}}})
    assert saved_plan.differences(_now(), now) == ["the blueprint changed (node_pools[0].max 2 -> 6, tags added)"]


def test_changed_rendered_files_are_named_a_few_at_a_time() -> None:
    files = {f"kubernetes/{i}.yaml": "x" for i in range(5)} | {"terraform/main.tf": "aa"}
    reasons = saved_plan.differences(_now(), _now(inputs={"sha256": "i2", "files": files}))
    assert reasons == ["the rendered inputs changed (kubernetes/0.yaml, kubernetes/1.yaml, kubernetes/2.yaml "
                       "and 3 more)"]


def test_versions_and_providers_name_old_and_new_without_the_registry_host() -> None:
    now = _now(versions={"infra": "0.2.0", "terraform": "1.12.0",
                         "providers": {"registry.example/hashicorp/aws": "5.81.0",
                                       "registry.example/hashicorp/tls": "4.0.0"}})
    assert saved_plan.differences(_now(), now) == [
        "the infra version changed (0.1.0 -> 0.2.0)",
        "the Terraform version changed (1.11.4 -> 1.12.0)",
        "the provider versions changed (hashicorp/aws 5.80.0 -> 5.81.0, hashicorp/tls none -> 4.0.0)",
    ]


def test_state_serial_and_lineage() -> None:
    assert saved_plan.differences(_now(), _now(state={"serial": 6, "lineage": "L1"})) == [
        "the state changed since (serial 4 -> 6): something was applied in between"]
    assert saved_plan.differences(_now(), _now(state={"serial": 4, "lineage": "L2"})) == [
        "the state is another one (lineage L1 -> L2)"]
    new_env = _now(state={"serial": None, "lineage": None})
    assert saved_plan.differences(new_env, _now()) == [
        "the state changed since (serial none -> 4): something was applied in between"]


def test_terraform_facts_are_compared_only_once_known() -> None:
    before_init = {k: v for k, v in _now().items() if k != "state"}
    before_init["versions"] = {"infra": "0.1.0"}
    assert saved_plan.differences(_now(), before_init) == []


def test_another_environment_sandbox_or_placeholders_are_refused() -> None:
    saved = _now(environment="prod", sandbox=True, placeholders=["${output:net.vpc_id}"])
    assert saved_plan.differences(saved, _now()) == [
        "it was made for environment prod, not demo",
        "it was made with --sandbox",
        "it was made with placeholder outputs (${output:net.vpc_id}), so it cannot be applied",
    ]


def test_a_malformed_manifest_gives_reasons_not_a_traceback() -> None:
    saved = {"environment": "demo", "blueprint": "x", "inputs": [], "versions": None, "state": 7}
    reasons = saved_plan.differences(saved, _now())
    assert reasons[:2] == ["the blueprint changed", "the rendered inputs changed (terraform/main.tf, "
                                                    "terraform/terraform.tfvars.json)"]
    assert len(reasons) == 6  # + infra, Terraform, providers, state


# --- the rendered inputs' digest ----------------------------------------------------------------


def test_rendered_digests_cover_the_build_tree_but_not_terraforms_own_files(tmp_path: Path) -> None:
    ws = Workspace(root=tmp_path, name="demo")
    tf = ws.build_dir / "terraform"
    (tf / ".terraform" / "providers").mkdir(parents=True)
    (tf / ".terraform" / "providers" / "x").write_text("binary")
    (tf / ".terraform.lock.hcl").write_text("# lock")
    (tf / "main.tf").write_text("# main")
    (tf / "terraform.tfvars.json").write_text('{"max": 2}')
    (ws.build_dir / "kubernetes").mkdir()
    (ws.build_dir / "kubernetes" / "ns.yaml").write_text("kind: Namespace")
    files = saved_plan.rendered_digests(ws)
    assert sorted(files) == ["kubernetes/ns.yaml", "terraform/main.tf", "terraform/terraform.tfvars.json"]
    before = saved_plan.inputs_digest(files)
    (tf / "terraform.tfvars.json").write_text('{"max": 3}')
    after = saved_plan.rendered_digests(ws)
    assert after["terraform/terraform.tfvars.json"] != files["terraform/terraform.tfvars.json"]
    assert saved_plan.inputs_digest(after) != before
    (tf / ".terraform.lock.hcl").write_text("# another lock")  # the plan file carries its own
    assert saved_plan.inputs_digest(saved_plan.rendered_digests(ws)) == saved_plan.inputs_digest(after)


def test_with_the_sandbox_terraform_is_the_copy_terraform_runs_in(tmp_path: Path) -> None:
    ws = Workspace(root=tmp_path, name="demo", sandbox=True)
    (ws.build_dir / "terraform").mkdir(parents=True)
    (ws.build_dir / "terraform" / "main.tf").write_text("# main")
    ws.terraform_dir.mkdir(parents=True)
    (ws.terraform_dir / "main.tf").write_text("# main")
    (ws.terraform_dir / "sandbox_override.tf").write_text("# endpoints")
    assert sorted(saved_plan.rendered_digests(ws)) == ["terraform/main.tf", "terraform/sandbox_override.tf"]


# --- the stages, with the real terraform --------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> dict:
    require(shutil.which("terraform") is not None, "terraform on PATH")
    for name in (STATE_DIR_ENV, HEAD_DIR_ENV, records.HMAC_KEY_ENV, "INFRA_TERRAFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INFRA_SKIP_CREDENTIALS_CHECK", "1")
    monkeypatch.setenv("SAVED_PLAN_CANARY", CANARY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "env.yaml").write_text(_blueprint(max=2))
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "main.tf").write_text(TINY.format(value="v1"))
    return {"root": tmp_path, "tiny": tiny, "file": tmp_path / "env.yaml", "plans": tmp_path / "plans"}


def _ctx(project: dict, command: str) -> Context:
    """``command``'s context as ``commands.build_context`` makes it (the blueprint loaded, its
    secrets resolved), less the placement proof (a second per load: not what is tested here);
    Terraform runs the tiny module, with the environment's own state, data dir and logs."""
    def make(ctx: Context) -> Terraform:
        return Terraform(project["tiny"], data_dir=ctx.ws.tf_data_dir, progress=ctx.progress,
                         log_dir=ctx.ws.log_dir, config_dir=ctx.ws.env_dir)

    loaded = load(project["file"])
    return Context(
        loaded=loaded, provider=get(loaded.model.provider), ws=Workspace(root=project["root"], name="demo"),
        progress=Progress(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False),
        confirm=lambda plan: True, state=RunState(record=new_record(loaded, command, False)),
        secrets=resolve(loaded), make_terraform=make,
    )


def _plan_out(project: dict, out: Path) -> Context:
    ctx = _ctx(project, "plan")
    return run(ctx, "plan", saved_plan.stages(ctx, "plan", out=out))


def _up_plan(project: dict, plan_dir: Path) -> Context:
    ctx = _ctx(project, "up")
    chosen = saved_plan.stages(ctx, "up", plan_dir=plan_dir)
    assert [s.name for s in chosen] == ["render", "saved-plan", "apply", "outputs", "configure", "handoff"]
    return run(ctx, "up", chosen[:3])  # configure and handoff need a cluster: not this test's business


def _serial(project: dict) -> int | None:
    path = project["root"] / ".infra" / "env" / "demo" / "terraform.tfstate"
    return json.loads(path.read_text())["serial"] if path.is_file() else None


def _last_record(project: dict, env: str = "demo") -> dict:
    folder = project["root"] / ".infra" / "records" / env
    return json.loads(sorted(folder.glob("*.json"))[-1].read_text())


def test_plan_out_saves_the_plan_and_a_manifest_then_up_plan_applies_it(project: dict) -> None:
    ctx = _plan_out(project, project["plans"])
    assert [s["name"] for s in ctx.state.record.stages] == ["render", "plan", "save-plan"]
    folder = project["plans"] / "demo"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "plan.tfplan"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    assert not ctx.ws.plan_file.exists()  # the copy in DIR is the one to apply
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["environment"] == "demo" and manifest["sandbox"] is False
    assert manifest["blueprint"]["sha256"] == ctx.loaded.sha256
    assert manifest["blueprint"]["merged"]["secrets"] == {"registry_password": "${env:SAVED_PLAN_CANARY}"}
    assert "terraform/terraform.tfvars.json" in manifest["inputs"]["files"]
    assert manifest["state"] == {"serial": None, "lineage": None}  # nothing applied yet
    assert manifest["versions"]["terraform"] == ctx.state.record.versions["terraform"]
    assert manifest["plan"]["has_changes"] is True
    assert manifest["plan"]["changes"] == [["terraform_data.one", "create"]]
    for path in folder.iterdir():
        assert CANARY.encode() not in path.read_bytes()

    up = _up_plan(project, project["plans"])
    assert up.state.record.outcome == "success"
    assert [s["name"] for s in up.state.record.stages] == ["render", "saved-plan", "apply"]
    assert "1 added" in up.state.record.stages[-1]["detail"]
    assert _serial(project) is not None
    record = _last_record(project)
    assert (record["command"], record["outcome"], record["plan"]["add"]) == ("up", "success", 1)

    # planned again: no changes, so no plan file; up --plan checks it all the same, applies nothing
    again = _plan_out(project, project["plans"])
    assert not again.state.plan.has_changes
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]
    assert json.loads((folder / "manifest.json").read_text())["state"]["serial"] == _serial(project)
    up = _up_plan(project, project["plans"])
    assert up.state.record.outcome == "no-changes"
    assert up.state.record.stages[-1]["detail"] == "skipped: the plan has no changes"


def test_up_plan_refuses_after_the_blueprint_changed_and_applies_nothing(project: dict) -> None:
    _plan_out(project, project["plans"])
    project["file"].write_text(_blueprint(max=3))
    with pytest.raises(UsageError) as caught:
        _up_plan(project, project["plans"])
    err = caught.value
    assert err.exit_code == 2
    assert err.message == (
        f"saved plan {project['plans'] / 'demo'} no longer matches: the blueprint changed "
        "(node_pools[0].max 2 -> 3); the rendered inputs changed (terraform/terraform.tfvars.json); "
        "nothing was applied")
    assert "infra plan env.yaml --out" in err.hint
    assert _serial(project) is None  # nothing applied
    record = _last_record(project)
    assert (record["outcome"], [s["name"] for s in record["stages"]]) == ("failed", ["render", "saved-plan"])
    project["file"].write_text(_blueprint(max=2))  # back as it was: the same plan applies
    assert _up_plan(project, project["plans"]).state.record.outcome == "success"
    assert _serial(project) is not None


def test_a_plan_made_before_another_apply_is_refused_by_us_and_by_terraform(project: dict) -> None:
    _plan_out(project, project["root"] / "first")
    _plan_out(project, project["root"] / "second")
    _up_plan(project, project["root"] / "first")
    serial = _serial(project)
    with pytest.raises(UsageError) as caught:
        _up_plan(project, project["root"] / "second")
    assert "no longer matches: the state changed since (serial none -> " in caught.value.message
    assert _serial(project) == serial
    # the state changing between our check and the apply: the manifest is made to match the new
    # state, so only Terraform's own check (the serial inside the plan file) is left
    manifest_path = project["root"] / "second" / "demo" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    state = json.loads((project["root"] / ".infra" / "env" / "demo" / "terraform.tfstate").read_text())
    manifest["state"] = {"serial": state["serial"], "lineage": state["lineage"]}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UsageError) as caught:
        _up_plan(project, project["root"] / "second")
    assert caught.value.exit_code == 2
    assert caught.value.message.endswith(
        "no longer matches: Terraform found it stale: the state changed after it was made; nothing was applied")
    assert _serial(project) == serial


def test_an_edited_plan_file_or_a_missing_manifest_is_refused(project: dict) -> None:
    _plan_out(project, project["plans"])
    plan_file = project["plans"] / "demo" / "plan.tfplan"
    data = bytearray(plan_file.read_bytes())
    data[-1] ^= 0xFF
    plan_file.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"its plan file .*plan\.tfplan was changed after it was saved"):
        _up_plan(project, project["plans"])
    assert _serial(project) is None
    with pytest.raises(UsageError, match=r"no saved plan for demo \(.*elsewhere/demo/manifest\.json does not exist"):
        _up_plan(project, project["root"] / "elsewhere")


def test_out_and_plan_belong_to_plan_and_up(project: dict) -> None:
    ctx = _ctx(project, "down")
    with pytest.raises(UsageError, match="--out saves a plan: it is for infra plan, not infra down"):
        saved_plan.stages(ctx, "down", out=project["plans"])
    with pytest.raises(UsageError, match="--plan applies a saved plan: it is for infra up, not infra down"):
        saved_plan.stages(ctx, "down", plan_dir=project["plans"])


# --- through the console script: a rollout of bare-metal environments ---------------------------

LAB = """blueprint: 1
name: {name}
provider: baremetal
hosts:
  - {{name: node-1, address: 127.0.0.1, port: {port}, roles: [control_plane, worker]}}
"""
ROLLOUT = """rollout: 1
name: labs
environments:
  - path: lab-a.yaml
  - path: lab-b.yaml
    after: [lab-a]
on_failure: stop
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_a_rollout_saves_a_folder_per_environment_and_up_plan_checks_each(tmp_path: Path) -> None:
    """Bare metal has no Terraform plan: the manifest alone says what `up` may configure. Its
    host (127.0.0.1 port 1) refuses SSH, so an `up` that got past the check fails in configure
    (exit 4); one that did not is refused before it (exit 2)."""
    for name in ("lab-a", "lab-b"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name, port=1))
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    saved = _cli(tmp_path, "plan", "rollout.yaml", "--out", "plans")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert sorted(p.name for p in (tmp_path / "plans").iterdir()) == ["lab-a", "lab-b"]
    for name in ("lab-a", "lab-b"):
        folder = tmp_path / "plans" / name
        assert [p.name for p in folder.iterdir()] == ["manifest.json"]
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "manifest.json").stat().st_mode) == 0o600
        assert json.loads((folder / "manifest.json").read_text())["plan"] is None

    checked = _cli(tmp_path, "up", "rollout.yaml", "--plan", "plans", "-y")
    assert checked.returncode == 4, checked.stdout + checked.stderr
    record = _last_record({"root": tmp_path}, "lab-a")
    assert [(s["name"], s["status"]) for s in record["stages"]] == [
        ("render", "ok"), ("saved-plan", "ok"), ("configure", "failed")]

    (tmp_path / "lab-a.yaml").write_text(LAB.format(name="lab-a", port=2))
    refused = _cli(tmp_path, "up", "rollout.yaml", "--plan", "plans", "-y")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    record = _last_record({"root": tmp_path}, "lab-a")
    assert [(s["name"], s["status"]) for s in record["stages"]] == [("render", "ok"), ("saved-plan", "failed")]
    assert record["error"].startswith(
        "saved plan plans/lab-a no longer matches: the blueprint changed (hosts[0].port 1 -> 2); "
        "the rendered inputs changed (ansible/")
    assert record["error"].endswith("; nothing was applied")

    single = _cli(tmp_path, "up", "lab-a.yaml", "--plan", "plans/lab-a", "-y")  # one environment's folder
    assert single.returncode == 2, single.stdout + single.stderr
    assert "error: saved plan plans/lab-a no longer matches: the blueprint changed (hosts[0].port 1 -> 2)" in \
        " ".join(single.stderr.split())
    missing = _cli(tmp_path, "up", "lab-b.yaml", "--plan", "nowhere", "-y")
    assert missing.returncode == 2
    assert "error: --plan nowhere: no such folder" in missing.stderr
