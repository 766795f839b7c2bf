"""A bare-metal environment's outputs for ``${output:ENV.NAME}`` (docs/blueprint.md): what it exports,
saved after a successful configure where Terraform outputs are saved, read by another environment's
blueprint (a list output taking its place item by item in ``authorized_networks``). No SSH hosts:
the values come from the blueprint. Every expected value is a literal."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.outputs import EnvOutputs
from orchestrator.errors import BlueprintError, KubernetesError
from orchestrator.ops import kubeconfig
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.records import RunRecord
from orchestrator.stages.commands import outputs_lookup
from orchestrator.stages.configure import ConfigureStage, save_exported_outputs
from orchestrator.stages.context import Context, RunState
from orchestrator.workspace import Workspace

LAB = """blueprint: 1
name: lab
provider: baremetal
hosts:
  - {name: gpu-01, address: 10.1.0.11, port: 2200, roles: [worker]}
  - {name: cp-1, address: 192.0.2.10, roles: [control_plane]}
  - {name: cp-2, address: 192.0.2.11, roles: [control_plane]}
  - {name: v6, address: "2001:db8::7", roles: [worker]}
  - {name: infer-1, address: infer-1.lab.example, roles: [worker, inference]}
  - {name: ll, address: "fe80::1%eth0", roles: [worker]}
"""
EXPORTED = {
    "control_plane_endpoint": "https://192.0.2.10:6443",
    "egress_cidrs": ["10.1.0.11/32", "192.0.2.10/32", "192.0.2.11/32", "2001:db8::7/128"],
    "host_addresses": ["10.1.0.11", "192.0.2.10", "192.0.2.11", "2001:db8::7", "infer-1.lab.example", "fe80::1%eth0"],
}
BURST = """blueprint: 1
name: burst
provider: aws
region: us-east-1
tags: {{peer: "${{output:lab.control_plane_endpoint}}"}}
kubernetes:
  public_endpoint: true
  authorized_networks: ["203.0.113.0/24", "${{output:lab.{name}}}", "198.51.100.0/24"]
