"""The kubeconfig of an EKS cluster, from the Terraform outputs of terraform/modules/aws_gpu_cluster.

Its user runs ``aws eks get-token`` through the ``exec`` credential plugin each time a client
needs a token: no token is ever written to disk.
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint
from ..kubeconfig import exec_kubeconfig, require_outputs


def eks_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    require_outputs(outputs)
    args = ["--region", bp.region or "", "eks", "get-token", "--cluster-name", outputs["cluster_name"],
            "--output", "json"]
    return exec_kubeconfig(outputs, "aws", "aws", args)
