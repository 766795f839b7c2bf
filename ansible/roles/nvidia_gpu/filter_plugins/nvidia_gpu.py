"""Filters for the nvidia_gpu role: PCI discovery and ``nvidia-smi -q -x`` parsing.

They run on the controller (filters, not modules), so the role's tasks use ``ansible.builtin``
modules only. Plain functions, importable without Ansible, so the unit tests call them directly
(tests/unit/test_nvidia_*.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

NVIDIA_VENDOR = "0x10de"
# PCI class codes (class register, upper 16 bits): display controllers and NVSwitch bridges.
_GPU_CLASSES = ("0x0300", "0x0302")
_BRIDGE_CLASS = "0x0680"
# Turing (TU10x = 0x1e00) and newer can use the open kernel modules.
_FIRST_TURING_DEVICE = 0x1E00
# Device IDs of the data-centre GPUs a blueprint can name (gpu.type), for hosts without a driver yet.
DEVICE_MODELS = {
    0x1EB8: "t4",
    0x27B8: "l4",
    0x2236: "a10",
    0x2237: "a10g",
    0x20B0: "a100", 0x20B1: "a100", 0x20B2: "a100", 0x20B3: "a100", 0x20B5: "a100", 0x20F1: "a100",
    0x2330: "h100", 0x2331: "h100", 0x2321: "h100", 0x2322: "h100", 0x2324: "h100", 0x233A: "h100",
    0x2335: "h200", 0x233B: "h200",
    0x26B9: "l40s", 0x26B5: "l40",
}
_MODEL_NAMES = (  # product_name fragments -> blueprint gpu.type, most specific first
    ("A10G", "a10g"), ("A100", "a100"), ("A10", "a10"), ("H100", "h100"), ("H200", "h200"),
    ("L40S", "l40s"), ("L4", "l4"), ("T4", "t4"),
)


def nvidia_pci_devices(text: str) -> dict[str, Any]:
    """Parse ``<address> <vendor> <device> <class>`` lines (from /sys/bus/pci/devices/*).

    Returns ``present``, ``gpu_count``, ``gpus`` (address, device_id, model, turing_or_newer),
    ``models`` (sorted distinct), ``nvswitch_count``.
    """
    gpus, switches = [], 0
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[1].lower() != NVIDIA_VENDOR:
            continue
        address, device, klass = parts[0], parts[2].lower(), parts[3].lower()
        device_id = int(device, 16)
        if klass.startswith(_BRIDGE_CLASS):
            switches += 1
        elif klass.startswith(_GPU_CLASSES):
            gpus.append({
                "address": address,
                "device_id": f"0x{device_id:04x}",
                "model": DEVICE_MODELS.get(device_id, "unknown"),
                "turing_or_newer": device_id >= _FIRST_TURING_DEVICE,
            })
    return {
        "present": bool(gpus),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "models": sorted({g["model"] for g in gpus}),
        "nvswitch_count": switches,
    }


def nvidia_open_modules(pci: dict[str, Any], branch: str | int, choice: str | bool = "auto") -> bool:
    """Open kernel modules: the default from branch 560, and only for Turing or newer GPUs."""
    if isinstance(choice, bool):
        return choice
    if str(choice).lower() in ("true", "yes", "open"):
        return True
    if str(choice).lower() in ("false", "no", "proprietary"):
        return False
    gpus = pci.get("gpus") or []
    return int(str(branch).split(".")[0]) >= 560 and bool(gpus) and all(g["turing_or_newer"] for g in gpus)


def gpu_type_of(product_name: str) -> str:
    """Blueprint ``gpu.type`` for an ``nvidia-smi`` product name (``unknown`` when not one of them)."""
    upper = (product_name or "").upper()
    for fragment, kind in _MODEL_NAMES:
        if re.search(rf"\b{fragment}\b", upper):
            return kind
    return "unknown"


def _text(node: ET.Element | None, path: str, default: str = "") -> str:
    if node is None:
        return default
    found = node.find(path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def _mib(value: str) -> int | None:
    match = re.match(r"^\s*(\d+)\s*MiB", value or "")
    return int(match.group(1)) if match else None


def nvidia_smi_xml(text: str) -> dict[str, Any]:
    """Parse ``nvidia-smi -q -x``: driver, CUDA version and one entry per GPU.

    Raises ValueError with a readable message when the text is not such a report (e.g. the
    driver failed to load and nvidia-smi printed an error instead).
    """
    body = (text or "").strip()
    start = body.find("<nvidia_smi_log")
    if start < 0:
        first = body.splitlines()[0] if body else "no output"
        raise ValueError(f"nvidia-smi printed no report: {first}")
    # Drop the DOCTYPE (it names an external DTD that is never fetched) and anything before the root.
    try:
        root = ET.fromstring(body[start:])
    except ET.ParseError as exc:
        raise ValueError(f"nvidia-smi printed malformed XML: {exc}") from None
    gpus = []
    for i, gpu in enumerate(root.findall("gpu")):
        mig_devices = [d for d in gpu.findall("mig_devices/mig_device")]
        name = _text(gpu, "product_name")
        gpus.append({
            "index": i,
            "name": name,
            "type": gpu_type_of(name),
            "architecture": _text(gpu, "product_architecture"),
            "uuid": _text(gpu, "uuid"),
            "pci_bus_id": gpu.get("id") or _text(gpu, "pci/pci_bus_id"),
            "pci_device_id": _text(gpu, "pci/pci_device_id"),
            "memory_mib": _mib(_text(gpu, "fb_memory_usage/total")),
            "persistence_mode": _text(gpu, "persistence_mode") == "Enabled",
            "mig_current": _text(gpu, "mig_mode/current_mig", "N/A"),
            "mig_pending": _text(gpu, "mig_mode/pending_mig", "N/A"),
            "mig_device_count": len(mig_devices),
            "fabric_state": _text(gpu, "fabric/state", "N/A"),
            "fabric_status": _text(gpu, "fabric/status", "N/A"),
            "reset_required": _text(gpu, "gpu_reset_status/reset_required", "No") == "Yes",
        })
    driver = _text(root, "driver_version")
    return {
        "driver_version": driver,
        "driver_branch": driver.split(".")[0] if driver else "",
        "cuda_version": _text(root, "cuda_version"),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "types": sorted({g["type"] for g in gpus}),
        "all_persistence_mode": bool(gpus) and all(g["persistence_mode"] for g in gpus),
        "mig_enabled": [g["index"] for g in gpus if g["mig_current"] == "Enabled"],
        "fabric_ready": all(g["fabric_state"] in ("N/A", "Completed") and g["fabric_status"] in ("N/A", "Success")
                            for g in gpus),
    }


def nvidia_validation_errors(report: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What is wrong with a host's GPUs, given ``expected`` (count, type, branch, persistence, nvswitch)."""
    errors = []
    count = int(expected.get("count") or 0)
    if count and report["gpu_count"] != count:
        errors.append(f"nvidia-smi sees {report['gpu_count']} GPUs, expected {count}")
    kind = expected.get("type")
    if kind and report["gpus"] and report["types"] != [kind]:
        errors.append(f"GPU type is {', '.join(report['types'])}, the blueprint says {kind}")
    branch = str(expected.get("branch") or "")
    if branch and report["driver_branch"] != branch:
        errors.append(f"driver {report['driver_version']} is not on the pinned branch {branch}")
    if expected.get("persistence") and not report["all_persistence_mode"]:
        off = [str(g["index"]) for g in report["gpus"] if not g["persistence_mode"]]
        errors.append(f"persistence mode is off on GPU {', '.join(off)}")
    if expected.get("nvswitch") and not report["fabric_ready"]:
        errors.append("NVSwitch fabric is not initialised (is nvidia-fabricmanager running at the driver's version?)")
    return errors


def secure_boot_state(efivar: dict[str, Any] | None, mokutil: str = "") -> str:
    """``on``, ``off`` or ``unknown``, from ``mokutil --sb-state`` output when there is some (its
    stdout), else from a ``slurp`` of the UEFI variable SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
    (4 attribute bytes, then the value: 1 = Secure Boot on). No variable (legacy BIOS boot, or no
    efivarfs): ``off``, since firmware without UEFI has no Secure Boot."""
    text = (mokutil or "").lower()
    if "secureboot enabled" in text:
        return "on"
    if "secureboot disabled" in text or "not supported" in text or "doesn't support" in text:
        return "off"  # mokutil on a BIOS machine: "EFI variables are not supported on this system"
    if not isinstance(efivar, dict) or efivar.get("failed") or not efivar.get("content"):
        missing = isinstance(efivar, dict) and any(
            word in str(efivar.get("msg", "")).lower() for word in ("not found", "no such file"))
        return "off" if missing else "unknown"
    import base64

    try:
        data = base64.b64decode(str(efivar["content"]))
    except (ValueError, TypeError):
        return "unknown"
    return "unknown" if len(data) < 5 else ("on" if data[4] == 1 else "off")


def nvidia_module_plan(secure_boot: str, distribution: str, source: str, modules: str = "auto",
                       mok_enrolled: bool | str = False) -> dict[str, Any]:
    """How the NVIDIA kernel module gets onto the host: ``{"modules": "precompiled"|"dkms", "error": str}``.

    ``precompiled``: Ubuntu's signed linux-modules-nvidia packages (distribution source only);
    ``dkms``: built on the host. ``modules``: auto (precompiled where Secure Boot is on and Ubuntu
    has them, else dkms), precompiled or dkms. With Secure Boot on, a DKMS build loads only when
    its signing key (MOK) is enrolled (``mok_enrolled``); otherwise ``error`` says why, so the role
    fails before it installs anything or reboots."""
    ubuntu_signed = distribution == "Ubuntu" and source == "distro"
    want = str(modules or "auto").lower()
    if want not in ("auto", "precompiled", "dkms"):
        return {"modules": "dkms", "error": f"nvidia_gpu_driver_modules is {modules!r}: use auto, precompiled or dkms"}
    if want == "precompiled" and not ubuntu_signed:
        return {"modules": "dkms", "error": (
            f"nvidia_gpu_driver_modules is precompiled, but signed precompiled NVIDIA modules come only from Ubuntu's "
            f"own packages (nvidia_gpu_driver_source: distro), not {distribution} with source {source}")}
    chosen = "precompiled" if want == "precompiled" or (want == "auto" and ubuntu_signed and secure_boot == "on") \
        else "dkms"
    mok = str(mok_enrolled).lower() in ("true", "yes", "1")
    if chosen == "dkms" and secure_boot == "on" and not mok:
        where = (f"{distribution} has no signed precompiled NVIDIA modules" if distribution != "Ubuntu"
                 else "use Ubuntu's signed precompiled modules (nvidia_gpu_driver_source: distro)")
        return {"modules": chosen, "error": (
            f"Secure Boot is on: the NVIDIA kernel module DKMS would build here is not signed by a key the firmware "
            f"trusts, so it would not load after the reboot; {where}, or enroll DKMS's signing key (MOK) with "
            "mokutil --import and set nvidia_gpu_dkms_mok_enrolled: true, or turn Secure Boot off")}
    return {"modules": chosen, "error": ""}


def cuda_repo_distro(distribution: str, version: str, major: str | int, os_family: str = "") -> str:
    """NVIDIA's CUDA repository folder for a distribution: debian12 (from any 12.x), ubuntu2204,
    ubuntu2404, rhel9 (RHEL and its rebuilds, from any 9.x), fedora<N>, sles15, amzn2023."""
    name = str(distribution)
    if name == "Ubuntu":
        return "ubuntu" + str(version).replace(".", "")[:4]
    if name in ("RedHat", "Rocky", "AlmaLinux", "CentOS", "OracleLinux") or (
            os_family == "RedHat" and name not in ("Fedora", "Amazon")):
        return f"rhel{major}"
    if name == "Amazon":
        return f"amzn{major}"
    if name in ("SLES", "SLES_SAP", "openSUSE Leap"):
        return f"sles{major}"
    return f"{name.lower()}{major}"


class FilterModule:
    def filters(self):
        return {
            "nvidia_pci_devices": nvidia_pci_devices,
            "nvidia_open_modules": nvidia_open_modules,
            "nvidia_smi_xml": nvidia_smi_xml,
            "nvidia_validation_errors": nvidia_validation_errors,
            "nvidia_secure_boot_state": secure_boot_state,
            "nvidia_module_plan": nvidia_module_plan,
            "nvidia_cuda_repo_distro": cuda_repo_distro,
        }
