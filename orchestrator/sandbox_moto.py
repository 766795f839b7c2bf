"""The AWS emulator process behind ``--sandbox``: moto's server, plus five small additions.

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
4. **A retried security-group rule authorization succeeds**: on a loaded machine the provider's
   HTTP client sometimes loses the answer to an AuthorizeSecurityGroupIngress/Egress that the
   emulator had already applied, sends it again (the AWS SDK retries), and the retry was answered
   InvalidPermission.Duplicate, failing ``up`` (seen in CI and with several sandbox runs at
   once). An identical request (same group, protocol, ports and sources) within 120 s of the one
   that added the rule is answered with that rule, once; any other duplicate still fails as on
   AWS.
5. **Deleting a launch template that is gone answers as EC2 does**: moto answers a
   DeleteLaunchTemplate by ID of a template it does not have with
   ``InvalidLaunchTemplateName.NotFoundException``; EC2 answers ``InvalidLaunchTemplateId.NotFound``,
   the code the provider's delete takes as "already deleted". So a delete that finds the template
   gone (a request sent again after its answer was lost, as in 4) no longer fails ``down``, as it
   does not on AWS (seen once in a benchmark run).

This module imports moto; nothing else of ours imports it (it runs in the server process only).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

_UPDATES = "_infra_updates"  # attribute on an EKS backend (one per account and region)
_ISSUER = "https://oidc.eks.{region}.amazonaws.com/id/{id}"


def _updates(backend: Any) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
    """``{update id: (cluster, node group or None, update)}`` of one EKS backend."""
    if not hasattr(backend, _UPDATES):
        setattr(backend, _UPDATES, {})
    return getattr(backend, _UPDATES)


_RETRY_WINDOW_S = 120.0


def _install_rule_retries() -> None:
    """Addition 4 (see the module's docstring)."""
    from moto.ec2.exceptions import InvalidPermissionDuplicateError
    from moto.ec2.models.security_groups import SecurityGroupBackend

    if getattr(SecurityGroupBackend, "_infra_rule_retries", False):
        return
    SecurityGroupBackend._infra_rule_retries = True  # type: ignore[attr-defined]
    lock = threading.Lock()
    recent: dict[str, tuple[float, Any]] = {}  # request key -> (when it was applied, its answer)

    def tolerant(name: str) -> None:
        original = getattr(SecurityGroupBackend, name)

        def authorize(self: Any, *args: Any, **kwargs: Any) -> Any:
            key = repr((name, id(self), args, sorted(kwargs.items())))
            try:
                answer = original(self, *args, **kwargs)
            except InvalidPermissionDuplicateError:
                with lock:
                    applied = recent.pop(key, None)  # once: a second copy is a real duplicate
                if applied is not None and time.monotonic() - applied[0] < _RETRY_WINDOW_S:
                    return applied[1]
                raise
            with lock:
                now = time.monotonic()
                for stale in [k for k, (at, _) in recent.items() if now - at >= _RETRY_WINDOW_S]:
                    del recent[stale]
                recent[key] = (now, answer)
            return answer

        setattr(SecurityGroupBackend, name, authorize)

    tolerant("authorize_security_group_ingress")
    tolerant("authorize_security_group_egress")


def _install_launch_template_delete() -> None:
    """Addition 5 (see the module's docstring)."""
    from moto.ec2.exceptions import InvalidLaunchTemplateIdNotFound
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    if getattr(LaunchTemplateBackend, "_infra_delete", False):
        return
    LaunchTemplateBackend._infra_delete = True  # type: ignore[attr-defined]
    original = LaunchTemplateBackend.delete_launch_template

    def delete_launch_template(self: Any, name: str, tid: str | None) -> Any:
        if not name and tid and tid not in self.launch_templates:
            raise InvalidLaunchTemplateIdNotFound(tid)
        return original(self, name, tid)

    LaunchTemplateBackend.delete_launch_template = delete_launch_template  # type: ignore[method-assign]


def install() -> None:
    """Register the additions described above in moto's EKS and EC2 services (this process only)."""
    _install_rule_retries()
    _install_launch_template_delete()
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
