"""The kubeconfig of an AKS cluster, from the Terraform outputs of terraform/modules/azure_gpu_cluster.

Local accounts are disabled, so its user runs ``kubelogin get-token`` through the ``exec``
credential plugin (Entra ID, the login of the Azure CLI): no token is ever written to disk.
"""

from __future__ import annotations

import shutil
from typing import Any

from ...blueprint.models import Blueprint
from ...errors import KubernetesError

EXEC_API = "client.authentication.k8s.io/v1beta1"
# The AKS AAD server application: the audience of every AKS Entra ID token.
AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


def aks_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("cluster_name", "cluster_endpoint", "cluster_ca", "tenant_id") if not outputs.get(k)]
    if missing:
        raise KubernetesError(
            f"the Terraform outputs lack {', '.join(missing)}: cannot build a kubeconfig",
            hint="run `infra up` first (it saves the outputs), or pass --kubeconfig",
        )
    if shutil.which("kubelogin") is None:
        raise KubernetesError(
            "kubelogin is not on PATH: AKS with Entra ID needs it to get a token",
            hint="install kubelogin (`az aks install-cli` installs it), or pass --kubeconfig",
        )
    name = outputs["cluster_name"]
    args = ["get-token", "--login", "azurecli", "--server-id", AKS_SERVER_ID,
            "--tenant-id", outputs["tenant_id"]]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [
            {"name": name, "cluster": {"server": outputs["cluster_endpoint"],
                                       "certificate-authority-data": outputs["cluster_ca"]}}
        ],
        "users": [
            {"name": f"{name}-entra", "user": {"exec": {
                "apiVersion": EXEC_API, "command": "kubelogin", "args": args, "interactiveMode": "Never",
                "provideClusterInfo": False,
            }}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-entra"}}],
    }
