"""The cost estimate `infra plan` prints (orchestrator/cost.py, docs/cost.md): literal numbers from
small blueprints and a small price list, the shipped price files, the text, JSON and Markdown forms."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from orchestrator import cost, records
from orchestrator.blueprint import catalog
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.rollout import Rollout
from orchestrator.cli.common import print_cost
from orchestrator.rollout import report, runner
from orchestrator.rollout.scheduler import EnvResult
from orchestrator.workspace import Workspace
from tests.blueprints import with_way_in

INFRA = Path(sys.executable).with_name("infra")
PRICES = cost.parse_prices({"currency": "USD", "region": "us-east-1", "groups": [
    {"name": "test", "source": "Test pricing page", "as_of": "2024-12-01", "prices": {
        "m6i.large": {"on_demand": 0.1, "spot": 0.04},
        "g5.xlarge": {"on_demand": 1.0, "spot": 0.4},
        "g5.2xlarge": {"on_demand": 1.2, "spot": 0.5},
        "g6.xlarge": {"on_demand": 0.8, "spot": None},
    }}]})
BLUEPRINT = """blueprint: 1
name: costs
provider: aws
region: eu-west-1
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 3}
  - name: gpu
    instance_types: [g5.xlarge, g5.2xlarge]
    gpu: {type: a10g, count: 1}
    min: 0
    max: 2
    spot: true
