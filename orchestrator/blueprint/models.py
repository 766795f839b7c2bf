"""Typed model of blueprint format version 1 (see docs/blueprint.md).

Field-level rules (types, ranges, enums, patterns, defaults) live here; rules that relate
several fields live in ``semantics.py`` so that every violation can be reported with the path
of the value that is wrong. Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

GPU_TYPES = ("t4", "l4", "a10", "a10g", "a100", "h100", "h200", "l40s")
MIG_GPU_TYPES = ("a100", "h100", "h200")
HOST_ROLES = ("control_plane", "worker", "inference")
PROVIDERS = ("aws", "azure", "gcp", "baremetal")
CLOUD_PROVIDERS = ("aws", "azure", "gcp")
MODEL_URI_SCHEMES = ("s3://", "gs://", "az://", "https://", "file://")
SECRET_REF = re.compile(r"^\$\{(env|file):([^}]+)\}$")

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,38}$")]
# Kubernetes object names (RFC 1123 labels), used for pools, teams, models, namespaces, hosts.
K8sName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)


class Kubernetes(_Model):
    version: str = Field(default="1.30", pattern=r"^1\.(2[6-9]|3[0-9])$")
    public_endpoint: bool = False
    authorized_networks: list[str] = Field(default_factory=list)

    @field_validator("authorized_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for i, cidr in enumerate(value):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"[{i}] {cidr!r} is not a CIDR block ({exc})") from None
        return value


class Network(_Model):
    cidr: str = "10.0.0.0/16"
    zones: int = Field(default=2, ge=1, le=6)

    @field_validator("cidr")
    @classmethod
    def _private(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 CIDR block ({exc})") from None
        rfc1918 = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
        if not any(net.subnet_of(r) for r in rfc1918):
            raise ValueError(f"{value} is not a private (RFC 1918) range: use 10/8, 172.16/12 or 192.168/16")
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"prefix /{net.prefixlen} is out of range: use /16 to /24")
        return value


class Gpu(_Model):
    type: Literal["t4", "l4", "a10", "a10g", "a100", "h100", "h200", "l40s"]
    count: int = Field(ge=1, le=16)


class Mig(_Model):
    profile: str = Field(pattern=r"^(all-disabled|all-balanced|all-\d+g\.\d+gb(\+me)?)$")


class Taint(_Model):
    key: str = Field(min_length=1, max_length=253)
    value: str = Field(default="", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")


class NodePool(_Model):
    name: K8sName
    instance_type: str | None = None
    min: int | None = Field(default=None, ge=0, le=1000)
    desired: int | None = Field(default=None, ge=0, le=1000)
    max: int | None = Field(default=None, ge=0, le=1000)
    gpu: Gpu | None = None
    spot: bool | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] | None = None
    mig: Mig | None = None

    @property
    def effective_taints(self) -> list[Taint]:
        """Taints as applied: a GPU pool gets the nvidia.com/gpu taint unless taints are given."""
        if self.taints is not None:
            return list(self.taints)
        return [GPU_TAINT] if self.gpu else []

    @property
    def effective_desired(self) -> int | None:
        return self.desired if self.desired is not None else self.min


class Host(_Model):
    name: K8sName
    address: str = Field(min_length=1, max_length=253)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    roles: list[Literal["control_plane", "worker", "inference"]] = Field(min_length=1)
    pool: str | None = None
    gpu: Gpu | None = None


class Team(_Model):
    name: K8sName
    namespace: K8sName | None = None
    gpu_quota: int = Field(default=0, ge=0, le=100000)
    borrowing_limit: int | None = Field(default=None, ge=0, le=100000)
    groups: list[str] = Field(default_factory=list)

    @property
    def effective_namespace(self) -> str:
        return self.namespace or self.name


class Model(_Model):
    name: K8sName
    uri: str
    replicas: int = Field(default=1, ge=1, le=1000)
    gpu: int = Field(default=0, ge=0, le=16)
    team: str

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(MODEL_URI_SCHEMES) or len(value) <= len(value.split("://")[0]) + 3:
            raise ValueError(f"{value!r} must start with one of: {', '.join(MODEL_URI_SCHEMES)}")
        return value


class Inference(_Model):
    runtime: Literal["onnx", "seldon"] = "onnx"
    models: list[Model] = Field(default_factory=list)


class State(_Model):
    backend: Literal["local", "s3", "azurerm", "gcs"] = "local"
    bucket: str | None = None
    storage_account: str | None = None
    container: str | None = None
    lock: bool = True


def _secret_ref(value: str) -> str:
    if not SECRET_REF.match(value):
        raise ValueError("must be a reference like ${env:NAME} or ${file:path}, never a literal value")
    return value


SecretRef = Annotated[str, AfterValidator(_secret_ref)]


class Blueprint(_Model):
    blueprint: Literal[1]
    name: Name
    provider: Literal["aws", "azure", "gcp", "baremetal"]
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{2,40}$")
    tags: dict[str, str] = Field(default_factory=dict)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    network: Network = Field(default_factory=Network)
    node_pools: list[NodePool] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    inference: Inference | None = None
    state: State = Field(default_factory=State)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)

    @property
    def is_cloud(self) -> bool:
        return self.provider in CLOUD_PROVIDERS

    def pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)

    def gpu_pools(self) -> list[NodePool]:
        return [p for p in self.node_pools if p.gpu]
