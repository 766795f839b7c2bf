"""Why a job is where it is, in one sentence, from its Kueue Workload and its team's quota.

A Workload's conditions (``kueue.x-k8s.io`` v1beta2) tell the story: ``QuotaReserved=False``
with reason ``Pending`` ("couldn't assign flavors to pod set main: insufficient unused quota
for nvidia.com/gpu in flavor h100, 2 more needed") or ``Inadmissible`` (queue missing or
inactive); then ``Admitted``, ``PodsReady``, ``Evicted``, ``Finished``. The team's numbers
come from its LocalQueue's ``flavorsReservation`` and, where readable, its ClusterQueue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..conventions import GPU_RESOURCE

_INSUFFICIENT = re.compile(r"insufficient (?:unused )?quota for (\S+) in flavor (\S+?),? (\d+) more needed")


@dataclass
class Quota:
    """A team's GPU numbers: guaranteed per flavor, borrowable, reserved now (per flavor)."""

    nominal: dict[str, int]
    borrowing: int | None
    reserved: dict[str, int]


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _true(obj: dict[str, Any] | None, ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c and c.get("status") == "True")


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def quota_from(local_queue: dict[str, Any] | None, cluster_queue: dict[str, Any] | None,
               fallback: tuple[int, int | None] | None = None) -> Quota:
    reserved: dict[str, int] = {}
    for fl in ((local_queue or {}).get("status") or {}).get("flavorsReservation") or []:
        for r in fl.get("resources") or []:
            if r.get("name") == GPU_RESOURCE:
                reserved[fl["name"]] = reserved.get(fl["name"], 0) + _int(r.get("total", 0))
    nominal: dict[str, int] = {}
    borrowing: int | None = None
    for group in ((cluster_queue or {}).get("spec") or {}).get("resourceGroups") or []:
        for fl in group.get("flavors") or []:
            for r in fl.get("resources") or []:
                if r.get("name") == GPU_RESOURCE:
                    nominal[fl["name"]] = _int(r.get("nominalQuota", 0))
                    if "borrowingLimit" in r:
                        borrowing = _int(r["borrowingLimit"])
    if not nominal and fallback is not None:
        nominal = {"*": fallback[0]}
        borrowing = fallback[1]
    return Quota(nominal, borrowing, reserved)


def _job_finished(job: dict[str, Any]) -> str | None:
    for ctype, word in (("Complete", "succeeded"), ("Failed", "failed")):
        c = condition(job, ctype)
        if c and c.get("status") == "True":
            why = f" ({c.get('reason')}: {c.get('message')})" if ctype == "Failed" and c.get("reason") else ""
            return f"finished: it {word}{why}."
    return None


def _admitted_flavors(workload: dict[str, Any]) -> str:
    admission = (workload.get("status") or {}).get("admission") or {}
    names = sorted({f for ps in admission.get("podSetAssignments") or [] for f in (ps.get("flavors") or {}).values()})
    return ", ".join(names) or "its flavor"


def _quota_words(quota: Quota | None, flavor: str) -> str:
    if quota is None or not (quota.nominal or quota.reserved):
        return ""
    nominal = quota.nominal.get(flavor, quota.nominal.get("*"))
    used = quota.reserved.get(flavor, sum(quota.reserved.values()) if "*" in quota.nominal else 0)
    text = f"; the team holds {used}"
    if nominal is not None:
        text += f" of its {nominal} guaranteed GPUs there"
        if quota.borrowing:
            text += f" and may borrow up to {quota.borrowing} more from idle teams"
        elif quota.borrowing == 0:
            text += " and may not borrow"
    else:
        text += " GPUs there"
    return text


def explain(job: dict[str, Any], workload: dict[str, Any] | None, queue: str | None,
            quota: Quota | None = None, cluster_queue: dict[str, Any] | None = None) -> str:
    """One sentence saying what the job is waiting for (or that it is not waiting)."""
    done = _job_finished(job)
    if done:
        return done
    ns = job["metadata"].get("namespace", "")
    suspended = bool((job.get("spec") or {}).get("suspend"))
    if workload is None:
        if not queue:
            return "not queued: the job has no kueue.x-k8s.io/queue-name label, so Kueue ignores it."
        if suspended:
            return (f"waiting for Kueue: no Workload exists yet for it (is Kueue running, and does "
                    f"LocalQueue {queue} exist in namespace {ns}?).")
        return "running outside Kueue (it is not suspended and has no Workload)."
    if _true(workload, "Finished"):
        return f"finished: {(condition(workload, 'Finished') or {}).get('message') or 'Kueue marked it finished'}."
    if _true(workload, "Evicted"):
        c = condition(workload, "Evicted") or {}
        return f"evicted ({c.get('reason')}): {c.get('message')}; Kueue will queue it again."
    if _true(workload, "Admitted"):
        flavors = _admitted_flavors(workload)
        if _true(workload, "PodsReady"):
            return f"running: admitted to {flavors} and all its pods are ready."
        return f"admitted to {flavors}; its pods are being scheduled and started."
    if _true(workload, "QuotaReserved"):
        return f"quota reserved in {_admitted_flavors(workload)}; waiting for admission checks to pass."
    c = condition(workload, "QuotaReserved") or {}
    message = (c.get("message") or "").strip()
    cq_active = condition(cluster_queue, "Active")
    if cq_active is not None and cq_active.get("status") != "True":
        return (f"cannot be admitted: ClusterQueue {cluster_queue['metadata']['name']} is inactive "
                f"({cq_active.get('reason')}: {cq_active.get('message')}).")
    if c.get("reason") == "Inadmissible":
        return f"cannot be admitted: {message or 'its queue is missing or inactive'}."
    m = _INSUFFICIENT.search(message)
    if m:
        resource, flavor, more = m.group(1), m.group(2), m.group(3)
        return (f"waiting for quota: it needs {more} more {resource} than is free in flavor {flavor}"
                f"{_quota_words(quota, flavor)}; Kueue admits it when running jobs finish or borrowed GPUs return.")
    if message:
        return f"queued: {message.rstrip('.')}."
    return f"queued in {queue or 'its LocalQueue'}; Kueue has not evaluated it yet."
