"""`infra history ENV --verify` against every way of tampering with the run records.

Chains are written through the real ``records.write`` (with the real repository head), then the
files are tampered with the way someone with write access to ``.infra/`` could, and the real
CLI entry point runs in a subprocess: exit 8 and one line naming each problem, 0 when intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import records, records_heads
from orchestrator.workspace import STATE_DIR_ENV
from tests.conftest import require_module

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
KEY = "k3y-for-tests-0123456789"
NAMES = ["000001-20231114T221320Z-rec00000.json", "000002-20231114T221420Z-rec00001.json",
         "000003-20231114T221520Z-rec00002.json"]
HEAD = "repository head .infra-heads/demo.json"
CLEAN_ENV = (STATE_DIR_ENV, records_heads.HEAD_DIR_ENV, records.HMAC_KEY_ENV)


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


def infra(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The real CLI entry point in a fresh interpreter, run from the project root."""
    full = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV} | {"COLUMNS": "250"} | env
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", *args],
                          cwd=root, env=full, capture_output=True, text=True, timeout=120)


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def _record(i: int, **kw) -> records.RunRecord:
    kw.setdefault("started", T0 + 60 * i)
    return records.RunRecord(env="demo", command="up", blueprint_path="/bp/demo.yaml", blueprint_sha256="ab" * 32,
                             id=f"rec{i:05d}", outcome="success", **kw)


def rdir(root: Path) -> Path:
    return root / ".infra" / "records" / "demo"


def write_chain(root: Path, n: int = 3) -> list[Path]:
    heads = records_heads.heads_for(root, "demo")
    return [records.write(rdir(root), _record(i), heads=heads) for i in range(n)]