network: {{cidr: 10.31.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 3}}
"""


def _context(tmp_path: Path, text: str) -> Context:
    file = tmp_path / "env.yaml"
    file.write_text(text)
    loaded = load(file)
    record = RunRecord(env=loaded.model.name, command="up", blueprint_path=str(file), blueprint_sha256=loaded.sha256)
    ws = Workspace(root=tmp_path, name=loaded.model.name)
    return Context(loaded=loaded, provider=get(loaded.model.provider), ws=ws,
                   progress=Progress(stream=io.StringIO(), interactive=False), confirm=lambda plan: False,
                   state=RunState(record=record))


def _burst(tmp_path: Path, name: str = "egress_cidrs") -> Path:
    path = tmp_path / "burst.yaml"
    path.write_text(BURST.format(name=name))
    return path


def test_bare_metal_exports_the_first_control_plane_every_address_and_the_ips_as_cidrs(tmp_path: Path) -> None:
    ctx = _context(tmp_path, LAB)
    assert ctx.provider.exported_outputs(ctx.bp) == EXPORTED
    v6 = yaml.safe_load(LAB)
    v6["hosts"][1]["address"] = "2001:db8::10"
    assert get("baremetal").exported_outputs(_context(tmp_path, yaml.safe_dump(v6)).bp)["control_plane_endpoint"] == (
        "https://[2001:db8::10]:6443")
    assert get("aws").exported_outputs(load(_burst(tmp_path)).model) == {}  # clouds: Terraform's outputs


def test_saved_where_terraform_outputs_are_and_read_by_another_environment(tmp_path: Path) -> None:
    save_exported_outputs(_context(tmp_path, LAB))
    env_dir = tmp_path / ".infra" / "env" / "lab"
    assert json.loads((env_dir / "outputs.json").read_text()) == EXPORTED
    assert json.loads((env_dir / "outputs-sensitive.json").read_text()) == []
    assert stat.S_IMODE((env_dir / "outputs.json").stat().st_mode) == 0o600
    # the lookup plan/up use; with --sandbox too (a bare-metal environment of a --sandbox rollout runs without it)
    for sandbox in (False, True):
        assert outputs_lookup(tmp_path, sandbox)("lab") == EnvOutputs(EXPORTED, frozenset())
        loaded = load(_burst(tmp_path), outputs_of=outputs_lookup(tmp_path, sandbox))
        assert loaded.model.tags == {"peer": "https://192.0.2.10:6443"}
        assert loaded.model.kubernetes.authorized_networks == [
            "203.0.113.0/24", "10.1.0.11/32", "192.0.2.10/32", "192.0.2.11/32", "2001:db8::7/128", "198.51.100.0/24"]
    assert load(_burst(tmp_path), outputs_of=outputs_lookup(tmp_path, False)).data["kubernetes"][
        "authorized_networks"][1:5] == EXPORTED["egress_cidrs"]  # the run record keeps the expanded list
    lab = _context(tmp_path, LAB)  # the cluster's kubeconfig is kubeadm's, never built from these
    with pytest.raises(KubernetesError, match="no Terraform outputs for 'lab'"):
        kubeconfig.resolve(lab.ws, lab.bp, lab.provider, None)


def test_a_cloud_configure_writes_no_outputs_and_a_sandbox_lookup_never_reads_real_terraform_outputs(
        tmp_path: Path) -> None:
    ctx = _context(tmp_path, _burst(tmp_path).read_text().replace('"${output:lab.egress_cidrs}", ', "").replace(
        'tags: {peer: "${output:lab.control_plane_endpoint}"}\n', ""))
    save_exported_outputs(ctx)
    assert not ctx.ws.env_dir.exists()
    real = tmp_path / ".infra" / "env" / "cloud"
    (real / "tf-data").mkdir(parents=True)
    (real / "outputs.json").write_text('{"egress": "203.0.113.9/32"}')
    assert outputs_lookup(tmp_path, False)("cloud") == EnvOutputs({"egress": "203.0.113.9/32"}, frozenset({"egress"}))
    assert outputs_lookup(tmp_path, True)("cloud") is None


def _problems(path: Path, lookup) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        load(path, outputs_of=lookup)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


def test_a_list_output_is_checked_where_it_was_written(tmp_path: Path) -> None:
    path = _burst(tmp_path, "nets")

    def lab(nets):
        return {"lab": EnvOutputs({"control_plane_endpoint": "https://192.0.2.10:6443", "nets": nets}, frozenset())}.get

    assert load(path, outputs_of=lab([])).model.kubernetes.authorized_networks == ["203.0.113.0/24", "198.51.100.0/24"]
    assert _problems(path, lab(["192.0.2.0/24", "0.0.0.0/0"])) == [
        "8:43 kubernetes.authorized_networks[2]: 0.0.0.0/0 opens the API endpoint to the whole internet: "
        "list your office or VPN CIDRs instead"]
    assert _problems(path, lab(["192.0.2.0/24", {"cidr": "x"}])) == [
        "8:43 kubernetes.authorized_networks[1]: ${output:lab.nets} is a list of other things than single values"]
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(path.read_text().replace("${output:lab.control_plane_endpoint}", "${output:lab.nets}"))
    assert _problems(tagged, lab(["192.0.2.0/24"])) == [
        "5:14 tags.peer: ${output:lab.nets} is a list, not a single value "
        "(a list fits only in kubernetes.authorized_networks[])"]


def test_configure_saves_them_after_a_successful_run_and_not_in_check_mode(tmp_path: Path) -> None:
    """The real stage and ansible-runner over a local connection (no SSH host), with a one-task playbook."""
    ctx = _context(tmp_path, "blueprint: 1\nname: lab\nprovider: baremetal\n"
                             "hosts: [{name: cp-1, address: 127.0.0.1, roles: [control_plane]}]\n")
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"name": "Nothing to do", "hosts": "all", "connection": "local",
                                     "gather_facts": False, "vars": {"ansible_python_interpreter": sys.executable},
                                     "tasks": [{"name": "Say so", "ansible.builtin.debug": {"msg": "ok"}}]}]))
    assert ConfigureStage(playbook=str(play), check=True).run(ctx) == (
        "1 hosts configured, 0 changes (check mode: nothing was changed)")
    assert not ctx.ws.outputs_file.exists()
    assert ConfigureStage(playbook=str(play)).run(ctx) == "1 hosts configured, 0 changes"
    assert json.loads(ctx.ws.outputs_file.read_text()) == {
        "control_plane_endpoint": "https://127.0.0.1:6443", "egress_cidrs": ["127.0.0.1/32"],
        "host_addresses": ["127.0.0.1"]}
