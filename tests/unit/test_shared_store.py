"""Run records, heads, outputs and the run lock beside an S3 state (orchestrator/shared_store.py),
against a real moto server on loopback (started the way ``--sandbox`` starts it), with the bucket
``infra state bootstrap`` makes. Two project folders stand for two clones of one repository: one
writes, the other starts with nothing but the blueprint. The pipeline runs with the in-process
stand-in for the Terraform CLI of test_pipeline.py (only the external process is replaced)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator import records, records_heads, sandbox, shared_store
from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError, LockedError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.stages.context import Context, RunState, new_record
from orchestrator.stages.pipeline import run
from orchestrator.workspace import STATE_DIR_ENV, Workspace
from tests.conftest import EXAMPLES, require, require_module
from tests.unit.test_pipeline import CHANGES, OUTPUTS, FakeTerraform

pytestmark = pytest.mark.integration  # a moto server per module
BUCKET = "team-state"
T0 = 1_700_000_000.0
CLEAN = (STATE_DIR_ENV, records_heads.HEAD_DIR_ENV, records.HMAC_KEY_ENV, sandbox.ENDPOINT_ENV)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    require_module("moto.server", "moto[server] (the AWS emulator)")
    boto3 = require_module("boto3", "boto3")
    from orchestrator.state_bootstrap import _s3

    state = tmp_path_factory.mktemp("moto")
    info = sandbox.start(state)
    try:
        _s3(BUCKET, "us-east-1", info.endpoint)  # versioned, encrypted, every public access block on
        client = boto3.client("s3", endpoint_url=info.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        yield info.endpoint, client
    finally:
        sandbox.stop(state)


@pytest.fixture
def aws(moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AWS credentials of a machine whose S3 is the moto server; the same for subprocesses."""
    for name in CLEAN:
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL_S3": moto[0],
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def clone(root: Path, name: str, bucket: str = BUCKET, extra: str = "") -> Path:
    """A project folder holding only the blueprint ``env.yaml`` of environment ``name``."""
    root.mkdir(parents=True, exist_ok=True)
    text = (EXAMPLES / "sandbox.yaml").read_text().replace("name: demo", f"name: {name}", 1)
    (root / "env.yaml").write_text(text + extra + f"\nstate: {{backend: s3, bucket: {bucket}}}\n")
    return root / "env.yaml"


def infra(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in CLEAN} | {"COLUMNS": "250"} | env
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", *args],
                          cwd=root, env=full, capture_output=True, text=True, timeout=120)


def _record(env: str, i: int) -> records.RunRecord:
    return records.RunRecord(env=env, command="up", blueprint_path="env.yaml", blueprint_sha256="ab" * 32,
                             id=f"rec{i:05d}", outcome="success", started=T0 + 60 * i)


def write_from(root: Path, env: str, *indexes: int) -> list[Path]:
    """Records written the way a run writes them: through the store, moving both heads."""
    model = load(root / "env.yaml").model
    shared = shared_store.for_blueprint(model)
    heads = records_heads.heads_for(root, env, model, shared=shared)
    warnings: list[str] = []
    paths = [records.write(root / ".infra" / "records" / env, _record(env, i), heads=heads,
                           warn=warnings.append, shared=shared) for i in indexes]
    assert warnings == []
    return paths


def _keys(client, env: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"infra/{env}/").get("Contents", []))


def _tamper(client, key: str, edit) -> None:
    data = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    edit(data)
    client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- records and heads ------------------------------------------------------------------------------


