"""Provider names come from one place: the packages under orchestrator/providers/.

The blueprint model, the registry and validation all derive from that folder listing and from
``data/catalog/<name>.yaml``; a new provider package becomes a valid ``provider:`` without any
core file changing (proved on a copy of the package with one folder and one data file added).
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

from orchestrator import paths
from orchestrator.blueprint import catalog
from orchestrator.errors import UsageError
from orchestrator.providers import registry
from orchestrator.providers.base import Provider

PACKAGE = Path(paths.__file__).resolve().parent

NEW_PROVIDER = '''
from typing import Any, ClassVar

from ..base import Provider


class NewcloudProvider(Provider):
    name: ClassVar[str] = "newcloud"
    terraform_module: ClassVar[str | None] = "newcloud_gpu_cluster"

    def terraform_variables(self, bp) -> dict[str, Any]:
        return {"region": bp.region, "name": bp.name}
'''

PROBE = r'''
import json, sys
from pathlib import Path
from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError
from orchestrator.providers import registry

out = {"names": registry.names()}
for name in ("cloud", "mismatch", "hosts_on_cloud", "rack", "unknown"):
    try:
        loaded = load(Path(sys.argv[1]) / f"{name}.yaml")
        out[name] = {"provider": loaded.model.provider, "is_cloud": loaded.model.is_cloud}
    except BlueprintError as exc:
        out[name] = exc.lines()
out["get"] = type(registry.get("newcloud")).__name__
out["tfvars"] = registry.get("newcloud").terraform_variables(load(Path(sys.argv[1]) / "cloud.yaml").model)
print(json.dumps(out))
'''


def test_provider_names_are_the_provider_packages():
    assert paths.provider_names() == ("aws", "azure", "baremetal", "gcp")
    assert registry.names() == ["aws", "azure", "baremetal", "gcp"]
    # errors list clouds first, then providers of existing hosts
    assert catalog.providers() == ("aws", "azure", "gcp", "baremetal")
    assert catalog.of_kind("hosts") == ("baremetal",)


@pytest.mark.parametrize("name", ["aws", "azure", "baremetal", "gcp"])
def test_every_provider_package_has_its_class_and_catalog(name):
    cls = registry.provider_class(name)
    assert issubclass(cls, Provider) and cls.name == name
    assert (PACKAGE / "data" / "catalog" / f"{name}.yaml").is_file()
    assert catalog.kind(name) == ("hosts" if name == "baremetal" else "cloud")


def test_registry_refuses_what_cannot_be_rendered_yet():
    assert type(registry.get("aws")).__name__ == "AwsProvider"
    assert type(registry.get("baremetal")).__name__ == "BaremetalProvider"
    assert type(registry.get("azure")).__name__ == "AzureProvider"
    assert type(registry.get("gcp")).__name__ == "GcpProvider"
    assert registry.renderable() == ["aws", "azure", "baremetal", "gcp"]
    with pytest.raises(UsageError) as err:
        registry.get("openstack")
    assert err.value.message == "unknown provider 'openstack' (known: aws, azure, baremetal, gcp)"


def test_no_core_module_names_a_provider():
    """Only providers/<name>/ may spell a provider's name in code (quoted, as a value to compare with)."""
    quoted = re.compile(r"""["'](aws|azure|gcp|baremetal)["']""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "providers" not in path.relative_to(PACKAGE).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert offenders == []


def test_a_new_provider_package_is_a_valid_provider_without_touching_core_files(tmp_path: Path):
    copy = tmp_path / "site" / "orchestrator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "_shipped"))
    before = {p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    # what adding two providers adds (the Terraform module and templates live outside the package)
    (copy / "providers" / "newcloud").mkdir()
    (copy / "providers" / "newcloud" / "__init__.py").write_text(NEW_PROVIDER)
    (copy / "data" / "catalog" / "newcloud.yaml").write_text(
        "kind: cloud\nmachines:\n  nc.gpu8: {gpu_type: h100, gpu_count: 8, vcpus: 96, memory_gib: 1024}\n"
    )
    (copy / "providers" / "rack").mkdir()
    (copy / "providers" / "rack" / "__init__.py").write_text(NEW_PROVIDER.replace("newcloud", "rack"))
    (copy / "data" / "catalog" / "rack.yaml").write_text("kind: hosts\nmachines: {}\n")
    after = {p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k in before} == before  # no existing file changed
    assert sorted(set(after) - set(before)) == [
        "data/catalog/newcloud.yaml", "data/catalog/rack.yaml",
        "providers/newcloud/__init__.py", "providers/rack/__init__.py",
    ]

    blueprints = tmp_path / "bp"
    blueprints.mkdir()
    pool = "node_pools:\n  - {name: gpu, instance_type: nc.gpu8, gpu: {type: h100, count: 8}, min: 0, max: 2}\n"
    cloud = ("blueprint: 1\nname: nc-env\nprovider: newcloud\nregion: r-1\n"
             "kubernetes: {private_access: {via: inside_network}}\n" + pool)
    (blueprints / "cloud.yaml").write_text(cloud)
    (blueprints / "mismatch.yaml").write_text(cloud.replace("h100", "a100"))
    host = "hosts:\n  - {name: h1, address: 10.0.0.1, roles: [worker]}\n"
    (blueprints / "hosts_on_cloud.yaml").write_text(cloud + host)
    (blueprints / "rack.yaml").write_text("blueprint: 1\nname: rk-env\nprovider: rack\nregion: r-1\n")
    (blueprints / "unknown.yaml").write_text("blueprint: 1\nname: un-env\nprovider: openstack\n")
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(blueprints)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["names"] == ["aws", "azure", "baremetal", "gcp", "newcloud", "rack"]
    assert out["cloud"] == {"provider": "newcloud", "is_cloud": True}
    # the new cloud's catalog is checked like any other: nc.gpu8 carries h100s, not a100s
    assert out["mismatch"] == [f"{blueprints / 'mismatch.yaml'}:7:53 node_pools[0].gpu.type: nc.gpu8 has "
                               "8 x h100, not 8 x a100"]
    assert out["hosts_on_cloud"] == [f"{blueprints / 'hosts_on_cloud.yaml'}:8:1 hosts: only allowed on baremetal or "
                                     "rack (provider is newcloud): remove hosts"]
    # a hosts provider: region forbidden, hosts required, named from the data
    assert out["rack"] == [
        f"{blueprints / 'rack.yaml'}:1:1 hosts: at least one host is required on rack",
        f"{blueprints / 'rack.yaml'}:4:9 region: not allowed on rack: remove region",
    ]
    assert out["unknown"] == [
        f"{blueprints / 'unknown.yaml'}:3:11 provider: must be one of: aws, azure, gcp, newcloud, baremetal, rack"
    ]
    assert out["get"] == "NewcloudProvider"
    assert out["tfvars"] == {"region": "r-1", "name": "nc-env"}
