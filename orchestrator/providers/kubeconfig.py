"""What every cloud's kubeconfig shares: the outputs it needs, and one cluster whose user gets a
token through an ``exec`` credential plugin (never a token on disk). Each provider package names
its plugin and arguments (``aws eks get-token``, ``kubelogin``, ``gke-gcloud-auth-plugin``)."""

from __future__ import annotations

import shutil
from typing import Any

from ..errors import KubernetesError

EXEC_API = "client.authentication.k8s.io/v1beta1"
REQUIRED = ("cluster_name", "cluster_endpoint", "cluster_ca")


def require_outputs(outputs: dict[str, Any], *extra: str) -> None:
    missing = [k for k in (*REQUIRED, *extra) if not outputs.get(k)]
    if missing:
        raise KubernetesError(
            f"the Terraform outputs lack {', '.join(missing)}: cannot build a kubeconfig",
            hint="run `infra up` first (it saves the outputs), or pass --kubeconfig",
        )


def require_plugin(command: str, why: str, install: str) -> None:
    """A missing exec plugin is a clear error now, not a failed API call later (exit 5)."""
    if shutil.which(command) is None:
        raise KubernetesError(f"{command} is not on PATH: {why}", hint=f"{install}, or pass --kubeconfig")


def exec_kubeconfig(outputs: dict[str, Any], user: str, command: str, args: list[str],
                    provide_cluster_info: bool = False) -> dict[str, Any]:
    """A kubeconfig for the cluster in ``outputs`` whose user ``<cluster>-<user>`` runs ``command``."""
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
            {"name": f"{name}-{user}", "user": {"exec": {
                "apiVersion": EXEC_API, "command": command, "args": args, "interactiveMode": "Never",
                "provideClusterInfo": provide_cluster_info,
            }}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}"}}],
    }
