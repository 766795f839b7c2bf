"""pytest fixtures around the fake API server; test modules import the ones they use."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.kube.client import Client
from orchestrator.kube.rest import RetryPolicy
from orchestrator.providers.registry import get

from .server import FakeKube

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kube"
CRDS = FIXTURES / "crds"
THREE_TEAMS = FIXTURES / "three-teams.yaml"

_CRDS = [  # (plural, group, kind, versions served)
    ("resourceflavors", "kueue.x-k8s.io", "ResourceFlavor", ["v1beta1", "v1beta2"]),
    ("clusterqueues", "kueue.x-k8s.io", "ClusterQueue", ["v1beta1", "v1beta2"]),
    ("localqueues", "kueue.x-k8s.io", "LocalQueue", ["v1beta1", "v1beta2"]),
    ("workloads", "kueue.x-k8s.io", "Workload", ["v1beta1", "v1beta2"]),
    ("models", "mlops.seldon.io", "Model", ["v1alpha1"]),
    ("servers", "mlops.seldon.io", "Server", ["v1alpha1"]),
]


def install_crds(fake: FakeKube, groups: tuple[str, ...] = ("kueue.x-k8s.io", "mlops.seldon.io"),
                 established: bool = True) -> None:
    for plural, group, kind, versions in _CRDS:
        if group not in groups:
            continue
        fake.put({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "names": {"kind": kind, "plural": plural},
                     "versions": [{"name": v, "served": True, "storage": v == versions[-1]} for v in versions]},
            "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]},
        })


def three_teams():
    return load(THREE_TEAMS)


@pytest.fixture()
def fake():
    server = FakeKube().start()
    install_crds(server)
    yield server
    server.stop()


@pytest.fixture()
def kubeconfig(fake, tmp_path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture()
def client(kubeconfig):
    c = Client.from_kubeconfig(kubeconfig, retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    yield c
    c.close()


@pytest.fixture()
def lab():
    loaded = three_teams()
    return loaded.model, get(loaded.model.provider)