"""


def _bp(tmp_path: Path, text: str = BLUEPRINT):
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(text))
    return load(path).model


def test_cost_per_pool_at_min_and_max_on_demand_and_spot(tmp_path: Path) -> None:
    est = cost.estimate(_bp(tmp_path), PRICES)
    system, gpu = est.pools
    assert (system.at(1, "on_demand"), system.at(3, "on_demand"), system.at(1, "spot"), system.at(3, "spot")) == (
        73.0, 219.0, 29.2, 87.6)
    # several types: priced at the most expensive (g5.2xlarge); min 0 costs nothing
    assert (gpu.on_demand_hourly, gpu.spot_hourly) == (1.2, 0.5)
    assert (gpu.at(0, "on_demand"), gpu.at(2, "on_demand"), gpu.at(0, "spot"), gpu.at(2, "spot")) == (
        0.0, 1752.0, 0.0, 730.0)
    # as configured: system on demand, gpu at spot
    assert (est.total("min"), est.total("max")) == (73.0, 949.0)
    assert (est.total("max", "on_demand"), est.total("max", "spot")) == (1971.0, 817.6)
    assert est.unpriced == []
    assert (est.price_region, est.region) == ("us-east-1", "eu-west-1")
    doc = est.as_json()
    assert doc["pools"][1]["monthly"] == {"on_demand_min": 0.0, "on_demand_max": 1752.0, "spot_min": 0.0,
                                          "spot_max": 730.0, "configured_min": 0.0, "configured_max": 730.0}
    assert doc["total"] == {"configured_min": 73.0, "configured_max": 949.0}
    assert doc["sources"] == [{"source": "Test pricing page", "as_of": "2024-12-01"}]
    assert doc["estimate"] is True and "not a quote" in doc["disclaimer"]


def test_a_type_without_a_price_is_na_not_a_crash(tmp_path: Path) -> None:
    text = BLUEPRINT.replace("instance_type: m6i.large", "instance_type: m6i.xlarge").replace(
        "[g5.xlarge, g5.2xlarge]", "[g6.xlarge, g6.2xlarge]").replace("a10g", "l4")
    est = cost.estimate(_bp(tmp_path, text), PRICES)
    system, gpu = est.pools
    assert (system.on_demand_hourly, system.at(3, "on_demand"), gpu.at(2, "spot")) == (None, None, None)
    assert est.unpriced == ["system", "gpu"]
    assert (est.total("min"), est.total("max")) == (None, None)
    assert cost.money(None) == "n/a"
    mixed = cost.estimate(_bp(tmp_path, BLUEPRINT.replace("g5.2xlarge", "g5.4xlarge")), PRICES)
    assert (mixed.pools[1].on_demand_hourly, mixed.unpriced) == (None, ["gpu"])  # one of its types has no price


def test_capacity_blocks_are_not_counted_as_configured() -> None:
    pool = cost.PoolCost("h100", ("p5.48xlarge",), "capacity_block", 0, 2, 98.32, 39.33)
    assert (pool.configured_hourly, pool.at(2, "configured"), pool.at(2, "on_demand")) == (None, None, 143547.2)


def test_bare_metal_is_owned_hardware(tmp_path: Path) -> None:
    bp = _bp(tmp_path, "blueprint: 1\nname: lab\nprovider: baremetal\nhosts:\n"
                       "  - {name: node-1, address: 10.0.0.1, roles: [control_plane, worker]}\n")
    est = cost.estimate(bp)
    assert est.as_json() == {"estimate": False, "note": "owned hardware: no estimate"}


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_shipped_price_files_name_source_and_date_and_price_known_types(provider: str) -> None:
    path = Path(cost.__file__).parent / "data" / "prices" / f"{provider}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["currency"] == "USD" and raw["region"]
    for group in raw["groups"]:
        assert group["source"].strip() and isinstance(group["as_of"], datetime.date), group["name"]
        for name, entry in group["prices"].items():
            assert name in catalog.catalog(provider), name  # a priced type the catalog knows
            assert set(entry) == {"on_demand", "spot"}, name
            assert 0 < entry["spot"] < entry["on_demand"] < 200, name
    assert len(cost.price_list(provider).prices) >= 20


def test_shipped_prices_are_used_for_the_sandbox_example() -> None:
    est = cost.estimate(load(Path(__file__).parents[2] / "examples" / "sandbox.yaml").model)
    assert [(p.pool, p.on_demand_hourly) for p in est.pools] == [
        ("system", 0.096), ("a100", 32.7726), ("l4", 0.8048)]
    assert (est.total("min"), est.total("max")) == (70.08, 99431.25)


def test_text_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    print_cost(cost.estimate(_bp(tmp_path), PRICES))
    out = capsys.readouterr().out
    assert "Estimated monthly cost (USD, 730 h/month, list prices for us-east-1), at min – max nodes" in out
    assert "$73 – $219" in out and "$29 – $88" in out and "0-2 spot" in out
    assert "as configured (spot pools at spot prices): $73 per month at min, $949 at max" in out
    assert "note: the prices are for us-east-1; eu-west-1 may cost more or less" in out
    assert "note: an estimate from approximate list prices, not a quote" in out
    assert "prices: Test pricing page (as of 2024-12-01)" in out


def test_markdown_shows_the_cost_at_max_and_what_it_was() -> None:
    result = EnvResult("prod", "aws", "success", extra={"cost": {
        "estimate": True, "currency": "USD", "total": {"configured_max": 949.0}, "was_max": 219.0}})
    assert report.cost_text(result) == "est. monthly at max: $949.00 (was $219.00)"
    comment = report.markdown(Rollout("files", []), "plan", [result]).splitlines()
    assert comment[comment.index("<details><summary><code>prod</code>: -</summary>") + 2] == (
        "est. monthly at max: $949.00 (was $219.00)")
    result.extra["cost"]["was_max"] = None
    assert report.cost_text(result) == "est. monthly at max: $949.00"
    assert report.cost_text(EnvResult("lab", "baremetal", extra={"cost": {"estimate": False}})) == ""


def test_was_is_the_blueprint_of_the_last_successful_up(tmp_path: Path) -> None:
    oldest = yaml.safe_load(BLUEPRINT)
    oldest["node_pools"] = [{**oldest["node_pools"][0], "max": 1}]
    older = yaml.safe_load(BLUEPRINT)
    older["node_pools"] = older["node_pools"][:1]  # the last applied one had only the system pool
    ws = Workspace(root=tmp_path, name="costs", sandbox=False)
    for outcome, merged in (("success", oldest), ("success", older), ("failed", yaml.safe_load(BLUEPRINT))):
        rec = records.RunRecord(env="costs", command="up", blueprint_path="bp.yaml", blueprint_sha256="0" * 64,
                                merged=merged)
        rec.outcome = outcome
        records.write(ws.records_dir, rec)
    ctx = SimpleNamespace(bp=_bp(tmp_path), ws=ws)
    doc = runner.cost_of(ctx)
    # shipped prices: now 3 x 0.096 x 730 + 2 x 0.4848 x 730 (gpu at spot); was the system pool alone
    assert (doc["total"]["configured_max"], doc["was_max"]) == (918.05, 210.24)


def test_plan_json_and_markdown_carry_the_estimate(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("blueprint: 1\nname: lab\nprovider: baremetal\nhosts:\n"
                                       "  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane]}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    run = subprocess.run([str(INFRA), "plan", "lab.yaml", "--format", "json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["environments"][0]["cost"] == {"estimate": False,
                                                                 "note": "owned hardware: no estimate"}