def test_records_go_beside_the_state_encrypted_and_a_fresh_clone_lists_verifies_and_continues_them(
    tmp_path: Path, aws, moto
) -> None:
    client = moto[1]
    a, b = tmp_path / "a", tmp_path / "b"
    clone(a, "hist")
    paths = write_from(a, "hist", 0, 1, 2)
    head_key = "infra/hist/terraform.tfstate.records-head.json"
    assert _keys(client, "hist") == sorted([f"infra/hist/records/{p.name}" for p in paths] + [head_key])
    for key in _keys(client, "hist"):
        assert client.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    assert all(client.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())

    clone(b, "hist")  # a fresh clone: no .infra/, no .infra-heads/
    listed = infra(b, "history", "env.yaml", "-o", "json", **aws)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)["records"]] == ["rec00000", "rec00001", "rec00002"]
    for path in paths:  # the local copies are the bucket's, byte for byte, owner-only
        copy = b / ".infra" / "records" / "hist" / path.name
        assert copy.read_bytes() == path.read_bytes() and copy.stat().st_mode & 0o777 == 0o600
    verified = infra(b, "history", "env.yaml", "--verify", **aws)
    assert verified.returncode == 0, verified.stderr
    assert f"verified: 3 records, chain intact, matches state-backend head s3://{BUCKET}/{head_key} (#3)" \
        in verified.stdout
    assert "warning: repository head .infra-heads/hist.json: not here (a fresh clone, or never committed)" \
        in verified.stderr

    [fourth] = write_from(b, "hist", 3)  # a run from clone B continues the same chain
    data = json.loads(fourth.read_text())
    assert (data["seq"], data["prev_sha256"]) == (4, json.loads(paths[2].read_text())["sha256"])
    again = infra(a, "history", "env.yaml", "--verify", **aws)  # clone A reads B's run; its own head lags
    assert again.returncode == 0, again.stderr
    assert "verified: 4 records, chain intact" in again.stdout
    assert (a / ".infra" / "records" / "hist" / fourth.name).read_bytes() == fourth.read_bytes()
    clone(tmp_path / "c", "hist")  # a fresh clone given the name only: the blueprint named so says where
    by_name = infra(tmp_path / "c", "history", "hist", "-o", "json", **aws)
    assert by_name.returncode == 0, by_name.stderr
    assert [r["id"] for r in json.loads(by_name.stdout)["records"]] == [f"rec{i:05d}" for i in range(4)]


def test_a_record_tampered_in_the_bucket_is_caught_by_a_fresh_clone_and_by_one_holding_a_copy(
    tmp_path: Path, aws, moto
) -> None:
    client = moto[1]
    a = tmp_path / "a"
    clone(a, "tamper")
    paths = write_from(a, "tamper", 0, 1, 2)
    _tamper(client, f"infra/tamper/records/{paths[1].name}", lambda d: d.update(outcome="failed"))

    fresh = tmp_path / "fresh"
    clone(fresh, "tamper")
    proc = infra(fresh, "history", "env.yaml", "--verify", **aws)
    assert proc.returncode == 8, proc.stderr
    assert f"error: record #2 ({paths[1].name}): modified after it was written (its sha256 does not match its " \
           "content)" in proc.stderr.splitlines()

    proc = infra(a, "history", "env.yaml", "--verify", **aws)  # A's copy is intact: the two differ
    assert proc.returncode == 8
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: record #2 ({paths[1].name}): differs from its copy in s3://{BUCKET}/infra/tamper/records/: one "
        "of them was changed after it was written"]

    client.delete_object(Bucket=BUCKET, Key=f"infra/tamper/records/{paths[1].name}")
    proc = infra(a, "history", "env.yaml", "--verify", **aws)
    assert f"error: record #2 ({paths[1].name}): not in s3://{BUCKET}/infra/tamper/records/, which holds later " \
           "records: removed there" in proc.stderr.splitlines()
    other = tmp_path / "other"
    clone(other, "tamper")
    proc = infra(other, "history", "env.yaml", "--verify", **aws)
    assert proc.returncode == 8
    assert "error: record #2 missing after #1: deleted (sequence numbers are never reused)" in proc.stderr


