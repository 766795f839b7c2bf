"""The vendored Kueue release: pinned, checksummed, licensed, shipped, and configured so every
team Job queues (orchestrator/render/kubernetes/kueue.py)."""

from __future__ import annotations

import hashlib
import tomllib

import yaml

from orchestrator.render.kubernetes import kueue
from tests.conftest import REPO

SHA256 = "88881eb50734eb920b67486ebc2aa978ed325e1b12d99b22fc51a6d7e9e4d370"  # Kueue v0.19.2 manifests.yaml


def test_the_vendored_release_is_the_pinned_one() -> None:
    folder = REPO / "orchestrator" / "data" / "vendor" / "kueue-v0.19.2"
    assert folder == kueue.VENDOR and kueue.KUEUE_VERSION == "v0.19.2"
    assert hashlib.sha256((folder / "manifests.yaml").read_bytes()).hexdigest() == SHA256
    assert (folder / "manifests.yaml.sha256").read_text().split()[0] == SHA256
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "image: registry.k8s.io/kueue/kueue:v0.19.2" in (folder / "manifests.yaml").read_text()


def test_the_wheel_ships_it() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "data/**/*" in config["tool"]["setuptools"]["package-data"]["orchestrator"]


def test_team_jobs_without_a_queue_label_are_still_queued() -> None:
    docs = list(yaml.load_all(kueue.install_manifest(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    kinds = [d["kind"] for d in docs if d]
    assert kinds.count("CustomResourceDefinition") == 11 and kinds.count("Deployment") == 1
    config_map = next(d for d in docs if d and d["kind"] == "ConfigMap")
    config = yaml.safe_load(config_map["data"]["controller_manager_config.yaml"])
    assert config["manageJobsWithoutQueueName"] is True
    assert config["managedJobsNamespaceSelector"] == {
        "matchExpressions": [{"key": "infra.dev/team", "operator": "Exists"}]}
    assert config["integrations"]["frameworks"] == ["batch/job"]  # serving Deployments are not gated
