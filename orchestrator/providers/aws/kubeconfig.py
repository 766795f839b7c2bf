"""The kubeconfig of an EKS cluster, from the Terraform outputs of terraform/modules/aws_gpu_cluster.

Its user runs ``aws eks get-token`` through the ``exec`` credential plugin each time a client
needs a token: no token is ever written to disk.
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint
from ...errors import KubernetesError

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
