"""The kubeconfig of an AKS cluster, from the Terraform outputs of terraform/modules/azure_gpu_cluster.

Local accounts are disabled, so its user runs ``kubelogin get-token`` through the ``exec``
credential plugin (Entra ID): no token is ever written to disk. Its login mode follows the
credentials Terraform found (``credentials.CREDENTIALS``, in azurerm's order): a service
principal (secret or certificate) -> ``spn``; OIDC with a token file -> ``workloadidentity``; a
managed identity -> ``msi``; else the Azure CLI's sign-in -> ``azurecli``. A secret is never
written: kubelogin reads it from ``AAD_SERVICE_PRINCIPAL_CLIENT_SECRET``, which ``login`` sets in
this process (the handoff's plugin inherits it) from ``ARM_CLIENT_SECRET``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from ...blueprint.models import Blueprint
from ...errors import KubernetesError
from ..credentials import is_set
from ..kubeconfig import exec_kubeconfig, require_outputs, require_plugin
from .credentials import CREDENTIALS

# The AKS AAD server application: the audience of every AKS Entra ID token.
AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


def login(env: MutableMapping[str, str]) -> list[str]:
    """kubelogin's ``--login`` mode and its arguments for the credentials in ``env``."""
    found = {src.label for src in CREDENTIALS.usable(env)}
    client = ["--client-id", env["ARM_CLIENT_ID"]] if is_set(env, "ARM_CLIENT_ID") else []
    if "service principal certificate" in found:
        return ["--login", "spn", *client, "--client-certificate", env["ARM_CLIENT_CERTIFICATE_PATH"]]
    if "service principal secret" in found:
        env.setdefault("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", env["ARM_CLIENT_SECRET"])
        return ["--login", "spn", *client]
    if "OIDC" in found:
        token_file = env.get("ARM_OIDC_TOKEN_FILE_PATH") or env.get("AZURE_FEDERATED_TOKEN_FILE")
        if token_file:
            return ["--login", "workloadidentity", *client, "--federated-token-file", token_file]
        if "az login" not in found:
            raise KubernetesError(
                "kubelogin cannot use an OIDC token request URL (ARM_USE_OIDC without a token file)",
                hint="set ARM_OIDC_TOKEN_FILE_PATH (or AZURE_FEDERATED_TOKEN_FILE) to the federated token file, "
                     "or sign the Azure CLI in (e.g. the azure/login action) first")
    elif "managed identity" in found:
        return ["--login", "msi", *client]
    return ["--login", "azurecli"]


def aks_kubeconfig(bp: Blueprint, outputs: dict[str, Any],
                   env: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    require_outputs(outputs, "tenant_id")
    require_plugin("kubelogin", "AKS with Entra ID needs it to get a token",
                   "install kubelogin (`az aks install-cli` installs it)")
    mode = login(os.environ if env is None else env)
    args = ["get-token", *mode, "--server-id", AKS_SERVER_ID, "--tenant-id", outputs["tenant_id"]]
    return exec_kubeconfig(outputs, "entra", "kubelogin", args)
