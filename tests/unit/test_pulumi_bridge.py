"""The Pulumi bridge (orchestrator/pulumi_bridge.py) under Pulumi's own mocks: ``pulumi.runtime.set_mocks``
with a ``pulumi.runtime.Mocks`` that records every resource, no Pulumi CLI, no engine, no network.

The outputs are written the way ``infra up`` writes them: its outputs stage (stages/terraform.py
``OutputsStage``) runs with the real terraform CLI on a root module that has nothing but outputs, in
the shape of the aws root module's (``cluster_ca`` marked sensitive, as the azure module marks it).
The example program ``examples/pulumi/__main__.py`` then runs as Pulumi would run it, configured
through the keys its ``Pulumi.yaml`` declares, and the test checks what it exported and what its
resources were given.
"""

from __future__ import annotations

import base64
import io
import json
import runpy
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.settings import get_root_resource, reset_options
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from orchestrator import pulumi_bridge
from orchestrator.blueprint.loader import load
from orchestrator.engines.terraform import Terraform
from orchestrator.errors import BlueprintError, UsageError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.stages.context import Context, RunState, new_record
from orchestrator.stages.terraform import SENSITIVE_OUTPUTS, OutputsStage
from orchestrator.workspace import STATE_DIR_ENV, Workspace, write_private
from tests.conftest import EXAMPLES, require

PROGRAM = EXAMPLES / "pulumi" / "__main__.py"
PROJECT = yaml.safe_load((EXAMPLES / "pulumi" / "Pulumi.yaml").read_text())

