"""Fixtures that point infra's Kubernetes client at the fake API server (tests/kube_fake/)."""

from __future__ import annotations

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.kube.client import Client
from orchestrator.kube.rest import RetryPolicy
from orchestrator.providers.registry import get
from tests.kube_fake.fixtures import CRDS, FIXTURES, THREE_TEAMS, fake, install_crds, kubeconfig, team_namespaces  # noqa: F401


def three_teams():
    return load(THREE_TEAMS)


@pytest.fixture()
def client(kubeconfig):  # noqa: F811
    c = Client.from_kubeconfig(kubeconfig, retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5))
    yield c
    c.close()


@pytest.fixture()
def lab():
    loaded = three_teams()
    return loaded.model, get(loaded.model.provider)
