"""Which objects each team's model servers read, and so which cloud identity they need (pure).

A model URI in the cloud's own object store (``s3://`` on EKS, ``gs://`` on GKE: the catalog's
``workload_identity.scheme``) is fetched by the model server's init container with the pod's
identity: the namespace's ``model-server`` service account, bound by Terraform to a cloud
identity that may read exactly those objects (EKS Pod Identity, GKE Workload Identity
Federation, AKS workload identity: a managed identity with a federated credential for the
service account and Storage Blob Data Reader on the model's container). Other URIs (``https://``
elsewhere, ``file://``) need no identity. Terraform variables
(``providers/*``), the team manifests (``render/kubernetes``) and the identity-chain checks read
the same ``readers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.blueprint import catalog
from orchestrator.blueprint.models import Blueprint
from orchestrator.conventions import MODEL_SERVICE_ACCOUNT


@dataclass(frozen=True)
class ObjectRef:
    """``s3://bucket/key`` (``key`` ending in ``/``: every object under that prefix)."""

    bucket: str
    key: str

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True)
class Reader:
    """One team's model servers: where they run and what they read."""

    team: str
    namespace: str
    service_account: str
    objects: tuple[ObjectRef, ...]

    @property
    def buckets(self) -> list[str]:
        return sorted({o.bucket for o in self.objects})

    def as_tfvar(self) -> dict[str, Any]:
        return {"team": self.team, "namespace": self.namespace, "service_account": self.service_account,
                "buckets": self.buckets,
                "objects": sorted(f"{o.bucket}/{o.key}{'*' if o.is_prefix else ''}" for o in self.objects),
                "prefixes": sorted({o.key + ("*" if o.is_prefix else "") for o in self.objects})}


def identity(provider: str) -> dict[str, Any] | None:
    """The catalog's ``workload_identity`` settings of ``provider`` (None: none built there)."""
    return catalog.setting(provider, "workload_identity")


def parse(uri: str, settings: dict[str, Any]) -> ObjectRef | None:
    """The object a URI names in the cloud's store, or None when it is elsewhere. With a
    ``host_suffix`` (Azure Blob Storage: https://<account>.blob.core.windows.net/<container>/<key>)
    the "bucket" is ``<account>/<container>``, the unit a role is assigned on."""
    scheme, suffix = settings["scheme"], settings.get("host_suffix")
    if not uri.startswith(scheme):
        return None
    host, _, path = uri[len(scheme):].partition("/")
    if suffix is None:
        return ObjectRef(host, path)
    account = host.removesuffix(suffix)
    container, _, key = path.partition("/")
    if account == host or not account or not container:
        return None
    return ObjectRef(f"{account}/{container}", key)


def readers(bp: Blueprint) -> list[Reader]:
    """Per team, in team order: the objects its models read from the cloud's object store."""
    settings = identity(bp.provider) if bp.is_cloud else None
    if not settings or bp.inference is None or bp.inference.runtime != "onnx":
        return []
    found: dict[str, list[ObjectRef]] = {}
    for model in bp.inference.models:
        ref = parse(model.uri, settings)
        if ref is not None and ref not in found.setdefault(model.team, []):
            found[model.team].append(ref)
    return [Reader(t.name, t.effective_namespace, MODEL_SERVICE_ACCOUNT, tuple(found[t.name]))
            for t in bp.teams if found.get(t.name)]


def reader(bp: Blueprint, team: str) -> Reader | None:
    return next((r for r in readers(bp) if r.team == team), None)
