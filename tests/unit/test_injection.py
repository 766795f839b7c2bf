"""A blueprint never runs code through Ansible, Terraform or a template (docs/security.md).

Layer 1: validation rejects template syntax, control and bidirectional characters, and anything
that is not an address, a user, a label, a URI... where one is expected (exit 2, nothing run).
Layer 2: even a value that got past validation reaches Ansible as ``!unsafe`` data and HCL
literals are escaped: the real ``ansible-playbook`` runs with hostile values and executes none.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.models import Blueprint, Host, Inference, Mig, Model, NodePool, State, Taint
from orchestrator.engines.ansible import Ansible, AnsibleRunError, load_site_vars
from orchestrator.errors import BlueprintError, UsageError
from orchestrator.inventory import InventoryHost
from orchestrator.providers.aws import AwsProvider
from orchestrator.providers.baremetal import BaremetalProvider
from orchestrator.render.ansible import SAFE_KEY, dump, render_ansible
from orchestrator.render.terraform import render_terraform

INFRA = Path(sys.executable).with_name("infra")

# examples/onprem-gpu.yaml's shape; the line and column of each {field} are part of the tests.
BLUEPRINT = """\
blueprint: 1
name: onprem
provider: baremetal
kubernetes:
  version: "1.31"
node_pools:
  - name: dgx
    gpu: {{type: h100, count: 8}}
    labels:
      workload: {label}
hosts:
  - name: cp-1
    address: {address}
    roles: [control_plane]
  - name: dgx-01
    address: 10.1.0.11
    user: {user}
    roles: [worker]
    pool: dgx
teams:
  - name: vision
    gpu_quota: 8
inference:
  runtime: onnx
  models:
    - name: resnet50
      uri: {uri}
      team: vision
