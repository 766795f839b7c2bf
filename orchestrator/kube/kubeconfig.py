"""Where the cluster credentials come from: ``--kubeconfig``/``--context``, or a kubeconfig
built from the Terraform outputs and kept (0600) at ``.infra/env/<name>/kubeconfig``.

A built kubeconfig never holds a token: on AWS it runs ``aws eks get-token`` through the
``exec`` credential plugin each time a client needs one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..blueprint.models import Blueprint
from ..errors import KubernetesError
from ..providers.base import Provider
from ..workspace import read_json, write_private

EXEC_API = "client.authentication.k8s.io/v1beta1"


def eks_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("cluster_name", "cluster_endpoint", "cluster_ca") if not outputs.get(k)]
    if missing:
        raise KubernetesError(
            f"the Terraform outputs lack {', '.join(missing)}: cannot build a kubeconfig",
            hint="run `infra up` first (it saves the outputs), or pass --kubeconfig",
        )
    name = outputs["cluster_name"]
    args = ["--region", bp.region or "", "eks", "get-token", "--cluster-name", name, "--output", "json"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [
            {"name": name, "cluster": {"server": outputs["cluster_endpoint"],
                                       "certificate-authority-data": outputs["cluster_ca"]}}
        ],
        "users": [
            {"name": f"{name}-aws", "user": {"exec": {
                "apiVersion": EXEC_API, "command": "aws", "args": args, "interactiveMode": "Never",
                "provideClusterInfo": False,
            }}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-aws"}}],
    }


def from_outputs(bp: Blueprint, provider: Provider, outputs: dict[str, Any]) -> dict[str, Any]:
    return provider.kubeconfig(bp, outputs)


def read_outputs(outputs_file: Path) -> dict[str, Any]:
    return read_json(outputs_file)


def resolve(
    ws: Any,
    bp: Blueprint,
    provider: Provider,
    outputs: dict[str, Any] | None,
    kubeconfig: Path | None = None,
    context: str | None = None,
) -> tuple[Path, str | None]:
    """The kubeconfig file (and context) to use for ``bp``'s cluster."""
    if kubeconfig is not None:
        if not Path(kubeconfig).is_file():
            raise KubernetesError(f"kubeconfig {kubeconfig} does not exist")
        return Path(kubeconfig), context
    outputs = outputs or read_outputs(ws.outputs_file)
    if not outputs:
        raise KubernetesError(
            f"no Terraform outputs for '{bp.name}' (looked in {ws.outputs_file})",
            hint="run `infra up` first, or pass --kubeconfig FILE",
        )
    import yaml

    data = from_outputs(bp, provider, outputs)
    path = write_private(ws.env_dir / "kubeconfig", yaml.safe_dump(data, sort_keys=True))
    return path, context or data.get("current-context")
