"""Kueue's install manifests (pure): the vendored release, configured so every team Job queues.

The release is vendored under ``orchestrator/data/vendor/kueue-v<version>/`` with its licence and
SHA-256 (checked by a test); nothing is downloaded. ``install_manifest`` returns it with the
Kueue Configuration changed in two places (docs/kubernetes.md, "How queueing is enforced"):

* ``manageJobsWithoutQueueName: true`` with ``managedJobsNamespaceSelector`` matching the team
  label: a Job created in a team namespace without the queue label is still held by Kueue
  (suspended, never admitted without a queue) instead of bypassing the quotas; other namespaces
  are untouched.
* ``integrations.frameworks: [batch/job]``: model servers (Deployments) are budgeted by the
  namespace's ResourceQuota, not queued, so Kueue must not gate their pods.

and the controller's pod given a home on every platform (docs/kubernetes.md, "Where pods land"):
it tolerates the taints platforms put on the nodes meant for cluster services, kubeadm's
control-plane taint and AKS's ``CriticalAddonsOnly`` system pool (data/nodes/<provider>.yaml),
and is ``system-cluster-critical``. It does not tolerate GPU taints: GPU nodes are for GPU
work. A blueprint whose every node carries another taint gets a placement error at validate.
Its pod template carries ``infra.dev/config-sha256`` (of the ConfigMap above): the controller reads
its Configuration at start only, so a changed configuration rolls it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from ...conventions import TEAM_LABEL

KUEUE_VERSION = "v0.19.2"
VENDOR = Path(__file__).resolve().parents[2] / "data" / "vendor" / f"kueue-{KUEUE_VERSION}"
MANIFESTS = VENDOR / "manifests.yaml"

_QUEUE_ALL = """    #manageJobsWithoutQueueName: true
    #managedJobsNamespaceSelector:
    #  matchExpressions:
    #    - key: kubernetes.io/metadata.name
    #      operator: NotIn
    #      values: [ kube-system, kueue-system ]
"""
_QUEUE_TEAMS = f"""    manageJobsWithoutQueueName: true
    managedJobsNamespaceSelector:
      matchExpressions:
        - key: {TEAM_LABEL}
          operator: Exists
"""
_FRAMEWORKS_START = "    integrations:\n      frameworks:\n"
_POD_END = "      serviceAccountName: kueue-controller-manager\n      terminationGracePeriodSeconds: 10\n"
CONTROLLER_TOLERATIONS = (
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
)
CONTROLLER_PRIORITY = "system-cluster-critical"
_POD_ANNOTATION = "        kubectl.kubernetes.io/default-container: manager\n"
CONFIG_MAP = "kueue-manager-config"
CONFIG_ANNOTATION = "infra.dev/config-sha256"


def _controller_placement() -> str:
    lines = [f"      priorityClassName: {CONTROLLER_PRIORITY}\n", "      tolerations:\n"]
    for tol in CONTROLLER_TOLERATIONS:
        first = True
        for key in sorted(tol):
            lines.append(f"      {'- ' if first else '  '}{key}: {tol[key]}\n")
            first = False
    return "".join(lines)
_FRAMEWORKS_END = "    #  externalFrameworks:\n"


class VendorError(RuntimeError):
    """The vendored release is not what the code expects (a bad upgrade): a bug, not input."""


@cache
def checksum() -> str:
    """SHA-256 of the vendored release (read once per process: it ships with infra)."""
    return hashlib.sha256(MANIFESTS.read_bytes()).hexdigest()


@cache
def install_manifest() -> str:
    text = MANIFESTS.read_text(encoding="utf-8")
    if (text.count(_QUEUE_ALL) != 1 or text.count(_FRAMEWORKS_START) != 1 or text.count(_FRAMEWORKS_END) != 1
            or text.count(_POD_END) != 1 or "\n      tolerations:\n" in text or text.count(_POD_ANNOTATION) != 1):
        raise VendorError(f"{MANIFESTS}: the Kueue Configuration does not have the expected layout")
    text = text.replace(_QUEUE_ALL, _QUEUE_TEAMS).replace(_POD_END, _POD_END + _controller_placement())
    start = text.index(_FRAMEWORKS_START) + len(_FRAMEWORKS_START)
    end = text.index(_FRAMEWORKS_END)
    text = text[:start] + '      - "batch/job"\n' + text[end:]
    # The controller reads its Configuration at start only: a changed ConfigMap must restart it.
    return text.replace(_POD_ANNOTATION, _POD_ANNOTATION + f"        {CONFIG_ANNOTATION}: {_config_sha256(text)}\n")


_SEPARATOR = "\n---\n"  # the release separates documents with bare ``---`` lines (tests/unit/test_yamlout.py)


def _documents(text: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The documents of ``text`` whose top-level ``kind`` is one of ``kinds``, parsed, in order; the
    others (the release is ~1.7 MB, nearly all of it CRD schemas) are found by plain string search
    and never parsed."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[int, dict[str, Any]] = {}
    for kind in kinds:
        needle, at = f"\nkind: {kind}\n", 0
        while (at := text.find(needle, at) + 1) > 0:
            begin = text.rfind(_SEPARATOR, 0, at)
            begin = 0 if begin < 0 else begin + len(_SEPARATOR)
            end = text.find(_SEPARATOR, at)
            doc = yaml.load(text[begin:] if end < 0 else text[begin:end + 1], Loader=loader)
            if doc and doc.get("kind") == kind:
                found[begin] = doc
    return [found[begin] for begin in sorted(found)]


@cache
def _install_documents(kinds: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    # validate needs a few of these documents (the placement proof): from the per-user cache they
    # cost a JSON read instead of the 1.7 MB release's edits and parse (orchestrator/datafiles.py)
    from ... import datafiles

    return tuple(datafiles.cached(f"kueue-{'-'.join(kinds)}", (MANIFESTS, Path(__file__)),
                                  lambda: _documents(install_manifest(), kinds)))


def install_documents(*kinds: str) -> list[dict[str, Any]]:
    """The objects of ``install_manifest()`` of these kinds, in order (parsed once per process;
    don't change them)."""
    return list(_install_documents(tuple(sorted(kinds))))


def _config_sha256(text: str) -> str:
    """SHA-256 of the controller's ConfigMap data (canonical JSON)."""
    import json

    config = next(d for d in _documents(text, ("ConfigMap",)) if d["metadata"]["name"] == CONFIG_MAP)
    return hashlib.sha256(json.dumps(config["data"], sort_keys=True).encode()).hexdigest()