"""
SAFE = {"label": "training", "address": "10.1.0.10", "user": "ubuntu", "uri": "https://models.example.com/r.onnx"}


def hostile(marker: Path, echo: str = "127.0.0.1") -> str:
    """What the issue reported: a lookup that runs a command on the control machine."""
    return f"{{{{ lookup('pipe', 'touch {marker} && echo {echo}') }}}}"


def blueprint_bp(**values: str) -> dict:
    """The blueprint as data, with ``values`` set as they are (no YAML parsing of them)."""
    data = yaml.safe_load(BLUEPRINT.format(**SAFE))
    where = {"label": data["node_pools"][0]["labels"], "address": data["hosts"][0], "user": data["hosts"][1],
             "uri": data["inference"]["models"][0]}
    for field, value in values.items():
        where[field]["workload" if field == "label" else field] = value
    return data


# --- layer 1: `infra configure --check` refuses, runs nothing -------------------------------------


@pytest.mark.parametrize(("field", "path", "where"), [
    ("address", "hosts[0].address", "13:14"),
    ("user", "hosts[1].user", "17:11"),
    ("label", "node_pools[0].labels.workload", "10:17"),
    ("uri", "inference.models[0].uri", "27:12"),
])
def test_configure_check_refuses_a_hostile_value_and_runs_nothing(tmp_path, field, path, where):
    marker = tmp_path / "PWNED"
    value = hostile(marker) if field != "uri" else "https://x.example/" + hostile(marker)
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(**{**SAFE, field: '"' + value + '"'}))
    proc = subprocess.run([str(INFRA), "configure", "--check", "bp.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"bp.yaml:{where} {path}: must " in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp.yaml"]  # nothing rendered, nothing run


# --- layer 1: what validation accepts ------------------------------------------------------------


def problems(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        Blueprint.model_validate(data)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_a_label_value_of_two_million_characters_fails_without_being_echoed():
    [(loc, msg)] = problems(blueprint_bp(label="a" * 2_000_000))
    assert loc == ("node_pools", 0, "labels", "workload")
    assert msg == "Value error, must be at most 63 characters"


def test_a_right_to_left_override_fails_where_it_was_written(tmp_path):
    path = tmp_path / "bp.yaml"
    path.write_text(BLUEPRINT.format(**{**SAFE, "label": '"gpu\u202eniart"'}), encoding="utf-8")
    with pytest.raises(BlueprintError) as info:
        load(path)
    assert [str(p).split(" ", 1)[1] for p in info.value.problems] == [
        "node_pools[0].labels.workload: must not contain control or bidirectional characters "
        "(U+202E at character 4)"
    ]
    assert info.value.problems[0].line == 10 and info.value.problems[0].column == 17


@pytest.mark.parametrize("address", ["10.1.0.10", "fe80::1", "fe80::1%eth0", "gpu-01", "gpu-01.lab.example.com",
                                     "GPU01.Example.COM"])
def test_addresses_that_are_ip_addresses_or_host_names(address):
    assert Blueprint.model_validate(blueprint_bp(address=address)).hosts[0].address == address


@pytest.mark.parametrize("address", [
    "-oProxyCommand=touch PWNED", "host name", "a..b", "10.1.0.256", "gpu_01", "x" * 64, "fe80::1%{{x}}",
    "host\n", "127.0.0.1;id", "$(id)", "h\u202e",
])
def test_addresses_that_are_neither(address):
    [(loc, msg)] = problems(blueprint_bp(address=address))
    assert loc == ("hosts", 0, "address") and msg.startswith("Value error, must ")


@pytest.mark.parametrize("user", ["root", "ubuntu", "_svc", "ml-ops_2"])
def test_posix_user_names_pass(user):
    assert Blueprint.model_validate(blueprint_bp(user=user)).hosts[1].user == user


@pytest.mark.parametrize("user", ["Admin", "1user", "a b", "u$", "x" * 33, "{{ x }}", "root\n"])
def test_other_users_fail(user):
    assert [loc for loc, _ in problems(blueprint_bp(user=user))] == [("hosts", 1, "user")]


@pytest.mark.parametrize(("key", "value"), [
    ("workload", ""), ("workload", "a"), ("example.com/team", "ml-infra_2.x"), ("a" * 63, "b" * 63),
    ("a" * 253 + "/" + "n" * 63, "Z9"), ("kubernetes.io/arch", "amd64"),
])
def test_kubernetes_label_keys_and_values_pass(key, value):
    data = blueprint_bp()
    data["node_pools"][0]["labels"] = {key: value}
    data["node_pools"][0]["taints"] = [{"key": key, "value": value, "effect": "NoSchedule"}]
    pool = Blueprint.model_validate(data).node_pools[0]
    assert pool.labels == {key: value} and pool.taints[0].key == key


@pytest.mark.parametrize(("key", "value", "bad"), [
    ("workload", "-a", "value"), ("workload", "a" * 64, "value"), ("workload", "a b", "value"),
    ("workload", "{{x}}", "value"), ("Example.com/team", "x", "key"), ("a" * 64, "x", "key"),
    ("a" * 254 + "/n", "x", "key"), ("/name", "x", "key"), ("ex.com/", "x", "key"), ("a/b/c", "x", "key"),
])
def test_kubernetes_label_keys_and_values_that_fail(key, value, bad):
    data = blueprint_bp()
    data["node_pools"][0]["labels"] = {key: value}
    data["node_pools"][0]["taints"] = [{"key": key, "value": value, "effect": "NoSchedule"}]
    locs = [loc for loc, _ in problems(data)]
    label_loc = ("node_pools", 0, "labels", key) + (("[key]",) if bad == "key" else ())
    assert locs == [label_loc, ("node_pools", 0, "taints", 0, bad)]


@pytest.mark.parametrize("uri", [
    "https://h.example/{{x}}", "s3://b/{%x%}", "s3://b/${x}", "gs://b/%{x}", "s3://b/a b", "s3://b/a\tb",
    "https://h.example/" + "a" * 2031, "s3://b/\u202e", "ftp://h/x",
])
def test_model_uris_without_template_syntax_whitespace_or_control_characters(uri):
    data = blueprint_bp(uri=uri)
    assert [loc for loc, _ in problems(data)] == [("inference", "models", 0, "uri")]


def test_model_uri_up_to_2048_characters_passes():
    uri = "https://h.example/" + "a" * 2030
    assert len(uri) == 2048
    assert Blueprint.model_validate(blueprint_bp(uri=uri)).inference.models[0].uri == uri


@pytest.mark.parametrize(("where", "value"), [
    (("tags", "owner"), "ml\u2066team"), (("tags", "owner"), "x" * 257), (("tags", "owner"), "a\x00"),
    (("teams", 0, "groups", 0), "devs\u200f"), (("teams", 0, "groups", 0), "g" * 513),
    (("state", "bucket"), "${file(\"/etc/passwd\")}"), (("state", "bucket"), "Bucket"),
    (("node_pools", 0, "instance_type"), "p4d.24xlarge\"\n"),
])
def test_free_text_fields_have_limits_and_no_control_or_bidi_characters(where, value):
    data = blueprint_bp()
    data.update({"tags": {"owner": "ml"}, "state": {"backend": "s3", "bucket": "ok-bucket"}})
    data["teams"][0]["groups"] = ["devs"]
    target = data
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    assert [loc for loc, _ in problems(data)] == [where]


def test_secret_references_keep_working(tmp_path):
    data = blueprint_bp()
    data["secrets"] = {"ssh_key": "${file:~/.ssh/id_ed25519}", "registry_password": "${env:REGISTRY_PASSWORD}"}
    assert Blueprint.model_validate(data).secrets == data["secrets"]
    data["secrets"] = {"ssh_key": "${file:/tmp/k\nx}"}
    assert [loc for loc, _ in problems(data)] == [("secrets", "ssh_key")]


# --- layer 2: the render and the engine, with validation bypassed ----------------------------------


def hostile_blueprint(v: dict[str, str]) -> Blueprint:
    """A bare-metal blueprint whose strings were never validated (model_construct)."""
    base = Blueprint.model_validate(blueprint_bp())
    pool = NodePool.model_construct(name="dgx", labels={"workload": v["label"]}, mig=Mig.model_construct(
        profile=v["mig"]), taints=[Taint.model_construct(key="dedicated", value=v["taint"], effect="NoSchedule")])
    host = Host.model_construct(name="cp-1", address=v["address"], port=22, user=v["user"],
                                roles=["control_plane"], pool="dgx", gpu=None)
    model = Model.model_construct(name="resnet50", uri=v["uri"], replicas=1, gpu=0, team="vision")
    return base.model_copy(update={"name": v["environment"], "node_pools": [pool], "hosts": [host],
                                   "inference": Inference.model_construct(runtime="onnx", models=[model])})


SHOW = """\
- name: Values as Ansible sees them, on the controller
  hosts: all
  gather_facts: false
  vars: {ansible_connection: local, ansible_become: false}
  tasks:
    - ansible.builtin.set_stats:
        per_host: false
        data:
          seen:
            address: "{{ ansible_host }}"
            user: "{{ ansible_user }}"
            label: "{{ infra_labels.workload }}"
            taint: "{{ infra_taints[0].value }}"
            mig: "{{ infra_mig_profile }}"
            uri: "{{ inference_onnx_models[0].uri }}"
            environment: "{{ infra_environment }}"
            fetch: "{{ infra_kubeconfig_fetch }}"
            site: "{{ site_value }}"
