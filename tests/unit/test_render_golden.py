"""Golden-file tests of ``infra render``: the rendered Terraform root module, byte for byte.

Each case renders a blueprint twice, through ``orchestrator.render.render_files`` (pure, in
process) and through the CLI (``infra render FILE --out DIR`` in a subprocess), and compares
every file with ``tests/golden/<env name>/terraform/...``. The set of files must match too: a
file that appears or disappears is a failure.

Updating the golden files (after an intended change to templates, modules or providers)::

    make golden                     # sets INFRA_UPDATE_GOLDEN=1 and runs only the golden tests
    git diff tests/golden/          # review: this diff is what users will see in build/

In update mode the pure render rewrites ``tests/golden/<env name>/`` (stale golden files are
deleted) and the comparisons then run against what was just written, so they prove nothing:
with ``CI`` set as well, the tests refuse to rewrite anything and fail.

Blueprints: ``examples/sandbox.yaml`` (demo), ``examples/aws-gpu.yaml`` (prod-us),
``tests/golden/inputs/edge-eu.yaml`` (public endpoint with authorized networks, 3 zones,
S3 backend without lock, explicit taints of every effect) and ``examples/onprem-gpu.yaml``
(bare metal: no terraform/, an ansible/ inventory instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.models import Blueprint
from orchestrator.providers.registry import get as get_provider
from orchestrator.render import render, render_files
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GOLDEN = REPO / "tests" / "golden"
INPUTS = GOLDEN / "inputs"
INFRA = Path(sys.executable).with_name("infra")
UPDATE = os.environ.get("INFRA_UPDATE_GOLDEN") == "1"
REFUSE_IN_CI = "refusing to rewrite golden files in CI (CI is set); run `make golden` locally"

# env name (= golden folder) -> blueprint file
CASES = {
    "demo": EXAMPLES / "sandbox.yaml",
    "prod-us": EXAMPLES / "aws-gpu.yaml",
    "edge-eu": INPUTS / "edge-eu.yaml",
    "onprem": EXAMPLES / "onprem-gpu.yaml",
    "prod-weu": EXAMPLES / "azure-gpu.yaml",
    "prod-usc": EXAMPLES / "gcp-gpu.yaml",
}
# the cases that render AWS Terraform
AWS_CASES = sorted(name for name in CASES if name not in ("onprem", "prod-weu", "prod-usc"))
SECRET_VALUE = "s3cr3t-value"


def _require_terraform() -> str:
    binary = shutil.which("terraform")
    require(binary is not None, "terraform on PATH")
    return binary


def _model(path: Path) -> Blueprint:
    return load(path).model


def _flat(model: Blueprint) -> dict[str, bytes]:
    """``render_files`` output as ``{"terraform/<rel>": bytes}``."""
    parts = render_files(model, get_provider(model.provider))
    return {f"{part}/{rel}": text.encode() for part, files in parts.items() for rel, text in files.items()}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Vendored releases are rendered verbatim (1.7 MB for Kueue): the golden keeps their digest in
# ``<file>.sha256`` instead of a copy; the comparison maps both sides to ``sha256:<hex>``.
VENDORED = ("kubernetes/install/kueue.yaml",)


def _digested(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with each vendored file replaced by its digest, under its own name."""
    out = dict(files)
    for rel in VENDORED:
        if rel in out:
            out[rel] = b"sha256:" + hashlib.sha256(out[rel]).hexdigest().encode() + b"\n"
        if rel + ".sha256" in out:
            out[rel] = out.pop(rel + ".sha256")
    return out


def _on_disk(files: dict[str, bytes]) -> dict[str, bytes]:
    """What ``make golden`` writes: vendored files as ``<file>.sha256``."""
    out = _digested(files)
    for rel in VENDORED:
        if rel in out:
            out[rel + ".sha256"] = out.pop(rel)
    return out


def _update_golden(name: str, files: dict[str, bytes]) -> None:
    target = GOLDEN / name
    for rel, data in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    for rel in set(_tree(target)) - set(files):
        (target / rel).unlink()


def _golden(name: str) -> dict[str, bytes]:
    if UPDATE:
        if os.environ.get("CI"):
            pytest.fail(REFUSE_IN_CI)
        _update_golden(name, _on_disk(_flat(_model(CASES[name]))))
    tree = _digested(_tree(GOLDEN / name))
    assert tree, f"no golden files in tests/golden/{name}: run `make golden` (see module docstring)"
    return tree


def _assert_same(actual: dict[str, bytes], expected: dict[str, bytes], name: str) -> None:
    actual = _digested(actual)
    assert sorted(actual) == sorted(expected), f"file set of {name} differs from tests/golden/{name}"
    differing = [rel for rel in sorted(expected) if actual[rel] != expected[rel]]
    assert differing == [], (
        f"{name}: {differing} differ from tests/golden/{name} (`make golden` to accept an intended change)"
    )


