"""The estimated monthly cost of a blueprint's node pools, from the price lists in
``orchestrator/data/prices/<provider>.yaml`` (docs/cost.md). Pure: blueprint + prices -> rows.

Per pool: the hourly on-demand and spot price of its machine type, and the monthly cost (730
hours) at ``min`` and at ``max`` nodes, both ways. A pool with several ``instance_types`` is
priced at the most expensive of them (an upper bound); a type without a price gives ``None``
("n/a"), never an error. "As configured" prices each pool the way it runs: spot pools at the
spot price, on-demand pools at the on-demand price, capacity blocks not at all (reserved and
billed apart). Bare metal is owned hardware: no estimate. Control planes, disks, networking
and egress are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .blueprint.models import Blueprint

HOURS_PER_MONTH = 730
DISCLAIMER = "an estimate from approximate list prices, not a quote: check the provider's pricing calculator"
OWNED = "owned hardware: no estimate"


@dataclass(frozen=True)
class Price:
    on_demand: float | None
    spot: float | None
    source: str
    as_of: str


@dataclass(frozen=True)
class PriceList:
    """One provider's prices: hourly, in ``currency``, for the reference ``region``."""

    currency: str
    region: str
    prices: dict[str, Price]


def parse_prices(raw: dict[str, Any]) -> PriceList:
    """A price file's content (see data/prices/aws.yaml) as a PriceList; every group names its
    ``source`` and ``as_of``."""
    prices: dict[str, Price] = {}
    for group in raw.get("groups") or []:
        source, as_of = group.get("source"), group.get("as_of")
        if not source or not as_of:
            raise ValueError(f"price group {group.get('name')!r}: source and as_of are required")
        for name, entry in (group.get("prices") or {}).items():
            prices[name] = Price(_num(entry.get("on_demand")), _num(entry.get("spot")), str(source), str(as_of))
    return PriceList(str(raw.get("currency", "USD")), str(raw.get("region", "")), prices)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@cache
def price_list(provider: str) -> PriceList | None:
    """The shipped price list of ``provider`` (None: no price file)."""
    import yaml

    from . import paths

    path = paths.package_data() / "prices" / f"{provider}.yaml"
    if provider not in paths.provider_names() or not path.is_file():
        return None
    return parse_prices(yaml.safe_load(path.read_text("utf-8")) or {})


def monthly(nodes: int, hourly: float | None) -> float | None:
    """``nodes`` machines at ``hourly`` for a month of 730 hours, in cents precision."""
    return None if hourly is None else round(nodes * hourly * HOURS_PER_MONTH, 2)


@dataclass(frozen=True)
class PoolCost:
    pool: str
    instance_types: tuple[str, ...]
    capacity: str  # on_demand | spot | capacity_block
    min_nodes: int
    max_nodes: int
    on_demand_hourly: float | None  # per node
    spot_hourly: float | None
    sources: tuple[tuple[str, str], ...] = ()  # (source, as_of) of the prices used

    @property
    def configured_hourly(self) -> float | None:
        """The price the pool runs at: spot or on-demand; capacity blocks are billed apart."""
        return {"spot": self.spot_hourly, "on_demand": self.on_demand_hourly}.get(self.capacity)

    def at(self, nodes: int, which: str) -> float | None:
        hourly = {"on_demand": self.on_demand_hourly, "spot": self.spot_hourly,
                  "configured": self.configured_hourly}[which]
        return monthly(nodes, hourly)

    def as_json(self) -> dict[str, Any]:
        return {"pool": self.pool, "instance_types": list(self.instance_types), "capacity": self.capacity,
                "min": self.min_nodes, "max": self.max_nodes,
                "hourly": {"on_demand": self.on_demand_hourly, "spot": self.spot_hourly},
                "monthly": {f"{which}_{end}": self.at(n, which)
                            for which in ("on_demand", "spot", "configured")
                            for end, n in (("min", self.min_nodes), ("max", self.max_nodes))}}


@dataclass(frozen=True)
class Estimate:
    provider: str
    pools: tuple[PoolCost, ...] = ()
    currency: str = "USD"
    price_region: str | None = None  # the region the prices are for
    region: str | None = None  # the blueprint's region
    note: str | None = None  # bare metal: OWNED

    def total(self, end: str, which: str = "configured") -> float | None:
        """Sum over the pools with a price at ``min`` or ``max``; None when no pool has one."""
        values = [p.at(p.min_nodes if end == "min" else p.max_nodes, which) for p in self.pools]
        known = [v for v in values if v is not None]
        return round(sum(known), 2) if known else None

    @property
    def unpriced(self) -> list[str]:
        """Pools whose configured cost is unknown (no price, or a capacity block)."""
        return [p.pool for p in self.pools if p.configured_hourly is None]

    @property
    def sources(self) -> list[tuple[str, str]]:
        return sorted({s for p in self.pools for s in p.sources})

    def as_json(self) -> dict[str, Any]:
        if self.note:
            return {"estimate": False, "note": self.note}
        return {"estimate": True, "disclaimer": DISCLAIMER, "currency": self.currency,
                "hours_per_month": HOURS_PER_MONTH, "price_region": self.price_region, "region": self.region,
                "pools": [p.as_json() for p in self.pools],
                "total": {"configured_min": self.total("min"), "configured_max": self.total("max")},
                "unpriced": self.unpriced,
                "sources": [{"source": s, "as_of": a} for s, a in self.sources]}


def estimate(bp: Blueprint, prices: PriceList | None = None) -> Estimate:
    """The cost estimate of ``bp``'s node pools (``prices``: the provider's shipped list by default)."""
    if not bp.is_cloud:
        return Estimate(bp.provider, note=OWNED)
    prices = prices if prices is not None else price_list(bp.provider)
    found = prices.prices if prices is not None else {}
    pools = []
    for pool in bp.node_pools:
        types = tuple(pool.all_instance_types)
        entries = [found.get(t) for t in types]
        priced = [e for e in entries if e is not None]
        complete = bool(types) and len(priced) == len(types)
        pools.append(PoolCost(
            pool=pool.name,
            instance_types=types,
            capacity=pool.effective_capacity_type,
            min_nodes=pool.min or 0,
            max_nodes=pool.max if pool.max is not None else pool.min or 0,
            on_demand_hourly=_highest([e.on_demand for e in priced]) if complete else None,
            spot_hourly=_highest([e.spot for e in priced]) if complete else None,
            sources=tuple(sorted({(e.source, e.as_of) for e in priced})),
        ))
    return Estimate(bp.provider, tuple(pools), prices.currency if prices else "USD",
                    prices.region if prices else None, bp.region)


def _highest(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else max(v for v in values if v is not None)


def money(value: float | None, currency: str = "USD", cents: bool = True) -> str:
    """``$1,468.76`` (``cents=False``: ``$1,469``), or ``n/a``."""
    if value is None:
        return "n/a"
    text = f"{value:,.2f}" if cents else f"{value:,.0f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"
