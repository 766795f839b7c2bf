"""The Provider interface.

A provider maps a Blueprint to data: Terraform variables, the backend block, the sandbox's
endpoints, the hosts Ansible configures, and a kubeconfig from Terraform outputs. It never
renders templates or runs processes: ``render/`` and ``engines/`` do that with what it returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..blueprint.models import Blueprint

if TYPE_CHECKING:
    from ..inventory import InventoryHost
    from .credentials import Credentials

STATE_KEY = "infra/{name}/terraform.tfstate"


class Provider(ABC):
    #: blueprint ``provider:`` value this class serves
    name: ClassVar[str]
    #: folder under terraform/modules/ that the root module calls; None: no cloud resources
    terraform_module: ClassVar[str | None] = None
    #: whether ``--sandbox`` can emulate this provider's API (templates/terraform/<name>/sandbox/)
    sandbox: ClassVar[bool] = False
    #: False: blueprints for it validate, but render, plan and up refuse it (not built yet)
    renderable: ClassVar[bool] = True
    #: what its Terraform provider needs to sign in, checked before ``terraform init``; None: not checked
    credentials: ClassVar[Credentials | None] = None
    #: (pattern, hint): a Terraform error whose message matches gets this hint instead of the
    #: provider's own (what a fresh account lacks: a feature, an API; stages.terraform)
    error_hints: ClassVar[tuple[tuple[str, str], ...]] = ()

    @abstractmethod
    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        """Values for terraform.tfvars.json (JSON-serialisable, no secret values)."""

    def backend(self, bp: Blueprint) -> tuple[str, dict[str, Any]]:
        """Backend type and its static settings, from ``state``.

        The local backend's path is not rendered (it is machine-specific); the engine passes it
        with ``-backend-config`` at init.
        """
        st = bp.state
        key = STATE_KEY.format(name=bp.name)
        if st.backend == "s3":
            settings: dict[str, Any] = {"bucket": st.bucket, "key": key, "encrypt": True}
            if bp.region:
                settings["region"] = bp.region
            if st.lock:
                settings["use_lockfile"] = True
            return "s3", settings
        if st.backend == "gcs":
            return "gcs", {"bucket": st.bucket, "prefix": f"infra/{bp.name}"}
        if st.backend == "azurerm":
            return "azurerm", {
                "storage_account_name": st.storage_account,
                "container_name": st.container,
                "key": key,
            }
        return "local", {}

    def cluster_networks(self, bp: Blueprint) -> list[str]:
        """The IPv4 networks inside the cluster: nodes, pods, Services (and the control plane where
        it has a range of its own), the ones the Terraform variables give the cloud. The team
        NetworkPolicy that lets pods reach HTTPS outside excepts them (render/kubernetes/tenancy.py).
        Default: ``network.cidr`` only; a provider whose pods or Services use other ranges lists them."""
        return [bp.network.cidr]

    def sandbox_endpoints(self, endpoint: str) -> dict[str, str]:
        """``--sandbox``: the API endpoint of each service the Terraform provider calls, all served by
        the emulator at ``endpoint``; templates/terraform/<name>/sandbox/ turns them into override files."""
        raise NotImplementedError(f"provider {self.name} has no sandbox")

    def inventory_hosts(self, bp: Blueprint, outputs: dict[str, Any]) -> list[InventoryHost]:
        """Machines the configure stage runs Ansible on, from the blueprint and Terraform outputs.

        None by default: managed node groups are configured by the cloud's own images.
        """
        return []

    def static_outputs(self, bp: Blueprint, env_dir: Path | None = None) -> dict[str, Any]:
        """What ``plan`` and ``status`` show for a provider without Terraform outputs (bare metal)."""
        return {}

    def exported_outputs(self, bp: Blueprint) -> dict[str, Any]:
        """What a provider without Terraform saves as its outputs after a successful configure, for
        ``${output:ENV.NAME}`` in other blueprints (none of them secret). Cloud providers: none here,
        their Terraform outputs are saved instead."""
        return {}

    def kubeconfig(self, bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
        """A kubeconfig (as data) for the cluster described by the Terraform outputs."""
        from ..errors import KubernetesError

        raise KubernetesError(
            f"provider {self.name} cannot build a kubeconfig from its outputs",
            hint="pass --kubeconfig FILE (and --context NAME)",
        )

    def summarize_outputs(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, value) rows that ``infra status`` and ``up`` show; secrets excluded."""
        return [(k, str(v)) for k, v in sorted(outputs.items()) if not isinstance(v, dict | list)]
