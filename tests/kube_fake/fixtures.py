"""pytest fixtures around the fake API server; test modules import the ones they use.

Nothing here imports ``orchestrator``: the fixtures that connect infra's client to the server
live in ``tests/unit/kube_fixtures.py``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from .server import FakeKube

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kube"
CRDS = FIXTURES / "crds"  # upstream CRDs (see the README there)
EXTRA_CRDS = Path(__file__).resolve().parent / "crds"  # what the fake also installs (see the README there)
THREE_TEAMS = FIXTURES / "three-teams.yaml"


@functools.cache
def _crd_files() -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    paths = sorted(CRDS.glob("*.yaml")) + sorted(EXTRA_CRDS.glob("*.yaml"))
    return tuple(yaml.load(p.read_text(), Loader=loader) for p in paths)


def install_crds(fake: FakeKube, groups: tuple[str, ...] = ("kueue.x-k8s.io", "mlops.seldon.io"),
                 established: bool = True) -> None:
    """Store the CRDs of these API groups, as ``kubectl apply`` and the apiextensions server would."""
    for crd in _crd_files():
        if crd["spec"]["group"] not in groups:
            continue
        crd = copy.deepcopy(crd)
        state = "True" if established else "False"
        crd["status"] = {"conditions": [{"type": "NamesAccepted", "status": state, "reason": "NoConflicts"},
                                        {"type": "Established", "status": state, "reason": "InitialNamesAccepted"}]}
        fake.put(crd)


TEAM_NAMESPACES = ("vision", "nlp-team", "research", "t")  # the three-teams lab's (as if handed off), and t


def add_namespace(fake: FakeKube, name: str) -> None:
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture()
def fake():
    server = FakeKube().start()
    install_crds(server)
    yield server
    server.stop()


@pytest.fixture()
def team_namespaces(fake):
    """The team namespaces exist (jobs and models go into them; a real server 404s otherwise)."""
    for name in TEAM_NAMESPACES:
        add_namespace(fake, name)
    return TEAM_NAMESPACES


@pytest.fixture()
def kubeconfig(fake, tmp_path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig")
