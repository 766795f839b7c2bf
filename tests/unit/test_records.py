"""orchestrator.records: append-only, hash-chained run records that hold no secret value
(the redaction function itself is tested in test_redaction.py)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from orchestrator import __version__, records, records_audit, secrets
from orchestrator.blueprint.loader import load

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SECRET_VALUE = "s3cr3t-value"


def _record(i: int, **kw) -> records.RunRecord:
    kw.setdefault("started", T0 + 60 * i)
    return records.RunRecord(env="demo", command="up", blueprint_path="/bp/demo.yaml", blueprint_sha256="ab" * 32,
                             id=f"rec{i:05d}", **kw)


def _write_three(tmp_path: Path) -> list[Path]:
    return [records.write(tmp_path, _record(i)) for i in range(3)]


def _problems(records_dir: Path, env: str = "demo") -> list[str]:
    """The chain's problems (no head, no key): what `infra history` reports."""
    return records_audit.audit(records_dir, env, [], key=None).problems


def test_three_records_form_an_intact_chain(tmp_path: Path) -> None:
    paths = _write_three(tmp_path)
    assert [p.name for p in paths] == [
        "000001-20231114T221320Z-rec00000.json",
        "000002-20231114T221420Z-rec00001.json",
        "000003-20231114T221520Z-rec00002.json",
    ]
    recs = records.list_records(tmp_path)
    assert [r["id"] for r in recs] == ["rec00000", "rec00001", "rec00002"]
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert _problems(tmp_path) == []
    assert recs[0]["prev_sha256"] is None
    assert recs[1]["prev_sha256"] == recs[0]["sha256"]
    assert recs[2]["prev_sha256"] == recs[1]["sha256"]
    assert len({r["sha256"] for r in recs}) == 3


