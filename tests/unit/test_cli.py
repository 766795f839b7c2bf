"""The ``infra`` console script, run as users run it: a subprocess of the installed entry point.

Checks the user contract of docs/exit-codes.md and DESIGN.md (errors as one or two lines, no
traceback, exit code 2 for bad input) and that ``up`` refuses to apply without confirmation
when standard input is not a terminal (against the sandbox emulator, with real terraform).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import __version__
from tests.conftest import require_module

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FIXTURES = REPO / "tests" / "fixtures" / "cli"
INFRA = Path(sys.executable).with_name("infra")
PROBLEM = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+) (?P<path>\S+): (?P<message>.+)$")
SECRET_VALUE = "s3cr3t-value"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INFRA_STATE_DIR", "INFRA_TF_PLUGIN_MIRROR")}
    env.update(extra)
    return env


def infra(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; stdin is /dev/null (not a terminal)."""
    return subprocess.run(
        [str(INFRA), *args], cwd=cwd, env=_env(**env), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    others = [line for line in proc.stderr.splitlines() if not line.startswith(("error: ", "hint: "))]
    assert others == [], proc.stderr
    return errors[0]


# --- validate -------------------------------------------------------------------------------


def test_validate_reports_every_problem_located(tmp_path: Path) -> None:
    broken = FIXTURES / "broken.yaml"
    proc = infra("validate", str(broken), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[-1] == "4 problems found"
    matches = [PROBLEM.match(line) for line in lines[:-1]]
    assert all(matches), lines
    assert {m["file"] for m in matches} == {str(broken)}
    assert [(int(m["line"]), int(m["col"]), m["path"]) for m in matches] == [
        (4, 7, "name"),
        (8, 9, "network.cidr"),
        (13, 28, "node_pools[0].gpu.count"),
        (16, 5, "node_pools[0].colour"),
    ]
    messages = [m["message"] for m in matches]
    assert "8.8.0.0/16" in messages[1] and "RFC 1918" in messages[1]
    assert messages[2] == "must be >= 1"
    assert messages[3].startswith("unknown field 'colour'")


def test_validate_good_file(tmp_path: Path) -> None:
    proc = infra("validate", str(EXAMPLES / "sandbox.yaml"), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok: demo\n", "")


def test_validate_several_files_text(tmp_path: Path) -> None:
    proc = infra("validate", str(EXAMPLES / "sandbox.yaml"), str(EXAMPLES / "aws-gpu.yaml"), cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "ok: demo\nok: prod-us\n")


def test_validate_json_shape(tmp_path: Path) -> None:
    good, broken = EXAMPLES / "sandbox.yaml", FIXTURES / "broken.yaml"
    proc = infra("validate", str(good), str(broken), "--output", "json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ""  # json mode: everything is in the document
    results = json.loads(proc.stdout)
    assert results[0] == {"file": str(good), "name": "demo", "ok": True, "problems": []}
    assert sorted(results[1]) == ["file", "ok", "problems"]
    assert (results[1]["file"], results[1]["ok"]) == (str(broken), False)
    assert len(results[1]["problems"]) == 4
    assert all(PROBLEM.match(p) for p in results[1]["problems"]), results[1]["problems"]


def test_validate_json_all_good_exits_zero(tmp_path: Path) -> None:
    proc = infra("validate", "-o", "json", str(EXAMPLES / "aws-gpu.yaml"), cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == [
        {"file": str(EXAMPLES / "aws-gpu.yaml"), "name": "prod-us", "ok": True, "problems": []}
    ]


def test_validate_missing_file(tmp_path: Path) -> None:
    proc = infra("validate", "no-such-blueprint.yaml", cwd=tmp_path)
    line = _assert_one_line_error(proc)
    assert line == "error: cannot read blueprint no-such-blueprint.yaml: file not found"
    assert proc.stdout == ""


def test_bad_output_format_is_bad_input(tmp_path: Path) -> None:
    proc = infra("validate", "-o", "yaml", str(EXAMPLES / "sandbox.yaml"), cwd=tmp_path)
    assert _assert_one_line_error(proc) == "error: --output must be text or json, not 'yaml'"


# --- render ---------------------------------------------------------------------------------


def test_render_default_out_is_build(tmp_path: Path) -> None:
    proc = infra("render", str(EXAMPLES / "sandbox.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "build" / "demo"
    assert (root / "terraform" / "main.tf").is_file()
    n = sum(1 for p in root.rglob("*") if p.is_file())
    assert proc.stdout == f"rendered {root}: {n} written, 0 unchanged, 0 removed\n"
    assert not (tmp_path / ".infra").exists()  # render is read-only apart from build/


# --- up refuses without confirmation --------------------------------------------------------


def _require_module(name: str, what: str):
    """Import ``name``, or skip (fail in CI, where .ci/run installs everything) naming what is missing."""
    return require_module(name, what)


def _files_under(root: Path) -> list[Path]:
    """Every regular file under ``root``, skipping Terraform's provider cache (large binaries)."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and "tf-data" not in p.parts]


def test_up_without_auto_approve_refuses_and_applies_nothing(tmp_path: Path, tf_mirror: str) -> None:
    _require_module("moto.server", "moto[server] (the sandbox emulator)")
    boto3 = _require_module("boto3", "boto3 (to ask the emulator what exists)")
    blueprint = tmp_path / "sandbox.yaml"
    blueprint.write_text(
        (EXAMPLES / "sandbox.yaml").read_text() + "\nsecrets:\n  registry_password: ${env:REGISTRY_PASSWORD}\n"
    )
    env = {"INFRA_TF_PLUGIN_MIRROR": tf_mirror, "REGISTRY_PASSWORD": SECRET_VALUE}
    try:
        proc = infra("up", str(blueprint), "--sandbox", cwd=tmp_path, timeout=300, **env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert _error_lines(proc.stderr) == [
            "error: refusing to apply without confirmation: standard input is not a terminal"
        ]
        hints = [line for line in proc.stderr.splitlines() if line.startswith("hint: ")]
        assert len(hints) == 1 and "--auto-approve" in hints[0], proc.stderr

        env_dir = tmp_path / ".infra" / "sandbox" / "demo"
        assert (env_dir / "plan.tfplan").is_file()  # it did plan ...
        assert not (env_dir / "terraform.tfstate").exists()  # ... and applied nothing
        assert not (env_dir / "outputs.json").exists()

        records_dir = tmp_path / ".infra" / "records" / "demo"
        (record_file,) = records_dir.glob("*.json")
        record = json.loads(record_file.read_text())
        assert [(s["name"], s["status"]) for s in record["stages"]] == [
            ("render", "ok"), ("plan", "ok"), ("apply", "failed"),
        ]
        assert record["outcome"] != "success"
        assert record["plan"]["add"] > 0 and record["plan"]["has_changes"] is True
        assert record["sandbox"] is True

        # The emulator holds no cluster: nothing reached the (emulated) AWS API.
        server = json.loads((tmp_path / ".infra" / "sandbox" / "server.json").read_text())
        eks = boto3.client(
            "eks", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{server['port']}",
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
        )
        assert eks.list_clusters()["clusters"] == []

        status = infra("status", str(blueprint), "--sandbox", "--output", "json", cwd=tmp_path, **env)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert (data["deployed"], data["outputs"]) == (False, {})
        assert data["last_run"]["command"] == "up" and data["last_run"]["outcome"] == record["outcome"]

        # The secret's value went nowhere: not in build/, records, logs or the sandbox copy.
        files = _files_under(tmp_path)
        assert any(p.name == "terraform.tfvars.json" for p in files)
        leaked = [str(p) for p in files if SECRET_VALUE.encode() in p.read_bytes()]
        assert leaked == []
    finally:
        stop = infra("sandbox", "stop", cwd=tmp_path)
        assert stop.returncode == 0, stop.stderr


def test_plan_with_unset_secret_stops_before_anything_runs(tmp_path: Path) -> None:
    """Secret references are resolved first: a missing one is located, and nothing is started."""
    shutil.copy(EXAMPLES / "aws-gpu.yaml", tmp_path / "aws-gpu.yaml")
    text = (tmp_path / "aws-gpu.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.strip().startswith("registry_password:"))
    col = text[line - 1].index("${") + 1
    env = _env()
    env.pop("REGISTRY_PASSWORD", None)
    proc = subprocess.run(
        [str(INFRA), "plan", "aws-gpu.yaml", "--sandbox"], cwd=tmp_path, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f"aws-gpu.yaml:{line}:{col} secrets.registry_password: environment variable REGISTRY_PASSWORD is not set"
    )
    assert lines[1] == "1 problem found"
    assert not (tmp_path / ".infra").exists()  # no emulator, no lock, no record
    assert not (tmp_path / "build").exists()


# --- help, version, history, status ---------------------------------------------------------


def test_help_lists_commands(tmp_path: Path) -> None:
    proc = infra("--help", cwd=tmp_path)
    assert proc.returncode == 0
    section = proc.stdout.split("Commands:", 1)[1]
    commands = {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.strip()}
    assert {"validate", "render", "plan", "up", "down", "status", "history", "sandbox"} <= commands


def test_version(tmp_path: Path) -> None:
    proc = infra("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"infra {__version__}\n")


# Usage errors come from typer's vendored click (not click's own classes): run() must catch them.
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("deploy",), "No such command 'deploy'"),
        (("validate",), "Missing"),
        (("validate", "--bogus", "x"), "No such option: --bogus"),
    ],
    ids=["unknown-command", "missing-argument", "unknown-option"],
)
def test_usage_errors_exit_2_without_traceback(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    proc = infra(*args, cwd=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_no_arguments_shows_help_without_traceback(tmp_path: Path) -> None:
    proc = infra(cwd=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Commands:" in proc.stdout + proc.stderr


def test_history_of_empty_project(tmp_path: Path) -> None:
    proc = infra("history", "demo", "--output", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"env": "demo", "records": [], "chain_problems": []}
    text = infra("history", "demo", cwd=tmp_path)
    assert (text.returncode, text.stdout) == (0, f"no runs recorded for 'demo' in {tmp_path / '.infra/records/demo'}\n")


def test_history_by_blueprint_file(tmp_path: Path) -> None:
    proc = infra("history", str(EXAMPLES / "aws-gpu.yaml"), "-o", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["env"] == "prod-us"


def test_status_of_never_applied_environment(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "sandbox.yaml", tmp_path / "sandbox.yaml")
    proc = infra("status", "sandbox.yaml", "--output", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "deployed": False,
        "last_run": None,
        "name": "demo",
        "outputs": {},
        "provider": "aws",
        "sandbox": False,
    }
    assert not (tmp_path / ".infra").exists()  # status only reads


# --- bare metal: no Terraform ---------------------------------------------------------------


def _onprem(tmp_path: Path) -> dict[str, str]:
    """The on-prem example in tmp_path, with the SSH key file its secrets name (under HOME)."""
    shutil.copy(EXAMPLES / "onprem-gpu.yaml", tmp_path / "onprem.yaml")
    (tmp_path / ".ssh").mkdir(exist_ok=True)
    (tmp_path / ".ssh" / "id_ed25519").write_text("not a real key\n")
    return {"HOME": str(tmp_path)}


def test_plan_on_bare_metal_lists_hosts_and_touches_no_terraform(tmp_path: Path) -> None:
    proc = infra("plan", "onprem.yaml", cwd=tmp_path, **_onprem(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "==> hosts" in proc.stdout
    assert "4 hosts to configure with ansible/site.yml (no cloud resources)" in proc.stdout
    assert re.search(r"dgx-01\s+10\.1\.0\.11  worker  pool=dgx  gpu=8 x h100", proc.stdout), proc.stdout
    assert (tmp_path / "build" / "onprem" / "ansible" / "inventory.yml").is_file()
    assert not (tmp_path / "build" / "onprem" / "terraform").exists()
    assert not list((tmp_path / ".infra").rglob("*.tfstate"))
    record = json.loads(infra("history", "onprem.yaml", "-o", "json", cwd=tmp_path).stdout)["records"][0]
    assert (record["command"], record["outcome"]) == ("plan", "success")


def test_status_on_bare_metal_before_any_configure(tmp_path: Path) -> None:
    proc = infra("status", "onprem.yaml", "--output", "json", cwd=tmp_path, **_onprem(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["provider"], data["deployed"]) == ("baremetal", False)
    assert sorted(data["outputs"]["hosts"]) == ["cp-1", "dgx-01", "dgx-02", "infer-01"]
    text = infra("status", "onprem.yaml", cwd=tmp_path, **_onprem(tmp_path)).stdout
    assert "onprem (baremetal): not configured" in text and "infer-01" in text


def test_down_on_bare_metal_is_a_usage_error_that_records_nothing(tmp_path: Path) -> None:
    proc = infra("down", "--auto-approve", "onprem.yaml", cwd=tmp_path, **_onprem(tmp_path))
    line = _assert_one_line_error(proc)
    assert "provider baremetal has no cloud resources to destroy" in line
    assert not (tmp_path / ".infra" / "records").exists() or not list((tmp_path / ".infra" / "records").rglob("*.json"))
