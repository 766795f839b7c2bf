"""The nvidia_gpu role's parsers: PCI discovery and `nvidia-smi -q -x` reports (tests/fixtures/nvidia-smi/)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "nvidia-smi"
_PLUGIN = REPO / "ansible" / "roles" / "nvidia_gpu" / "filter_plugins" / "nvidia_gpu.py"
_spec = importlib.util.spec_from_file_location("nvidia_gpu_filters", _PLUGIN)
nv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nv)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- PCI discovery ---------------------------------------------------------------------------------


def test_vm_without_gpus_is_reported_as_such():
    pci = nv.nvidia_pci_devices(fixture("pci-no-gpu-vm.txt"))
    assert pci == {"present": False, "gpu_count": 0, "gpus": [], "models": [], "nvswitch_count": 0}


def test_hgx_h100_counts_gpus_and_nvswitches_separately():
    pci = nv.nvidia_pci_devices(fixture("pci-hgx-h100.txt"))
    assert pci["present"] is True
    assert pci["gpu_count"] == 8
    assert pci["models"] == ["h100"]
    assert pci["nvswitch_count"] == 4  # bridges (class 0x0680) are not GPUs
    assert all(g["turing_or_newer"] for g in pci["gpus"])
    assert pci["gpus"][0] == {"address": "0000:18:00.0", "device_id": "0x2330", "model": "h100",
                              "turing_or_newer": True}


def test_single_t4_on_a_cloud_vm():
    pci = nv.nvidia_pci_devices(fixture("pci-t4-vm.txt"))
    assert (pci["gpu_count"], pci["models"], pci["nvswitch_count"]) == (1, ["t4"], 0)


def test_unknown_device_ids_are_counted_but_not_named():
    pci = nv.nvidia_pci_devices(fixture("pci-v100-pcie.txt"))
    assert pci["gpu_count"] == 2
    assert pci["models"] == ["unknown"]
    assert not any(g["turing_or_newer"] for g in pci["gpus"])


def test_empty_and_garbage_input():
    assert nv.nvidia_pci_devices("")["present"] is False
    assert nv.nvidia_pci_devices("not a pci line\n0000:00:01.0 0x10de")["gpu_count"] == 0


@pytest.mark.parametrize(
    ("listing", "branch", "choice", "expected"),
    [
        ("pci-hgx-h100.txt", "570", "auto", True),    # 560+ and Hopper: open modules
        ("pci-hgx-h100.txt", "550", "auto", False),   # before 560 the proprietary ones are the default
        ("pci-v100-pcie.txt", "570", "auto", False),  # Volta cannot use the open modules
        ("pci-no-gpu-vm.txt", "570", "auto", False),
        ("pci-v100-pcie.txt", "570", True, True),     # an explicit choice wins
        ("pci-hgx-h100.txt", "570", "proprietary", False),
    ],
)
def test_open_kernel_modules_choice(listing, branch, choice, expected):
    assert nv.nvidia_open_modules(nv.nvidia_pci_devices(fixture(listing)), branch, choice) is expected


# --- nvidia-smi -q -x ------------------------------------------------------------------------------


def test_hgx_h100_report():
    report = nv.nvidia_smi_xml(fixture("h100-sxm-8gpu.xml"))
    assert report["driver_version"] == "570.133.20"
    assert report["driver_branch"] == "570"
    assert report["cuda_version"] == "12.8"
    assert report["gpu_count"] == 8
    assert report["types"] == ["h100"]
    assert report["all_persistence_mode"] is True
    assert report["fabric_ready"] is True
    assert report["mig_enabled"] == []
    first = report["gpus"][0]
    assert first["pci_bus_id"] == "00000000:18:00.0"
    assert first["pci_device_id"] == "233010DE"
    assert first["memory_mib"] == 81559
    assert first["uuid"].startswith("GPU-")
    assert len({g["uuid"] for g in report["gpus"]}) == 8


def test_fabric_not_initialised_is_detected():
    report = nv.nvidia_smi_xml(fixture("h100-sxm-fabric-not-ready.xml"))
    assert report["fabric_ready"] is False
    errors = nv.nvidia_validation_errors(report, {"count": 8, "nvswitch": True})
    assert errors == ["NVSwitch fabric is not initialised (is nvidia-fabricmanager running at the driver's version?)"]


def test_a100_with_mig():
    report = nv.nvidia_smi_xml(fixture("a100-mig-1g10gb.xml"))
    assert report["types"] == ["a100"]
    assert report["mig_enabled"] == [0]
    assert report["gpus"][0]["mig_device_count"] == 7
    assert (report["gpus"][1]["mig_current"], report["gpus"][1]["mig_pending"]) == ("Disabled", "Enabled")


def test_t4_with_persistence_off_fails_validation():
    report = nv.nvidia_smi_xml(fixture("t4-pcie.xml"))
    assert report["types"] == ["t4"]
    assert report["fabric_ready"] is True  # PCIe boards report N/A
    errors = nv.nvidia_validation_errors(report, {"count": 1, "type": "t4", "branch": "535", "persistence": True})
    assert errors == ["persistence mode is off on GPU 0"]


def test_validation_reports_every_problem():
    report = nv.nvidia_smi_xml(fixture("h100-sxm-8gpu.xml"))
    assert nv.nvidia_validation_errors(report, {"count": 8, "type": "h100", "branch": "570",
                                                "persistence": True, "nvswitch": True}) == []
    errors = nv.nvidia_validation_errors(report, {"count": 4, "type": "a100", "branch": "550"})
    assert errors == [
        "nvidia-smi sees 8 GPUs, expected 4",
        "GPU type is h100, the blueprint says a100",
        "driver 570.133.20 is not on the pinned branch 550",
    ]


@pytest.mark.parametrize("name", ["no-devices.txt", "driver-mismatch.txt"])
def test_error_texts_raise_a_readable_error(name):
    with pytest.raises(ValueError, match="nvidia-smi printed no report: " + fixture(name).splitlines()[0]):
        nv.nvidia_smi_xml(fixture(name))


def test_truncated_report_is_an_error():
    with pytest.raises(ValueError, match="malformed XML"):
        nv.nvidia_smi_xml(fixture("t4-pcie.xml")[:500])


@pytest.mark.parametrize(
    ("name", "kind"),
    [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H100 NVL", "h100"), ("NVIDIA H200", "h200"),
     ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA A10G", "a10g"), ("NVIDIA A10", "a10"), ("Tesla T4", "t4"),
     ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"), ("NVIDIA L40", "unknown"), ("Tesla V100-SXM2-32GB", "unknown")],
)
def test_product_names_map_to_blueprint_gpu_types(name, kind):
    assert nv.gpu_type_of(name) == kind


def test_filters_are_registered_for_ansible():
    assert set(nv.FilterModule().filters()) == {
        "nvidia_pci_devices", "nvidia_open_modules", "nvidia_smi_xml", "nvidia_validation_errors",
        "nvidia_secure_boot_state", "nvidia_module_plan", "nvidia_cuda_repo_distro"}
