"""The kubeconfig of a GKE cluster, from the Terraform outputs of terraform/modules/gcp_gpu_cluster.

Its user runs ``gke-gcloud-auth-plugin`` through the ``exec`` credential plugin (the login of
gcloud): no token is ever written to disk.
"""

from __future__ import annotations

import shutil
from typing import Any

from ...blueprint.models import Blueprint
from ...errors import KubernetesError

EXEC_API = "client.authentication.k8s.io/v1beta1"
PLUGIN = "gke-gcloud-auth-plugin"


def gke_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("cluster_name", "cluster_endpoint", "cluster_ca") if not outputs.get(k)]
    if missing:
        raise KubernetesError(
            f"the Terraform outputs lack {', '.join(missing)}: cannot build a kubeconfig",
            hint="run `infra up` first (it saves the outputs), or pass --kubeconfig",
        )
    if shutil.which(PLUGIN) is None:
        raise KubernetesError(
            f"{PLUGIN} is not on PATH: GKE needs it to get a token",
            hint=f"install it (`gcloud components install {PLUGIN}`), or pass --kubeconfig",
        )
    name = outputs["cluster_name"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [
            {"name": name, "cluster": {"server": outputs["cluster_endpoint"],
                                       "certificate-authority-data": outputs["cluster_ca"]}}
        ],
        "users": [
            {"name": f"{name}-gcloud", "user": {"exec": {
                "apiVersion": EXEC_API, "command": PLUGIN, "args": [], "interactiveMode": "Never",
                "provideClusterInfo": True,
            }}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-gcloud"}}],
    }
