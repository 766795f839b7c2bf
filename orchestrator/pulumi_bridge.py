"""A Pulumi program consumes an environment's outputs (docs/pulumi.md). Terraform stays the engine
(docs/decisions/0006-terraform-stays-the-engine.md): nothing here plans or applies anything.

``read_outputs`` (no Pulumi needed) reads what the last successful ``infra up`` of an environment
left, where ``${output:ENV.NAME}`` reads it: beside a remote state first
(``s3://BUCKET/infra/<name>/outputs.json``, shared_store), else the copy in the project's
``.infra/`` (``outputs.json`` and ``outputs-sensitive.json``, written 0600 by ``up``'s outputs
stage). ``environment`` wraps them as ``pulumi.Output``s: the outputs Terraform marks sensitive
(every one when that list is missing) and the kubeconfig are secrets, so Pulumi encrypts them in
its state and masks them in its output. The kubeconfig is the one ``infra`` itself writes: an
``exec`` credential plugin, never a token.

Pulumi is imported inside the functions that need it: the rest of infra never does.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import pulumi

    from .blueprint.models import Blueprint

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,38}$")  # as ``${output:ENV.NAME}`` (blueprint/outputs.py)
#: the provider-neutral names ``Environment`` offers -> the outputs that hold them, per provider's root
#: module (aws, azure, gcp; bare metal's control plane)
ALIASES: dict[str, tuple[str, ...]] = {
    "cluster_endpoint": ("cluster_endpoint", "control_plane_endpoint"),
    "vpc_id": ("vpc_id", "vnet_id", "network"),
    "node_pools": ("node_pools",),
}

Warn = Callable[[str], None]


class NoOutputsError(UsageError):
    """The environment has no outputs yet: never applied here or beside its state, or destroyed."""


def _stderr_warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class EnvironmentOutputs:
    """What the last successful ``up`` of one environment left, and where it was read."""

    name: str
    values: Mapping[str, Any]
    sensitive: frozenset[str]
    #: where they were read: the outputs file here, or ``s3://BUCKET/infra/<name>/outputs.json``
    source: str
    #: the environment's blueprint, when it was given (needed for the kubeconfig)
    blueprint: Path | None = None
    model: Blueprint | None = field(default=None, repr=False, compare=False)

    def require(self, name: str) -> Any:
        if name not in self.values:
            known = ", ".join(sorted(self.values)) or "none"
            raise UsageError(f"environment '{self.name}' has no output {name} (it has: {known}; read from "
                             f"{self.source})")
        return self.values[name]

    def alias(self, neutral: str) -> str:
        """The output that holds ``neutral`` (``vpc_id``: aws's ``vpc_id``, azure's ``vnet_id``, gcp's
        ``network``) in this environment."""
        for name in ALIASES[neutral]:
            if name in self.values:
                return name
        known = ", ".join(sorted(self.values)) or "none"
        raise UsageError(f"environment '{self.name}' has no {neutral} (none of {', '.join(ALIASES[neutral])} "
                         f"among its outputs: {known}; read from {self.source})")

    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig ``infra`` writes for this cluster (exec credential plugin, no token), as data."""
        if self.model is None:
            raise UsageError(f"the kubeconfig of environment '{self.name}' needs its blueprint (region, provider): "
                             "pass the blueprint's path instead of the environment's name")
        from .providers.registry import get

        return get(self.model.provider).kubeconfig(self.model, dict(self.values))


def read_outputs(name_or_blueprint: str | Path, *, root: str | Path | None = None, sandbox: bool = False,
                 warn: Warn | None = None) -> EnvironmentOutputs:
    """The outputs of an environment, given its blueprint file (then also read beside its remote state, and
    the kubeconfig can be built) or an environment's name (the copy in ``root/.infra/`` only).

    ``root``: the project folder that holds ``.infra/`` (default: the nearest folder at or above the
    blueprint's, or the current directory, that has one; else the current directory). ``sandbox``:
    the outputs of ``infra up --sandbox``. Raises ``NoOutputsError`` when there are none yet,
    ``UsageError`` for a bad name or an unreadable outputs file, ``BlueprintError`` for an invalid
    blueprint."""
    from .stages.terraform import SENSITIVE_OUTPUTS
    from .workspace import Workspace

    warn = warn or _stderr_warn
    file, name, model = _target(name_or_blueprint)
    project = Path(root) if root is not None else _project_root(file.parent if file is not None else Path.cwd())
    ws = Workspace(root=project, name=name, sandbox=sandbox)
    looked: list[str] = []
    terraform = True
    if model is not None:
        from . import shared_store
        from .providers.registry import get

        terraform = get(model.provider).terraform_module is not None
        shared = shared_store.for_reading(model, sandbox, ws.state_dir, warn) if terraform else None
        if shared is not None:
            where = shared.where("outputs.json")
            looked.append(where)
            try:
                found = shared.get_outputs()
            except shared_store.SharedStoreError as exc:
                warn(f"the outputs beside the state were not read ({exc.message}): "
                     f"reading the copy in {ws.outputs_file}")
                found = None
            if found is not None:
                return EnvironmentOutputs(name, dict(found.values), frozenset(found.sensitive), where, file, model)
    plain = Workspace(root=project, name=name)
    unknown_kind = model is None and not ws.outputs_file.is_file() and not plain.tf_data_dir.is_dir()
    if sandbox and (not terraform or unknown_kind):
        if terraform:
            looked.append(str(ws.outputs_file))
        ws = plain  # bare metal runs without the sandbox: its outputs are saved by a configure, never by Terraform
    looked.append(str(ws.outputs_file))
    values = _read_local(ws.outputs_file)
    if values is None:
        command = "infra up --sandbox" if sandbox and terraform else "infra up"
        raise NoOutputsError(f"environment '{name}' has no outputs yet (looked in {' and '.join(looked)})",
                             hint=f"run `{command}` on it first; a down that destroyed it removes them")
    try:
        listed = json.loads((ws.env_dir / SENSITIVE_OUTPUTS).read_text())
        sensitive = frozenset(listed) if isinstance(listed, list) else frozenset(values)
    except (OSError, ValueError, TypeError):
        sensitive = frozenset(values)  # unknown: treated as sensitive, as ${output:} does
    return EnvironmentOutputs(name, values, sensitive, str(ws.outputs_file), file, model)


