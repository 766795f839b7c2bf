"""Rollback that fits git (orchestrator/rollback_change.py): the blueprint change to commit after a
rollback, written in place where it can (comments kept) and checked by loading it again; and the one
line ``plan``/``up`` print when the environment was rolled back from the blueprint they apply.
Real blueprint files, real records (records.write), the real ``infra`` executable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import records, rollback_change
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.outputs import EnvOutputs
from orchestrator.stages.context import new_record

INFRA = Path(sys.executable).with_name("infra")
LAB = """blueprint: 1
name: lab  # the lab
provider: baremetal
# the hosts
hosts:
  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}  # the first
tags:
  team: ml   # who pays
"""
AWS = """blueprint: 1
name: app
provider: aws
region: us-east-1
tags:
  network-of: ${output:net.vpc_id}  # from the network environment
network: {cidr: 10.40.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 3}
kubernetes: {private_access: {via: inside_network}}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "250"
    return env


def _infra(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(INFRA), *args], cwd=root, env=_env(), capture_output=True, text=True, timeout=120)


def _loaded(path: Path, text: str, outputs_of=None):
    path.write_text(text)
    return load(path, outputs_of=outputs_of)


def test_differences_are_per_value_and_whole_lists_of_another_length() -> None:
    a = {"x": 1, "l": [1, 2], "m": {"k": "v", "gone": True}, "n": [{"p": 1}]}
    b = {"x": 1, "l": [1, 2, 3], "m": {"k": "w"}, "n": [{"p": 2}], "new": 0}
    assert rollback_change.differences(a, b) == [("l",), ("m", "k"), ("m", "gone"), ("n", 0, "p"), ("new",)]
    assert rollback_change.differences({"v": 1}, {"v": True}) == [("v",)]  # 1 == True, but not in YAML
    assert rollback_change.differences(a, a) == []


def test_a_changed_scalar_is_replaced_in_place_and_comments_are_kept(tmp_path: Path) -> None:
    file = tmp_path / "lab.yaml"
    applied = _loaded(file, LAB).data  # what the rolled-back-to run applied
    current = _loaded(file, LAB.replace("port: 1", "port: 22").replace("team: ml", "team: data"))
    ch = rollback_change.change(file, current, applied)
    assert ch.new == LAB  # exactly the file as it was: comments, flow style and quoting kept
    assert (ch.kept_layout, ch.refused, ch.notes) == (True, False, [])
    diff = ch.diff("envs/lab.yaml")
    assert diff.startswith("--- a/envs/lab.yaml\n+++ b/envs/lab.yaml\n")
    assert "-  - {name: node-1, address: 127.0.0.1, port: 22, roles: [control_plane, worker]}  # the first\n" in diff
    assert "+  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}  # the first\n" in diff
    assert "-  team: data   # who pays\n+  team: ml   # who pays\n" in diff
    before = stat.S_IMODE(os.stat(file).st_mode)
    rollback_change.write(ch)
    assert file.read_text() == LAB and stat.S_IMODE(os.stat(file).st_mode) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml"]  # no temporary file left
    again = rollback_change.change(file, load(file), applied)
    assert again.empty and not again.refused


def test_a_structural_change_rewrites_only_its_block_and_says_comments_were_lost(tmp_path: Path) -> None:
    file = tmp_path / "lab.yaml"
    applied = _loaded(file, LAB).data
    grown = LAB.replace("# the first\n", "# the first\n  - {name: node-2, address: 127.0.0.2, roles: [worker]}\n")
    current = _loaded(file, grown.replace("tags:\n  team: ml   # who pays\n", ""))
    ch = rollback_change.change(file, current, applied)
    assert ch.new is not None and not ch.kept_layout and not ch.refused
    assert ch.notes == [f"{file.name}: the comments inside hosts could not be kept (rewritten from the data: a key "
                        "added or removed, or a list of another length); check the diff before committing"]
    assert "name: lab  # the lab\n" in ch.new and "# the hosts\n" in ch.new and "node-2" not in ch.new
    assert ch.how == "hosts, tags rewritten from the data (comments inside hosts lost); the rest kept as it was"
    assert ch.new.endswith("\n    roles:\n      - control_plane\n      - worker\ntags:\n  team: ml\n")
    file.write_text(ch.new)
    assert load(file).data == applied


