"""pytest fixtures around the fake API server; test modules import the ones they use.

Nothing here imports ``orchestrator``: the fixtures that connect infra's client to the server
live in ``tests/unit/kube_fixtures.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from . import crds
from .server import FakeKube

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kube"
CRDS = FIXTURES / "crds"  # Seldon Core v2's CRDs (see the README there); Kueue's come from its release (crds.py)
THREE_TEAMS = FIXTURES / "three-teams.yaml"


def install_crds(fake: FakeKube, groups: tuple[str, ...] = ("kueue.x-k8s.io", "mlops.seldon.io"),
                 established: bool = True, webhooks: bool = True) -> None:
    """Store the CRDs of these API groups, as ``kubectl apply`` and the apiextensions server
    would; with the Kueue group and ``webhooks``, also the release's ValidatingWebhookConfiguration
    (so that Kueue's webhook rules apply, see ``kueue.py``)."""
    for crd in crds.all_crds():
        if crd["spec"]["group"] not in groups:
            continue
        crd = copy.deepcopy(crd)
        state = "True" if established else "False"
        crd["status"] = {"conditions": [{"type": "NamesAccepted", "status": state, "reason": "NoConflicts"},
                                        {"type": "Established", "status": state, "reason": "InitialNamesAccepted"}]}
        fake.put(crd)
    if webhooks and "kueue.x-k8s.io" in groups:
        for config in crds.kueue_webhooks():
            fake.put(copy.deepcopy(config))


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
