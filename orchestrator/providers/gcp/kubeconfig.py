"""The kubeconfig of a GKE cluster, from the Terraform outputs of terraform/modules/gcp_gpu_cluster.

Its user runs ``gke-gcloud-auth-plugin`` through the ``exec`` credential plugin (the login of
gcloud): no token is ever written to disk.
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint
from ..kubeconfig import exec_kubeconfig, require_outputs, require_plugin

PLUGIN = "gke-gcloud-auth-plugin"


def gke_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    require_outputs(outputs)
    require_plugin(PLUGIN, "GKE needs it to get a token", f"install it (`gcloud components install {PLUGIN}`)")
    return exec_kubeconfig(outputs, "gcloud", PLUGIN, [], provide_cluster_info=True)
