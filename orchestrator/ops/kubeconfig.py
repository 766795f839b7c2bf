"""Where the cluster credentials come from: ``--kubeconfig``/``--context``, or a kubeconfig
built from the Terraform outputs and kept (0600) at ``.infra/env/<name>/kubeconfig``.

The provider builds it from the outputs (``Provider.kubeconfig``); a built kubeconfig never
holds a token (on AWS it runs ``aws eks get-token`` through the ``exec`` credential plugin each
time a client needs one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..blueprint.models import Blueprint
from ..errors import KubernetesError
from ..providers.base import Provider
from ..workspace import Workspace, read_json, write_private


def resolve(
    ws: Workspace,
    bp: Blueprint,
    provider: Provider,
    outputs: dict[str, Any] | None,
    kubeconfig: Path | None = None,
    context: str | None = None,
) -> tuple[Path, str | None]:
    """The kubeconfig file (and context) to use for ``bp``'s cluster."""
    if kubeconfig is not None:
        if not Path(kubeconfig).is_file():
            raise KubernetesError(f"kubeconfig {kubeconfig} does not exist")
        return Path(kubeconfig), context
    if not outputs and provider.terraform_module is not None:  # bare metal's saved outputs hold no cluster
        outputs = read_json(ws.outputs_file)
    if not outputs:
        raise KubernetesError(
            f"no Terraform outputs for '{bp.name}' (looked in {ws.outputs_file})",
            hint="run `infra up` first, or pass --kubeconfig FILE",
        )
    import yaml

    data = provider.kubeconfig(bp, outputs)
    path = write_private(ws.env_dir / "kubeconfig", yaml.safe_dump(data, sort_keys=True))
    return path, context or data.get("current-context")
