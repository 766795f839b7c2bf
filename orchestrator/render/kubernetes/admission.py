"""ValidatingAdmissionPolicies that hold team namespaces to the queueing rules (pure).

* ``infra-inference-priority``: the ``infra-inference`` priority class (which preempts training)
  is refused on Jobs and CronJobs, and on pods that no ReplicaSet or StatefulSet owns (model
  servers are Deployments or Seldon Servers; team members may create Jobs, never those).
* ``infra-team-jobs-queued``: a Job created in a team namespace must carry
  ``kueue.x-k8s.io/queue-name`` naming the team's LocalQueue (Kueue's
  ``manageJobsWithoutQueueName`` would hold it forever instead; this says why, at once).

Both bindings select namespaces labelled ``infra.dev/team``. ValidatingAdmissionPolicy is GA
(``admissionregistration.k8s.io/v1``) from Kubernetes 1.30: older clusters get none (Kueue's
configuration still holds unlabelled Jobs; docs/kubernetes.md).
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint
from ...conventions import PRIORITY_BY_TIER, QUEUE_LABEL, TEAM_LABEL
from . import manifests
from .hybrid import BURST_SUFFIX, is_bursting

INFERENCE_POLICY = "infra-inference-priority"
QUEUE_POLICY = "infra-team-jobs-queued"
MIN_VERSION = (1, 30)
SERVER_OWNERS = ("ReplicaSet", "StatefulSet")  # what owns model-server pods (Deployment, Seldon Server)

_INFERENCE = PRIORITY_BY_TIER["inference"]
_JOB_PRIORITY = {
    "Job": "object.spec.template.spec",
    "CronJob": "object.spec.jobTemplate.spec.template.spec",
}


def _labels_get(obj: str, key: str) -> str:
    return f"(has({obj}.metadata.labels) && '{key}' in {obj}.metadata.labels ? {obj}.metadata.labels['{key}'] : '')"


def _job_expression() -> str:
    terms = [f"(request.kind.kind != '{kind}' || !has({spec}.priorityClassName) || "
             f"{spec}.priorityClassName != '{_INFERENCE}')" for kind, spec in _JOB_PRIORITY.items()]
    return " && ".join(terms)


def _pod_expression() -> str:
    owners = ", ".join(f"'{k}'" for k in SERVER_OWNERS)
    return (f"request.kind.kind != 'Pod' || !has(object.spec.priorityClassName) || "
            f"object.spec.priorityClassName != '{_INFERENCE}' || (has(object.metadata.ownerReferences) && "
            f"object.metadata.ownerReferences.exists(r, r.kind in [{owners}]))")


def _queue_expression(burst: bool = False) -> str:
    """The queue label names the team's LocalQueue; where the blueprint bursts (docs/hybrid.md),
    or the team's burst LocalQueue (``<team>-burst``: a Job moved there, or created here by MultiKueue)."""
    queue, team = _labels_get('object', QUEUE_LABEL), _labels_get('namespaceObject', TEAM_LABEL)
    if not burst:
        return f"{queue} == {team}"
    return f"{queue} == {team} || ({team} != '' && {queue} == {team} + '{BURST_SUFFIX}')"


def admission_policies(bp: Blueprint) -> list[dict[str, Any]]:
    """The two policies and their bindings (none before Kubernetes 1.30)."""
    major, minor = (int(x) for x in bp.kubernetes.minor.split("."))
    if (major, minor) < MIN_VERSION:
        return []
    ctx = {
        "inference_policy": INFERENCE_POLICY,
        "queue_policy": QUEUE_POLICY,
        "team_selector": {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]},
        "job_expression": _job_expression(),
        "job_message": f"priority class {_INFERENCE} is for model servers only: use infra-batch or infra-interactive",
        "pod_expression": _pod_expression(),
        "pod_message": f"priority class {_INFERENCE} is for model servers only "
                       "(pods of a Deployment or a Seldon Server)",
        "queue_expression": _queue_expression(is_bursting(bp)),
        "queue_message": f"a Job in a team namespace must carry the label {QUEUE_LABEL}=<team> "
                         "(its LocalQueue): `infra job submit` adds it",
    }
    return manifests.admission_policies(ctx)
