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
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

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
_FRAMEWORKS_END = "    #  externalFrameworks:\n"


class VendorError(RuntimeError):
    """The vendored release is not what the code expects (a bad upgrade): a bug, not input."""


def checksum() -> str:
    return hashlib.sha256(MANIFESTS.read_bytes()).hexdigest()


@cache
def install_manifest() -> str:
    text = MANIFESTS.read_text(encoding="utf-8")
    if text.count(_QUEUE_ALL) != 1 or text.count(_FRAMEWORKS_START) != 1 or text.count(_FRAMEWORKS_END) != 1:
        raise VendorError(f"{MANIFESTS}: the Kueue Configuration does not have the expected layout")
    text = text.replace(_QUEUE_ALL, _QUEUE_TEAMS)
    start = text.index(_FRAMEWORKS_START) + len(_FRAMEWORKS_START)
    end = text.index(_FRAMEWORKS_END)
    return text[:start] + '      - "batch/job"\n' + text[end:]