def test_an_unreachable_bucket_keeps_the_record_here_and_the_next_run_uploads_it(tmp_path: Path, aws, moto,
                                                                                   monkeypatch) -> None:
    client = moto[1]
    root = tmp_path / "a"
    clone(root, "late")
    model = load(root / "env.yaml").model
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: connection refused
    down = shared_store.for_blueprint(model)
    warnings: list[str] = []
    first = records.write(root / ".infra" / "records" / "late", _record("late", 0), warn=warnings.append,
                          shared=down)
    assert first.is_file()
    assert warnings[0].startswith(f"the shared records were not read: s3://{BUCKET}/infra/late/records/: "
                                  "cannot be listed (")
    assert warnings[1] == (f"run record kept in {root / '.infra/records/late'} only: the shared records could "
                           "not be read (the next run uploads it)")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws["AWS_ENDPOINT_URL_S3"])
    second = write_from(root, "late", 1)[0]
    assert _keys(client, "late") == sorted([f"infra/late/records/{first.name}", f"infra/late/records/{second.name}",
                                            "infra/late/terraform.tfstate.records-head.json"])


# --- the run lock -------------------------------------------------------------------------------------


def test_the_shared_lock_is_one_conditional_write_and_names_its_holder(tmp_path: Path, aws, moto) -> None:
    client = moto[1]
    shared = shared_store.for_blueprint(load(clone(tmp_path, "locks")).model)
    warnings: list[str] = []
    with shared.lock("infra up env.yaml", warnings.append):
        holder = json.loads(client.get_object(Bucket=BUCKET, Key="infra/locks/run.lock")["Body"].read())
        assert (holder["pid"], holder["command"]) == (os.getpid(), "infra up env.yaml")
        with pytest.raises(LockedError) as refused, shared.lock("infra plan env.yaml", warnings.append):
            pass  # pragma: no cover - never entered
        assert isinstance(refused.value, shared_store.SharedLocked) and refused.value.exit_code == 6
        assert re.fullmatch(rf"environment 'locks' is locked by \S+@\S+ \(pid {os.getpid()}, `infra up env.yaml`, "
                            rf"since \S+\) \(shared lock s3://{BUCKET}/infra/locks/run.lock\)", refused.value.message)
    assert "infra/locks/run.lock" not in _keys(client, "locks")  # released
    assert warnings == []

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = holder | {"pid": int(gone.stdout), "pid_start": "1"}  # this host, a process that has exited
    client.put_object(Bucket=BUCKET, Key="infra/locks/run.lock", Body=json.dumps(dead))
    with shared.lock("infra up env.yaml", warnings.append):
        assert json.loads(client.get_object(Bucket=BUCKET, Key="infra/locks/run.lock")["Body"].read())["pid"] \
            == os.getpid()
    assert len(warnings) == 1 and warnings[0].endswith("was left by a run that is gone (killed): taken over")

    elsewhere = holder | {"host": "ci-runner-7", "pid": 4242}  # another machine: never guessed dead
    client.put_object(Bucket=BUCKET, Key="infra/locks/run.lock", Body=json.dumps(elsewhere))
    with pytest.raises(LockedError) as refused, shared.lock("infra up env.yaml", warnings.append):
        pass  # pragma: no cover - never entered
    assert "locked by" in refused.value.message and "@ci-runner-7 (pid 4242" in refused.value.message
    assert f"delete s3://{BUCKET}/infra/locks/run.lock" in (refused.value.hint or "")
    client.delete_object(Bucket=BUCKET, Key="infra/locks/run.lock")


def _context(root: Path, engine: FakeTerraform, command: str) -> Context:
    loaded = load(root / "env.yaml")
    return Context(loaded=loaded, provider=get("aws"), ws=Workspace(root=root, name=loaded.model.name),
                   progress=Progress(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False),
                   confirm=lambda plan: True, state=RunState(record=new_record(loaded, command, False)),
                   make_terraform=lambda ctx: engine)


