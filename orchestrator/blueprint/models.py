"""Typed model of blueprint format version 1 (see docs/blueprint.md).

Field-level rules (types, ranges, enums, patterns, defaults) live here; rules that relate
several fields live in ``semantics.py`` so that every violation can be reported with the path
of the value that is wrong. Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.blueprint import catalog, eks_versions, forms

MIG_GPU_TYPES = ("a100", "h100", "h200")
MODEL_URI_SCHEMES = ("s3://", "gs://", "az://", "https://", "file://")
SECRET_REF = re.compile(r"^\$\{(env|file):([^}]+)\}$")

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,38}$")]
# Kubernetes object names (RFC 1123 labels), used for pools, teams, models, namespaces, hosts.
K8sName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]

# Every string a blueprint holds ends up in Terraform variables, Kubernetes objects or the Ansible
# inventory: none may carry control characters, bidirectional overrides (text that reads
# differently from what it is) or template syntax (docs/security.md).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
# Characters that print as nothing (zero-width spaces and joiners, the soft hyphen, fillers,
# variation selectors, tag characters): "vis\u200bion-devs" reads as "vision-devs" in review.
_INVISIBLE = re.compile("[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200d\u2060-\u2064"
                        "\u206a-\u206f\u3164\ufe00-\ufe0f\uffa0\U000e0000-\U000e0fff]")
# Identifiers that bind identities or resources (teams[].groups, tag keys): printable ASCII only,
# so no letter of another script can pass for a Latin one (Cyrillic "\u0456" for "i").
_ASCII_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_TAG_KEY = re.compile(r"[A-Za-z0-9 _.:/=+@-]+")
# Tag keys infra writes itself (the orphan search after a crash reads them): never the blueprint's.
RESERVED_TAG_KEYS = ("managed-by",)
RESERVED_TAG_PREFIXES = ("infra.dev/", "infra-dev-")
_TEMPLATE = ("{{", "{%", "{#", "${", "%{")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?")
_IPV6_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_MACHINE_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BUCKET = re.compile(r"[a-z0-9]([a-z0-9._-]{0,220}[a-z0-9])?")


def _printable(value: str, limit: int) -> str:
    """At most ``limit`` characters, none of them control or bidirectional (the value is never echoed)."""
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    bad = _UNPRINTABLE.search(value)
    if bad:
        raise ValueError(f"must not contain control or bidirectional characters "
                         f"(U+{ord(bad.group()):04X} at character {bad.start() + 1})")
    bad = _INVISIBLE.search(value)
    if bad:
        raise ValueError(f"must not contain invisible characters (U+{ord(bad.group()):04X} at character "
                         f"{bad.start() + 1}: the value would read as another in review)")
    return value


def _ascii_identifier(value: str, limit: int, what: str) -> str:
    """Printable ASCII only: an identifier that binds something must look like what it binds."""
    _printable(value, limit)
    if not _ASCII_PRINTABLE.fullmatch(value):
        bad = next(c for c in value if not " " <= c <= "~")
        raise ValueError(f"must be printable ASCII ({what}): U+{ord(bad):04X} at character {value.index(bad) + 1} "
                         "could pass for another letter in review")
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


def _group(value: str) -> str:
    return _ascii_identifier(value, 512, "a group name binds whoever carries it")


def _tag_key(value: str) -> str:
    _ascii_identifier(value, 128, "a tag key decides what a resource is counted as")
    if not _TAG_KEY.fullmatch(value):
        raise ValueError("must be letters, digits, spaces and _ . : / = + - @ (what every cloud accepts)")
    lowered = value.lower()
    if lowered in RESERVED_TAG_KEYS or lowered.startswith(RESERVED_TAG_PREFIXES):
        raise ValueError(f"{value!r} is infra's own tag (it finds an environment's resources by it)")
    return value


def _text(limit: int):
    return AfterValidator(lambda value: _printable(value, limit))


def _label_key(value: str) -> str:
    """Kubernetes label (and taint) keys: ``[prefix/]name``, prefix a DNS subdomain."""
    _printable(value, 253 + 1 + 63)
    prefix, slash, name = value.rpartition("/")
    if (slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or len(name) > 63 \
            or not _LABEL_NAME.fullmatch(name):
        raise ValueError("must be a Kubernetes label key: an optional DNS-subdomain prefix (at most 253 "
                         "lowercase characters) and '/', then a name of at most 63 letters, digits, '-', '_' "
                         "or '.' that starts and ends with a letter or digit (e.g. example.com/team)")
    return value


def _label_value(value: str) -> str:
    _printable(value, 63)
    if value and not _LABEL_NAME.fullmatch(value):
        raise ValueError("must be a Kubernetes label value: empty, or at most 63 letters, digits, '-', '_' "
                         "or '.' that starts and ends with a letter or digit")
    return value


def _address(value: str) -> str:
    """An IP address or an RFC 1123 host name (no leading '-': it would read as an ssh option)."""
    _printable(value, 253)
    ip, zone_sep, zone = value.partition("%")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        pass
    else:
        if not zone_sep or _IPV6_ZONE.fullmatch(zone):
            return value
    labels = value.split(".")
    if not zone_sep and all(_HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return value
    raise ValueError("must be an IP address or a host name (RFC 1123: letters, digits and '-' in "
                     "dot-separated labels of at most 63 characters, e.g. gpu-01.lab.example.com)")


def _machine_type(value: str) -> str:
    _printable(value, 128)
    if not _MACHINE_TYPE.fullmatch(value):
        raise ValueError("must be a machine type such as p4d.24xlarge (letters, digits, '.', '_' and '-')")
    return value


def _bucket(value: str) -> str:
    """Backend settings are written into backend.tf (HCL, where ${...} would be evaluated)."""
    _printable(value, 222)
    if not _BUCKET.fullmatch(value):
        raise ValueError("must be at most 222 lowercase letters, digits, '.', '_' and '-', starting and "
                         "ending with a letter or digit")
    return value


def _principal(value: str, info: ValidationInfo) -> str:
    """A cloud principal in the blueprint's provider's form (``forms.principal``)."""
    _printable(value, 2048)
    return forms.principal(value, info)


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
TagKey = Annotated[str, Field(min_length=1), AfterValidator(_tag_key)]
TagValue = Annotated[str, _text(256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)


def _cidr_list(value: list[str]) -> list[str]:
    for i, cidr in enumerate(value):
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"[{i}] {cidr!r} is not a CIDR block ({exc})") from None
    return value


class PrivateAccess(_Model):
    """How operators, CI and team members reach a private API endpoint (docs/security.md).

    ``inside_network``: ``infra`` and ``kubectl`` run inside the cluster's VPC/VNet (a CI runner or
    a bastion there); ``networks``: routed networks (VPN, peering, Direct Connect, ExpressRoute,
    Interconnect) whose CIDRs the endpoint admits."""

    via: Literal["inside_network", "networks"]
    networks: list[Annotated[str, _text(64)]] = Field(default_factory=list)

    _cidrs = field_validator("networks")(_cidr_list)


def _download_url(value: str) -> str:
    """An http(s) URL hosts download from (a repository, a key, a manifest): no whitespace, quotes
    or template syntax (it is written into repository files and task arguments); no trailing '/'."""
    _printable(value, 2048)
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
        raise ValueError("must be an http:// or https:// URL (a site mirror is fine: http:// when its files are signed "
                         "or checksummed)")
    bad = next((c for c in "\"'<>\\`" if c in value), None)
    if bad:
        raise ValueError(f"must not contain {bad!r} (percent-encode it)")
    if any(t in value for t in _TEMPLATE):
        raise ValueError("must not contain template syntax ({{, {%, {#, ${ or %{): percent-encode the braces")
    return value.rstrip("/") if value.count("/") > 2 else value


def _sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        shown = f"{len(value)} characters" if len(value) != 64 else "a character that is not a hex digit"
        raise ValueError(f"must be a SHA-256 digest: 64 hex digits (sha256sum FILE), not {shown}")
    return value.lower()


DownloadUrl = Annotated[str, AfterValidator(_download_url)]
Sha256 = Annotated[str, AfterValidator(_sha256)]


class PackageRepository(_Model):
    """Hosts only: the Kubernetes community package repository, or a site mirror of it, that
    kubelet, kubeadm and kubectl come from (role kubernetes_node; docs/ansible.md)."""

    url: DownloadUrl  # the root before /v<minor>/deb/ and /v<minor>/rpm/
    key_url: DownloadUrl | None = None  # default: the repository's own key under <url>/v<minor>/
    key_sha256: Sha256 | None = None  # the key is downloaded once and checked against it


class Cni(_Model):
    """Hosts only: the CNI manifest (Calico's release manifest, or a site's copy of it) the first
    control plane applies, and its SHA-256 (a mismatch fails the host)."""

    manifest_url: DownloadUrl
    sha256: Sha256


class Kubernetes(_Model):
    # Default: the newest version of data/versions/eks.yaml (in EKS standard support when recorded).
    # "MAJOR.MINOR", or on hosts "MAJOR.MINOR.PATCH" (semantics.py: clouds choose the patch).
    version: str = Field(default_factory=eks_versions.default_version,
                         pattern=r"^1\.(2[6-9]|3[0-9])(\.(0|[1-9][0-9]{0,2}))?$")
    public_endpoint: bool = False
    authorized_networks: list[Annotated[str, _text(64)]] = Field(default_factory=list)
    private_access: PrivateAccess | None = None
    # None: the cloud's own default (catalog deletion_protection: GKE on, EKS/AKS have none).
    deletion_protection: bool | None = None
    # AKS only: encrypt node VM hosts (temp disks, caches); needs the subscription's
    # Microsoft.Compute/EncryptionAtHost feature. false opts out (docs/providers.md).
    encryption_at_host: bool | None = None
    # Hosts (bare metal) only: how many worker nodes a rolling change (a Kubernetes upgrade, a new
    # NVIDIA driver or MIG layout) drains at once; control planes always go one at a time. None: 1.
    max_unavailable: int | None = Field(default=None, ge=1, le=1000)
    # Hosts only: where kubelet/kubeadm/kubectl and the CNI manifest come from. None: the site
    # variables kubernetes_node_repo_base and kubernetes_node_cni_manifest_url/_sha256 (docs/ansible.md).
    package_repository: PackageRepository | None = None
    cni: Cni | None = None

    @property
    def minor(self) -> str:
        """``MAJOR.MINOR`` ("1.30"): what EKS data, Pod Security labels, repositories and checks use."""
        return ".".join(self.version.split(".")[:2])

    @property
    def patch(self) -> str | None:
        """The pinned patch release ("1.30.2") when the blueprint gives one, else None."""
        return self.version if self.version.count(".") == 2 else None

    _cidrs = field_validator("authorized_networks")(_cidr_list)


class Network(_Model):
    cidr: Annotated[str, _text(64)] = "10.0.0.0/16"
    # A count (the first N zones the cloud lists) or zone names (pinned, in subnet order).
    zones: int | list[str] = 3

    @field_validator("zones", mode="before")
    @classmethod
    def _zones(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number of zones (2 to 6) or a list of zone names")
        if isinstance(value, int):
            if not 2 <= value <= 6:
                raise ValueError(f"must be >= 2 and <= 6 (EKS needs two zones), not {value}")
        elif isinstance(value, list):
            if not 2 <= len(value) <= 6:
                raise ValueError(f"must name 2 to 6 zones, not {len(value)}")
            for i, zone in enumerate(value):
                zone_forms = forms.zone_forms(info)
                if not isinstance(zone, str) or not any(pattern.fullmatch(zone) for pattern, _ in zone_forms):
                    raise ValueError(f"[{i}] must be a zone name such as {' or '.join(e for _, e in zone_forms)}")
            if len(set(value)) != len(value):
                raise ValueError("names a zone twice")
        return value

    @property
    def zone_count(self) -> int:
        return self.zones if isinstance(self.zones, int) else len(self.zones)

    @property
    def zone_names(self) -> list[str]:
        """The pinned zone names, or [] when only a count is given."""
        return [] if isinstance(self.zones, int) else list(self.zones)

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
    key: LabelKey
    value: LabelValue = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")


class NodePool(_Model):
    name: K8sName
    instance_type: Annotated[str, AfterValidator(_machine_type)] | None = None
    min: int | None = Field(default=None, ge=0, le=1000)
    desired: int | None = Field(default=None, ge=0, le=1000)
    max: int | None = Field(default=None, ge=0, le=1000)
    # Several types (same GPU type and count, see semantics) let a spot pool ride out a shortage.
    instance_types: list[Annotated[str, AfterValidator(_machine_type)]] | None = None
    gpu: Gpu | None = None
    spot: bool | None = None  # alias of capacity_type: spot
    capacity_type: Literal["on_demand", "spot", "capacity_block"] | None = None
    capacity_reservation_id: str | None = Field(default=None, pattern=r"^cr-[0-9a-f]{8,17}$")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: list[Taint] | None = None
    mig: Mig | None = None
    # What the pool is for (docs/kubernetes.md, "Capacity"): default system without GPUs, else training.
    purpose: Literal["training", "inference", "system"] | None = None

    @property
    def effective_taints(self) -> list[Taint]:
        """Taints as applied: a GPU pool gets the nvidia.com/gpu taint unless taints are given."""
        if self.taints is not None:
            return list(self.taints)
        return [GPU_TAINT] if self.gpu else []

    @property
    def all_instance_types(self) -> list[str]:
        """instance_types, or the single instance_type (blueprint v1), or []."""
        if self.instance_types:
            return list(self.instance_types)
        return [self.instance_type] if self.instance_type else []

    @property
    def effective_capacity_type(self) -> str:
        """capacity_type; ``spot: true`` is its alias; otherwise on_demand."""
        if self.capacity_type:
            return self.capacity_type
        return "spot" if self.spot else "on_demand"

    @property
    def effective_desired(self) -> int | None:
        return self.desired if self.desired is not None else self.min


class Host(_Model):
    name: K8sName
    address: Annotated[str, Field(min_length=1), AfterValidator(_address)]
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    roles: list[Literal["control_plane", "worker", "inference"]] = Field(min_length=1)
    pool: K8sName | None = None
    gpu: Gpu | None = None


class Burst(_Model):
    """Where a team's Jobs may overflow to (docs/hybrid.md): other environments of the same rollout,
    reached through Kueue MultiKueue. Checked across the rollout (``blueprint/hybrid.py``)."""
    to: list[Name] = Field(min_length=1, max_length=20)  # environment names (MultiKueueConfig: at most 20)
    gpu_types: list[Literal["t4", "l4", "a10", "a10g", "a100", "h100", "h200", "l40s"]] = Field(min_length=1)
    max_gpus: int = Field(ge=1, le=100000)  # GPUs in flight on the workers at once (the burst ClusterQueue)
    budget_per_month_usd: int | None = Field(default=None, ge=0, le=100_000_000)
    after_seconds: int = Field(default=600, ge=0, le=7 * 24 * 3600)  # default of `infra job submit --burst-after`
    default: bool = False  # `infra job submit` bursts without --burst


class Team(_Model):
    name: K8sName
    namespace: K8sName | None = None
    gpu_quota: int = Field(default=0, ge=0, le=100000)
    borrowing_limit: int | None = Field(default=None, ge=0, le=100000)
    # How much of its nominal quota idle teams may borrow; the rest stays its own. Default: all.
    lending_limit: int | None = Field(default=None, ge=0, le=100000)
    groups: list[Annotated[str, Field(min_length=1), AfterValidator(_group)]] = Field(default_factory=list)
    # Cloud principals (AWS: IAM role or user ARNs, mapped to the team's Kubernetes groups; Azure:
    # Entra object IDs, GCP: Google identities, given the role that fetches cluster credentials).
    members: list[Annotated[str, AfterValidator(_principal)]] = Field(default_factory=list)
    pools: list[K8sName] | None = None  # GPU pools the team may use; default all of the right purpose
    burst: Burst | None = None  # overflow to other environments of the rollout (docs/hybrid.md)

    @property
    def effective_namespace(self) -> str:
        return self.namespace or self.name


class Access(_Model):
    """Who may log in to the cluster besides team members (docs/blueprint.md, "access")."""
    admins: list[Annotated[str, AfterValidator(_principal)]] = Field(default_factory=list)
    # Whether the identity that creates the cluster stays admin; default: only when no admins are given.
    creator_admin: bool | None = None

    @property
    def effective_creator_admin(self) -> bool:
        return self.creator_admin if self.creator_admin is not None else not self.admins


class Model(_Model):
    name: K8sName
    uri: str
    replicas: int = Field(default=1, ge=1, le=1000)
    gpu: int = Field(default=0, ge=0, le=16)
    team: K8sName
    # Optional: the model file's SHA-256 (hex); the configure stage checks the fetched file against it.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        _printable(value, 2048)
        if not value.startswith(MODEL_URI_SCHEMES) or len(value) <= len(value.split("://")[0]) + 3:
            raise ValueError(f"must start with one of: {', '.join(MODEL_URI_SCHEMES)}")
        if any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace (percent-encode it: %20)")
        if any(t in value for t in _TEMPLATE):
            raise ValueError("must not contain template syntax ({{, {%, {#, ${ or %{): percent-encode the braces")
        return value


class Inference(_Model):
    runtime: Literal["onnx", "seldon"] = "onnx"
    models: list[Model] = Field(default_factory=list)


class State(_Model):
    backend: Literal["local", "s3", "azurerm", "gcs"] = "local"
    bucket: Annotated[str, AfterValidator(_bucket)] | None = None
    storage_account: Annotated[str, AfterValidator(_bucket)] | None = None
    container: Annotated[str, AfterValidator(_bucket)] | None = None
    lock: bool = True


def _secret_ref(value: str) -> str:
    _printable(value, 4096)
    if not SECRET_REF.match(value):
        raise ValueError("must be a reference like ${env:NAME} or ${file:path}, never a literal value")
    return value


def _secret_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        raise ValueError("secret names are at most 64 letters, digits and '_', not starting with a digit")
    return value


SecretRef = Annotated[str, AfterValidator(_secret_ref)]
SecretName = Annotated[str, AfterValidator(_secret_name)]


class Blueprint(_Model):
    blueprint: Literal[1]
    name: Name
    provider: str  # a package under orchestrator/providers/ (checked below, before the type)
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{2,40}$")
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    network: Network = Field(default_factory=Network)
    node_pools: list[NodePool] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    inference: Inference | None = None
    state: State = Field(default_factory=State)
    access: Access = Field(default_factory=Access)
    secrets: dict[SecretName, SecretRef] = Field(default_factory=dict)
    overcommit: bool = False  # teams' guarantees may exceed pool capacity (a warning, not an error)
    # Environments of the rollout whose teams may burst to this cluster (MultiKueue managers):
    # this cluster then renders their worker side (docs/hybrid.md).
    burst_from: list[Name] = Field(default_factory=list, max_length=20)

    @field_validator("provider", mode="before")
    @classmethod
    def _known_provider(cls, value: object) -> object:
        names = catalog.providers()
        if value not in names:
            raise ValueError(f"must be one of: {', '.join(names)}")
        return value

    @property
    def is_cloud(self) -> bool:
        """A cloud (region, node pools with instance types), not existing hosts (data/catalog)."""
        return catalog.kind(self.provider) == "cloud"

    @property
    def has_kubernetes(self) -> bool:
        """Whether the environment has a Kubernetes cluster: always on a cloud; on hosts when one
        has the role control_plane or worker. A site of inference-only hosts has none: its models
        are served by the hosts themselves (role inference_onnx), nothing is handed to Kubernetes."""
        return self.is_cloud or any({"control_plane", "worker"} & set(h.roles) for h in self.hosts)

    @property
    def deletion_protected(self) -> bool:
        """Whether ``infra down`` (and, on GKE, Terraform) refuses to destroy the cluster: the
        blueprint's ``kubernetes.deletion_protection``, else the catalog's default."""
        given = self.kubernetes.deletion_protection
        return bool(catalog.setting(self.provider, "deletion_protection", False)) if given is None else given

    def pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)

    def gpu_pools(self) -> list[NodePool]:
        return [p for p in self.node_pools if p.gpu]