def test_extends_values_are_overridden_and_what_cannot_be_removed_is_named(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("provider: baremetal\nhosts:\n"
                    "  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}\n")
    top = tmp_path / "lab.yaml"
    applied = _loaded(top, "blueprint: 1\nextends: base.yaml\nname: lab  # kept\n").data
    base.write_text(base.read_text().replace("port: 1", "port: 9") + "tags: {team: ml}\n")
    current = load(top)
    ch = rollback_change.change(top, current, applied)
    assert ch.new is not None and ch.new.startswith("blueprint: 1\nextends: base.yaml\nname: lab  # kept\nhosts:\n")
    assert (ch.kept_layout, ch.how) == (True, "hosts rewritten from the data; the rest kept as it was")
    assert ch.notes[0] == ("tags is set in base.yaml (extends), not in lab.yaml: remove it there, or the "
                           "blueprint will not say what the rollback applied")
    assert ch.notes[-1] == "after this change the blueprint still differs from what the rollback applied at tags"
    top.write_text(ch.new)
    assert load(top).data["hosts"] == applied["hosts"]  # the base's list overridden, the base untouched
    assert "port: 9" in base.read_text()


def test_an_output_reference_is_kept_as_written(tmp_path: Path) -> None:
    def outputs(vpc: str):
        return lambda env: EnvOutputs({"vpc_id": vpc}, frozenset()) if env == "net" else None

    file = tmp_path / "app.yaml"
    applied = _loaded(file, AWS, outputs("vpc-old")).data
    current = _loaded(file, AWS.replace("max: 3", "max: 5"), outputs("vpc-new"))
    ch = rollback_change.change(file, current, applied, outputs("vpc-new"))
    assert ch.new == AWS  # max back to 3, the reference still a reference
    assert ch.notes == ['tags.network-of kept as written (${output:net.vpc_id}: read at run time); the '
                        'rolled-back run had "vpc-old"']


def test_a_change_that_would_not_load_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "lab.yaml"
    applied = {**_loaded(file, LAB).data, "name": "Not A Name"}  # a record no blueprint can hold today
    ch = rollback_change.change(file, load(file), applied)
    assert ch.refused and ch.new is None
    assert ch.notes[-1].startswith(f"no change is shown: the changed blueprint would not load ({file}:2:")


def _rolled_back(root: Path) -> tuple[str, str]:
    """Records of lab: an up of port 1, an up of port 22, a rollback to the first. The file says port 22."""
    file, chain = root / "lab.yaml", root / ".infra" / "records" / "lab"
    first = new_record(_loaded(file, LAB), "up", sandbox=False)
    first.outcome = "success"
    records.write(chain, first)
    second = new_record(_loaded(file, LAB.replace("port: 1", "port: 22")), "up", sandbox=False)
    second.outcome = "success"
    records.write(chain, second)
    back = new_record(_loaded(root / "old.yaml", LAB), "up", sandbox=False)  # as the rollback's own up
    (root / "old.yaml").unlink()
    back.rollback_of, back.outcome = first.id, "success"
    records.write(chain, back)
    return first.id, back.id


def test_plan_warns_once_after_a_rollback_until_the_blueprint_says_what_it_applied(tmp_path: Path) -> None:
    first, back = _rolled_back(tmp_path)
    chain = records.list_records(tmp_path / ".infra" / "records" / "lab")
    assert rollback_change.rolled_back_warning(load(tmp_path / "lab.yaml"), chain, True, "plan") is None  # sandbox
    ran = _infra(tmp_path, "plan", "lab.yaml")
    assert ran.returncode == 0, ran.stderr
    warned = [line for line in ran.stderr.splitlines() if "rolled back" in line]
    assert len(warned) == 1 and warned[0].startswith(f"warning: lab was rolled back to run {first} (run {back}, ")
    assert "differs from what that applied (hosts[0].port)" in warned[0]
    (tmp_path / "lab.yaml").write_text(LAB)  # the change `infra rollback` printed, committed
    ran = _infra(tmp_path, "plan", "lab.yaml")
    assert ran.returncode == 0 and "rolled back" not in ran.stderr, ran.stderr
    (tmp_path / "lab.yaml").write_text(LAB.replace("port: 1", "port: 22"))
    later = new_record(load(tmp_path / "lab.yaml"), "up", sandbox=False)  # a deliberate up after the rollback
    later.outcome = "success"
    records.write(tmp_path / ".infra" / "records" / "lab", later)
    ran = _infra(tmp_path, "plan", "lab.yaml")
    assert ran.returncode == 0 and "rolled back" not in ran.stderr, ran.stderr


def test_history_by_name_in_a_fresh_clone_says_to_pass_the_blueprint_file(tmp_path: Path) -> None:
    (tmp_path / ".infra-heads").mkdir()
    (tmp_path / ".infra-heads" / "gone.json").write_text('{"env": "gone", "seq": 3}\n')
    ran = _infra(tmp_path, "history", "gone")
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines()[0] == (
        "error: infra history: no runs of gone recorded here, yet .infra-heads/gone.json says there are: pass its "
        "blueprint file (`infra history FILE.yaml`) to read the records kept beside its state")
    (tmp_path / ".infra-heads" / "gone.json").unlink()
    ran = _infra(tmp_path, "history", "gone")
    assert ran.returncode == 0 and "no runs recorded for 'gone'" in ran.stdout


def test_a_fresh_clone_given_a_name_finds_the_one_blueprint_whose_state_is_in_a_bucket(tmp_path: Path) -> None:
    from orchestrator.cli.records_cmd import _by_name
    from orchestrator.errors import UsageError

    bp = AWS.replace("name: app", "name: shared-env").replace("tags:\n  network-of: ${output:net.vpc_id}  # "
                                                              "from the network environment\n", "")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "shared.yaml").write_text(bp + "state: {backend: s3, bucket: team-state}\n")
    (tmp_path / "other.yaml").write_text(bp.replace("name: shared-env", "name: other"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        model, path = _by_name("shared-env", "history", False)
        assert (path, model.state.bucket) == (Path("envs/shared.yaml"), "team-state")
        model, path = _by_name("other", "history", False)
        assert (model, path) == (None, Path("other.yaml"))  # local state: the records are here or nowhere
        (tmp_path / "copy.yaml").write_text((tmp_path / "envs" / "shared.yaml").read_text())
        with pytest.raises(UsageError, match=r"2 blueprints are named shared-env \(copy.yaml, envs/shared.yaml\)"):
            _by_name("shared-env", "history", False)
    finally:
        os.chdir(cwd)


def test_rollback_write_replaces_the_file_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of `infra rollback FILE RUN --write`, given the context its `up` ran with (the merged
    blueprint written out as commands.rollback writes it); then the same without --write: nothing to do."""
    import json

    from orchestrator.cli.records_cmd import _blueprint_change
    from orchestrator.stages.commands import build_context

    monkeypatch.chdir(tmp_path)
    file = tmp_path / "lab.yaml"
    applied = tmp_path / "rollback-abc.yaml"
    applied.write_text(json.dumps(_loaded(file, LAB).data))
    file.write_text(LAB.replace("port: 1", "port: 22"))
    ctx = build_context(applied, "up", lambda plan: True, root=tmp_path)
    _blueprint_change(Path("lab.yaml"), ctx, "abc", False, True)
    out = capsys.readouterr()
    assert file.read_text() == LAB
    assert out.out == ("wrote lab.yaml (comments and layout kept): it says what run abc applied; commit it so the "
                       "next merge keeps the rollback\n") and out.err == ""
    _blueprint_change(Path("lab.yaml"), ctx, "abc", False, False)
    assert capsys.readouterr().out == "lab.yaml already says what run abc applied: nothing to commit\n"
