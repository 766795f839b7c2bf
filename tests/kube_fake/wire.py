"""What the double sends and how it reads requests: Status bodies, label selectors, the body
checks of a write, fault records, and the status a controller would give an object (``ready``).

Never imports ``orchestrator``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from .discovery import Resource

APPLY = "application/apply-patch+yaml"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the safe loader, in C where libyaml is there


def load_yaml(raw: bytes) -> Any:
    return yaml.load(raw, Loader=LOADER)


@dataclass
class Fault:
    remaining: int
    status: int
    retry_after: str | None
    path_regex: re.Pattern | None
    method: str | None
    reason: str
    causes: list[dict] | None


def status(code: int, reason: str, message: str, causes: list[dict] | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}
    if causes:
        body["details"] = {"causes": causes}
    return body


def misfit(raw: bytes, content_type: str | None, res: Resource, ns: str) -> str | None:
    """Why a real server would refuse this body at this path (apiVersion, kind, namespace)."""
    try:
        obj = (load_yaml(raw) if content_type == APPLY else json.loads(raw or b"{}")) or {}
    except (ValueError, yaml.YAMLError):
        return "the request body is not valid YAML/JSON"
    if obj.get("apiVersion") != res.api_version or obj.get("kind") != res.kind:
        return (f"the body's {obj.get('kind')} ({obj.get('apiVersion')}) does not match the resource of the path: "
                f"{res.kind} ({res.api_version})")
    body_ns = (obj.get("metadata") or {}).get("namespace")
    if res.namespaced and body_ns and body_ns != ns:
        return "the namespace of the provided object does not match the namespace sent on the request"
    return None


def matches(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term not in labels:
            return False
    return True


def ready(obj: dict[str, Any]) -> None:
    """The status the object's controller would report once it is ready."""
    kind, gen = obj.get("kind"), obj["metadata"].get("generation", 1)
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        n = spec.get("replicas", 1)
        obj["status"] = {"observedGeneration": gen, "replicas": n, "readyReplicas": n, "availableReplicas": n,
                         "updatedReplicas": n}
    elif kind == "DaemonSet":
        obj["status"] = {"observedGeneration": gen, "desiredNumberScheduled": 2, "numberReady": 2,
                         "numberAvailable": 2, "updatedNumberScheduled": 2, "currentNumberScheduled": 2}
    elif kind in ("ClusterQueue", "LocalQueue"):
        obj["status"] = {"conditions": [{"type": "Active", "status": "True", "reason": "Ready", "message": ""}]}
    elif kind in ("Model", "Server", "SeldonRuntime"):
        obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif kind == "APIService":  # the aggregator reached the Service behind it
        obj["status"] = {"conditions": [{"type": "Available", "status": "True", "reason": "Passed",
                                         "message": "all checks passed"}]}
    elif kind == "CustomResourceDefinition":
        obj["status"] = {"conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}


def endpoint_slice(service: dict[str, Any]) -> dict[str, Any]:
    """The EndpointSlice the endpoints controller writes for a Service whose one pod is ready."""
    meta = service["metadata"]
    ports = [{"name": p.get("name", ""), "port": p.get("targetPort", p.get("port")), "protocol": "TCP"}
             for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p.get("targetPort", 0), int)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{meta['name']}-fake", "namespace": meta.get("namespace"),
                         "labels": {"kubernetes.io/service-name": meta["name"]}},
            "endpoints": [{"addresses": ["10.244.0.10"], "conditions": {"ready": True}}], "ports": ports}