- name: The same host over SSH (ansible_host, ansible_user)
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""


def test_ansible_runs_none_of_the_values_even_past_validation(tmp_path):
    fields = ("address", "user", "label", "taint", "mig", "uri", "environment", "fetch", "site")
    markers = {f: tmp_path / f"PWNED-{f}" for f in fields}
    values = {f: hostile(m, f) for f, m in markers.items()}
    files = render_ansible(hostile_blueprint(values), BaremetalProvider())
    assert "      ansible_host: !unsafe '{{ lookup(''pipe'', ''touch " in files["inventory.yml"]
    for rel, text in files.items():
        (tmp_path / "inv" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "inv" / rel).write_text(text)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "show.yml").write_text(SHOW)
    site = tmp_path / "site-vars.yml"  # a site variables file, as `--extra-vars` passes it
    site.write_text(yaml.safe_dump({"site_value": values["site"]}))
    engine = Ansible(tmp_path / "private", project_dir=tmp_path / "project")

    with pytest.raises(AnsibleRunError) as info:  # the SSH play: the hostile address is no host name
        engine.run("show.yml", tmp_path / "inv" / "inventory.yml", host_count=1,
                   extravars={"infra_kubeconfig_fetch": values["fetch"]}, extravars_files=[site])

    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("PWNED")) == []
    assert info.value.result.data == {"seen": values}  # every value literally as written
    [failure] = info.value.result.host_failures()
    assert failure.host == "cp-1" and failure.unreachable and failure.task == "ansible.builtin.ping"
    assert list((tmp_path / "private" / "vars").iterdir()) == []  # no copy of site values outlives the run


