"""What rollback stands on: an ``up`` record keeps the merged blueprint (secret references, never
their values), ``infra rollback`` refuses runs it cannot restore, ``infra history`` says which can."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import records, secrets
from orchestrator.blueprint.loader import load
from orchestrator.errors import UsageError
from orchestrator.stages import commands
from orchestrator.stages.context import new_record

INFRA = Path(sys.executable).with_name("infra")
CANARY = "canary-value-7f3a9"
BP = """blueprint: 1
name: lab
provider: baremetal
hosts:
  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}
secrets:
  token: ${env:ROLLBACK_CANARY}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "lab.yaml").write_text(BP)
    monkeypatch.setenv("ROLLBACK_CANARY", CANARY)
    yield tmp_path
    secrets.forget()


def test_an_up_record_keeps_the_merged_blueprint_with_references_only(project: Path) -> None:
    loaded = load(project / "lab.yaml")
    secrets.resolve(loaded)  # the value is known to the process, as during a real run
    rec = new_record(loaded, "up", sandbox=False)
    rec.outcome = "success"
    path = records.write(project / "records", rec)
    text = path.read_text()
    assert CANARY not in text
    data = json.loads(text)
    assert data["blueprint"]["merged"]["secrets"] == {"token": "${env:ROLLBACK_CANARY}"}
    assert data["blueprint"]["merged"]["hosts"][0]["address"] == "127.0.0.1"
    assert commands.restorable(data) == data["blueprint"]["merged"]
    plan = new_record(loaded, "plan", sandbox=False)
    assert plan.to_dict(0.0)["blueprint"].get("merged") is None  # only `up` applies a blueprint


def test_rollback_refuses_unknown_and_unrestorable_runs(project: Path) -> None:
    loaded = load(project / "lab.yaml")
    ws_records = project / ".infra" / "records" / "lab"
    failed = new_record(loaded, "up", sandbox=False)
    failed.outcome = "failed"
    records.write(ws_records, failed)
    with pytest.raises(UsageError, match="no run 'nope' recorded for lab"):
        commands.rollback("lab", "nope", lambda plan: True, root=project)
    with pytest.raises(UsageError, match=f"run {failed.id} of lab cannot be rolled back to \\(up, failed"):
        commands.rollback("lab", failed.id, lambda plan: True, root=project)
    ok = new_record(loaded, "up", sandbox=False)
    ok.outcome = "success"
    records.write(ws_records, ok)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "250"
    result = subprocess.run([str(INFRA), "history", "lab"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=60)
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [("can restore" in row, "failed" in row) for row in rows] == [(False, True), (True, False)]
    result = subprocess.run([str(INFRA), "rollback", "lab", failed.id], cwd=project, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot be rolled back to" in result.stderr
