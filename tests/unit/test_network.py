"""The subnet plan shared by validation and the AWS provider."""

from __future__ import annotations

import pytest

from orchestrator.blueprint.network import node_capacity, subnet_plan, usable_private_addresses


def test_plan_for_a_slash_16_in_three_zones():
    assert subnet_plan("10.20.0.0/16", 3) == {
        "private": ["10.20.0.0/20", "10.20.16.0/20", "10.20.32.0/20"],
        "public": ["10.20.128.0/20", "10.20.144.0/20", "10.20.160.0/20"],
    }


def test_plan_for_a_slash_24_in_one_zone():
    assert subnet_plan("192.168.1.0/24", 1) == {"private": ["192.168.1.0/28"], "public": ["192.168.1.128/28"]}


def test_capacity_counts_32_addresses_per_node_and_5_reserved_per_subnet():
    assert usable_private_addresses("10.0.0.0/16", 2) == 2 * (4096 - 5)
    assert node_capacity("10.0.0.0/16", 2) == 255
    assert node_capacity("10.0.0.0/16", 1) == 127
    assert node_capacity("10.0.0.0/22", 2) == 3
    assert node_capacity("10.0.0.0/24", 6) == 2  # 6 x (16 - 5) = 66 addresses
    assert node_capacity("10.0.0.0/24", 1) == 0


@pytest.mark.parametrize("zones", [0, 9])
def test_zone_count_is_bounded(zones):
    with pytest.raises(ValueError, match="zones must be between 1 and 8"):
        subnet_plan("10.0.0.0/16", zones)