def test_record_content(tmp_path: Path) -> None:
    rec = _record(0, sandbox=True)
    rec.stage("render", "ok", 0.12345, "14 written")
    rec.stage("plan", "failed", 2.0)
    rec.outcome = "failed"
    rec.error = "boom"
    data = json.loads(records.write(tmp_path, rec).read_text())
    assert data["started_at"] == "2023-11-14T22:13:20Z"
    assert data["stages"] == [
        {"name": "render", "status": "ok", "seconds": 0.123, "detail": "14 written"},
        {"name": "plan", "status": "failed", "seconds": 2.0},
    ]
    assert (data["env"], data["command"], data["sandbox"], data["outcome"], data["error"]) == (
        "demo", "up", True, "failed", "boom",
    )
    assert data["blueprint"] == {"path": "/bp/demo.yaml", "sha256": "ab" * 32, "git": None}
    assert data["versions"] == {"infra": __version__}
    assert data["duration_s"] >= 0
    assert (data["seq"], data["prev_sha256"]) == (1, None)
    assert data["sha256"] == hashlib.sha256(
        json.dumps({k: v for k, v in data.items() if k != "sha256"}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def test_records_are_private_files(tmp_path: Path) -> None:
    for path in _write_three(tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_never_overwrites(tmp_path: Path) -> None:
    first = records.write(tmp_path, _record(0))
    before = first.read_bytes()
    second = records.write(tmp_path, _record(0))  # same id and start time: a new file, chained
    assert second != first and first.read_bytes() == before
    recs = records.list_records(tmp_path)
    assert recs[1]["prev_sha256"] == recs[0]["sha256"]
    assert _problems(tmp_path) == []


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    _write_three(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock", "000001-20231114T221320Z-rec00000.json", "000002-20231114T221420Z-rec00001.json",
        "000003-20231114T221520Z-rec00002.json",
    ]


def test_edited_record_is_reported_modified(tmp_path: Path) -> None:
    paths = _write_three(tmp_path)
    data = json.loads(paths[1].read_text())
    data["outcome"] = "success" if data["outcome"] != "success" else "failed"
    paths[1].write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert _problems(tmp_path) == [
        "record #2 (000002-20231114T221420Z-rec00001.json): modified after it was written "
        "(its sha256 does not match its content)"
    ]


def test_edited_and_rehashed_record_breaks_the_next_link(tmp_path: Path) -> None:
    """Recomputing the edited record's own hash does not help: its successor points at the old one."""
    paths = _write_three(tmp_path)
    data = json.loads(paths[1].read_text())
    data["user"] = "mallory"
    body = {k: v for k, v in data.items() if k != "sha256"}
    data["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    paths[1].write_text(json.dumps(data))
    old = json.loads(paths[2].read_text())["prev_sha256"]
    assert _problems(tmp_path) == [
        f"record #3 (000003-20231114T221520Z-rec00002.json): does not follow record #2: prev_sha256 is "
        f"{old[:12]}… (a record was replaced or re-hashed)"
    ]


def test_deleted_middle_record_is_reported_missing(tmp_path: Path) -> None:
    paths = _write_three(tmp_path)
    paths[1].unlink()
    assert _problems(tmp_path) == ["record #2 missing after #1: deleted (sequence numbers are never reused)"]


def test_deleted_first_record_is_reported_missing(tmp_path: Path) -> None:
    paths = _write_three(tmp_path)
    paths[0].unlink()
    assert _problems(tmp_path) == ["record #1 missing at the start: deleted (sequence numbers are never reused)"]


def test_list_records_of_missing_dir_and_unreadable_file(tmp_path: Path) -> None:
    assert records.list_records(tmp_path / "nope") == []
    _write_three(tmp_path)
    (tmp_path / "20991231T000000Z-garbage.json").write_text("{not json")
    assert [r["id"] for r in records.list_records(tmp_path)] == ["rec00000", "rec00001", "rec00002"]
    assert _problems(tmp_path) == [  # left out of the listing, never out of the audit
        "file 20991231T000000Z-garbage.json: not a record file name (expected <seq>-<UTC time>-<id>.json)"
    ]


def test_records_started_in_the_same_second_keep_their_chain(tmp_path: Path) -> None:
    for rid in ("bbbbbbbb", "aaaaaaaa", "cccccccc"):  # written in this order, same second
        records.write(tmp_path, records.RunRecord(
            env="demo", command="plan", blueprint_path="/bp", blueprint_sha256="0", id=rid, started=T0,
        ))
    assert [r["id"] for r in records.list_records(tmp_path)] == ["bbbbbbbb", "aaaaaaaa", "cccccccc"]
    assert _problems(tmp_path) == []


# --- secret values --------------------------------------------------------------------------


def test_record_from_blueprint_with_secrets_holds_no_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", SECRET_VALUE)
    loaded = load(EXAMPLES / "aws-gpu.yaml")
    assert loaded.model.secrets == {"registry_password": "${env:REGISTRY_PASSWORD}"}
    # built the way `infra up` builds it (orchestrator/stages/context.py, new_record)
    rec = records.RunRecord(
        env=loaded.model.name,
        command="up",
        blueprint_path=str(loaded.path),
        blueprint_sha256=loaded.sha256,
        git=records.git_info(loaded.path),
    )
    rec.error = f"provider said: bad password {SECRET_VALUE}"
    try:
        assert secrets.resolve(loaded) == {"registry_password": SECRET_VALUE}  # registers the value
        path = records.write(tmp_path, rec)  # redacts it as the record is written
    finally:
        secrets.forget()
    text = path.read_text()
    assert SECRET_VALUE not in text
    data = json.loads(text)
    assert data["error"] == "provider said: bad password [redacted]"
    # The blueprint is identified by the hash of its data, which holds the reference, not the value.
    assert data["blueprint"]["sha256"] == loaded.sha256
    assert loaded.data["secrets"] == {"registry_password": "${env:REGISTRY_PASSWORD}"}
    assert _problems(tmp_path, "prod-us") == []
