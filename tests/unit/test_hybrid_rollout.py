"""Bursting is validated across the rollout (docs/hybrid.md): each problem is one located line
(``file:line:col path: message``) and ``infra validate`` exits 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.blueprint.hybrid import capacity_rows
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.rollout import load_rollout
from orchestrator.cli.main import app
from orchestrator.errors import BlueprintError
from orchestrator.render.kubernetes.placement import CHECKS

HYBRID = Path(__file__).resolve().parents[1] / "fixtures" / "hybrid"


@pytest.fixture()
def copy(tmp_path):
    for f in HYBRID.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)

    def edit(file: str, old: str, new: str) -> Path:
        path = tmp_path / file
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))
        return path

    return tmp_path, edit


def _problems(folder: Path) -> list[str]:
    with pytest.raises(BlueprintError) as err:
        load_rollout(folder / "rollout.yaml", CHECKS)
    return [str(p) for p in err.value.problems]


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_fixture_rollout_is_valid():
    rollout = load_rollout(HYBRID / "rollout.yaml", CHECKS)
    assert [e.name for e in rollout.environments] == ["onprem", "aws-burst"]


def test_a_target_outside_the_rollout(copy):
    folder, edit = copy
    onprem = edit("onprem.yaml", "to: [aws-burst]", "to: [aws-burst, gcp-burst]")
    (problem,) = _problems(folder)
    assert problem.startswith(f"{onprem}:{_line_of(onprem, 'to: [aws-burst, gcp-burst]')}:")
    assert "teams[0].burst.to[1]: gcp-burst is not an environment of this rollout" in problem


def test_the_worker_must_run_after_the_manager(copy):
    folder, edit = copy
    edit("rollout.yaml", "    after: [onprem]\n", "")
    (problem,) = _problems(folder)
    assert "teams[0].burst.to[0]: aws-burst must run after onprem" in problem


def test_the_worker_must_agree(copy):
    folder, edit = copy
    edit("aws-burst.yaml", "burst_from: [onprem]", "")
    (problem,) = _problems(folder)
    assert "aws-burst does not list onprem in burst_from" in problem


def test_the_team_must_exist_on_the_worker(copy):
    folder, edit = copy
    edit("aws-burst.yaml", "  - name: vision\n    gpu_quota: 16", "  - name: vis\n    gpu_quota: 16")
    (problem,) = _problems(folder)
    assert "aws-burst has no team vision" in problem


def test_the_worker_must_offer_the_gpu_type(copy):
    folder, edit = copy
    onprem = edit("onprem.yaml", "gpu_types: [h100]", "gpu_types: [h100, a100]")
    (problem,) = _problems(folder)
    assert problem.startswith(f"{onprem}:{_line_of(onprem, 'gpu_types:')}:")
    assert "teams[0].burst.gpu_types[1]: aws-burst offers team vision no training pool of a100 (it has: h100)" \
        in problem


def test_a_burst_job_must_land_on_the_worker(copy):
    """The placement proof across clusters: the worker's queue for the team admits a one-GPU Job
    of the type to one of its pools (here its guarantee there is 0, with no borrowing)."""
    folder, edit = copy
    edit("aws-burst.yaml", "gpu_quota: 16", "gpu_quota: 0")
    (problem,) = _problems(folder)
    assert "teams[0].burst.gpu_types[0]: a h100 burst job of team vision cannot run on aws-burst: its queue for " \
           "team vision admits no one-GPU Job to a h100 pool" in problem


def test_the_budget_caps_max_gpus(copy):
    folder, edit = copy
    edit("onprem.yaml", "budget_per_month_usd: 150000", "budget_per_month_usd: 1000")
    (problem,) = _problems(folder)
    assert "teams[0].burst.max_gpus: 16 h100 GPUs on aws-burst cost up to $143,547 a month" in problem
    assert "$12.29 per GPU-hour" in problem


def test_the_manager_must_reach_the_worker_api(copy):
    folder, edit = copy
    edit("aws-burst.yaml", "private_access: {via: networks, networks: [10.1.0.0/16]}",
         "private_access: {via: inside_network}")
    (problem,) = _problems(folder)
    assert "onprem cannot reach aws-burst's API" in problem and "via: networks" in problem


def test_a_burst_from_nobody_uses(copy):
    folder, edit = copy
    aws = edit("aws-burst.yaml", "burst_from: [onprem]", "burst_from: [onprem, lab]")
    (problem,) = _problems(folder)
    assert problem.startswith(f"{aws}:{_line_of(aws, 'burst_from:')}:") and "burst_from[1]: lab is not" in problem


def test_kubernetes_1_32_on_both_sides(copy):
    folder, edit = copy
    aws = edit("aws-burst.yaml", 'version: "1.33"', 'version: "1.31"')
    with pytest.raises(BlueprintError) as err:
        load(aws, checks=CHECKS)
    assert any("kubernetes.version: 1.31: bursting through MultiKueue needs Kubernetes >= 1.32" in str(p)
               for p in err.value.problems)


def test_validate_prints_located_lines_and_exits_2(copy):
    folder, edit = copy
    edit("onprem.yaml", "gpu_types: [h100]", "gpu_types: [h100, a100]")
    edit("aws-burst.yaml", "burst_from: [onprem]", "")
    result = CliRunner().invoke(app, ["validate", str(folder / "rollout.yaml")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "burst" in line]
    assert len(lines) == 2 and all(line.startswith(str(folder / "onprem.yaml") + ":") for line in lines)


def test_capacity_shows_local_and_burst_gpus_per_team():
    rollout = load_rollout(HYBRID / "rollout.yaml", CHECKS)
    workers = {e.name: e.loaded.model for e in rollout.environments}
    rows = {r["team"]: r for r in capacity_rows(workers["onprem"], workers)}
    assert rows["vision"] == {"team": "vision", "local_gpus": 4, "local_borrowing": 4, "burst_gpus": 16,
                              "workers": {"aws-burst": 16}}
    assert rows["nlp"]["burst_gpus"] == 0 and rows["nlp"]["workers"] == {}
