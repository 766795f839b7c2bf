"""Dates as an input: validation reads "today" from ``orchestrator.clock`` (``INFRA_TODAY``).

The suite runs on ``tests.conftest.SUITE_TODAY``; the tests here set their own day on both
sides of every date of the EKS version table. One test reads the real date on purpose (its name
says so): the examples must stay 60 days inside standard support, so the bump is planned.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import clock
from orchestrator.blueprint import eks_versions, semantics
from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError, UsageError
from tests.blueprints import with_way_in
from tests.conftest import EXAMPLES, REPO, SUITE_TODAY

HEAD = "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\n"  # lines 1-4
POOLS = "node_pools:\n  - {name: system, instance_type: m6i.large, min: 1, max: 2}\n"
ROWS = sorted(eks_versions.table()["versions"].items())
# Every blueprint a user copies or the goldens render: the freshness check covers them all.
BLUEPRINTS = sorted(EXAMPLES.glob("*.yaml")) + sorted((REPO / "tests" / "golden" / "inputs").glob("*.yaml"))
NOTICE_DAYS = 60


def _validate(tmp_path: Path, version: str) -> tuple[str, list[str]]:
    """``("ok"|"error", messages)`` for an EKS blueprint on ``version``, as validate judges it."""
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(HEAD + f'kubernetes:\n  version: "{version}"\n' + POOLS))
    try:
        model = load(path).model
    except BlueprintError as err:
        return "error", [f"{p.line}:{p.column} {p.path}: {p.message}" for p in err.problems]
    return "ok", [message for _, message in semantics.warnings(model) if "EKS" in message]


def _infra(*args: str, today: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "INFRA_TODAY": today})


def test_the_suite_runs_on_its_own_date_not_the_wall_clock():
    assert os.environ["INFRA_TODAY"] == SUITE_TODAY
    assert clock.today() == dt.date.fromisoformat(SUITE_TODAY)


def test_clock_reads_infra_today_and_falls_back_to_the_machine_date(monkeypatch):
    monkeypatch.setenv("INFRA_TODAY", "2029-01-01")
    assert clock.today() == dt.date(2029, 1, 1)
    monkeypatch.delenv("INFRA_TODAY")
    assert clock.today() == dt.date.today()
    monkeypatch.setenv("INFRA_TODAY", "  ")
    assert clock.today() == dt.date.today()


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01", "06/12/2026", "2026-12-06T10:00"])
def test_a_bad_infra_today_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv("INFRA_TODAY", value)
    with pytest.raises(UsageError, match=r"^INFRA_TODAY=.* is not a date: give YYYY-MM-DD"):
        clock.today()


@pytest.mark.parametrize(("version", "row"), ROWS, ids=[v for v, _ in ROWS])
def test_both_sides_of_every_date_of_the_eks_table(tmp_path, monkeypatch, version, row):
    """Standard support up to and including its last day; then extended (a warning) up to and
    including its last day; then an error, located, naming the version to move to."""
    standard = dt.date.fromisoformat(row["end_of_standard"])
    extended = dt.date.fromisoformat(row["end_of_extended"])
    newest = eks_versions.default_version()
    seen = {}
    for day in (standard, standard + dt.timedelta(days=1), extended, extended + dt.timedelta(days=1)):
        monkeypatch.setenv("INFRA_TODAY", day.isoformat())
        seen[day] = _validate(tmp_path, version)
    warning = (f"{version} is in EKS extended support until {extended} "
               f"(standard support ended {standard}): upgrade to {newest}")
    assert list(seen.values()) == [
        ("ok", []),
        ("ok", [warning]),
        ("ok", [warning]),
        ("error", [f"6:12 kubernetes.version: {version} reached the end of EKS extended support on {extended}: "
                   f"use {newest}"]),
    ]


def test_infra_today_reaches_the_cli(tmp_path):
    """The same example: fine on the suite's day, refused (exit 2, located) once its version's
    extended support has ended; a malformed INFRA_TODAY is one line, exit 2."""
    example = EXAMPLES / "sandbox.yaml"
    version = load(example).model.kubernetes.minor
    after = dt.date.fromisoformat(eks_versions.table()["versions"][version]["end_of_extended"]) + dt.timedelta(days=1)

    ok = _infra("validate", str(example), today=SUITE_TODAY, cwd=tmp_path)
    assert (ok.returncode, ok.stderr) == (0, ""), ok.stderr
    late = _infra("validate", str(example), today=after.isoformat(), cwd=tmp_path)
    assert late.returncode == 2, late.stderr
    assert f"{example}:10:12 kubernetes.version: {version} reached the end of EKS extended support" in late.stderr

    bad = _infra("validate", str(example), today="someday", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == ("error: INFRA_TODAY='someday' is not a date: give YYYY-MM-DD, "
                                          "or unset it to use today's date")
    assert "Traceback" not in bad.stderr


def _aws_versions() -> dict[str, str]:
    found = {}
    for path in BLUEPRINTS:
        data = yaml.safe_load(path.read_text())
        if data.get("provider") == "aws":
            found[str(path.relative_to(REPO))] = str((data.get("kubernetes") or {}).get("version")
                                                     or eks_versions.default_version())
    return found


def test_the_freshness_check_covers_every_aws_example_and_golden_input():
    found = _aws_versions()
    assert {"examples/sandbox.yaml", "examples/aws-gpu.yaml", "tests/golden/inputs/edge-eu.yaml"} <= set(found)


def test_examples_have_60_days_of_eks_standard_support_left_on_the_real_date():
    """Reads the machine's real date on purpose (not INFRA_TODAY): it fails 60 days before an
    example's version leaves EKS standard support, so moving the examples, goldens and the
    version table is planned work, not a red suite on the day the calendar turns."""
    real_today = dt.date.today()
    rows = eks_versions.table()["versions"]
    late = {}
    for path, version in _aws_versions().items():
        end = dt.date.fromisoformat(rows[version]["end_of_standard"])
        if end - real_today < dt.timedelta(days=NOTICE_DAYS):
            late[path] = f"{version} leaves EKS standard support on {end}"
    assert late == {}, (f"within {NOTICE_DAYS} days of {real_today}: {late}; move them to a newer version "
                        "(orchestrator/data/versions/eks.yaml; then `make golden`)")