def _infra(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )


def _cli_render(path: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = _infra("render", str(path), "--out", str(out), cwd=out.parent, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _tfvars(name: str) -> dict:
    return json.loads(_flat(_model(CASES[name]))["terraform/terraform.tfvars.json"])


def _pools(name: str) -> dict[str, dict]:
    return {p["name"]: p for p in _tfvars(name)["node_pools"]}


# --- golden files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_files_matches_golden(name: str) -> None:
    expected = _golden(name)
    _assert_same(_flat(_model(CASES[name])), expected, name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_render_matches_golden(name: str, tmp_path: Path) -> None:
    expected = _golden(name)
    out = tmp_path / "out"
    proc = _cli_render(CASES[name], out)
    assert proc.stdout == f"rendered {out / name}: {len(expected)} written, 0 unchanged, 0 removed\n"
    assert proc.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [name]
    _assert_same(_tree(out / name), expected, name)


def test_golden_covers_the_expected_layout() -> None:
    """The render is a self-contained root module: templates, tfvars, backend and the vendored module."""
    golden = _golden("demo")
    top = {rel.removeprefix("terraform/") for rel in golden if rel.startswith("terraform/") and rel.count("/") == 1}
    assert top == {
        "backend.tf", "main.tf", "outputs.tf", "providers.tf", "region.tf",
        "terraform.tfvars.json", "variables.tf", "versions.tf",
    }
    modules = {rel for rel in _golden("demo") if rel.startswith("terraform/modules/")}
    assert modules == {
        f"terraform/modules/aws_gpu_cluster/{f}"
        for f in ("access.tf", "addons.tf", "autoscaler.tf", "iam.tf", "main.tf", "models.tf", "network.tf",
                  "outputs.tf", "variables.tf", "versions.tf")
    }
    kube = {rel.removeprefix("kubernetes/") for rel in _golden("demo") if rel.startswith("kubernetes/")}
    assert kube == {
        "kustomization.yaml", "cluster/cluster-autoscaler.yaml", "cluster/device-plugin.yaml",
        "cluster/priorityclasses.yaml", "cluster/admission-policies.yaml", "install/kueue.yaml",
        "kueue/cluster-queues.yaml", "kueue/resource-flavors.yaml", "teams/nlp.yaml", "teams/vision.yaml",
    }


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_twice_is_identical(name: str) -> None:
    assert _flat(_model(CASES[name])) == _flat(_model(CASES[name]))


def test_cli_render_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    trees = []
    for seed in ("1", "4242"):
        out = tmp_path / f"seed-{seed}"
        out.mkdir()
        _cli_render(CASES["prod-us"], out, env={**os.environ, "PYTHONHASHSEED": seed})
        trees.append(_tree(out))
    assert trees[0] == trees[1]


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_key_order_does_not_change_the_render(name: str, tmp_path: Path) -> None:
    original = yaml.safe_load(CASES[name].read_text())
    reordered = _reverse_keys(original)
    assert list(reordered) != list(original)  # the test means something
    assert list(reordered["node_pools"][0]) != list(original["node_pools"][0])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert _flat(_model(path)) == _flat(_model(CASES[name]))


def test_rerender_writes_nothing(tmp_path: Path) -> None:
    model = _model(CASES["demo"])
    provider = get_provider("aws")
    first = render(model, provider, tmp_path)
    n = sum(len(files) for files in render_files(model, provider).values())
    assert first.counts() == {"written": n, "unchanged": 0, "removed": 0}
    assert first.changed is True
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").rglob("*") if p.is_file()}
    second = render(model, provider, tmp_path)
    assert second.counts() == {"written": 0, "unchanged": n, "removed": 0}
    assert second.changed is False
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").rglob("*") if p.is_file()} == mtimes


def test_cli_rerender_reports_zero_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _cli_render(CASES["demo"], out)
    n = int(re.search(r": (\d+) written", first.stdout).group(1))
    second = _cli_render(CASES["demo"], out)
    assert second.stdout == f"rendered {out / 'demo'}: 0 written, {n} unchanged, 0 removed\n"


def test_rerender_removes_stale_files_and_keeps_the_lock_file(tmp_path: Path) -> None:
    model = _model(CASES["demo"])
    provider = get_provider("aws")
    render(model, provider, tmp_path)
    tf = tmp_path / "demo" / "terraform"
    lock = tf / ".terraform.lock.hcl"
    lock.write_text('provider "registry.terraform.io/hashicorp/aws" {}\n')
    (tf / ".terraform" / "modules").mkdir(parents=True)
    (tf / ".terraform" / "modules" / "modules.json").write_text("{}\n")
    (tf / "stale.tf").write_text("# from an older render\n")
    (tf / "modules" / "old_module").mkdir()
    (tf / "modules" / "old_module" / "main.tf").write_text("# gone\n")
    (tf / "main.tf").write_text("# edited by hand\n")

    result = render(model, provider, tmp_path)
    part = result.parts["terraform"]
    assert part.removed == ["modules/old_module/main.tf", "stale.tf"]
    assert part.written == ["main.tf"]
    assert not (tf / "stale.tf").exists()
    assert not (tf / "modules" / "old_module").exists()  # empty folders go too
    assert lock.read_text() == 'provider "registry.terraform.io/hashicorp/aws" {}\n'
    assert (tf / ".terraform" / "modules" / "modules.json").read_text() == "{}\n"
    assert (tf / "main.tf").read_bytes() == _golden("demo")["terraform/main.tf"]


# --- real terraform -------------------------------------------------------------------------


def test_rendered_modules_are_terraform_fmt_clean(tmp_path: Path) -> None:
    terraform = _require_terraform()
    for path in CASES.values():
        model = _model(path)
        render(model, get_provider(model.provider), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CASES)
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout + proc.stderr


def _mirror_cli_config(tmp_path: Path, mirror: str) -> Path:
    cfg = tmp_path / "mirror.tfrc"
    cfg.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(mirror)}\n"
        '    include = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n"
    )
    return cfg


def test_rendered_sandbox_example_validates(tmp_path: Path, tf_mirror: str) -> None:
    """``terraform init -backend=false`` from the offline mirror, then ``validate -json``."""
    terraform = _require_terraform()
    out = tmp_path / "out"
    _cli_render(CASES["demo"], out)
    workdir = out / "demo" / "terraform"
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(_mirror_cli_config(tmp_path, tf_mirror)),
        "TF_DATA_DIR": str(tmp_path / "tf-data"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    init = subprocess.run(
        [terraform, "init", "-backend=false", "-input=false", "-no-color"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    proc = subprocess.run(
        [terraform, "validate", "-json", "-no-color"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    report = json.loads(proc.stdout)
    assert (report["valid"], report["error_count"]) == (True, 0), json.dumps(report["diagnostics"], indent=2)
    assert proc.returncode == 0


# --- tfvars and backend content -------------------------------------------------------------


@pytest.mark.parametrize("name", AWS_CASES)
def test_ami_type_follows_gpu(name: str) -> None:
    model = _model(CASES[name])
    pools = _pools(name)
    assert [p.name for p in model.node_pools] == list(pools)  # blueprint order is kept
    for pool in model.node_pools:
        expected = "AL2023_x86_64_NVIDIA" if pool.gpu else "AL2023_x86_64_STANDARD"
        assert pools[pool.name]["ami_type"] == expected, pool.name


def test_demo_node_pools() -> None:
    pools = _pools("demo")
    gpu_taint = [{"effect": "NO_SCHEDULE", "key": "nvidia.com/gpu", "value": "present"}]
    assert pools["a100"]["taints"] == gpu_taint
    assert pools["l4"]["taints"] == gpu_taint
    assert pools["system"]["taints"] == []
    assert {n: p["capacity_type"] for n, p in pools.items()} == {
        "system": "ON_DEMAND", "a100": "ON_DEMAND", "l4": "ON_DEMAND",
    }
    assert pools["a100"]["labels"] == {
        "infra.dev/gpu-type": "a100",
        "infra.dev/pool": "a100",
        "k8s.amazonaws.com/accelerator": "nvidia-a100",
        "nvidia.com/gpu.present": "true",
        "workload": "training",
    }
    assert pools["system"]["labels"] == {"infra.dev/pool": "system"}
    assert {n: (p["min_size"], p["desired_size"], p["max_size"]) for n, p in pools.items()} == {
        "system": (1, 2, 3), "a100": (0, 0, 4), "l4": (0, 0, 6),
    }
    assert {n: p["disk_size_gb"] for n, p in pools.items()} == {"system": 50, "a100": 200, "l4": 200}
    assert pools["a100"]["instance_types"] == ["p4d.24xlarge"]


def test_edge_node_pools_map_taint_effects_and_desired() -> None:
    pools = _pools("edge-eu")
    assert pools["batch"]["taints"] == [{"effect": "NO_EXECUTE", "key": "workload", "value": "batch"}]
    assert pools["h100"]["taints"] == [{"effect": "PREFER_NO_SCHEDULE", "key": "nvidia.com/gpu", "value": "present"}]
    assert pools["l40s"]["taints"] == []  # `taints: []` drops the default GPU taint
    assert pools["batch"]["capacity_type"] == "SPOT"
    assert (pools["batch"]["min_size"], pools["batch"]["desired_size"]) == (2, 2)  # desired defaults to min
    assert (pools["l40s"]["min_size"], pools["l40s"]["desired_size"]) == (1, 1)
    assert (pools["h100"]["min_size"], pools["h100"]["desired_size"]) == (0, 1)
    assert pools["batch"]["labels"] == {"infra.dev/pool": "batch", "workload": "batch"}
    for name in ("l40s", "h100"):
        assert pools[name]["labels"]["infra.dev/pool"] == name
        assert pools[name]["labels"]["nvidia.com/gpu.present"] == "true"
    assert "nvidia.com/gpu.present" not in pools["batch"]["labels"]


def test_subnets_per_zone() -> None:
    demo, prod, edge = (_tfvars(n) for n in ("demo", "prod-us", "edge-eu"))
    assert (demo["private_subnets"], demo["public_subnets"]) == (
        ["10.20.0.0/20", "10.20.16.0/20"],
        ["10.20.128.0/20", "10.20.144.0/20"],
    )
    assert (prod["private_subnets"], prod["public_subnets"]) == (
        ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"],
        ["10.40.128.0/20", "10.40.144.0/20", "10.40.160.0/20"],
    )
    assert (edge["private_subnets"], edge["public_subnets"]) == (
        ["172.20.0.0/20", "172.20.16.0/20", "172.20.32.0/20"],
        ["172.20.128.0/20", "172.20.144.0/20", "172.20.160.0/20"],
    )
    assert edge["vpc_cidr"] == "172.20.0.0/16"


def test_endpoint_and_tags() -> None:
    edge, demo = _tfvars("edge-eu"), _tfvars("demo")
    assert (edge["public_endpoint"], edge["authorized_networks"]) == (True, ["203.0.113.0/24", "198.51.100.16/28"])
    assert (demo["public_endpoint"], demo["authorized_networks"]) == (False, [])
    assert (edge["region"], edge["name"], edge["kubernetes_version"]) == ("eu-west-1", "edge-eu", "1.35")
    assert edge["tags"] == {
        "environment": "edge", "infra.dev/environment": "edge-eu", "managed-by": "infra", "team": "platform",
    }


def _backend(name: str) -> str:
    return _flat(_model(CASES[name]))["terraform/backend.tf"].decode()


def test_s3_backend_with_lockfile() -> None:
    text = _backend("prod-us")
    block = text[text.index("terraform {"):]
    assert block == (
        "terraform {\n"
        '  backend "s3" {\n'
        '    bucket       = "acme-ml-tf-state"\n'
        "    encrypt      = true\n"
        '    key          = "infra/prod-us/terraform.tfstate"\n'
        '    region       = "us-east-1"\n'
        "    use_lockfile = true\n"
        "  }\n"
        "}\n"
    )


def test_s3_backend_without_lock_has_no_lockfile_setting() -> None:
    text = _backend("edge-eu")
    block = text[text.index("terraform {"):]
    assert block == (
        "terraform {\n"
        '  backend "s3" {\n'
        '    bucket  = "edge-eu-tf-state"\n'
        "    encrypt = true\n"
        '    key     = "infra/edge-eu/terraform.tfstate"\n'
        '    region  = "eu-west-1"\n'
        "  }\n"
        "}\n"
    )


def test_local_backend_renders_no_path() -> None:
    text = _backend("demo")
    assert '  backend "local" {}\n' in text
    assert not re.search(r"^\s*path\s*=", text, re.MULTILINE)  # machine-specific: passed at init


def test_secret_values_are_never_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """References (``${env:...}``, ``${file:...}``) are kept as names; no value reaches build/."""
    monkeypatch.setenv("REGISTRY_PASSWORD", SECRET_VALUE)
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)
    edge = tmp_path / "edge-eu.yaml"  # its ${file:secrets/registry.txt} exists here, with the value
    shutil.copy(CASES["edge-eu"], edge)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "registry.txt").write_text(SECRET_VALUE + "\n")
    blueprints = [CASES["prod-us"], edge]
    for path in blueprints:
        assert _model(path).secrets  # the blueprint does carry references
        for rel, data in _flat(_model(path)).items():
            assert SECRET_VALUE.encode() not in data, rel
    out = tmp_path / "out"
    out.mkdir()
    for path in blueprints:
        _cli_render(path, out, env=dict(os.environ))  # the child sees the variables
    tree = _tree(out)
    assert {rel.split("/")[0] for rel in tree} == {"prod-us", "edge-eu"}
    for rel, data in tree.items():
        assert SECRET_VALUE.encode() not in data, rel