ENDPOINT = "https://0F1E2D3C4B5A69788796A5B4C3D2E1F0.gr7.us-east-1.eks.amazonaws.com"
VPC = "vpc-0a1b2c3d4e5f67890"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIC5zCCAc+gAwIBAgIB\n-----END CERTIFICATE-----\n").decode()
POOLS = {
    "system": {"node_group": "system-20261206", "instance_types": ["m6i.large"],
               "labels": {"infra.dev/pool": "system"}, "taints": []},
    "a100": {"node_group": "a100-20261206", "instance_types": ["p4d.24xlarge"],
             "labels": {"infra.dev/pool": "a100", "workload": "training"},
             "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]},
    "l4": {"node_group": "l4-20261206", "instance_types": ["g6.xlarge"],
           "labels": {"infra.dev/pool": "l4", "workload": "inference"},
           "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]},
}
OUTPUTS = {"cluster_name": "demo", "cluster_endpoint": ENDPOINT, "cluster_ca": CA, "vpc_id": VPC, "node_pools": POOLS,
           "private_subnet_ids": ["subnet-0aa", "subnet-0bb"], "left_out": []}
SENSITIVE = {"cluster_ca"}


def _quiet() -> Progress:
    return Progress(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False)


def _blueprint(folder: Path) -> Path:
    """The sandbox example (environment ``demo``: aws, us-east-1, local state) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(EXAMPLES / "sandbox.yaml", folder / "env.yaml"))


def infra_up_outputs(tmp_path: Path, project: Path, blueprint: Path, sandbox: bool) -> Workspace:
    """What an ``up`` of ``blueprint`` leaves in ``project``: terraform applies an outputs-only root module,
    then ``up``'s own outputs stage reads ``terraform output -json`` and writes the files (0600)."""
    require(shutil.which("terraform") is not None, "the terraform CLI on PATH")
    module = tmp_path / "outputs-module"
    module.mkdir()
    (module / "outputs.tf.json").write_text(json.dumps({"output": {
        name: {"value": value, **({"sensitive": True} if name in SENSITIVE else {})} for name, value in OUTPUTS.items()
    }}))
    engine = Terraform(module, data_dir=tmp_path / "tf-data", progress=_quiet())
    engine.init()
    engine.apply(engine.plan(tmp_path / "outputs.tfplan").plan_file)
    loaded = load(blueprint)
    ws = Workspace(root=project, name=loaded.model.name, sandbox=sandbox)
    ctx = Context(loaded=loaded, provider=get(loaded.model.provider), ws=ws, progress=_quiet(),
                  confirm=lambda plan: True, state=RunState(record=new_record(loaded, "up", sandbox)),
                  make_terraform=lambda ctx: engine)
    assert OutputsStage().run(ctx) == f"{len(OUTPUTS)} outputs"
    return ws


class Recorder(pulumi.runtime.Mocks):
    """Pulumi's engine stand-in: each resource gets an id and its inputs as its state; kept for the test."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        raise AssertionError(f"the program invokes nothing, yet called {args.token}")


@pytest.fixture(autouse=True)
def _no_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)


@pytest.fixture
def mocks():
    """A fresh Pulumi runtime on mocks (a new root stack, empty config), and a clean one after."""
    reset_options()
    pulumi.runtime.set_all_config({})
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT["name"], stack="dev", preview=False)
    yield recorder
    pulumi.runtime.set_all_config({})
    reset_options()


def run_program(**config: str) -> dict[str, tuple[Any, bool]]:
    """Run the example program with ``config`` (keys its Pulumi.yaml declares): ``{export: (value, secret)}``."""
    assert set(config) <= set(PROJECT["config"]), "the program is configured only through declared keys"
    pulumi.runtime.set_all_config({f"{PROJECT['name']}:{key}": value for key, value in config.items()})
    runpy.run_path(str(PROGRAM), run_name="__main__")
    return settle(get_root_resource().outputs)


def settle(outputs: dict[str, pulumi.Output]) -> dict[str, tuple[Any, bool]]:
    """Each Output's resolved value and whether it is secret, once every registration has finished."""

    async def resolve() -> dict[str, tuple[Any, bool]]:
        await wait_for_rpcs()
        return {name: (await out.future(), await out.is_secret()) for name, out in outputs.items()}

    return _sync_await(resolve())


def _is_secret_input(value: Any) -> bool:
    """How a secret input reaches the engine (the monitor's wire form, kept by the mocks)."""
    return pulumi.runtime.rpc.is_rpc_secret(value)


# --- the example program -------------------------------------------------------------------------------


def test_the_example_program_exports_and_uses_the_outputs_of_an_up(tmp_path: Path, mocks: Recorder) -> None:
    project = tmp_path / "project"
    blueprint = _blueprint(project / "envs")  # .infra/ is found above the blueprint's folder
    ws = infra_up_outputs(tmp_path, project, blueprint, sandbox=True)
    assert ws.outputs_file == project / ".infra" / "sandbox" / "demo" / "outputs.json"

    exported = run_program(blueprint=str(blueprint))  # sandbox: the declared default (true)

    assert exported["cluster_endpoint"] == (ENDPOINT, False)
    assert exported["vpc_id"] == (VPC, False)
    assert exported["node_pools"] == (POOLS, False)
    kubeconfig, secret = exported["kubeconfig"]
    assert secret is True
    data = yaml.safe_load(kubeconfig)
    assert data["clusters"] == [{"name": "demo", "cluster": {"server": ENDPOINT, "certificate-authority-data": CA}}]
    [user] = data["users"]
    assert user["user"]["exec"]["command"] == "aws"
    assert user["user"]["exec"]["args"][:2] == ["--region", "us-east-1"]  # the blueprint's region
    assert "token" not in json.dumps(user).replace("get-token", "")  # an exec plugin: no token

    by_type = {r.typ: r for r in mocks.resources}
    assert sorted(by_type) == ["kubernetes:core/v1:ConfigMap", "pulumi:providers:kubernetes"]
    provider = by_type["pulumi:providers:kubernetes"]
    assert provider.name == "demo-cluster"
    assert _is_secret_input(provider.inputs["kubeconfig"])  # reaches the engine as a secret
    assert provider.inputs["kubeconfig"]["value"] == kubeconfig
    config_map = by_type["kubernetes:core/v1:ConfigMap"]
    assert config_map.inputs["data"] == {"clusterEndpoint": ENDPOINT, "vpcId": VPC, "nodePools": "a100,l4,system"}
    assert config_map.provider.startswith("urn:pulumi:dev::infra-outputs::")
    assert config_map.provider.endswith("::demo-cluster::demo-cluster-id")  # the provider made from the kubeconfig


def test_the_example_program_fails_clearly_when_the_environment_has_no_outputs_yet(tmp_path: Path,
                                                                                mocks: Recorder) -> None:
    project = tmp_path / "project"
    blueprint = _blueprint(project)
    (project / ".infra").mkdir(mode=0o700)
    expected = project / ".infra" / "sandbox" / "demo" / "outputs.json"
    with pytest.raises(pulumi_bridge.NoOutputsError) as caught:
        run_program(blueprint=str(blueprint), sandbox="true")
    assert caught.value.message == f"environment 'demo' has no outputs yet (looked in {expected})"
    assert caught.value.hint.startswith("run `infra up --sandbox` on it first")
    assert caught.value.exit_code == 2
    assert mocks.resources == []

    with pytest.raises(pulumi_bridge.NoOutputsError, match=r"^environment 'demo' has no outputs yet \(looked in "
                       + str(project / ".infra" / "env" / "demo" / "outputs.json").replace(".", r"\.") + r"\)$"):
        pulumi_bridge.environment(blueprint, root=project)


# --- the bridge itself ---------------------------------------------------------------------------------


def test_every_output_by_name_secret_when_terraform_marks_it(tmp_path: Path, mocks: Recorder) -> None:
    project = tmp_path / "project"
    blueprint = _blueprint(project)
    ws = infra_up_outputs(tmp_path, project, blueprint, sandbox=False)
    assert json.loads((ws.env_dir / SENSITIVE_OUTPUTS).read_text()) == sorted(SENSITIVE)

    found = pulumi_bridge.read_outputs(blueprint)  # no Pulumi involved
    assert (found.name, dict(found.values), found.sensitive, found.source) == (
        "demo", OUTPUTS, frozenset(SENSITIVE), str(ws.outputs_file))

    env = pulumi_bridge.environment(blueprint, root=project)
    resolved = settle(env.outputs)
    assert {name: value for name, (value, _) in resolved.items()} == OUTPUTS
    assert {name for name, (_, secret) in resolved.items() if secret} == SENSITIVE

    mapping = pulumi_bridge.environment_outputs(blueprint, root=project)
    assert sorted(mapping) == ["cluster_endpoint", "kubeconfig", "node_pools", "vpc_id"]
    assert {name: secret for name, (_, secret) in settle(mapping).items()} == {
        "cluster_endpoint": False, "kubeconfig": True, "node_pools": False, "vpc_id": False}

    with pytest.raises(UsageError, match=r"^environment 'demo' has no output oidc_issuer \(it has: cluster_ca, "
                                         r"cluster_endpoint, cluster_name, left_out, node_pools"):
        env.require_output("oidc_issuer")
    assert settle({"missing": env.get_output("oidc_issuer")}) == {"missing": (None, False)}


def test_an_environment_named_reads_the_copy_here_and_needs_the_blueprint_for_a_kubeconfig(
        tmp_path: Path, mocks: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    ws = infra_up_outputs(tmp_path, project, _blueprint(project), sandbox=False)
    monkeypatch.chdir(project)  # a name: the project is found from the current directory

    env = pulumi_bridge.environment("demo")
    assert settle({"endpoint": env.cluster_endpoint, "pools": env.node_pools}) == {
        "endpoint": (ENDPOINT, False), "pools": (POOLS, False)}
    assert sorted(pulumi_bridge.environment_outputs("demo")) == ["cluster_endpoint", "node_pools", "vpc_id"]
    with pytest.raises(UsageError, match=r"^the kubeconfig of environment 'demo' needs its blueprint"):
        env.kubeconfig  # noqa: B018 - the property raises

    # unknown sensitivity (the list is missing): every output is a secret, as ${output:} treats them
    (ws.env_dir / SENSITIVE_OUTPUTS).unlink()
    resolved = settle(pulumi_bridge.environment("demo").outputs)
    assert all(secret for _, secret in resolved.values()) and len(resolved) == len(OUTPUTS)


def test_provider_neutral_names_follow_each_providers_outputs(tmp_path: Path, mocks: Recorder) -> None:
    """gcp names its network ``network``; bare metal has a control plane endpoint and no network or pools."""
    gcp = Workspace(root=tmp_path, name="train")
    write_private(gcp.outputs_file, json.dumps({"cluster_endpoint": "https://10.0.0.2", "node_pools": {},
                                                "network": "projects/p/global/networks/train"}))
    write_private(gcp.env_dir / SENSITIVE_OUTPUTS, "[]\n")
    assert settle(pulumi_bridge.environment_outputs("train", root=tmp_path)) == {
        "cluster_endpoint": ("https://10.0.0.2", False), "node_pools": ({}, False),
        "vpc_id": ("projects/p/global/networks/train", False)}

    metal = Workspace(root=tmp_path, name="lab")
    write_private(metal.outputs_file, json.dumps({"control_plane_endpoint": "https://10.1.0.11:6443",
                                                  "host_addresses": ["10.1.0.11"], "egress_cidrs": []}))
    write_private(metal.env_dir / SENSITIVE_OUTPUTS, "[]\n")
    env = pulumi_bridge.environment("lab", root=tmp_path)
    assert settle(pulumi_bridge.environment_outputs("lab", root=tmp_path)) == {
        "cluster_endpoint": ("https://10.1.0.11:6443", False)}
    with pytest.raises(UsageError, match=r"^environment 'lab' has no vpc_id \(none of vpc_id, vnet_id, network "
                                         r"among its outputs: control_plane_endpoint, egress_cidrs, host_addresses; "):
        env.vpc_id  # noqa: B018 - the property raises


def test_bad_input_is_one_located_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^'Demo_1' is neither a blueprint file nor an environment name"):
        pulumi_bridge.read_outputs("Demo_1", root=tmp_path)
    with pytest.raises(UsageError, match=r"^blueprint .*/nowhere\.yaml does not exist$"):
        pulumi_bridge.read_outputs(tmp_path / "nowhere.yaml")

    broken = tmp_path / "bad.yaml"
    text = (EXAMPLES / "sandbox.yaml").read_text().replace("region: us-east-1", "region: [1]")
    broken.write_text(text)
    with pytest.raises(BlueprintError) as caught:
        pulumi_bridge.read_outputs(broken)
    line = text.splitlines().index("region: [1]") + 1
    assert str(caught.value.problems[0]).startswith(f"{broken}:{line}:")

    ws = Workspace(root=tmp_path, name="demo")
    ws.env_dir.mkdir(parents=True)
    ws.outputs_file.write_text('{\n  "cluster_endpoint": "https://x",\n  "vpc_id": \n}\n')
    with pytest.raises(UsageError, match=rf"^{ws.outputs_file}:4:1: not valid JSON \(Expecting value\)$"):
        pulumi_bridge.read_outputs("demo", root=tmp_path)
    ws.outputs_file.write_text("[]\n")
    with pytest.raises(UsageError, match=rf"^{ws.outputs_file}:1:1: not a JSON object of outputs \(a list\)$"):
        pulumi_bridge.read_outputs("demo", root=tmp_path)


def test_importing_the_bridge_leaves_pulumi_out(tmp_path: Path) -> None:
    """The rest of infra never needs Pulumi: importing the bridge (and reading outputs) loads none of it."""
    import subprocess
    import sys

    ws = Workspace(root=tmp_path, name="demo")
    ws.env_dir.mkdir(parents=True)
    ws.outputs_file.write_text(json.dumps({"vpc_id": VPC}))
    code = ("import sys; from orchestrator.pulumi_bridge import read_outputs; "
            f"print(dict(read_outputs('demo', root={str(tmp_path)!r}).values)); print('pulumi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [str({"vpc_id": VPC}), "False"]