def test_a_broken_site_variables_file_is_bad_input_with_its_line(tmp_path):
    site = tmp_path / "site.yml"
    site.write_text("nvidia_driver_branch: 550\nbroken: [unclosed\n")
    with pytest.raises(UsageError) as info:
        load_site_vars(site)
    assert info.value.exit_code == 2
    assert info.value.message == (
        f"{site}:3:1: extra variables file is not valid YAML: expected ',' or ']', but got '<stream end>'")
    site.write_text("- a list\n")
    with pytest.raises(UsageError, match="must be a mapping of variable names to values"):
        load_site_vars(site)


def test_host_and_group_names_must_be_plain_names():
    host = InventoryHost(name="{{ lookup('pipe', 'id') }}", address="10.0.0.1")

    class FromOutputs(BaremetalProvider):  # a provider whose hosts come from Terraform outputs
        def inventory_hosts(self, bp, outputs):
            return [InventoryHost(**h) for h in outputs["hosts"]]

    with pytest.raises(UsageError) as info:
        render_ansible(Blueprint.model_validate(blueprint_bp()), FromOutputs(), {"hosts": [host.__dict__]})
    assert info.value.message == (
        "refusing to write the name \"{{ lookup('pipe', 'id') }}\" into the Ansible inventory")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(SAFE_KEY, fullmatch=True), st.text() | st.lists(st.text(), max_size=3),
                       max_size=4))
def test_every_string_is_written_unsafe_and_reads_back_unchanged(data):
    text = dump({"vars": data})
    node = yaml.compose(text)
    scalars = [n for n in _walk(node) if isinstance(n, yaml.ScalarNode)]
    for n in scalars:  # !unsafe, or number/bool/null-shaped text (which Ansible would re-type under the tag)
        plain_type = yaml.resolver.Resolver().resolve(yaml.ScalarNode, n.value, (True, False))
        assert n.tag == "!unsafe" or (plain_type != "tag:yaml.org,2002:str" and "{" not in n.value), n

    class Reader(yaml.SafeLoader):
        pass

    Reader.add_constructor("!unsafe", lambda loader, n: loader.construct_scalar(n))
    assert yaml.load(text, Loader=Reader) == {"vars": data}


def _walk(node):
    if isinstance(node, yaml.MappingNode):
        for _key, value in node.value:  # keys are names (SAFE_KEY), written plain
            yield from _walk(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)
    else:
        yield node


def test_backend_settings_are_hcl_literals_terraform_does_not_evaluate():
    bp = Blueprint.model_validate({
        "blueprint": 1, "name": "cloud", "provider": "aws", "region": "us-east-1",
        "node_pools": [{"name": "system", "instance_type": "m6i.large", "min": 1, "max": 2}],
        "state": {"backend": "s3", "bucket": "ok"}})
    bad = bp.model_copy(update={"state": State.model_construct(backend="s3", bucket='${file("/etc/passwd")}%{x}',
                                                               lock=True)})
    backend = render_terraform(bad, AwsProvider())["backend.tf"]
    assert '    bucket       = "$${file(\\"/etc/passwd\\")}%%{x}"\n' in backend


def test_strings_that_look_like_numbers_stay_strings_in_ansible():
    """ansible-core re-resolves ``!unsafe '1.30'`` as the float 1.3: the version check on real hosts
    then read "kubeadm v1.30.0 is not Kubernetes 1.3". Read back with Ansible's own YAML loader."""
    from ansible.parsing.utils.yaml import from_yaml

    text = dump({"version": "1.30", "flag": "yes", "nothing": "null", "empty": "", "count": 5,
                 "template": "{{ lookup('pipe', 'id') }}"})
    data = from_yaml(text)
    assert {k: (type(v).__mro__[1].__name__, v) for k, v in data.items()} == {
        "version": ("str", "1.30"), "flag": ("str", "yes"), "nothing": ("str", "null"), "empty": ("str", ""),
        "count": ("int", 5), "template": ("str", "{{ lookup('pipe', 'id') }}"),
    }
    assert "template: !unsafe '{{ lookup(''pipe'', ''id'') }}'" in text