def test_a_run_in_another_clone_is_refused_by_the_shared_lock_and_not_recorded(tmp_path: Path, aws, moto) -> None:
    """Two clones: two local locks, one shared lock. The refused run appends nothing (the chain is the
    holder's), and the holder's record reaches the bucket."""
    from orchestrator.stages.render import RenderStage
    from orchestrator.stages.terraform import PlanStage

    a, b = tmp_path / "a", tmp_path / "b"
    clone(a, "busy")
    clone(b, "busy")
    in_plan, release = threading.Event(), threading.Event()
    first = FakeTerraform(CHANGES, in_plan=in_plan, release=release)
    done: list[BaseException | None] = []

    def first_run() -> None:
        try:
            run(_context(a, first, "plan"), "plan", [RenderStage(), PlanStage(keep=False)])
            done.append(None)
        except BaseException as exc:  # pragma: no cover - reported below
            done.append(exc)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert in_plan.wait(30)
        second = FakeTerraform(CHANGES)
        with pytest.raises(LockedError, match=r"^environment 'busy' is locked by .*shared lock s3://"):
            run(_context(b, second, "plan"), "plan", [RenderStage(), PlanStage(keep=False)])
        assert second.calls == []
        assert not (b / ".infra" / "records" / "busy").exists() or not list((b / ".infra/records/busy").glob("*.json"))
    finally:
        release.set()
        thread.join(30)
    assert done == [None]
    [mine] = (a / ".infra" / "records" / "busy").glob("*.json")
    assert f"infra/busy/records/{mine.name}" in _keys(moto[1], "busy")
    assert "infra/busy/run.lock" not in _keys(moto[1], "busy")


def test_a_fresh_runner_planning_the_blueprint_a_rollback_went_back_from_is_warned(tmp_path: Path, aws, moto) -> None:
    """Clone A applies max 2, then max 4, then rolls back to the first (records through the store); a
    fresh clone B whose blueprint still says 4 plans it: one warning line, read from the bucket's records
    (orchestrator/rollback_change.py). B's blueprint saying 2 again: no warning."""
    from orchestrator.stages.render import RenderStage
    from orchestrator.stages.terraform import PlanStage

    a, b = tmp_path / "a", tmp_path / "b"
    file = clone(a, "undo")
    shared = shared_store.for_blueprint(load(file).model)
    heads = records_heads.heads_for(a, "undo", load(file).model, shared=shared)
    ids = []
    for size, back in ((2, None), (4, None), (2, 0)):
        file.write_text(re.sub(r"max: \d+", f"max: {size}", file.read_text(), count=1))
        rec = new_record(load(file), "up", False)
        rec.outcome, rec.rollback_of = "success", ids[back] if back is not None else None
        records.write(a / ".infra" / "records" / "undo", rec, heads=heads, shared=shared)
        ids.append(rec.id)
    clone(b, "undo").write_text(re.sub(r"max: \d+", "max: 4", file.read_text(), count=1))
    ctx = run(_context(b, FakeTerraform(CHANGES), "plan"), "plan", [RenderStage(), PlanStage(keep=False)])
    warned = [line for line in ctx.progress.err_stream.getvalue().splitlines() if "rolled back" in line]
    assert len(warned) == 1 and warned[0].startswith(f"warning: undo was rolled back to run {ids[0]} (run {ids[2]}, ")
    assert "differs from what that applied (node_pools[0].max)" in warned[0]
    (b / "env.yaml").write_text(file.read_text())
    ctx = run(_context(b, FakeTerraform(CHANGES), "plan"), "plan", [RenderStage(), PlanStage(keep=False)])
    assert "rolled back" not in ctx.progress.err_stream.getvalue()


