"""The kubeconfig of an AKS cluster, from the Terraform outputs of terraform/modules/azure_gpu_cluster.

Local accounts are disabled, so its user runs ``kubelogin get-token`` through the ``exec``
credential plugin (Entra ID, the login of the Azure CLI): no token is ever written to disk.
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint
from ..kubeconfig import exec_kubeconfig, require_outputs, require_plugin

# The AKS AAD server application: the audience of every AKS Entra ID token.
AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


def aks_kubeconfig(bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
    require_outputs(outputs, "tenant_id")
    require_plugin("kubelogin", "AKS with Entra ID needs it to get a token",
                   "install kubelogin (`az aks install-cli` installs it)")
    args = ["get-token", "--login", "azurecli", "--server-id", AKS_SERVER_ID, "--tenant-id", outputs["tenant_id"]]
    return exec_kubeconfig(outputs, "entra", "kubelogin", args)