def _sha(data: dict) -> str:
    """What a tamperer recomputes: sha256 of the canonical body without sha256/hmac."""
    body = {k: v for k, v in data.items() if k not in ("sha256", "hmac")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rechain(paths: list[Path], edit) -> None:
    """Edit every record and re-link and re-hash the whole chain consistently (no key: hmac left as is)."""
    prev = None
    for path in paths:
        data = json.loads(path.read_text())
        edit(data)
        data["prev_sha256"] = prev
        data["sha256"] = prev = _sha(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def head(root: Path) -> dict:
    return json.loads((root / ".infra-heads" / "demo.json").read_text())


SHORT = r"[0-9a-f]{12}…"


def test_intact_chain_verifies(tmp_path: Path) -> None:
    write_chain(tmp_path)
    assert {k: head(tmp_path)[k] for k in ("env", "seq", "count")} == {"env": "demo", "seq": 3, "count": 3}
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 0, proc.stderr
    assert errors(proc) == []
    assert f"verified: 3 records, chain intact, matches {HEAD} (#3)" in proc.stdout
    assert all(rid in proc.stdout for rid in ("rec00000", "rec00001", "rec00002"))


def test_deleted_last_record(tmp_path: Path) -> None:
    write_chain(tmp_path)[2].unlink()
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    (line,) = errors(proc)
    assert re.fullmatch(rf"error: {HEAD}: says the chain ends at record #3 \(sha256 {SHORT}\), but the last "
                        r"record here is #2: records were deleted from the end", line), line
    assert "Traceback" not in proc.stderr


def test_edited_last_record_with_recomputed_hash(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    data = json.loads(paths[2].read_text())
    data["outcome"] = "failed"
    data["sha256"] = _sha(data)  # its link to #2 is untouched, so the chain alone looks intact
    paths[2].write_text(json.dumps(data))
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    (line,) = errors(proc)
    assert re.fullmatch(rf"error: {HEAD}: record #3 has sha256 {SHORT} here but the head says {SHORT}, found in "
                        r"no record here: the record was edited and re-hashed, or the chain was rewritten", line)


def test_forged_appended_record(tmp_path: Path) -> None:
    write_chain(tmp_path)
    forged = records.write(rdir(tmp_path), _record(3, user="mallory"))  # a correct link, but no head moved
    assert forged.name == "000004-20231114T221620Z-rec00003.json"
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    assert errors(proc) == [
        f"error: record #4 ({forged.name}): is newer than the {HEAD} (#3): appended without moving the head "
        "(a forged record, or a run whose head update failed)"
    ]


def test_whole_chain_rewritten(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    rechain(paths, lambda d: d.update(user="mallory"))
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    (line,) = errors(proc)
    assert "found in no record here: the record was edited and re-hashed, or the chain was rewritten" in line


CORRUPTIONS = {
    "not-json": ('{"seq": 2, "id": ', "not valid JSON (line 1 column 18)"),
    "json-array": ("[1, 2, 3]\n", "not a JSON object (an array)"),
    "plan-string": (None, "field `plan` is a string, expected an object or null"),
}


@pytest.mark.parametrize("position", [1, 2], ids=["middle", "last"])
@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_record_is_reported_not_skipped(tmp_path: Path, kind: str, position: int) -> None:
    paths = write_chain(tmp_path)
    text, reason = CORRUPTIONS[kind]
    if text is None:
        data = json.loads(paths[position].read_text())
        data["plan"] = "+1 ~0 -0"
        data["sha256"] = _sha(data)
        text = json.dumps(data)
    paths[position].write_text(text)
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert errors(proc) == [f"error: record #{position + 1} ({NAMES[position]}): corrupt: {reason}"]
    assert "corrupt" in proc.stdout  # the table shows the row


def test_without_verify_corrupt_rows_are_listed_and_warned(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    paths[2].write_text("[]")
    proc = infra(tmp_path, "history", "demo")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"│ 3\s+│.*corrupt", proc.stdout), proc.stdout
    assert "rec00001" in proc.stdout
    assert f"warning: record #3 ({NAMES[2]}): corrupt: not a JSON object (an array)" in proc.stderr.splitlines()


def test_json_output_reports_problems_and_exits_8(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    paths[1].write_text("not json")
    proc = infra(tmp_path, "history", "demo", "--verify", "--output", "json")
    assert proc.returncode == 8
    data = json.loads(proc.stdout)
    assert data["verified"] is False
    assert data["chain_problems"] == [f"record #2 ({NAMES[1]}): corrupt: not valid JSON (line 1 column 1)"]
    assert data["records"][1] == {"seq": 2, "file": NAMES[1], "corrupt": "not valid JSON (line 1 column 1)"}
    assert [r.get("id") for r in data["records"]] == ["rec00000", None, "rec00002"]


def test_sequence_is_never_reused_after_the_last_record_is_deleted(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    second_sha = json.loads(paths[1].read_text())["sha256"]
    paths[2].unlink()
    new = records.write(rdir(tmp_path), _record(3), heads=records_heads.heads_for(tmp_path, "demo"))
    assert new.name == "000004-20231114T221620Z-rec00003.json"
    data = json.loads(new.read_text())
    assert (data["seq"], data["prev_sha256"]) == (4, second_sha)
    assert (head(tmp_path)["seq"], head(tmp_path)["count"]) == (4, 3)
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8
    assert errors(proc) == ["error: record #3 missing after #2: deleted (sequence numbers are never reused)"]


def test_renamed_record_is_reported(tmp_path: Path) -> None:
    """`seq` is inside the hashed body: renaming files cannot reorder the chain."""
    paths = write_chain(tmp_path, 2)
    paths[1].rename(paths[1].with_name("000005-20231114T221420Z-rec00001.json"))
    problems = errors(infra(tmp_path, "history", "demo", "--verify"))
    assert "error: record #2 to #4 missing after #1: deleted (sequence numbers are never reused)" in problems
    assert ("error: record #5 (000005-20231114T221420Z-rec00001.json): the file name says #5 but the record "
            "says #2 (renamed or moved)") in problems


# --- HMAC ------------------------------------------------------------------------------------


def _files_text(root: Path) -> str:
    return "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def test_signed_chain_verifies_and_the_key_is_written_nowhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(records.HMAC_KEY_ENV, KEY)
    rec = _record(0)
    rec.error = f"the provider echoed {KEY}"
    records.write(rdir(tmp_path), rec, heads=records_heads.heads_for(tmp_path, "demo"))
    write_chain(tmp_path, 2)  # continues the chain: #2, #3
    assert "hmac" in head(tmp_path)
    assert all("hmac" in r for r in records.list_records(rdir(tmp_path)))
    proc = infra(tmp_path, "history", "demo", "--verify", "--output", "json", INFRA_RECORDS_HMAC_KEY=KEY)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is True
    assert KEY not in _files_text(tmp_path) + proc.stdout + proc.stderr
    assert records.list_records(rdir(tmp_path))[0]["error"] == "the provider echoed [redacted]"


def test_hmac_mismatch_is_detected_where_hashes_and_head_agree(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(records.HMAC_KEY_ENV, KEY)
    paths = write_chain(tmp_path)
    # Without the key: edit #2, re-hash and re-link #2 and #3, and move the repository head along.
    rechain(paths, lambda d: d.update(outcome="failed") if d["seq"] == 2 else None)
    forged_head = head(tmp_path) | {"sha256": json.loads(paths[2].read_text())["sha256"]}
    (tmp_path / ".infra-heads" / "demo.json").write_text(json.dumps(forged_head))

    unkeyed = infra(tmp_path, "history", "demo", "--verify")
    assert unkeyed.returncode == 0, unkeyed.stderr  # hashes and head agree: only the hmac can tell
    assert ("warning: 3 records are signed (hmac) but INFRA_RECORDS_HMAC_KEY is not set: their signatures "
            "were not checked") in unkeyed.stderr.splitlines()

    proc = infra(tmp_path, "history", "demo", "--verify", INFRA_RECORDS_HMAC_KEY=KEY)
    assert proc.returncode == 8
    assert errors(proc) == [
        f"error: record #2 ({NAMES[1]}): hmac does not match (edited, or signed with another key)",
        f"error: record #3 ({NAMES[2]}): hmac does not match (edited, or signed with another key)",
        f"error: {HEAD}: hmac does not match",
    ]
    assert KEY not in proc.stdout + proc.stderr


def test_unsigned_records_are_reported_when_a_key_is_given(tmp_path: Path) -> None:
    write_chain(tmp_path, 1)
    proc = infra(tmp_path, "history", "demo", "--verify", INFRA_RECORDS_HMAC_KEY=KEY)
    assert proc.returncode == 8
    assert errors(proc) == [
        f"error: record #1 ({NAMES[0]}): has no hmac (written without INFRA_RECORDS_HMAC_KEY, or its hmac was "
        "removed)",
        f"error: {HEAD}: hmac is missing",
    ]


# --- what `history` accepts as NAME ----------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "/tmp", "a/b", "..", "Demo", "x"])
def test_path_like_name_is_refused_reading_nothing(tmp_path: Path, name: str) -> None:
    for target in (tmp_path / ".infra" / "records" / "a" / "b", tmp_path / ".infra" / "x"):
        records.write(target, _record(7))  # what the old `history` would have listed for `a/b` and `../x`
    proc = infra(tmp_path, "history", name, "--verify")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: infra history: {name!r} is neither an environment name ([a-z][a-z0-9-]{{1,38}}) nor a "
        "blueprint file (.yaml/.yml)"
    ]


def test_blueprint_file_is_accepted_and_azurerm_says_only_the_repository_head_was_checked(tmp_path: Path) -> None:
    bp = tmp_path / "env.yaml"
    bp.write_text((Path(__file__).parents[2] / "examples" / "sandbox.yaml").read_text()
                  + "\nstate: {backend: azurerm, storage_account: acct, container: tfstate}\n")
    write_chain(tmp_path, 2)
    proc = infra(tmp_path, "history", "env.yaml", "--verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: the azurerm state backend keeps no records head (not supported: it cannot be tested "
        "offline); only the repository head was checked"
    ]
    assert f"verified: 2 records, chain intact, matches {HEAD} (#2)" in proc.stdout


# --- the S3 state backend's head, against a real moto server -----------------------------------

BUCKET = "records-heads"
S3_KEY = "infra/demo/terraform.tfstate.records-head.json"
S3_HEAD = f"state-backend head s3://{BUCKET}/{S3_KEY}"


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    """A real moto server on loopback, started the way `--sandbox` starts it; its endpoint."""
    require_module("moto.server", "moto[server] (the AWS emulator)")
    boto3 = require_module("boto3", "boto3")
    from orchestrator import sandbox

    state = tmp_path_factory.mktemp("moto")
    info = sandbox.start(state)
    try:
        client = boto3.client("s3", endpoint_url=info.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield info.endpoint, client
    finally:
        sandbox.stop(state)


def _aws_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}


@pytest.mark.integration
def test_s3_head_is_kept_beside_the_state_and_catches_what_the_repository_head_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_s3
) -> None:
    from orchestrator.blueprint.loader import load

    endpoint, client = moto_s3
    env = _aws_env(tmp_path, endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bp = tmp_path / "env.yaml"
    bp.write_text((Path(__file__).parents[2] / "examples" / "sandbox.yaml").read_text()
                  + f"\nstate: {{backend: s3, bucket: {BUCKET}}}\n")
    heads = records_heads.heads_for(tmp_path, "demo", load(bp).model)
    assert [type(h).__name__ for h in heads] == ["RepoHead", "S3Head"] and heads[1].label == S3_HEAD
    warnings: list[str] = []
    paths = [records.write(rdir(tmp_path), _record(i), heads=heads, warn=warnings.append) for i in range(3)]
    records.write(rdir(tmp_path), _record(3, sandbox=True), heads=heads, warn=warnings.append)
    assert warnings == []

    stored = json.loads(client.get_object(Bucket=BUCKET, Key=S3_KEY)["Body"].read())
    assert {k: stored[k] for k in ("env", "seq", "count")} == {"env": "demo", "seq": 3, "count": 3}
    assert stored["sha256"] == json.loads(paths[2].read_text())["sha256"]  # the sandbox run left it alone
    assert head(tmp_path)["seq"] == 4

    proc = infra(tmp_path, "history", "env.yaml", "--verify", **env)
    assert proc.returncode == 0, proc.stderr
    assert f"verified: 4 records, chain intact, matches {HEAD} (#4), {S3_HEAD} (#3)" in proc.stdout

    # Someone with the repository and .infra/: drop the last two records and move the repository head back.
    second = json.loads(paths[1].read_text())
    for path in rdir(tmp_path).glob("00000[34]-*.json"):
        path.unlink()
    (tmp_path / ".infra-heads" / "demo.json").write_text(json.dumps(
        head(tmp_path) | {"seq": 2, "count": 2, "sha256": second["sha256"]}))
    assert infra(tmp_path, "history", "demo", "--verify").returncode == 0  # by name: the repository head only
    proc = infra(tmp_path, "history", "env.yaml", "--verify", **env)
    assert proc.returncode == 8
    (line,) = errors(proc)
    assert re.fullmatch(rf"error: {S3_HEAD}: says the chain ends at record #3 \(sha256 {SHORT}\), but the last "
                        r"record here is #2: records were deleted from the end", line), line


@pytest.mark.integration
def test_unreachable_s3_head_is_a_warning_when_writing_and_a_problem_when_verifying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_module("boto3", "boto3")
    env = _aws_env(tmp_path, "http://127.0.0.1:9")  # discard port: connection refused
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = records_heads.S3Head(BUCKET, S3_KEY, "us-east-1")
    warnings: list[str] = []
    path = records.write(rdir(tmp_path), _record(0), heads=[store], warn=warnings.append)
    assert path.is_file()  # the run is recorded whatever happens to the head
    assert len(warnings) == 2, warnings  # reading it (for the next seq), then writing it
    assert warnings[0].startswith(f"{S3_HEAD}: cannot be read (")
    assert warnings[1].startswith(f"run record #1 written, but {S3_HEAD} could not be written (")