def test_an_environment_held_for_a_pull_request_applies_only_for_its_holder(
        tmp_path: Path, aws, moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """``infra lock acquire FILE --holder PR-1`` (orchestrator/pr_lock.py): another holder cannot take
    or release it (exit 6), ``up`` runs only with ``INFRA_LOCK_HOLDER=PR-1`` (refused: not recorded,
    Terraform never called), ``plan`` is not held; released, anyone applies."""
    from orchestrator import pr_lock
    from orchestrator.stages.render import RenderStage
    from orchestrator.stages.terraform import ApplyStage, PlanStage

    a = tmp_path / "a"
    clone(a, "held")
    taken = infra(a, "lock", "acquire", "env.yaml", "--holder", "PR-1", **aws)
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith("held: held for PR-1 (taken by ") and f"(s3://{BUCKET}/infra/held/hold.json)" \
        in taken.stdout
    other = infra(a, "lock", "acquire", "held", "--holder", "PR-2", **aws)  # by name
    assert other.returncode == 6
    assert other.stderr.startswith("error: environment 'held' is held for PR-1 (taken by "), other.stderr
    store = shared_store.for_blueprint(load(a / "env.yaml").model)
    assert pr_lock.acquire(store, "PR-1")[1] is False  # the same holder again: kept
    with pytest.raises(LockedError, match=r"PR-2 cannot release it \(--force releases any hold\)"):
        pr_lock.release(store, "PR-2")

    stages = [RenderStage(), PlanStage(), ApplyStage()]
    monkeypatch.delenv("INFRA_LOCK_HOLDER", raising=False)
    refused = FakeTerraform(CHANGES)
    with pytest.raises(LockedError, match=r"^environment 'held' is held for PR-1 .*runs only for it "
                                          r"\(no INFRA_LOCK_HOLDER\)"):
        run(_context(a, refused, "up"), "up", stages)
    assert refused.calls == [] and not list((a / ".infra" / "records" / "held").glob("*.json"))
    run(_context(a, FakeTerraform(CHANGES), "plan"), "plan", [RenderStage(), PlanStage(keep=False)])  # not held
    monkeypatch.setenv("INFRA_LOCK_HOLDER", "PR-1")
    ctx = run(_context(a, FakeTerraform(CHANGES), "up"), "up", stages)
    assert ctx.state.record.outcome == "success"

    assert pr_lock.read(store)[0]["holder"] == "PR-1"
    released = infra(a, "lock", "release", "env.yaml", "--holder", "PR-1", **aws)
    assert (released.returncode, released.stdout.split(" (")[0]) == (0, "held: released the hold of PR-1"), \
        released.stderr
    assert "infra/held/hold.json" not in _keys(moto[1], "held")
    monkeypatch.setenv("INFRA_LOCK_HOLDER", "PR-2")
    assert run(_context(a, FakeTerraform(CHANGES), "up"), "up", stages).state.record.outcome == "success"
    local = clone(tmp_path / "local", "plain")
    local.write_text(local.read_text().replace(f"state: {{backend: s3, bucket: {BUCKET}}}", ""))
    refused_local = infra(tmp_path / "local", "lock", "acquire", "env.yaml", "--holder", "PR-1", **aws)
    assert refused_local.returncode == 2 and "only an environment whose state is in S3 can be held" \
        in refused_local.stderr


# --- outputs ----------------------------------------------------------------------------------------


def test_outputs_of_an_up_resolve_output_references_and_status_in_a_fresh_clone(tmp_path: Path, aws, moto) -> None:
    """``up`` publishes its outputs beside the state; in a clone with nothing but blueprints, a second
    blueprint's ``${output:net.NAME}`` resolves from there (net's blueprint, beside it, names another
    bucket), ``infra status`` shows them, and a sensitive one is still refused."""
    from orchestrator.stages.commands import open_environment
    from orchestrator.stages.render import RenderStage
    from orchestrator.stages.terraform import ApplyStage, OutputsStage, PlanStage
    from orchestrator.state_bootstrap import _s3
    from orchestrator.status import status

    _s3("net-state", "us-east-1", moto[0])
    a, b = tmp_path / "a", tmp_path / "b"
    clone(a, "net", bucket="net-state")
    ctx = _context(a, FakeTerraform(CHANGES), "up")
    run(ctx, "up", [RenderStage(), PlanStage(), ApplyStage(), OutputsStage()])
    shared = json.loads(moto[1].get_object(Bucket="net-state", Key="infra/net/outputs.json")["Body"].read())
    assert (shared["env"], shared["values"], shared["sensitive"]) == ("net", OUTPUTS, [])

    clone(b, "net", bucket="net-state")
    app = b / "app.yaml"
    app.write_text((EXAMPLES / "sandbox.yaml").read_text().replace("name: demo", "name: app", 1).replace(
        "tags: {cost-center: ml-platform}", "tags: {cost-center: ml-platform, upstream: '${output:net.cluster_name}'}")
        + f"\nstate: {{backend: s3, bucket: {BUCKET}}}\n")
    assert open_environment(app, root=b).loaded.model.tags["upstream"] == "demo"
    assert not (b / ".infra" / "env").exists()  # read from the bucket, not from a copy here

    st = status(b / "env.yaml", root=b)
    assert (st.deployed, st.outputs, st.last_run["id"]) == (True, OUTPUTS, ctx.state.record.id)

    moto[1].put_object(Bucket="net-state", Key="infra/net/outputs.json", Body=json.dumps(
        shared | {"sensitive": ["cluster_name"]}))
    with pytest.raises(BlueprintError, match="sensitive"):
        open_environment(app, root=b)

    gone = _context(a, FakeTerraform(CHANGES), "down")  # a down that destroyed everything: nothing to refer to
    run(gone, "down", [RenderStage(), PlanStage(destroy=True), ApplyStage()])
    assert "infra/net/outputs.json" not in [o["Key"] for o in moto[1].list_objects_v2(Bucket="net-state")["Contents"]]
    assert not gone.ws.outputs_file.exists()
    with pytest.raises(BlueprintError, match="net has no outputs"):
        open_environment(app, root=b)


def test_the_pulumi_bridge_reads_the_outputs_beside_the_state_in_a_fresh_clone(
        tmp_path: Path, aws, moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pulumi_bridge.read_outputs`` (docs/pulumi.md) given the blueprint: the outputs beside the state first,
    so a clone holding nothing but the blueprint reads what another clone's ``up`` wrote; a bucket it cannot
    read is one warning, and the copy here is read instead. (The Pulumi side: tests/unit/test_pulumi_bridge.py.)"""
    from orchestrator import pulumi_bridge
    from orchestrator.stages.render import RenderStage
    from orchestrator.stages.terraform import ApplyStage, OutputsStage, PlanStage
    from orchestrator.state_bootstrap import _s3

    _s3("bridge-state", "us-east-1", moto[0])
    a, b = tmp_path / "a", tmp_path / "b"
    clone(a, "bridge", bucket="bridge-state")
    run(_context(a, FakeTerraform(CHANGES), "up"), "up", [RenderStage(), PlanStage(), ApplyStage(), OutputsStage()])

    found = pulumi_bridge.read_outputs(clone(b, "bridge", bucket="bridge-state"), root=b)
    assert (dict(found.values), found.sensitive, found.source) == (
        OUTPUTS, frozenset(), "s3://bridge-state/infra/bridge/outputs.json")
    assert found.kubeconfig()["clusters"][0]["cluster"]["server"] == OUTPUTS["cluster_endpoint"]
    assert not (b / ".infra").exists()

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    warnings: list[str] = []
    found = pulumi_bridge.read_outputs(a / "env.yaml", root=a, warn=warnings.append)
    assert (dict(found.values), found.source) == (OUTPUTS, str(a / ".infra" / "env" / "bridge" / "outputs.json"))
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("the outputs beside the state were not read "
                                  "(s3://bridge-state/infra/bridge/outputs.json: cannot be read")


# --- the sandbox ------------------------------------------------------------------------------------


def test_a_sandbox_run_of_an_s3_blueprint_keeps_its_state_in_the_emulators_bucket(tmp_path: Path) -> None:
    from orchestrator.sandbox import Sandbox, ServerInfo

    session = Sandbox(ServerInfo(pid=1, port=4566, generation="g", started_at="2025-01-01T00:00:00Z"))
    remote = session.overrides(get("aws"), load(clone(tmp_path, "remote")).model)
    assert remote.backend == "s3"
    text = remote.files["backend_override.tf"]
    for line in (f'bucket                      = "{BUCKET}"', 'key                         = '
                 '"infra/remote/terraform.tfstate"', "use_lockfile                = true",
                 'endpoints                   = { s3 = "http://127.0.0.1:4566" }', 'access_key                  = '
                 '"sandbox"'):
        assert f"    {line}\n" in text
    require(shutil.which("terraform") is not None, "terraform on PATH")
    (tmp_path / "override.tf").write_text(text)
    fmt = subprocess.run(["terraform", "fmt", "-check", "-diff", str(tmp_path / "override.tf")],
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout
    local = session.overrides(get("aws"), load(EXAMPLES / "sandbox.yaml").model)
    assert local.backend == "local" and 'backend "local" {}' in local.files["backend_override.tf"]


def test_infra_sandbox_endpoint_names_a_running_emulator_and_nothing_else(tmp_path: Path, moto,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.errors import SandboxError

    monkeypatch.setenv(sandbox.ENDPOINT_ENV, moto[0])
    info = sandbox.start(tmp_path / ".infra")  # attaches: starts nothing, writes nothing
    assert info.endpoint == moto[0] and info.generation.startswith("ext-")
    assert not (tmp_path / ".infra").exists()
    assert sandbox.stop(tmp_path / ".infra") is None
    assert sandbox.status(tmp_path / ".infra") == info  # still running
    for value, message in (("127.0.0.1:5000", "not an emulator address (http://HOST:PORT)"),
                           ("http://127.0.0.1:9", "the AWS emulator at http://127.0.0.1:9 does not answer")):
        monkeypatch.setenv(sandbox.ENDPOINT_ENV, value)
        with pytest.raises(SandboxError, match=re.escape(message)) as failed:
            sandbox.status(tmp_path / ".infra")
        assert failed.value.exit_code == 7


def test_the_api_holds_releases_and_shows_a_hold_beside_the_state(tmp_path: Path, aws, moto) -> None:
    """``infra lock`` through orchestrator.api: typed results, the same conditional object."""
    from orchestrator import api

    client = moto[1]
    file = clone(tmp_path, "heldapi")
    taken = api.hold(file, "PR-7")
    assert (taken.env, taken.holder, taken.changed) == ("heldapi", "PR-7", True)
    assert taken.where == f"s3://{BUCKET}/infra/heldapi/hold.json" and taken.since and "@" in taken.taken_by
    assert json.loads(client.get_object(Bucket=BUCKET, Key="infra/heldapi/hold.json")["Body"].read())["holder"] == \
        "PR-7"
    assert api.hold(file, "PR-7").changed is False  # the same holder again: kept
    with pytest.raises(LockedError) as other:
        api.hold(file, "PR-8")
    assert other.value.exit_code == 6
    assert api.show_hold("heldapi", root=tmp_path).holder == "PR-7"  # by name: the one blueprint of that name
    with pytest.raises(LockedError):
        api.release_hold(file, "PR-8")
    released = api.release_hold(file, "PR-7")
    assert (released.holder, released.changed) == ("PR-7", True)
    assert api.show_hold(file).holder is None and api.release_hold(file, "PR-7").changed is False
    local = tmp_path / "local" / "env.yaml"
    local.parent.mkdir()
    local.write_text((EXAMPLES / "sandbox.yaml").read_text())
    with pytest.raises(api.UsageError, match="only an environment whose state is in S3 can be held"):
        api.hold(local, "PR-7")
