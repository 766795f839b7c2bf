"""``infra model``: build the objects (``render.kubernetes.inference``), apply, list and delete
them on the cluster (``kube.serving``).

Blueprint models are rendered exactly as ``infra handoff`` applies them (same labels, so a
later handoff keeps them). Ad-hoc models (``--uri``) carry ``app.kubernetes.io/managed-by:
infra`` and ``infra.dev/ad-hoc: "true"`` but no environment label, so prune never touches
them; ``infra model delete`` removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..conventions import ADHOC_LABEL, MANAGED_BY, MANAGED_BY_LABEL, TEAM_LABEL, common_labels
from ..errors import UsageError
from .target import TargetOptions, load, target

if TYPE_CHECKING:
    from ..blueprint.models import Blueprint
    from ..kube.apply import ApplyResult
    from ..progress import Progress

RUNTIMES = ("onnx", "seldon")


@dataclass(frozen=True)
class AdhocModel:
    """``--uri`` and the rest: a model that is not in a blueprint (``uri`` None: none)."""

    uri: str | None = None
    name: str | None = None
    gpu: int = 0
    replicas: int = 1
    runtime: str | None = None  # None: the blueprint's runtime, else onnx


def blueprint_objects(bp: Blueprint, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The objects of the blueprint's models (all, or those named), labelled as the render labels them."""
    from ..render.kubernetes.inference import blueprint_models
    from ..render.kubernetes.templates import label

    rendered = blueprint_models(bp)
    known = [m.name for m in (bp.inference.models if bp.inference else [])]
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise UsageError(f"no model named {', '.join(unknown)} in the blueprint (models: {', '.join(known) or 'none'})")
    wanted = set(names or known)
    objs = [o for key, group in sorted(rendered.items()) for o in group
            if key in wanted or (o.get("kind") in ("Server", "SeldonRuntime") and _team_has(bp, o, wanted))]
    return label(objs, common_labels(bp.name))


def _team_has(bp: Blueprint, obj: dict[str, Any], wanted: set[str]) -> bool:
    """A team's Server (its GPU models) or SeldonRuntime (any of its models) goes with its wanted models."""
    team, gpu = obj["metadata"]["labels"].get(TEAM_LABEL), obj.get("kind") == "Server"
    return any(m.team == team and m.name in wanted and (m.gpu > 0 or not gpu)
               for m in bp.inference.models)  # type: ignore[union-attr]


def adhoc_objects(name: str, uri: str, team: str, namespace: str | None, gpu: int, replicas: int, runtime: str,
                  bp: Blueprint | None = None) -> list[dict[str, Any]]:
    """The objects of an ad-hoc model; placed like the blueprint's team's models when ``bp`` has ``team``."""
    from pydantic import ValidationError

    from ..blueprint.models import Model
    from ..render.kubernetes.inference import Placement, model_objects, placement
    from ..render.kubernetes.templates import label

    try:
        model = Model(name=name, uri=uri, team=team, gpu=gpu, replicas=replicas)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid model: {problems}") from None
    if bp is not None and any(t.name == team for t in bp.teams):
        where = placement(bp, team)
        if namespace:
            where = Placement(namespace, where.gpu_tolerations)
    else:
        where = Placement(namespace or team)
    objs = model_objects(runtime, [model], where, {})
    return label(objs, {MANAGED_BY_LABEL: MANAGED_BY, ADHOC_LABEL: "true"})


def deploy(opts: TargetOptions, names: list[str], adhoc: AdhocModel, *, wait: bool = True, timeout: float = 300.0,
           progress: Progress | None = None) -> ApplyResult:
    """Deploy the blueprint's models (all, or ``names``) or the ad-hoc one, and wait for them."""
    from ..kube import serving
    from ..kube.apply import Options

    where = load(opts)
    bp = where.bp
    if adhoc.uri:
        if names:
            raise UsageError("give blueprint model names or --uri, not both")
        if not adhoc.name or not opts.team:
            raise UsageError("an ad-hoc model needs --name and --team")
        runtime = adhoc.runtime or (bp.inference.runtime if bp and bp.inference else "onnx")
        if runtime not in RUNTIMES:
            raise UsageError(f"--runtime must be onnx or seldon, not {runtime!r}")
        objs = adhoc_objects(adhoc.name, adhoc.uri, opts.team, opts.namespace, adhoc.gpu, adhoc.replicas, runtime,
                             bp)
    else:
        if bp is None:
            raise UsageError("say which models: --blueprint FILE [NAME...], or an ad-hoc --uri")
        objs = blueprint_objects(bp, names or None)
    version = bp.kubernetes.minor if bp else serving.DEFAULT_K8S_VERSION
    return serving.deploy(where.client(), objs, version, Options(wait=wait, timeout=timeout), progress)


def list_models(opts: TargetOptions) -> list[dict[str, Any]]:
    """Deployed models of the team or namespace (all namespaces' when neither is given)."""
    from ..kube import serving

    where = target(opts, required=False)
    return serving.list_models(where.client(), where.namespace)


def delete(opts: TargetOptions, name: str) -> tuple[list[str], str | None]:
    """Delete a model's objects; also a warning when its blueprint will bring it back."""
    from ..kube import serving

    where = target(opts)
    assert where.namespace is not None
    return serving.delete_model(where.client(), name, where.namespace)
