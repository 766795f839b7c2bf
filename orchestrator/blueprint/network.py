"""The subnet plan shared by validation and the cloud providers.

The VPC CIDR is split with 4 new bits into 16 equal subnets. Private subnets take indexes
``0 .. zones-1``, public subnets take indexes ``8 .. 8+zones-1``. Each node is counted as
``ADDRESSES_PER_NODE`` addresses (its ENI plus the VPC CNI warm pool); each subnet loses
``RESERVED_PER_SUBNET`` addresses to the cloud (AWS reserves 5).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.blueprint.models import Blueprint

NEW_BITS = 4
PUBLIC_OFFSET = 8
MAX_ZONES = 8
ADDRESSES_PER_NODE = 32
RESERVED_PER_SUBNET = 5


def subnet_plan(cidr: str, zones: int) -> dict[str, list[str]]:
    """Private and public subnet CIDRs, one of each per zone, in zone order."""
    if not 1 <= zones <= MAX_ZONES:
        raise ValueError(f"zones must be between 1 and {MAX_ZONES}, not {zones}")
    subnets = list(ipaddress.IPv4Network(cidr, strict=True).subnets(prefixlen_diff=NEW_BITS))
    return {
        "private": [str(s) for s in subnets[:zones]],
        "public": [str(s) for s in subnets[PUBLIC_OFFSET : PUBLIC_OFFSET + zones]],
    }


def usable_private_addresses(cidr: str, zones: int) -> int:
    """Addresses available to nodes across all private subnets."""
    private = subnet_plan(cidr, zones)["private"]
    return sum(max(ipaddress.IPv4Network(s).num_addresses - RESERVED_PER_SUBNET, 0) for s in private)


def node_capacity(cidr: str, zones: int) -> int:
    """How many nodes the private subnets can hold."""
    return usable_private_addresses(cidr, zones) // ADDRESSES_PER_NODE


def api_access_networks(bp: Blueprint) -> list[str]:
    """The CIDRs a private API endpoint admits besides the nodes (``kubernetes.private_access``):
    the cluster's own network for ``inside_network`` (a CI runner or bastion there), the routed
    networks for ``networks``; none for a public endpoint (``authorized_networks`` says who)."""
    access = bp.kubernetes.private_access
    if access is None or bp.kubernetes.public_endpoint:
        return []
    return [bp.network.cidr] if access.via == "inside_network" else list(access.networks)
