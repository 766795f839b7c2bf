"""orchestrator.engines.terraform against the real terraform CLI (builtin ``terraform_data`` only,
so no provider and no network), plus a fake binary for what a real one cannot be made to do."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.engines.terraform import Terraform, find_binary
from orchestrator.engines.tfjson import (
    ApplyCollector,
    Diagnostic,
    PlanCollector,
    drift_attributes,
    error_from_diagnostics,
    first_sentence,
    parse_line,
)
from orchestrator.errors import Interrupted, LockedError, TerraformError
from orchestrator.progress import Progress, format_seconds
from tests.conftest import require

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tfengine"
TERRAFORM = shutil.which("terraform")
CI_MIRROR = os.environ.get("INFRA_TF_PLUGIN_MIRROR")  # read before the autouse fixture clears it
needs_terraform = pytest.mark.usefixtures("_terraform_on_path")
needs_main_thread = pytest.mark.usefixtures("_main_thread")


@pytest.fixture()
def _terraform_on_path() -> None:
    require(TERRAFORM is not None, "the terraform CLI on PATH")


@pytest.fixture()
def _main_thread() -> None:
    require(threading.current_thread() is threading.main_thread(), "the main thread (for SIGINT handlers)")


@pytest.fixture(autouse=True)
def _isolated_cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.tfrc"
    empty.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(empty))
    for name in ("INFRA_TF_PLUGIN_MIRROR", "INFRA_TERRAFORM", "TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_LOG"):
        monkeypatch.delenv(name, raising=False)


def _module(tmp_path: Path, name: str) -> Path:
    workdir = tmp_path / name
    shutil.copytree(FIXTURES / name, workdir)
    return workdir


def _progress() -> tuple[Progress, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Progress(stream=out, err_stream=err, interactive=False), out, err


def _engine(workdir: Path, **kwargs) -> tuple[Terraform, io.StringIO, io.StringIO]:
    progress, out, err = _progress()
    tf = Terraform(workdir, data_dir=workdir / ".tfdata", progress=progress, **kwargs)
    return tf, out, err


def _fake_binary(tmp_path: Path) -> Path:
    fake = tmp_path / "fake-terraform"
    fake.write_text(f"#!{sys.executable}\n" + (FIXTURES / "fake_terraform.py").read_text())
    fake.chmod(0o755)
    return fake


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class _InterruptingProgress(Progress):
    """Presses Ctrl-C (SIGINT to this very process) when the first resource starts; with
    ``second_after``, presses it again once that file exists (the child saw the first one)."""

    def __init__(self, second_after: Path | None = None) -> None:
        super().__init__(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False)
        self.second_after = second_after
        self.sent = 0

    def current(self, item: str, *, elapsed: float | None = None) -> None:
        super().current(item, elapsed=elapsed)
        if self.sent:
            return
        self.sent = 1
        os.kill(os.getpid(), signal.SIGINT)
        if self.second_after is not None:
            threading.Thread(target=self._second, daemon=True).start()

    def _second(self) -> None:
        _wait_for(self.second_after.exists, timeout=10)
        time.sleep(0.1)
        self.sent = 2
        os.kill(os.getpid(), signal.SIGINT)


# --- real terraform: plan / apply / output ------------------------------------------------------


@needs_terraform
def test_plan_apply_outputs_and_second_plan(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, out, err = _engine(workdir, log_dir=tmp_path / "logs")
    assert tf.version()["terraform_version"].startswith("1.")
    tf.init()

    plan = tf.plan(tmp_path / "plans" / "up.tfplan")
    assert plan.has_changes is True
    assert (plan.add, plan.change, plan.destroy) == (3, 0, 0)
    assert plan.by_type == {"terraform_data": {"add": 3, "change": 0, "destroy": 0}}
    assert sorted(plan.changes) == [
        ("terraform_data.a", "create"),
        ("terraform_data.b[0]", "create"),
        ("terraform_data.b[1]", "create"),
    ]
    assert plan.steps == 3
    assert plan.plan_file == (tmp_path / "plans" / "up.tfplan").resolve()
    shown = tf.show_plan_json(plan.plan_file)
    assert shown["format_version"].startswith("1.")
    assert {rc["change"]["actions"][0] for rc in shown["resource_changes"]} == {"create"}

    applied = tf.apply(plan.plan_file)
    assert (applied.add, applied.change, applied.destroy) == (3, 0, 0)
    assert applied.failed == []
    assert sorted(addr for addr, _, _ in applied.completed) == [
        "terraform_data.a",
        "terraform_data.b[0]",
        "terraform_data.b[1]",
    ]
    assert applied.outputs == {"greeting": "hello"}  # the stream never carries sensitive values
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("  [")]
    assert len(lines) == 3
    assert [ln.split("]")[0] for ln in lines] == ["  [1/3", "  [2/3", "  [3/3"]
    assert all(re.fullmatch(r"  \[\d/3\] terraform_data\.\S+: created \(0s\)", ln) for ln in lines)
    assert "Resources: 3 added, 0 changed, 0 destroyed." in out.getvalue()
    assert err.getvalue() == ""

    outputs = tf.output()
    assert outputs == {"greeting": "hello", "secret": "s3cr3t"}
    assert outputs.sensitive == {"secret"}
    assert outputs.redacted() == {"greeting": "hello", "secret": "(sensitive)"}

    again = tf.plan(tmp_path / "plans" / "again.tfplan")
    assert again.has_changes is False
    assert (again.add, again.change, again.destroy) == (0, 0, 0)
    assert again.changes == [] and again.by_type == {}
    assert again.plan_file is None  # nothing to apply: no plan file is kept (test_private_files.py)

    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["apply.jsonl", "init.jsonl", "plan.jsonl"]
    apply_types = [json.loads(ln)["type"] for ln in (logs / "apply.jsonl").read_text().splitlines()]
    assert apply_types.count("apply_complete") == 3


@needs_terraform
def test_replace_update_delete_counts_and_destroy(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, out, _ = _engine(workdir)
    tf.init()
    tf.apply(tf.plan(tmp_path / "one.tfplan").plan_file)

    varfile = tmp_path / "two.tfvars"
    varfile = tmp_path / "two.tfvars"
    varfile.write_text('greeting = "hi"\ninstances = 1\ngeneration = "two"\n')
    plan = tf.plan(tmp_path / "two.tfplan", var_file=varfile)
    # a: replaced (triggers_replace), b[0]: updated (input), b[1]: deleted (count 2 -> 1)
    assert sorted(plan.changes) == [
        ("terraform_data.a", "replace"),
        ("terraform_data.b[0]", "update"),
        ("terraform_data.b[1]", "delete"),
    ]
    assert (plan.add, plan.change, plan.destroy) == (1, 1, 2)
    assert plan.by_type == {"terraform_data": {"add": 1, "change": 1, "destroy": 2}}
    assert plan.steps == 4

    out.truncate(0)
    out.seek(0)
    applied = tf.apply(plan.plan_file)
    assert (applied.add, applied.change, applied.destroy) == (1, 1, 2)
    statuses = sorted(ln.split(": ", 1)[1] for ln in out.getvalue().splitlines() if ln.startswith("  ["))
    # each with its elapsed time (terraform_data takes no time, but a busy machine may show a second)
    assert [re.sub(r" \((\d+)s\)$", " (Ns)", s) for s in statuses] == [
        "created (Ns)", "destroyed (Ns)", "destroyed (Ns)", "updated (Ns)"]
    assert "  [4/4] " in out.getvalue()

    destroyed = tf.destroy(tmp_path / "destroy.tfplan", var_file=varfile)
    assert (destroyed.add, destroyed.change, destroyed.destroy) == (0, 0, 2)
    assert tf.destroy(tmp_path / "destroy2.tfplan", var_file=varfile).destroy == 0
    assert json.loads((workdir / "terraform.tfstate").read_text())["resources"] == []


@needs_terraform
def test_stale_plan_hint_says_replan(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, _, _ = _engine(workdir)
    tf.init()
    plan = tf.plan(tmp_path / "p.tfplan")
    stale = shutil.copy(plan.plan_file, tmp_path / "stale.tfplan")  # apply removes the plan it used
    tf.apply(plan.plan_file)
    with pytest.raises(TerraformError) as info:
        tf.apply(stale)
    assert info.value.message == "Saved plan is stale"
    assert "re-plan" in info.value.hint
    assert info.value.exit_code == 3


# --- real terraform: errors and warnings --------------------------------------------------------


@needs_terraform
def test_failed_precondition_is_one_line_with_address(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "guarded")
    tf, _, _ = _engine(workdir)
    tf.init()
    with pytest.raises(TerraformError) as info:
        tf.plan(tmp_path / "p.tfplan")
    err = info.value
    assert err.message == "Resource precondition failed: terraform_data.guarded (main.tf:11): boom"
    assert "\n" not in err.message
    assert err.hint == "boom"
    assert err.exit_code == 3


@needs_terraform
def test_init_error_and_warning_and_stderr_error(tmp_path: Path) -> None:
    workdir = tmp_path / "badbackend"
    workdir.mkdir()
    (workdir / "main.tf").write_text('terraform {\n  backend "nope" {\n  }\n}\n')
    tf, _, _ = _engine(workdir)
    with pytest.raises(TerraformError) as info:
        tf.init()
    assert info.value.message == "Unsupported backend type (main.tf:2)"
    assert info.value.hint == 'There is no backend type named "nope".'

    workdir = _module(tmp_path, "basic")
    tf, _, err = _engine(workdir)
    tf.init()
    varfile = tmp_path / "extra.tfvars"
    varfile.write_text("undeclared = 1\n")
    tf.plan(tmp_path / "p.tfplan", var_file=varfile)
    assert err.getvalue().startswith(
        "warning: Value for undeclared variable: "
        'The root module does not declare a variable named "undeclared"'
    )

    flagged, _, _ = _engine(workdir, env={"TF_CLI_ARGS_plan": "-no-such-flag"})
    with pytest.raises(TerraformError) as info:
        flagged.plan(tmp_path / "p.tfplan")
    assert info.value.message == "terraform plan failed: Failed to parse command-line flags"
    assert info.value.hint == "flag provided but not defined: -no-such-flag"


@needs_terraform
def test_missing_cli_config_file_is_unset_for_the_child(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "does-not-exist.tfrc"))
    workdir = _module(tmp_path, "basic")
    tf, _, err = _engine(workdir)
    assert "TF_CLI_CONFIG_FILE" not in tf.child_env()
    tf.version()
    tf.init()
    assert err.getvalue() == ""  # no "Unable to open CLI configuration file" warning

    # control: what terraform says on stderr about a bad CLI config does reach the display
    bad = tmp_path / "bad.tfrc"
    bad.write_text("bogus_block {\n")
    kept, _, kept_err = _engine(workdir, env={"TF_CLI_CONFIG_FILE": str(bad)})
    kept.init()
    assert kept_err.getvalue().startswith(f"warning: Error parsing {bad}: ")


# --- real terraform: state lock and Ctrl-C ------------------------------------------------------


@needs_terraform
def test_state_lock_names_holder_and_never_unlocks(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "sleeper")
    tf, _, _ = _engine(workdir)
    tf.init()
    holder_out = tmp_path / "holder.jsonl"
    with open(holder_out, "wb") as fh:
        holder = subprocess.Popen(
            [TERRAFORM, "apply", "-input=false", "-json", "-auto-approve"],
            cwd=workdir,
            env=tf.child_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: "provision_start" in holder_out.read_text())
        lock = json.loads((workdir / ".terraform.tfstate.lock.info").read_text())
        with pytest.raises(LockedError) as info:
            tf.plan(tmp_path / "p.tfplan")
        err = info.value
        assert re.fullmatch(
            rf"state is locked by {re.escape(lock['Who'])} \(OperationTypeApply, since "
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\), lock ID {lock['ID']}",
            err.message,
        )
        assert err.hint == (
            f"wait for that run to finish; if it died, run "
            f"`TF_DATA_DIR={workdir / '.tfdata'} terraform force-unlock {lock['ID']}` in {workdir} yourself"
        )
        assert err.exit_code == 6
        assert (workdir / ".terraform.tfstate.lock.info").exists()  # not force-unlocked
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(timeout=30)
    state = json.loads((workdir / "terraform.tfstate").read_text())
    assert [r["name"] for r in state["resources"]] == ["slow"]
    assert not (workdir / ".terraform.tfstate.lock.info").exists()
    assert tf.output() == {"marker": "m"}  # the state terraform saved is readable


@needs_terraform
@needs_main_thread
def test_ctrl_c_forwards_one_sigint_and_waits_for_state(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "sleeper")
    progress = _InterruptingProgress()
    tf = Terraform(workdir, progress=progress)
    tf.init()
    plan = tf.plan(tmp_path / "p.tfplan")
    before = signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    with pytest.raises(Interrupted) as info:
        tf.apply(plan.plan_file)
    assert time.monotonic() - started < 20  # terraform stopped; it did not sleep out its 30 s
    err = info.value
    assert err.exit_code == 130
    assert err.still_running is False
    assert re.fullmatch(r"interrupted: terraform stopped \(exit 1\) and saved state", err.message)
    assert progress.err_stream.getvalue().splitlines() == [
        "warning: interrupt received: waiting for terraform to stop and save state (Ctrl-C again to stop waiting)"
    ]
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(ProcessLookupError):
        os.kill(err.pid, 0)
    state = json.loads((workdir / "terraform.tfstate").read_text())
    assert [r["name"] for r in state["resources"]] == ["slow"]
    assert not (workdir / ".terraform.tfstate.lock.info").exists()


@needs_main_thread
@pytest.mark.parametrize("second_interrupt", [True, False], ids=["second-ctrl-c", "bounded-wait"])
def test_stop_waiting_never_kills_or_resignals(tmp_path: Path, monkeypatch, second_interrupt: bool) -> None:
    # the fake terraform ignores SIGINT (counting it) until the test releases it
    signals, release = tmp_path / "signals", tmp_path / "release"
    monkeypatch.setenv("FAKE_TF_MODE", "hang")
    monkeypatch.setenv("FAKE_TF_SIGNALS", str(signals))
    monkeypatch.setenv("FAKE_TF_RELEASE", str(release))
    progress = _InterruptingProgress(second_after=signals if second_interrupt else None)
    wait = 30.0 if second_interrupt else 0.5
    tf = Terraform(tmp_path, binary=str(_fake_binary(tmp_path)), progress=progress, interrupt_wait=wait)
    (tmp_path / "p.tfplan").write_text("")
    started = time.monotonic()
    with pytest.raises(Interrupted) as info:
        tf.apply(tmp_path / "p.tfplan")
    waited = time.monotonic() - started
    err = info.value
    try:
        assert progress.sent == (2 if second_interrupt else 1)
        assert waited < 10 if second_interrupt else 0.5 <= waited < 10
        assert err.still_running is True
        assert err.message.startswith(
            f"interrupted: stopped waiting for terraform (pid {err.pid}); it is still running"
        )
        os.kill(err.pid, 0)  # alive: not killed
        time.sleep(0.2)  # room for a (wrongly) forwarded second SIGINT to arrive
    finally:
        release.write_text("")
        _, status = os.waitpid(err.pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert signals.read_text() == "1"  # exactly one SIGINT forwarded


# --- binary, CLI config, fake-binary behaviours --------------------------------------------------


def test_plugin_mirror_writes_cli_config_for_the_child(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mir ror"
    mirror.mkdir()
    record = tmp_path / "record.json"
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", str(mirror))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    data_dir = tmp_path / "data"
    tf = Terraform(tmp_path, data_dir=data_dir, binary=str(_fake_binary(tmp_path)))
    assert tf.version()["terraform_version"] == "1.11.4"
    seen = json.loads(record.read_text())
    config = data_dir / "infra-cli.tfrc"
    assert seen["argv"] == ["version", "-json"]
    assert seen["env"] == {
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(data_dir),
    }
    assert config.read_text() == (
        "# written by infra from INFRA_TF_PLUGIN_MIRROR\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n"
    )
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", str(tmp_path / "missing"))
    with pytest.raises(TerraformError, match="is not a directory"):
        Terraform(tmp_path, binary=str(_fake_binary(tmp_path))).version()


@needs_terraform
def test_plugin_mirror_config_is_valid_for_real_terraform(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", str(mirror))
    tf, _, err = _engine(_module(tmp_path, "basic"))
    tf.init()
    assert err.getvalue() == ""  # terraform found nothing wrong with the CLI config
    assert tf.plan(tmp_path / "p.tfplan").add == 3


@needs_terraform
def test_real_provider_from_mirror(tmp_path: Path, monkeypatch, tf_mirror: str) -> None:
    mirror = tf_mirror
    monkeypatch.setenv("INFRA_TF_PLUGIN_MIRROR", mirror)
    workdir = tmp_path / "aws"
    workdir.mkdir()
    (workdir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n'
    )
    tf, _, _ = _engine(workdir)
    try:
        tf.init()
        assert "registry.terraform.io/hashicorp/aws" in tf.version()["provider_selections"]
    finally:
        shutil.rmtree(workdir / ".tfdata", ignore_errors=True)  # the provider binary is large


def test_binary_resolution(tmp_path: Path, monkeypatch) -> None:
    fake = _fake_binary(tmp_path)
    assert find_binary(str(fake)) == str(fake)
    assert find_binary(env={"INFRA_TERRAFORM": str(fake), "PATH": ""}) == str(fake)
    tofu = tmp_path / "bin" / "tofu"
    tofu.parent.mkdir()
    shutil.copy(fake, tofu)
    assert find_binary(env={"PATH": str(tofu.parent)}) == str(tofu)
    with pytest.raises(TerraformError) as info:
        find_binary(env={"PATH": str(tmp_path / "nowhere")})
    assert info.value.message == "neither terraform nor tofu was found on PATH"
    assert info.value.hint == "install Terraform >= 1.5 or OpenTofu, or set INFRA_TERRAFORM"
    monkeypatch.setenv("INFRA_TERRAFORM", "no-such-terraform")
    with pytest.raises(TerraformError, match="INFRA_TERRAFORM=no-such-terraform: not found"):
        Terraform(tmp_path).version()


def test_unsupported_ui_major_and_stderr_only_failure(tmp_path: Path, monkeypatch) -> None:
    fake = str(_fake_binary(tmp_path))
    (tmp_path / "p.tfplan").write_text("")
    monkeypatch.setenv("FAKE_TF_MODE", "ui2")
    with pytest.raises(TerraformError, match=r"machine-readable UI 2\.0; infra understands 1\.x"):
        Terraform(tmp_path, binary=fake).apply(tmp_path / "p.tfplan")
    monkeypatch.setenv("FAKE_TF_MODE", "stderr-error")
    with pytest.raises(TerraformError) as info:
        Terraform(tmp_path, binary=fake).plan(tmp_path / "p.tfplan")
    assert info.value.message == "terraform plan failed: Failed to parse command-line flags"
    assert info.value.hint == "flag provided but not defined: -x"


# --- pure parsing -------------------------------------------------------------------------------


def _change(addr: str, rtype: str, action: str) -> dict:
    return {
        "type": "planned_change",
        "change": {"resource": {"addr": addr, "resource_type": rtype, "new_field": 1}, "action": action},
    }


def test_plan_collector_counts_by_type_and_ignores_unknown_messages() -> None:
    c = PlanCollector()
    for msg in [
        {"type": "version", "ui": "1.2"},
        {"type": "some_future_message", "payload": {"x": 1}},
        _change("aws_vpc.this", "aws_vpc", "create"),
        _change("aws_subnet.a[0]", "aws_subnet", "replace"),
        _change("aws_subnet.a[1]", "aws_subnet", "update"),
        _change("data.aws_ami.gpu", "aws_ami", "read"),
        _change("aws_iam_role.old", "aws_iam_role", "delete"),
        _change("aws_s3_bucket.moved", "aws_s3_bucket", "move"),
        {"type": "change_summary", "changes": {"add": 2, "change": 1, "remove": 2, "import": 0}},
    ]:
        c.feed(msg)
    result = c.result(True, [])
    assert result.by_type == {
        "aws_vpc": {"add": 1, "change": 0, "destroy": 0},
        "aws_subnet": {"add": 1, "change": 1, "destroy": 1},
        "aws_iam_role": {"add": 0, "change": 0, "destroy": 1},
    }
    assert (result.add, result.change, result.destroy) == (2, 1, 2)
    assert result.steps == 1 + 2 + 1 + 1 + 1  # create, replace, update, read, delete; move = 0
    assert parse_line("not json") is None and parse_line("[1]") is None


def test_refresh_only_plan_reports_resource_drift_and_keeps_no_plan(tmp_path: Path, monkeypatch) -> None:
    """Drift is what the resource_drift messages name, not terraform's exit code 2 (1.11 exits 2
    from a refresh-only plan that prints "No changes"); the plan file is never kept."""
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_TF_MODE", "drift")
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    tf = Terraform(tmp_path, binary=str(_fake_binary(tmp_path)))
    monkeypatch.setenv("FAKE_TF_DRIFT", 'module.c.aws_vpc.this,module.c.aws_eks_node_group.pool["gpu"]')
    drifted = tf.plan(tmp_path / "p.tfplan", refresh_only=True)
    assert "-refresh-only" in json.loads(record.read_text())["argv"]
    assert drifted.has_changes is True and drifted.plan_file is None
    assert drifted.drift == [("module.c.aws_vpc.this", "update"), ('module.c.aws_eks_node_group.pool["gpu"]', "update")]
    assert drifted.drift_attributes == {"module.c.aws_vpc.this": ["tags.owner"],
                                        'module.c.aws_eks_node_group.pool["gpu"]': ["tags.owner"]}
    assert not (tmp_path / "p.tfplan").exists()
    monkeypatch.setenv("FAKE_TF_DRIFT", "")
    clean = tf.plan(tmp_path / "p.tfplan", refresh_only=True)
    assert (clean.has_changes, clean.drift, clean.plan_file, clean.drift_attributes) == (False, [], None, {})
    normal = tf.plan(tmp_path / "p.tfplan")  # a normal plan goes by the exit code, and keeps its file
    assert "-refresh-only" not in json.loads(record.read_text())["argv"]
    assert (normal.has_changes, normal.plan_file) == (True, (tmp_path / "p.tfplan").resolve())


def test_apply_collector_reports_elapsed_and_failures() -> None:
    progress, out, _ = _progress()
    c = ApplyCollector(progress, total=2)
    hook = {"resource": {"addr": "aws_eks_cluster.this"}, "action": "create"}
    c.feed({"type": "apply_start", "hook": hook})
    c.feed({"type": "apply_progress", "hook": {**hook, "elapsed_seconds": 10}})
    assert progress.current_item == "aws_eks_cluster.this"
    c.feed({"type": "apply_complete", "hook": {**hook, "elapsed_seconds": 612}})
    c.feed({"type": "apply_errored", "hook": {"resource": {"addr": "aws_x.y"}, "action": "create"}})
    c.feed({"type": "change_summary", "changes": {"add": 1, "change": 0, "remove": 0, "operation": "apply"}})
    assert out.getvalue().splitlines() == [
        "apply: 2 to do",
        "  [1/2] aws_eks_cluster.this: created (10m12s)",
        "  [2/2] aws_x.y: failed",
    ]
    assert (c.result.add, c.result.failed) == (1, ["aws_x.y"])


def test_lock_error_parsing_and_sentences(tmp_path: Path) -> None:
    detail = (
        "Error message: resource temporarily unavailable\nLock Info:\n  ID:        1234-abcd\n"
        "  Path:      terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       ana@build-7\n"
        "  Version:   1.11.4\n  Created:   2026-01-02 03:04:05.123456789 +0000 UTC\n  Info:      \n\n\n"
        "Terraform acquires a state lock..."
    )
    diag = Diagnostic(severity="error", summary="Error acquiring the state lock", detail=detail)
    err = error_from_diagnostics([diag], workdir=tmp_path, unlock_cmd="terraform force-unlock")
    assert isinstance(err, LockedError)
    assert err.message == (
        "state is locked by ana@build-7 (OperationTypeApply, since 2026-01-02 03:04:05 UTC), "
        "lock ID 1234-abcd"
    )
    assert err.hint == (
        "wait for that run to finish; if it died, "
        f"run `terraform force-unlock 1234-abcd` in {tmp_path} yourself"
    )
    two = [Diagnostic("error", "Bad thing", "Details here. More.", "aws_vpc.x", "main.tf", 3)] * 2
    err = error_from_diagnostics(two, workdir=tmp_path, unlock_cmd="x")
    assert (err.message, err.hint) == ("Bad thing: aws_vpc.x (main.tf:3) (+1 more error)", "Details here.")
    assert error_from_diagnostics([Diagnostic("warning", "meh")], workdir=tmp_path, unlock_cmd="x") is None
    assert first_sentence('Get "https://registry.terraform.io/x.json": no such host.\n\nMore') == (
        'Get "https://registry.terraform.io/x.json": no such host.'
    )


# --- progress -----------------------------------------------------------------------------------


def test_progress_plain_quiet_and_interactive() -> None:
    assert [format_seconds(s) for s in (0, 2.4, 59.6, 65, 3725)] == ["0s", "2s", "1m00s", "1m05s", "1h02m"]
    out, err = io.StringIO(), io.StringIO()
    quiet = Progress(stream=out, err_stream=err, quiet=True)
    quiet.stage("terraform")
    quiet.start_task(1, "apply")
    quiet.advance("a", "created", elapsed=1)
    quiet.info("hello")
    quiet.warn("careful")
    quiet.done("done")
    assert (out.getvalue(), err.getvalue()) == ("", "warning: careful\n")

    plain, out, _ = _progress()
    plain.stage("terraform")
    plain.start_task(None, "apply")
    plain.advance("aws_vpc.this", "created", elapsed=2)
    assert out.getvalue().splitlines() == ["==> terraform", "apply...", "  [1/?] aws_vpc.this: created (2s)"]

    screen = io.StringIO()
    live = Progress(stream=screen, interactive=True)
    live.start_task(2, "apply")
    live.current("aws_vpc.this", elapsed=3)
    live.advance("aws_vpc.this", "created", elapsed=3)
    live.advance("aws_subnet.a", "created")
    live.done("Resources: 2 added, 0 changed, 0 destroyed.")
    text = screen.getvalue()
    assert "[1/2] aws_vpc.this: created (3s)" in text and "Resources: 2 added" in text


def test_importing_engine_does_not_import_rich() -> None:
    code = "import sys, orchestrator.engines.terraform, orchestrator.progress; print('rich' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.stdout.strip() == "False"


# --- init only when its inputs changed; the mirror remembered beside the state (issue 10) ------


@needs_terraform
def test_second_init_is_skipped_until_an_input_changes(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    logs = tmp_path / "logs"
    tf, out, _ = _engine(workdir, log_dir=logs)
    assert tf.init() is True
    (logs / "init.jsonl").unlink()
    again, out2, _ = _engine(workdir, log_dir=logs)
    assert again.init() is False
    assert not (logs / "init.jsonl").exists()  # no terraform init ran: the engine's log says so
    assert "terraform init skipped: its inputs are unchanged" in out2.getvalue()
    assert again.plan(tmp_path / "p.tfplan").add == 3
    (workdir / "extra.tf").write_text('resource "terraform_data" "z" {}\n')
    third, _, _ = _engine(workdir, log_dir=logs)
    assert third.init() is True
    assert (logs / "init.jsonl").is_file()


@needs_terraform
def test_plan_inits_again_when_terraform_says_so(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, _, _ = _engine(workdir)
    tf.init()
    stamp = workdir / ".tfdata" / "infra-init.sha256"
    assert stamp.is_file()
    (workdir / "module.tf").write_text('module "m" {\n  source = "./m"\n}\n')
    (workdir / "m").mkdir()
    (workdir / "m" / "main.tf").write_text('resource "terraform_data" "m" {}\n')
    stamp.write_text(tf._init_inputs({}, None, os.environ["TF_CLI_CONFIG_FILE"]))  # as if init had seen the module
    assert tf.init() is False
    assert tf.plan(tmp_path / "p.tfplan").add == 4  # "Module not installed" -> init -> plan


def test_mirror_is_remembered_beside_the_state_and_reused(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    env_dir = tmp_path / "env"
    tf = Terraform(tmp_path, data_dir=env_dir / "tf-data", config_dir=env_dir, binary=str(_fake_binary(tmp_path)))
    assert tf.remembered_mirror() is None
    (env_dir).mkdir()
    (env_dir / "tf-mirror").write_text(f"{mirror}\n")
    tf.version()
    seen = json.loads(record.read_text())
    assert seen["env"]["TF_CLI_CONFIG_FILE"] == str(env_dir / "infra-cli.tfrc")
    assert f'path    = "{mirror}"' in (env_dir / "infra-cli.tfrc").read_text()


@needs_terraform
def test_unreachable_registry_names_the_mirror_variable(tmp_path: Path) -> None:
    workdir = tmp_path / "unreachable"
    workdir.mkdir()  # .invalid never resolves (RFC 2606): terraform cannot reach the registry
    (workdir / "main.tf").write_text('terraform {\n  required_providers {\n'
                                     '    null = { source = "registry.example.invalid/test/null" }\n  }\n}\n')
    tf, _, _ = _engine(workdir)
    with pytest.raises(TerraformError) as err:
        tf.init()
    assert err.value.message.startswith("terraform init could not reach the provider registry: ")
    assert "INFRA_TF_PLUGIN_MIRROR" in err.value.hint


def test_drift_attributes_name_changed_paths_never_values() -> None:
    plan = {"resource_drift": [
        {"address": "aws_vpc.this", "change": {
            "before": {"tags": {"a": "1", "b": "2"}, "cidr_block": "10.0.0.0/16", "list": [1, 2], "secret": "s1"},
            "after": {"tags": {"a": "1", "c": "3"}, "cidr_block": "10.0.0.0/16", "list": [1, 3], "secret": "s2"}}},
        {"address": "aws_x.gone", "change": {"before": {"id": "x"}, "after": None}},
        {"address": "aws_x.many", "change": {"before": {f"k{i:02}": 0 for i in range(20)},
                                             "after": {f"k{i:02}": 1 for i in range(20)}}},
    ]}
    found = drift_attributes(plan)
    assert found["aws_vpc.this"] == ["list[1]", "secret", "tags.b", "tags.c"]
    assert found["aws_x.gone"] == ["(whole object)"]
    assert found["aws_x.many"][-1] == "+8 more" and len(found["aws_x.many"]) == 13
    assert "s2" not in json.dumps(found) and "10.0.0.0" not in json.dumps(found)


# --- real terraform: plan and apply in one call (up -y / down -y) -------------------------------


@needs_terraform
def test_plan_and_apply_in_one_call_shows_the_plan_then_applies_it(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, out, err = _engine(workdir, log_dir=tmp_path / "logs")
    tf.init()
    seen: list[tuple[object, str]] = []

    def on_plan(plan) -> None:  # what the stream held when the plan was handed over
        seen.append((plan, out.getvalue()))

    plan, applied = tf.plan_and_apply(on_plan)
    [(given, before)] = seen
    assert given is plan and plan.has_changes is True
    assert (plan.add, plan.change, plan.destroy, plan.steps) == (3, 0, 0, 3)
    assert plan.by_type == {"terraform_data": {"add": 3, "change": 0, "destroy": 0}}
    assert "created" not in before  # handed over before any resource was applied
    assert (applied.add, applied.change, applied.destroy) == (3, 0, 0)
    assert sorted(addr for addr, _, _ in applied.completed) == [
        "terraform_data.a", "terraform_data.b[0]", "terraform_data.b[1]"]
    assert [ln.split("]")[0] for ln in out.getvalue().splitlines() if ln.startswith("  [")] == [
        "  [1/3", "  [2/3", "  [3/3"]
    assert "Resources: 3 added, 0 changed, 0 destroyed." in out.getvalue()
    assert err.getvalue() == ""
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["apply.jsonl", "init.jsonl"]
    assert tf.output() == {"greeting": "hello", "secret": "s3cr3t"}

    again, nothing = tf.plan_and_apply(lambda p: None)
    assert again.has_changes is False and (nothing.add, nothing.change, nothing.destroy) == (0, 0, 0)

    (workdir / "extra.tf").write_text('output "extra" {\n  value = 1\n}\n')
    outputs_only, _ = tf.plan_and_apply(lambda p: None)
    # an output-only change is a change, as plan's -detailed-exitcode says
    assert outputs_only.has_changes is True and (outputs_only.add, outputs_only.change) == (0, 0)

    varfile = tmp_path / "two.tfvars"
    varfile.write_text('greeting = "hi"\ninstances = 1\ngeneration = "two"\n')
    changed, result = tf.plan_and_apply(lambda p: None, var_file=varfile)
    assert sorted(changed.changes) == [("terraform_data.a", "replace"), ("terraform_data.b[0]", "update"),
                                       ("terraform_data.b[1]", "delete")]
    assert (result.add, result.change, result.destroy) == (1, 1, 2)

    destroyed_plan, destroyed = tf.plan_and_apply(lambda p: None, destroy=True, var_file=varfile)
    assert destroyed_plan.destroy == 2 and destroyed.destroy == 2
    assert json.loads((workdir / "terraform.tfstate").read_text())["resources"] == []


@needs_terraform
def test_one_call_failing_in_its_plan_never_hands_a_plan_over(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "guarded")
    tf, _, _ = _engine(workdir)
    tf.init()
    handed: list[object] = []
    with pytest.raises(TerraformError) as info:
        tf.plan_and_apply(handed.append)
    assert info.value.message == "Resource precondition failed: terraform_data.guarded (main.tf:11): boom"
    assert handed == []
    assert not (workdir / "terraform.tfstate").exists() or \
        json.loads((workdir / "terraform.tfstate").read_text())["resources"] == []


@needs_terraform
def test_one_call_failing_in_its_apply_carries_what_was_applied(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "failing_apply")
    tf, out, _ = _engine(workdir)
    tf.init()
    handed: list[object] = []
    with pytest.raises(TerraformError) as info:
        tf.plan_and_apply(handed.append)
    [plan] = handed
    assert plan.add == 2
    assert info.value.message == "local-exec provisioner error: terraform_data.fails (main.tf:9)"
    result = info.value.result
    assert [addr for addr, _, _ in result.completed] == ["terraform_data.ok"]
    assert result.failed == ["terraform_data.fails"]


@needs_terraform
def test_targeted_refresh_keeps_its_own_warnings_quiet(tmp_path: Path) -> None:
    workdir = _module(tmp_path, "basic")
    tf, _, err = _engine(workdir)
    tf.init()
    tf.plan_and_apply(lambda p: None)
    tf.refresh_state(["terraform_data.a"])  # -target's two warnings: expected here, not shown
    assert err.getvalue() == ""
    from orchestrator.engines.tfprocess import _Run  # any other warning of such a run still is shown

    run = _Run(returncode=-1, expected=frozenset({"Resource targeting is in effect"}))
    for summary in ("Resource targeting is in effect", "Argument is deprecated"):
        line = json.dumps({"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": summary}})
        tf._handle_line(line, run, True, None, None)
    assert err.getvalue() == "warning: Argument is deprecated\n"
    assert [d.summary for d in run.diagnostics] == ["Resource targeting is in effect", "Argument is deprecated"]


@needs_terraform
def test_outputs_of_a_local_state_are_read_from_it_as_terraform_prints_them(tmp_path: Path, monkeypatch) -> None:
    workdir = _module(tmp_path, "basic")
    (workdir / "backend.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    state = tmp_path / "env" / "terraform.tfstate"
    state.parent.mkdir()
    tf, _, _ = _engine(workdir)
    tf.init(backend_config={"path": str(state)})
    tf.plan_and_apply(lambda p: None)
    read = tf.output()
    calls: list[list[str]] = []
    real_run = tf._run
    monkeypatch.setattr(tf, "_run", lambda args, **kw: calls.append(args) or real_run(args, **kw))
    assert tf.output() == read and calls == []  # from the file: no terraform process
    monkeypatch.setattr(tf, "_local_state_outputs", lambda: None)
    printed = tf.output()  # what `terraform output -json` says
    assert calls == [["output", "-json", "-no-color"]]
    assert read == printed == {"greeting": "hello", "secret": "s3cr3t"}
    assert read.sensitive == printed.sensitive == {"secret"}

    monkeypatch.undo()
    state.write_text(json.dumps({"version": 5, "outputs": {}}))  # a format this does not read: terraform does
    calls.clear()
    monkeypatch.setattr(tf, "_run", lambda args, **kw: calls.append(args) or real_run(args, **kw))
    with pytest.raises(TerraformError):
        tf.output()
    assert calls == [["output", "-json", "-no-color"]]


@needs_terraform
def test_version_is_kept_until_the_binary_the_lock_file_or_init_changes(tmp_path: Path, monkeypatch) -> None:
    workdir = _module(tmp_path, "basic")
    tf, _, _ = _engine(workdir)
    before_init = tf.version()
    tf.init()
    calls: list[list[str]] = []
    real_run = tf._run
    monkeypatch.setattr(tf, "_run", lambda args, **kw: calls.append(args) or real_run(args, **kw))
    first = tf.version()
    assert first["terraform_version"] == before_init["terraform_version"] and calls == [["version", "-json"]]
    assert Terraform(workdir, data_dir=workdir / ".tfdata").version() == first  # another run: from the cache
    assert calls == [["version", "-json"]]
    assert (workdir / ".tfdata" / "infra-version.json").stat().st_mode & 0o777 == 0o600
    (workdir / ".terraform.lock.hcl").write_text("# providers changed\n")
    assert tf.version() == first and calls == [["version", "-json"]] * 2  # asked again
    (workdir / ".tfdata" / "infra-init.sha256").write_text("another init\n")
    tf.version()
    assert len(calls) == 3
