"""``bench/paired.py``: comparisons run as alternating pairs and report the median ratio (issue 24)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import paired


def test_pairs_alternate_after_one_warm_up_of_each(tmp_path: Path) -> None:
    log = tmp_path / "order"
    a = paired.command([sys.executable, "-c", f"open({str(log)!r}, 'a').write('A')"], tmp_path)
    b = paired.command([sys.executable, "-c", f"open({str(log)!r}, 'a').write('B')"], tmp_path)
    result = paired.alternate(paired.Pairs("a", "b"), a, b, 3)
    assert log.read_text() == "AB" + "AB" * 3  # the warm-up pair, then three timed ones
    assert len(result.a) == len(result.b) == len(result.a_cpu) == 3
    assert all(x > 0 for x in result.a + result.b)
    assert all(x >= 0 for x in result.a_cpu + result.b_cpu)


def test_ratio_is_the_median_of_the_pairs_ratios() -> None:
    p = paired.Pairs("a", "b", goal=1.5)
    for a, b in ((2.0, 1.0), (9.0, 3.0), (1.0, 1.0), (5.0, 4.0), (30.0, 10.0)):
        p.add((a, a / 2), (b, b))
    assert p.ratios == [2.0, 3.0, 1.0, 1.25, 3.0]
    assert p.ratio == 2.0 and p.cpu_ratio == 1.0
    assert p.verdict == "<= 1.5: MISSES"
    row = paired.table([p]).splitlines()[2]
    assert "| 5 |" in row and "**2.00**" in row and "| 1.00 | 3.00 |" in row


def test_a_failing_command_stops_the_bench(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="exited 3"):
        paired.command([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)()
