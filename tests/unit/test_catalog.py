"""The instance-type catalog data files are well formed and hold the facts validation relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint import catalog

DATA = Path(catalog.__file__).resolve().parents[1] / "data" / "catalog"
CLOUD_PROVIDERS = ("aws", "azure", "gcp")
GPU_TYPES = ("t4", "l4", "a10", "a10g", "a100", "h100", "h200", "l40s")  # gpu.type in docs/blueprint.md


@pytest.mark.parametrize("provider", CLOUD_PROVIDERS)
def test_data_file_entries_are_complete(provider):
    raw = yaml.safe_load((DATA / f"{provider}.yaml").read_text())["machines"]
    assert len(raw) >= 20
    for name, entry in raw.items():
        assert set(entry) - {"mig_partitions"} == {"gpu_type", "gpu_count", "vcpus", "memory_gib"}, name
        if "mig_partitions" in entry:  # MIG partition sizes such as 1g.10gb, only on a MIG-capable GPU
            assert entry["gpu_type"] in ("a100", "h100", "h200"), name
            assert all(re.fullmatch(r"[1-7]g\.[0-9]+gb", s) for s in entry["mig_partitions"]), name
        if entry["gpu_type"] is None:
            assert entry["gpu_count"] == 0, name
        else:
            assert entry["gpu_type"] in GPU_TYPES, name
            assert isinstance(entry["gpu_count"], int) and 1 <= entry["gpu_count"] <= 16, name
        assert isinstance(entry["vcpus"], int) and entry["vcpus"] > 0, name
        assert isinstance(entry["memory_gib"], int | float) and entry["memory_gib"] > 0, name


@pytest.mark.parametrize("provider", CLOUD_PROVIDERS)
def test_each_catalog_has_gpu_and_cpu_types(provider):
    types = catalog.catalog(provider).values()
    assert sum(1 for t in types if t.gpu_type) >= 10
    assert sum(1 for t in types if not t.gpu_type) >= 4


@pytest.mark.parametrize(
    ("provider", "name", "gpu"),
    [
        ("aws", "p4d.24xlarge", "8 x a100"),
        ("aws", "p4de.24xlarge", "8 x a100"),
        ("aws", "p5.48xlarge", "8 x h100"),
        ("aws", "p5e.48xlarge", "8 x h200"),
        ("aws", "g5.xlarge", "1 x a10g"),
        ("aws", "g5.12xlarge", "4 x a10g"),
        ("aws", "g5.48xlarge", "8 x a10g"),
        ("aws", "g6.xlarge", "1 x l4"),
        ("aws", "g6e.xlarge", "1 x l40s"),
        ("aws", "g4dn.xlarge", "1 x t4"),
        ("aws", "g4dn.12xlarge", "4 x t4"),
        ("aws", "m6i.large", "no GPUs"),
        ("azure", "Standard_NC24ads_A100_v4", "1 x a100"),
        ("azure", "Standard_ND96asr_v4", "8 x a100"),
        ("azure", "Standard_ND96isr_H100_v5", "8 x h100"),
        ("azure", "Standard_NC4as_T4_v3", "1 x t4"),
        ("azure", "Standard_NV36ads_A10_v5", "1 x a10"),
        ("azure", "Standard_D4s_v5", "no GPUs"),
        ("gcp", "a2-highgpu-1g", "1 x a100"),
        ("gcp", "a2-highgpu-8g", "8 x a100"),
        ("gcp", "a2-ultragpu-8g", "8 x a100"),
        ("gcp", "a3-highgpu-8g", "8 x h100"),
        ("gcp", "g2-standard-4", "1 x l4"),
        ("gcp", "n2-standard-8", "no GPUs"),
    ],
)
def test_known_facts(provider, name, gpu):
    assert catalog.lookup(provider, name).describe() == gpu


def test_unknown_or_uncatalogued_types_are_not_found():
    assert catalog.lookup("aws", "p3.2xlarge") is None  # V100: not a GPU type blueprints offer
    assert catalog.lookup("gcp", "n1-standard-8") is None  # GPUs attach to N1 separately
    assert catalog.lookup("aws", None) is None
    assert catalog.catalog("baremetal") == {}