def _target(name_or_blueprint: str | Path) -> tuple[Path | None, str, Blueprint | None]:
    """``(blueprint file or None, environment name, its model or None)``."""
    text = str(name_or_blueprint)
    if isinstance(name_or_blueprint, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        file = Path(name_or_blueprint)
        if not file.is_file():
            raise UsageError(f"blueprint {file} does not exist")
        from .blueprint.loader import load

        model = load(file).model  # ${output:} references of its own are left out: they do not matter here
        return file, model.name, model
    if not ENV_NAME.match(text):
        raise UsageError(f"{text!r} is neither a blueprint file nor an environment name (lowercase letters, "
                         "digits and '-', 2 to 39 characters)")
    return None, text, None


def _project_root(start: Path) -> Path:
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / ".infra").is_dir():
            return folder
    return Path.cwd()


def _read_local(path: Path) -> dict[str, Any] | None:
    """The outputs file's object; None when there is none. Anything else there is bad input."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})",
                         hint="run `infra up` on the environment again: it rewrites the file") from None
    if not isinstance(values, dict):
        raise UsageError(f"{path}:1:1: not a JSON object of outputs (a {type(values).__name__})",
                         hint="run `infra up` on the environment again: it rewrites the file")
    return values


class Environment:
    """One environment's outputs as ``pulumi.Output``s (``environment()`` makes one). Sensitive
    outputs and the kubeconfig are secrets."""

    def __init__(self, found: EnvironmentOutputs) -> None:
        self.found = found

    @property
    def name(self) -> str:
        return self.found.name

    def get_output(self, name: str) -> pulumi.Output[Any]:
        """Output ``name`` (``None`` when the environment has no such output), secret when sensitive."""
        import pulumi

        value = self.found.values.get(name)
        return pulumi.Output.secret(value) if name in self.found.sensitive else pulumi.Output.from_input(value)

    def require_output(self, name: str) -> pulumi.Output[Any]:
        """Output ``name``; a ``UsageError`` naming the outputs there are when it has none of that name."""
        self.found.require(name)
        return self.get_output(name)

    @property
    def outputs(self) -> dict[str, pulumi.Output[Any]]:
        """Every output, by its Terraform name."""
        return {name: self.get_output(name) for name in sorted(self.found.values)}

    @property
    def cluster_endpoint(self) -> pulumi.Output[str]:
        return self.require_output(self.found.alias("cluster_endpoint"))

    @property
    def vpc_id(self) -> pulumi.Output[str]:
        """The network: aws ``vpc_id``, azure ``vnet_id``, gcp ``network``."""
        return self.require_output(self.found.alias("vpc_id"))

    @property
    def node_pools(self) -> pulumi.Output[dict[str, Any]]:
        """Pool name -> its node group (name, instance types, labels, taints), as Terraform gives it."""
        return self.require_output(self.found.alias("node_pools"))

    @property
    def kubeconfig(self) -> pulumi.Output[str]:
        """The kubeconfig (YAML) ``infra`` writes for the cluster, always a secret: for a Kubernetes
        provider's ``kubeconfig`` argument."""
        import pulumi
        import yaml

        return pulumi.Output.secret(yaml.safe_dump(self.found.kubeconfig(), sort_keys=True))


def environment(name_or_blueprint: str | Path, *, root: str | Path | None = None,
                sandbox: bool = False) -> Environment:
    """``read_outputs`` as Pulumi Outputs; warnings go to ``pulumi.log.warn``."""
    import pulumi

    return Environment(read_outputs(name_or_blueprint, root=root, sandbox=sandbox, warn=pulumi.log.warn))


def environment_outputs(name_or_blueprint: str | Path, *, root: str | Path | None = None,
                        sandbox: bool = False) -> dict[str, pulumi.Output[Any]]:
    """``cluster_endpoint``, ``vpc_id``, ``node_pools`` and ``kubeconfig`` (secret) of an environment as
    Pulumi Outputs: those it has (bare metal: only its control plane's endpoint; the kubeconfig only
    when given the blueprint)."""
    env = environment(name_or_blueprint, root=root, sandbox=sandbox)
    found: dict[str, pulumi.Output[Any]] = {}
    for neutral in ALIASES:
        if any(name in env.found.values for name in ALIASES[neutral]):
            found[neutral] = getattr(env, neutral)
    if env.found.model is not None:
        from .providers.registry import get

        if get(env.found.model.provider).terraform_module is not None:  # bare metal: no kubeconfig from outputs
            found["kubeconfig"] = env.kubeconfig
    return found
