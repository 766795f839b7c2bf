"""The AWS emulator process behind ``--sandbox``: moto's server, plus three small additions.

``sandbox.start`` runs ``python -m orchestrator.sandbox_moto -H 127.0.0.1 -p PORT``. Before the
server starts, ``install()`` registers in this process (moto's own files are never changed)
what the real ``hashicorp/aws`` provider needs from EKS and moto 5 lacks (docs/sandbox.md):

1. **DescribeUpdate** (``GET /clusters/{name}/updates/{updateId}``) and **ListUpdates**
   (``GET /clusters/{name}/updates``): after UpdateNodegroupConfig (a changed pool size) and
   UpdateClusterConfig the provider waits for the update to be ``Successful``; moto applies
   both at once but cannot be asked about the update, so the provider failed. The updates the
   two calls create are kept per region and answered as ``Successful``.
2. **UpdateClusterConfig answers with an update**, as AWS does (moto returns the cluster, and
   the provider reads ``update.id`` from the answer).
3. **One OIDC issuer per cluster**: moto draws one random issuer per *process* (at import),
   so every cluster of a region got the same issuer, hence the same IAM OIDC provider ARN,
   and the second sandbox environment in a region failed with 409 EntityAlreadyExists. AWS
   gives each cluster its own issuer id (32 hex digits); so does this.

This module imports moto; nothing else of ours imports it (it runs in the server process only).
"""

from __future__ import annotations

import uuid
from typing import Any

_UPDATES = "_infra_updates"  # attribute on an EKS backend (one per account and region)
_ISSUER = "https://oidc.eks.{region}.amazonaws.com/id/{id}"


def _updates(backend: Any) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
    """``{update id: (cluster, node group or None, update)}`` of one EKS backend."""
    if not hasattr(backend, _UPDATES):
        setattr(backend, _UPDATES, {})
    return getattr(backend, _UPDATES)


def install() -> None:
    """Register the additions described above in moto's EKS service (this process only)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.eks import models, responses, urls
    from moto.eks.exceptions import ResourceNotFoundException

    if getattr(models.EKSBackend, "_infra_extended", False):
        return
    models.EKSBackend._infra_extended = True  # type: ignore[attr-defined]

    urls.url_paths["{0}/clusters/(?P<name>[^/]+)/updates$"] = urls.response.dispatch
    urls.url_paths["{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"] = urls.response.dispatch

    cluster_init = models.Cluster.__init__

    def init_cluster(self: Any, *args: Any, **kwargs: Any) -> None:
        cluster_init(self, *args, **kwargs)
        region = kwargs.get("region_name") or self.arn.split(":")[3]
        self.identity = {"oidc": {"issuer": _ISSUER.format(region=region, id=uuid.uuid4().hex.upper())}}

    models.Cluster.__init__ = init_cluster  # type: ignore[method-assign]

    update_nodegroup = models.EKSBackend.update_nodegroup_config

    def update_nodegroup_config(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        update = update_nodegroup(self, *args, **kwargs)
        cluster = kwargs.get("cluster_name", args[0] if args else None)
        nodegroup = kwargs.get("nodegroup_name", args[1] if len(args) > 1 else None)
        _updates(self)[update["id"]] = (cluster, nodegroup, update)
        return update

    models.EKSBackend.update_nodegroup_config = update_nodegroup_config  # type: ignore[method-assign]

    update_cluster = responses.EKSResponse.update_cluster_config

    def update_cluster_config(self: Any) -> Any:
        update_cluster(self)  # applies the change (or raises ResourceNotFound)
        update = {"id": str(uuid.uuid4()), "status": "Successful", "type": "ConfigUpdate", "params": [],
                  "createdAt": utcnow(), "errors": []}
        _updates(self.eks_backend)[update["id"]] = (self._get_param("name"), None, update)
        return ActionResult({"update": update})

    def describe_update(self: Any) -> Any:
        name, update_id = self._get_param("name"), self._get_param("updateId")
        nodegroup = self._get_param("nodegroupName")
        found = _updates(self.eks_backend).get(update_id)
        if found is None or found[0] != name or found[1] != nodegroup:
            raise ResourceNotFoundException(clusterName=name, nodegroupName=nodegroup, fargateProfileName=None,
                                            addonName=None, message=f"No update found for ID: {update_id}.")
        return ActionResult({"update": found[2]})

    def list_updates(self: Any) -> Any:
        name, nodegroup = self._get_param("name"), self._get_param("nodegroupName")
        ids = [uid for uid, (cluster, group, _) in _updates(self.eks_backend).items()
               if cluster == name and group == nodegroup]
        return ActionResult({"updateIds": ids})

    responses.EKSResponse.update_cluster_config = update_cluster_config  # type: ignore[method-assign]
    responses.EKSResponse.describe_update = describe_update  # type: ignore[attr-defined]
    responses.EKSResponse.list_updates = list_updates  # type: ignore[attr-defined]


def main() -> None:
    """``python -m orchestrator.sandbox_moto`` takes moto's server arguments (``-H``, ``-p``)."""
    install()
    from moto.server import main as serve

    serve()


if __name__ == "__main__":
    main()
