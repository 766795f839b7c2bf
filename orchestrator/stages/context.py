"""What a stage receives: a frozen :class:`Context` and the :class:`RunState` it fills in.

The split says who may change what:

- :class:`Context` (frozen) holds what is fixed before the first stage starts and never changes
  during a run: the loaded blueprint, its provider, the workspace, the progress reporter, the
  confirmation callback, the Terraform endpoint overrides (``--sandbox``; ``None`` otherwise),
  the resolved secrets, the Kubernetes target given on the command line, and how to make a
  Terraform engine (a factory: tests pass one that returns an in-process fake).
- :class:`RunState` (``ctx.state``) holds what the stages produce, in pipeline order: the run
  record (versions, stage results, outcome), the Terraform plan, the outputs, whether anything
  was applied, and the kubeconfig kubeadm handed to the configure stage.

A stage reads ``ctx.<field>`` and writes only ``ctx.state.<field>``; every field is typed, and no
stage probes for attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..blueprint.loader import LoadedBlueprint
    from ..blueprint.models import Blueprint
    from ..engines.tfjson import ApplyResult, PlanResult
    from ..progress import Progress
    from ..providers.base import Provider
    from ..records import RunRecord
    from ..sandbox import TerraformOverrides
    from ..workspace import Workspace


class TerraformEngine(Protocol):
    """What the stages use of ``engines.terraform.Terraform``."""

    @property
    def binary(self) -> str: ...

    def init(self, backend_config: dict[str, str] | None = None) -> None: ...

    def version(self) -> Mapping[str, object]: ...

    def plan(self, plan_file: Path, destroy: bool = False) -> PlanResult: ...

    def apply(self, plan_file: Path, total: int | None = None) -> ApplyResult: ...

    def plan_and_apply(self, on_plan: Callable[[PlanResult], None], *,
                       destroy: bool = False) -> tuple[PlanResult, ApplyResult]: ...

    def output(self) -> Mapping[str, object]: ...

    def state_meta(self) -> tuple[int | None, str | None]: ...  # saved plans only (stages/saved_plan.py)

    def managed_resources(self) -> int: ...  # drift only


Confirm = Callable[["PlanResult"], bool]
TerraformFactory = Callable[["Context"], TerraformEngine]


#: set to True on a Confirm that approves every plan (``--auto-approve``; :func:`approving_any`)
APPROVES_ANY = "approves_any_plan"


def approving_any(confirm: Confirm) -> Confirm:
    """Marks ``confirm`` as approving every plan it is shown (``--auto-approve``): ``up`` and ``down``
    may then apply in the same Terraform call that plans (stages/terraform.py), showing the plan
    while Terraform applies it, since nothing would be asked."""
    setattr(confirm, APPROVES_ANY, True)
    return confirm


def approves_any(confirm: Confirm) -> bool:
    return getattr(confirm, APPROVES_ANY, False) is True


def real_terraform(ctx: Context) -> TerraformEngine:
    """The Terraform CLI in the environment's working folder (state lock as the blueprint says)."""
    from ..engines.terraform import Terraform

    return Terraform(
        ctx.ws.terraform_dir,
        data_dir=ctx.ws.tf_data_dir,
        progress=ctx.progress,
        log_dir=ctx.ws.log_dir,
        config_dir=ctx.ws.env_dir,
        lock=ctx.bp.state.lock,
    )


@dataclass(frozen=True)
class KubeTarget:
    """``--kubeconfig``/``--context`` as given (``None``: built from the Terraform outputs)."""

    kubeconfig: Path | None = None
    context: str | None = None


@dataclass
class RunState:
    """What the stages produce during one run."""

    record: RunRecord
    plan: PlanResult | None = None
    outputs: dict[str, object] = field(default_factory=dict)
    applied: bool = False
    #: kubeadm's admin kubeconfig, fetched by the configure stage (bare metal)
    kubeconfig: Path | None = None
    terraform: TerraformEngine | None = field(default=None, repr=False)  # made on first use
    #: ``terraform output`` read while ``up`` plans (stages/terraform.py): used when nothing is applied
    early_outputs: Future | None = field(default=None, repr=False)
    #: set by the pipeline while a stage runs: ``handover(detail)`` ends that stage ("ok", ``detail``)
    #: and starts the next one, whose work the running stage goes on doing (plan and apply in one
    #: Terraform call); the next stage's own ``run`` is then not called
    handover: Callable[[str], None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Context:
    loaded: LoadedBlueprint
    provider: Provider
    ws: Workspace
    progress: Progress
    confirm: Confirm
    state: RunState
    #: endpoint overrides to apply (``--sandbox``): Terraform then runs in a copy of the render with them
    overrides: TerraformOverrides | None = None
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    kube: KubeTarget = KubeTarget()
    make_terraform: TerraformFactory = real_terraform
    #: ``confirm`` approves every plan (``approves_any``): plan and apply may be one Terraform call
    approves_any: bool = False

    @property
    def bp(self) -> Blueprint:
        return self.loaded.model

    def terraform(self) -> TerraformEngine:
        """The run's Terraform engine (one per run, made on first use)."""
        if self.state.terraform is None:
            self.state.terraform = self.make_terraform(self)
        return self.state.terraform


def new_record(loaded: LoadedBlueprint, command: str, sandbox: bool) -> RunRecord:
    """The run record of ``command`` on ``loaded``, before its first stage."""
    from .. import records

    return records.RunRecord(
        env=loaded.model.name,
        command=command,
        blueprint_path=str(loaded.path),
        blueprint_sha256=loaded.sha256,
        sandbox=sandbox,
        git=records.git_info(loaded.path),
        merged=loaded.data if command == "up" else None,  # references only: values are resolved apart
    )


class Stage(Protocol):
    name: str

    def run(self, ctx: Context) -> str:
        """Do the work; return a one-line result for the summary and the record."""
