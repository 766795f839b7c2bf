"""Bare metal: hosts that already exist, named in the blueprint's ``hosts``.

No cloud resources and no Terraform (docs/decisions/0004-baremetal-state.md): ``render`` writes
the Ansible inventory, ``up`` runs the configure stage on the hosts, ``plan`` and ``status``
list them together with what the last configure run found on each.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, ClassVar

from ...blueprint.models import Blueprint
from ...inventory import InventoryHost, from_blueprint, hosts_file
from ...workspace import read_json
from ..base import Provider

# A kubeadm cluster's pod and service networks: the same values as
# ansible/roles/kubernetes_node/defaults/main.yml (a test checks).
KUBEADM_POD_SUBNET = "10.244.0.0/16"
KUBEADM_SERVICE_SUBNET = "10.96.0.0/12"
KUBEADM_API_PORT = 6443  # ansible/roles/kubernetes_node/defaults/main.yml: kubernetes_node_control_plane_endpoint


class BaremetalProvider(Provider):
    name: ClassVar[str] = "baremetal"
    terraform_module: ClassVar[str | None] = None

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        return {}

    def cluster_networks(self, bp: Blueprint) -> list[str]:
        """``network.cidr``, kubeadm's pod and service networks, and every host address given as an
        IP (a host name, or IPv6, cannot be written in an IPv4 ipBlock)."""
        nets = [bp.network.cidr, KUBEADM_POD_SUBNET, KUBEADM_SERVICE_SUBNET]
        for host in bp.hosts:
            try:
                nets.append(f"{ipaddress.IPv4Address(host.address)}/32")
            except ValueError:
                continue
        return list(dict.fromkeys(nets))

    def inventory_hosts(self, bp: Blueprint, outputs: dict[str, Any]) -> list[InventoryHost]:
        return from_blueprint(bp)

    def static_outputs(self, bp: Blueprint, env_dir: Path | None = None) -> dict[str, Any]:
        """What ``status``/``plan`` show without Terraform: the hosts, with the last configure result."""
        last = read_json(hosts_file(env_dir)) if env_dir is not None else {}
        hosts = {}
        for h in from_blueprint(bp):
            entry: dict[str, Any] = {
                "address": f"{h.address}:{h.port}" if h.port != 22 else h.address,
                "roles": list(h.roles),
                "pool": h.pool,
                "gpu": h.describe_gpu(),
            }
            if h.name in last.get("hosts", {}):
                entry["last_configure"] = last["hosts"][h.name]
            hosts[h.name] = entry
        out: dict[str, Any] = {"hosts": hosts}
        if last.get("finished_at"):
            out["configured_at"] = last["finished_at"]
        return out

    def exported_outputs(self, bp: Blueprint) -> dict[str, Any]:
        """For ``${output:ENV.NAME}`` (docs/blueprint.md): the first control plane's API endpoint
        (kubeadm's port), every host address, and those given as IPs as one-address CIDRs."""
        addresses = [h.address for h in bp.hosts]
        first = next((h.address for h in bp.hosts if "control_plane" in h.roles), None)  # none: inference-only
        cidrs = []
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:  # a host name: no CIDR
                continue
            if "%" in address:  # a link-local address with its zone: no CIDR either
                continue
            cidrs.append(f"{ip}/{ip.max_prefixlen}")
        out: dict[str, Any] = {"host_addresses": list(dict.fromkeys(addresses)),
                               "egress_cidrs": list(dict.fromkeys(cidrs))}
        if first is not None:
            out["control_plane_endpoint"] = f"https://{f'[{first}]' if ':' in first else first}:{KUBEADM_API_PORT}"
        return out

    def summarize_outputs(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        rows = []
        for name, h in sorted((outputs.get("hosts") or {}).items()):
            text = f"{h['address']}  {'+'.join(h['roles'])}"
            if h.get("pool"):
                text += f"  pool={h['pool']}"
            text += f"  gpu={h['gpu']}"
            last = h.get("last_configure")
            if last:
                text += f"  last configure: {last.get('status')}"
                if last.get("gpus_found") is not None:
                    text += f" (gpus found: {last['gpus_found']})"
                if last.get("not_configured"):  # a failed host's roles that never started
                    text += f"; not configured: {', '.join(last['not_configured'])}"
            rows.append((name, text))
        return rows

