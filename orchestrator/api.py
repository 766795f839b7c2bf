"""The public, typed Python API of infra: what every ``infra`` command does, callable from Python.

Each function does one command's work and returns a typed result (frozen dataclasses with
explicit fields); none prints or exits. A failure is an exception of the ``InfraError`` tree
(re-exported here) carrying the documented exit code as ``exit_code`` (docs/exit-codes.md):
``BlueprintError`` (2, with every located ``Problem``), ``UsageError`` (2), ``TerraformError`` (3),
``AnsibleError`` (4), ``KubernetesError`` (5), ``LockedError`` (6), ``SandboxError`` (7),
``AuditError`` (8), ``Cancelled`` (1), ``Interrupted`` (130).

The ``infra`` CLI is a thin client of this module: it parses options, calls one function and
prints the result. Long runs (``plan``, ``up``, ``down``) report progress to a callback given as
``progress=`` (one :class:`ProgressEvent` per stage, step, message and warning); without one they
are silent and the warnings are in the result.

Importing this module is cheap (no Typer, rich, pydantic or YAML): everything heavy is imported
inside the functions. ``__all__`` is the public surface, guarded by tests/unit/test_api_surface.py
(docs/api.md, "Stability").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import (
    AnsibleError,
    AuditError,
    BlueprintError,
    Cancelled,
    ConfirmationRequired,
    InfraError,
    Interrupted,
    KubernetesError,
    LockedError,
    Problem,
    SandboxError,
    TerraformError,
    UsageError,
)
from .progress import Progress
from .status import EnvStatus

if TYPE_CHECKING:
    from .blueprint.loader import LoadedBlueprint
    from .blueprint.models import Blueprint
    from .cost import Estimate
    from .stages.context import Context

__all__ = [
    # results
    "Environment",
    "FileValidation",
    "ValidationReport",
    "RenderedPart",
    "Rendered",
    "PlanSummary",
    "StageResult",
    "RunResult",
    "ProgressEvent",
    "EnvStatus",
    "HistoryEntry",
    "History",
    "JobInfo",
    "JobCondition",
    "JobStatus",
    "DriftResult",
    "RollbackResult",
    "ModelDeployment",
    "ModelInfo",
    "ModelDeletion",
    "Report",
    "StateBootstrap",
    "SandboxServer",
    "RolloutGraph",
    "Hold",
    # functions
    "load",
    "validate",
    "render",
    "plan",
    "up",
    "down",
    "status",
    "history",
    "verify",
    "submit_job",
    "list_jobs",
    "job_status",
    "job_logs",
    "cancel_job",
    "configure",
    "handoff",
    "drift",
    "rollback",
    "deploy_models",
    "list_models",
    "delete_model",
    "report",
    "bootstrap_state",
    "sandbox_start",
    "sandbox_stop",
    "sandbox_status",
    "init",
    "graph",
    "hold",
    "release_hold",
    "show_hold",
    # errors
    "InfraError",
    "Problem",
    "BlueprintError",
    "UsageError",
    "ConfirmationRequired",
    "Cancelled",
    "TerraformError",
    "AnsibleError",
    "KubernetesError",
    "LockedError",
    "SandboxError",
    "AuditError",
    "Interrupted",
]

PathLike = str | os.PathLike


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """A loaded, checked blueprint (:func:`load`)."""

    name: str
    provider: str
    path: Path
    #: sha256 of the merged blueprint (what a run record names)
    sha256: str
    #: the validated model (``orchestrator.blueprint.models.Blueprint``)
    blueprint: Blueprint = field(repr=False)


@dataclass(frozen=True)
class FileValidation:
    """What :func:`validate` found in one file (a blueprint, or a rollout file)."""

    file: str
    kind: Literal["blueprint", "rollout"]
    ok: bool
    #: the environment's name (a rollout: the rollout's); None when it could not be read
    name: str | None = None
    #: every located problem (``file:line:col path: message``), all of them
    problems: list[Problem] = field(default_factory=list)
    #: the file could not be read at all (missing, not a regular file, not UTF-8...): why
    error: str | None = None
    #: what validation reports without failing, located like problems
    warnings: list[Problem] = field(default_factory=list)
    #: a rollout: its environments, in order
    environments: list[str] = field(default_factory=list)
    #: a rollout with ``include``/``exclude``/``changed_since``: which environments are selected, and why
    selection: dict[str, Any] | None = None
    selection_lines: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The document ``infra validate -o json`` prints for this file."""
        if self.kind == "rollout":
            return {"file": self.file, "rollout": self.name, "ok": True, "problems": [],
                    "environments": list(self.environments),
                    **({"selection": self.selection} if self.selection is not None else {})}
        if self.error is not None:
            return {"file": self.file, "ok": False, "problems": [self.error]}
        if not self.ok:
            return {"file": self.file, "ok": False, "problems": [str(p) for p in self.problems]}
        warnings = [_located(w) for w in self.warnings]
        return {"file": self.file, "name": self.name, "ok": True, "problems": [],
                **({"warnings": warnings} if warnings else {})}


def _located(p: Problem) -> str:
    """A warning as ``file:line:col path: message``."""
    return f"{p.file}:{p.line}:{p.column} {p.path}: {p.message}"


@dataclass(frozen=True)
class ValidationReport:
    """:func:`validate`'s answer: one :class:`FileValidation` per file, in the order checked."""

    files: list[FileValidation]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def problem_count(self) -> int:
        """How many located problems were found (files that could not be read are not counted)."""
        return sum(len(f.problems) for f in self.files)

    @property
    def unreadable(self) -> int:
        return sum(1 for f in self.files if f.error is not None)

    @property
    def exit_code(self) -> int:
        """What ``infra validate`` exits with: 0, or 2 (bad input)."""
        return 0 if self.ok else BlueprintError.exit_code


@dataclass(frozen=True)
class RenderedPart:
    """One part of a render (``terraform``, ``kubernetes``, ``ansible``): file paths relative to it."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]


@dataclass(frozen=True)
class Rendered:
    """One environment rendered by :func:`render` into ``root`` (``<out>/<name>/``)."""

    name: str
    root: Path
    parts: dict[str, RenderedPart]
    #: every file the render holds now (written or unchanged), sorted
    files: list[Path]

    @property
    def changed(self) -> bool:
        return any(p.written or p.removed for p in self.parts.values())

    def counts(self) -> dict[str, int]:
        return {k: sum(len(getattr(p, k)) for p in self.parts.values()) for k in ("written", "unchanged", "removed")}

    def as_json(self) -> dict[str, Any]:
        """The document ``infra render -o json`` prints for this environment."""
        return {"root": str(self.root), "changed": self.changed,
                "parts": {k: {"written": p.written, "unchanged": p.unchanged, "removed": p.removed}
                          for k, p in self.parts.items()}}


@dataclass(frozen=True)
class PlanSummary:
    """What a Terraform plan would change: counts, counts per resource type, and each change."""

    has_changes: bool
    add: int = 0
    change: int = 0
    destroy: int = 0
    imported: int = 0
    #: resource type -> {"add": n, "change": n, "destroy": n}
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    #: (resource address, action) per change
    changes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class StageResult:
    name: str
    #: "ok" or "failed"
    status: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished ``plan``, ``up`` or ``down`` of one environment (recorded as run ``run_id``)."""

    command: str
    env: str
    provider: str
    sandbox: bool
    run_id: str
    #: success, no-changes (see docs/records.md for every outcome)
    outcome: str
    stages: list[StageResult]
    #: the Terraform plan (None on bare metal, which has none)
    plan: PlanSummary | None
    #: whether anything was applied
    applied: bool
    #: the Terraform outputs the run read (``up``), else empty
    outputs: dict[str, Any]
    #: the provider's summary of the outputs: (label, value) per line
    output_rows: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)
    #: ``plan``: the estimated monthly cost per pool (``orchestrator.cost.Estimate``)
    cost: Estimate | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


@dataclass(frozen=True)
class ProgressEvent:
    """One report of a long run, passed to ``progress=`` as it happens.

    ``kind``: ``stage`` (a stage starts: ``message`` is its name), ``task`` (counted work starts:
    ``total`` items, or None), ``step`` (an item finished: ``message`` the item, ``status`` e.g.
    created/failed, ``done`` of ``total``), ``current`` (an item started), ``info`` (a line the
    CLI prints), ``warning``, ``done`` (the counted work ended: ``message`` its summary).
    Messages have known secret values redacted."""

    kind: Literal["stage", "task", "step", "current", "info", "warning", "done"]
    message: str
    done: int | None = None
    total: int | None = None
    status: str | None = None
    elapsed: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class HistoryEntry:
    """One run record of :func:`history` (``ok`` False: the file is corrupt, ``corrupt`` says why)."""

    seq: int | None
    file: str
    ok: bool
    id: str | None = None
    command: str | None = None
    outcome: str | None = None
    user: str | None = None
    finished_at: str | None = None
    sandbox: bool = False
    duration_s: float | None = None
    #: the plan summary the run recorded ({"add", "change", "destroy", ...}), None without one
    plan: dict[str, Any] | None = None
    rollback_of: str | None = None
    #: a successful ``up``: ``infra rollback`` can go back to it
    restorable: bool = False
    corrupt: str | None = None
    #: the whole record as written (empty when corrupt)
    data: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class History:
    """An environment's run records and the state of their audit chain (:func:`history`, :func:`verify`)."""

    env: str
    records_dir: Path
    #: the newest ``limit`` records, oldest first
    entries: list[HistoryEntry]
    #: how many records there are in all
    count: int
    #: audit-chain problems (with ``verify``: any of them fails the check)
    problems: list[str]
    warnings: list[str]
    #: None unless verified; then whether the chain is intact
    verified: bool | None = None
    #: "label (#seq)" of every head the chain's tail matched
    heads_matched: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The document ``infra history -o json`` prints."""
        data: dict[str, Any] = {
            "env": self.env,
            "records": [e.data if e.ok else {"seq": e.seq, "file": e.file, "corrupt": e.corrupt}
                        for e in self.entries],
            "chain_problems": list(self.problems),
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        if self.verified is not None:
            data["verified"] = self.verified
        return data

    def check(self) -> None:
        """Raise :class:`AuditError` (exit code 8) when a verification found problems."""
        if self.verified is False:
            raise AuditError(list(self.problems), hint=f"the records in {self.records_dir} are not what the runs "
                                                       "wrote: see docs/records.md (Verifying)")


@dataclass(frozen=True)
class JobInfo:
    """A batch job queued by Kueue (``infra job submit``/``list``)."""

    name: str
    namespace: str
    team: str | None
    queue: str | None
    #: Queued, Starting, Running, Succeeded, Failed
    state: str
    gpus: int
    created: str | None = None
    started: str | None = None
    completed: str | None = None


@dataclass(frozen=True)
class JobCondition:
    """A condition of the job's Kueue Workload."""

    type: str | None
    status: str | None
    reason: str | None
    message: str | None


@dataclass(frozen=True)
class JobStatus:
    """A job's state and why it waits (``infra job status``)."""

    job: JobInfo
    workload: str | None
    conditions: list[JobCondition]
    #: in words: admitted, or why it is pending (quota, borrowing limit, no queue...)
    explanation: str


@dataclass(frozen=True)
class DriftResult:
    """:func:`drift`: did anything change outside infra since the last apply (``items``: one line per
    drifted resource, or per host task that would change on bare metal)."""

    run: RunResult
    drifted: bool
    items: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """What ``infra drift`` exits with: 0 (no drift) or 2 (drift found)."""
        return 2 if self.drifted else 0


@dataclass(frozen=True)
class RollbackResult:
    """:func:`rollback`: the new ``up`` run (``run.run_id``, recorded as a rollback) and the run it went back to."""

    run: RunResult
    rollback_of: str
    #: the merged blueprint that was re-applied (written under ``.infra/``, mode 0600)
    blueprint_file: Path


@dataclass(frozen=True)
class ModelDeployment:
    """:func:`deploy_models`: the objects applied (``Kind/namespace/name``), those created, and how long it waited."""

    applied: list[str]
    created: list[str]
    waited_s: float
    #: objects still not ready when the wait ended (empty without a wait)
    not_ready: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelInfo:
    """A deployed model (:func:`list_models`)."""

    name: str
    namespace: str | None
    team: str | None
    #: onnx or seldon
    runtime: str
    #: e.g. "2/2 replicas available"
    status: str
    uri: str | None
    #: "ad-hoc", or "blueprint <environment>"
    source: str
    endpoint: str


@dataclass(frozen=True)
class ModelDeletion:
    """:func:`delete_model`: the objects deleted, and a warning when its blueprint will bring it back."""

    deleted: list[str]
    warning: str | None = None


@dataclass(frozen=True)
class Report:
    """:func:`report`: the page written to ``path`` (mode 0600) and the environments on it, in order."""

    path: Path
    title: str
    environments: list[str]
    #: the rollout's order: waves of environments that may run together
    waves: list[list[str]]


@dataclass(frozen=True)
class StateBootstrap:
    """:func:`bootstrap_state`: what was done to the state backend's storage (``infra state bootstrap``)."""

    #: s3, gcs, azurerm, local, or none (a provider without Terraform state)
    backend: str
    #: the bucket or container, in words
    target: str
    created: bool = False
    #: what was changed
    changed: list[str] = field(default_factory=list)
    #: what was already right
    unchanged: list[str] = field(default_factory=list)
    #: gcs, azurerm: the commands to run by hand
    commands: list[str] = field(default_factory=list)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """The document ``infra state bootstrap -o json`` prints."""
        return {"backend": self.backend, "target": self.target, "created": self.created, "changed": self.changed,
                "unchanged": self.unchanged, "commands": self.commands, "note": self.note}


@dataclass(frozen=True)
class SandboxServer:
    """The embedded AWS emulator (:func:`sandbox_start`, :func:`sandbox_status`)."""

    pid: int
    port: int
    generation: str
    started_at: str
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Hold:
    """:func:`hold`, :func:`release_hold`, :func:`show_hold`: an environment held for a pull request
    (``infra lock``, docs/gitops.md)."""

    env: str
    #: who holds it (e.g. ``PR-123``), None when nobody does
    holder: str | None
    #: ``user@host`` that took it, and when (UTC); None when not held
    taken_by: str | None
    since: str | None
    #: the object beside the state that holds it
    where: str
    #: hold: taken by this call (False: that holder had it already); release: released by this call
    changed: bool = False


@dataclass(frozen=True)
class RolloutGraph:
    """:func:`graph`: a rollout's order, as waves of environments that may run together."""

    name: str
    max_parallel: int
    on_failure: str
    #: the waves, in order (``reverse``: the order ``down`` uses)
    waves: list[list[str]]
    #: environment -> the environments it runs after
    after: dict[str, list[str]]
    #: environment -> provider
    providers: dict[str, str]
    #: what ``infra graph`` prints (text, and ``--format mermaid``)
    text: str
    mermaid: str


# --- progress -------------------------------------------------------------------------------------


class _EventProgress(Progress):
    """A Progress that prints nothing: every report becomes a :class:`ProgressEvent` (and warnings
    are kept for the result)."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        super().__init__(interactive=False, quiet=True)
        self.callback = callback
        self.warnings: list[str] = []

    def _emit(self, kind: str, message: str, **fields: Any) -> None:
        from .secrets import redact

        if self.callback is not None:
            self.callback(ProgressEvent(kind, redact(message), **fields))  # type: ignore[arg-type]

    def stage(self, name: str) -> None:
        self._emit("stage", name)

    def start_task(self, total: int | None, label: str) -> None:
        super().start_task(total, label)
        self._emit("task", label, done=0, total=total)

    def current(self, item: str, *, elapsed: float | None = None) -> None:
        super().current(item, elapsed=elapsed)
        self._emit("current", item, done=self.done_count, total=self.total, elapsed=elapsed)

    def advance(self, item: str, status: str, *, elapsed: float | None = None) -> None:
        super().advance(item, status, elapsed=elapsed)
        self._emit("step", item, done=self.done_count, total=self.total, status=status, elapsed=elapsed)

    def warn(self, msg: str) -> None:
        from .secrets import redact

        self.warnings.append(redact(msg))
        self._emit("warning", msg)

    def info(self, msg: str) -> None:
        self._emit("info", msg)

    def done(self, summary: str) -> None:
        import time

        elapsed = time.monotonic() - self._started_at if self._started_at is not None else None
        super().done(summary)
        self._emit("done", summary, done=self.done_count, total=self.total, elapsed=elapsed)


def _reporter(progress: ProgressCallback | Progress | None) -> Progress:
    """``progress=``: a Progress (the CLI's, which prints) is used as is; a callback or None gets events."""
    if isinstance(progress, Progress):
        return progress
    return _EventProgress(progress)


def _warnings(reporter: Progress) -> list[str]:
    return list(reporter.warnings) if isinstance(reporter, _EventProgress) else []


# --- load, validate, render --------------------------------------------------------------------


def _load(file: PathLike) -> LoadedBlueprint:
    from .blueprint.loader import load as load_blueprint
    from .render.kubernetes.placement import CHECKS

    return load_blueprint(Path(file), checks=CHECKS)


def load(file: PathLike) -> Environment:
    """Load and check a blueprint (its ``extends:`` chain merged, every rule checked).

    Raises :class:`BlueprintError` (exit code 2) with every located problem in ``problems``
    (``file``, ``line``, ``column``, ``path`` of the field, ``message``), or :class:`UsageError`
    (2) when the file cannot be read."""
    loaded = _load(file)
    return Environment(name=loaded.model.name, provider=loaded.model.provider, path=Path(loaded.path),
                       sha256=loaded.sha256, blueprint=loaded.model)


def validate(files: Sequence[PathLike], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
             changed_since: str | None = None, root: PathLike | None = None) -> ValidationReport:
    """Check blueprints, folders of blueprints and rollout files; every problem is in the report
    (nothing is raised for an invalid or unreadable file). ``include``/``exclude``/``changed_since``
    report which of a rollout's environments ``plan`` and ``up`` would select (docs/rollouts.md).
    ``root``: the project folder whose ``.infra/`` holds the hosts' Kubernetes version (default:
    the current directory). Raises :class:`UsageError` for a selection without a rollout file."""
    from .blueprint.rollout import folder_files, is_folder, is_rollout
    from .rollout.select import Selection
    from .stages.versions import check_version_step
    from .workspace import Workspace

    base = Path(root) if root is not None else Path.cwd()
    chosen = Selection(tuple(include), tuple(exclude), changed_since)
    paths = [Path(f) for f in files]
    if chosen and not any(is_rollout(f) for f in paths):
        raise UsageError("--include, --exclude and --changed-since select environments of a rollout file: "
                         "give one")
    results: list[FileValidation] = []
    queue = list(paths)
    while queue:
        file = queue.pop(0)
        try:
            if is_folder(file):  # its blueprints, in place of the folder (none: a usage error below)
                queue[0:0] = folder_files(file)
                continue
            if is_rollout(file):
                results.append(_validate_rollout(file, chosen))
                continue
            loaded = _load(file)
            check_version_step(loaded, Workspace(root=base, name=loaded.model.name).env_dir)
        except BlueprintError as exc:
            results.append(FileValidation(file=str(file), kind="blueprint", ok=False, problems=list(exc.problems)))
            continue
        except UsageError as exc:  # e.g. a missing file: report it and check the others
            results.append(FileValidation(file=str(file), kind="blueprint", ok=False, error=exc.message))
            continue
        results.append(FileValidation(file=str(file), kind="blueprint", ok=True, name=loaded.model.name,
                                      warnings=_blueprint_warnings(loaded)))
    return ValidationReport(results)


def _validate_rollout(file: Path, chosen: Any) -> FileValidation:
    from .blueprint.rollout import load_rollout
    from .render.kubernetes.placement import CHECKS
    from .rollout.select import select

    rollout = load_rollout(file, CHECKS)  # BlueprintError: reported by the caller
    picked = select(rollout, chosen) if chosen else None  # UsageError (an unknown revision): the caller's
    return FileValidation(file=str(file), kind="rollout", ok=True, name=rollout.name,
                          environments=[e.name for e in rollout.environments],
                          selection=picked.as_json() if picked is not None else None,
                          selection_lines=list(picked.lines()) if picked is not None else [])


def _blueprint_warnings(loaded: LoadedBlueprint) -> list[Problem]:
    """What validation reports without failing (a Kubernetes version in extended support; with
    ``overcommit: true``, guarantees beyond capacity)."""
    from .blueprint import semantics
    from .blueprint.yamlpos import format_path

    found = []
    for path, message in semantics.warnings(loaded.model):
        file, line, col = loaded.locate(path)
        found.append(Problem(str(file), line, col, format_path(path), message))
    return found


def render(files: Sequence[PathLike], *, out: PathLike | None = None,
           root: PathLike | None = None) -> list[Rendered]:
    """Write ``<out>/<name>/`` for each environment (Terraform root module and tfvars, Kubernetes
    manifests and kustomization, Ansible inventory); ``out`` defaults to ``<root>/build``.

    Several files, a folder or a rollout file render every environment; every blueprint is checked
    first, so a problem renders nothing (:class:`BlueprintError`). Deterministic; needs no
    credentials and resolves no secrets."""
    from .blueprint.rollout import expand, is_rollout
    from .render.kubernetes.placement import CHECKS

    paths = [Path(f) for f in files]
    if len(paths) == 1 and not paths[0].is_dir() and not is_rollout(paths[0]):
        envs = [_load(paths[0])]
    else:
        envs = [env.loaded for env in expand(paths, checks=CHECKS).environments]
    return [_render_one(loaded, out, root) for loaded in envs]


def _render_one(loaded: LoadedBlueprint, out: PathLike | None, root: PathLike | None) -> Rendered:
    from .providers.registry import get
    from .render import render as do_render
    from .workspace import Workspace

    ws = Workspace(root=Path(root) if root is not None else Path.cwd(), name=loaded.model.name,
                   build_root=Path(out) if out is not None else None)
    result = do_render(loaded.model, get(loaded.model.provider), ws.build_dir.parent)
    parts = {k: RenderedPart(list(v.written), list(v.unchanged), list(v.removed)) for k, v in result.parts.items()}
    files = sorted(result.root / k / f for k, p in parts.items() for f in [*p.written, *p.unchanged])
    return Rendered(name=loaded.model.name, root=result.root, parts=parts, files=files)


# --- plan, up, down ------------------------------------------------------------------------------


def _plan_summary(plan: Any) -> PlanSummary:
    return PlanSummary(has_changes=bool(plan.has_changes), add=plan.add, change=plan.change, destroy=plan.destroy,
                       imported=plan.imported, by_type={k: dict(v) for k, v in plan.by_type.items()},
                       changes=[(a, b) for a, b in plan.changes])


def _run_result(ctx: Context, command: str, reporter: Progress | None = None,
                cost: Estimate | None = None) -> RunResult:
    """A finished run's context as a :class:`RunResult`."""
    rec = ctx.state.record
    return RunResult(
        command=command, env=ctx.bp.name, provider=ctx.provider.name, sandbox=ctx.ws.sandbox, run_id=rec.id,
        outcome=rec.outcome,
        stages=[StageResult(s["name"], s["status"], s["seconds"], s.get("detail", "")) for s in rec.stages],
        plan=_plan_summary(ctx.state.plan) if ctx.state.plan is not None else None,
        applied=ctx.state.applied, outputs=dict(ctx.state.outputs),
        output_rows=[(label, value) for label, value in ctx.provider.summarize_outputs(ctx.state.outputs)],
        warnings=_warnings(reporter) if reporter is not None else [], cost=cost,
    )


def _confirm(auto_approve: bool, confirm: Callable[[PlanSummary], bool] | None, action: str):
    from .stages.context import approves_any

    def decide(plan: Any) -> bool:
        if auto_approve:
            return True
        if confirm is not None:
            return bool(confirm(_plan_summary(plan)))
        raise ConfirmationRequired(f"refusing to {action} without confirmation: nothing approved the plan",
                                   hint="pass auto_approve=True, or confirm=a function that is given the plan")

    if auto_approve or (confirm is not None and approves_any(confirm)):
        from .stages.context import approving_any

        return approving_any(decide)  # plan and apply may be one Terraform call
    return decide


def plan(file: PathLike, *, sandbox: bool = False, out: PathLike | None = None, root: PathLike | None = None,
         progress: ProgressCallback | Progress | None = None) -> RunResult:
    """Render, then plan: what ``up`` would change (``result.plan``) and the estimated monthly cost
    per pool (``result.cost``). Applies nothing; the run is recorded. ``out``: save the plan for
    ``up(plan_dir=out)`` (docs/gitops.md). ``sandbox``: against the embedded AWS emulator."""
    from .cost import estimate
    from .stages import commands, saved_plan

    reporter = _reporter(progress)
    never = _confirm(False, None, "apply")
    rootp = Path(root) if root is not None else None
    if out is not None:
        ctx = saved_plan.plan(Path(file), never, Path(out), sandbox=sandbox, root=rootp, progress=reporter)
    else:
        ctx = commands.plan(Path(file), never, sandbox=sandbox, root=rootp, progress=reporter)
    return _run_result(ctx, "plan", reporter, cost=estimate(ctx.bp))


def up(file: PathLike, *, sandbox: bool = False, auto_approve: bool = False,
       confirm: Callable[[PlanSummary], bool] | None = None, kubeconfig: PathLike | None = None,
       context: str | None = None, plan_dir: PathLike | None = None, root: PathLike | None = None,
       progress: ProgressCallback | Progress | None = None) -> RunResult:
    """Bring the environment to the blueprint: render, plan, confirm, apply, configure, hand off.

    A plan with changes is applied only if ``auto_approve`` is True or ``confirm(plan)`` returns
    True (False: :class:`Cancelled`; neither given: :class:`ConfirmationRequired`). ``plan_dir``:
    apply the plan ``plan(out=...)`` saved, or refuse if anything it was made from changed.
    ``kubeconfig``/``context``: the cluster for the handoff (default: built from the outputs)."""
    from .stages import commands, saved_plan
    from .stages.context import KubeTarget

    reporter = _reporter(progress)
    decide = _confirm(auto_approve, confirm, "apply")
    kube = KubeTarget(kubeconfig=Path(kubeconfig) if kubeconfig is not None else None, context=context)
    rootp = Path(root) if root is not None else None
    if plan_dir is not None:
        ctx = saved_plan.up(Path(file), decide, Path(plan_dir), sandbox=sandbox, kube=kube, root=rootp,
                            progress=reporter)
    else:
        ctx = commands.up(Path(file), decide, sandbox=sandbox, kube=kube, root=rootp, progress=reporter)
    return _run_result(ctx, "up", reporter)


def down(file: PathLike, *, sandbox: bool = False, auto_approve: bool = False,
         confirm: Callable[[PlanSummary], bool] | None = None, root: PathLike | None = None,
         progress: ProgressCallback | Progress | None = None) -> RunResult:
    """Destroy every resource of the environment, after confirmation as for :func:`up`."""
    from .stages import commands

    reporter = _reporter(progress)
    ctx = commands.down(Path(file), _confirm(auto_approve, confirm, "destroy"), sandbox=sandbox,
                        root=Path(root) if root is not None else None, progress=reporter)
    return _run_result(ctx, "down", reporter)


# --- status, history, verify ---------------------------------------------------------------------


def status(file: PathLike, *, sandbox: bool = False, root: PathLike | None = None,
           progress: ProgressCallback | Progress | None = None) -> EnvStatus:
    """The environment's outputs (bare metal: its hosts and their last configure), its state in words
    and its last run. Reads only: starts and locks nothing."""
    from .status import status as env_status

    reporter = _reporter(progress)
    found = env_status(Path(file), sandbox, Path(root) if root is not None else None, warn=reporter.warn)
    return found if not _warnings(reporter) else _with_warnings(found, _warnings(reporter))


def _with_warnings(found: EnvStatus, warnings: list[str]) -> EnvStatus:
    import dataclasses

    return dataclasses.replace(found, warnings=[*found.warnings, *warnings])


_ENV_NAME = r"[a-z][a-z0-9-]{1,38}"  # the blueprint's `name` rule


def _env_target(target: PathLike, command: str) -> tuple[str, Blueprint | None]:
    """(environment name, Blueprint or None); anything but a name or a .yaml/.yml path is refused unread."""
    import re

    text = os.fspath(target)
    if text.endswith((".yaml", ".yml")):
        model = _load(text).model
        return model.name, model
    if re.fullmatch(_ENV_NAME, text):
        return text, None
    raise UsageError(f"infra {command}: {text!r} is neither an environment name ({_ENV_NAME}) "
                     "nor a blueprint file (.yaml/.yml)")


def history(target: PathLike, *, limit: int = 20, verify: bool = False, against: str | None = None,
            sandbox: bool = False, root: PathLike | None = None) -> History:
    """An environment's run records (``target``: its name, or its blueprint file, which also reads
    the records kept beside an S3 state first), newest ``limit`` (0: all), and its audit chain.

    The hash chain is always checked; ``verify`` also checks every head (the state backend's too)
    and sets ``verified``, without raising: ``History.check()`` (or :func:`verify`) raises
    :class:`AuditError`. ``against``: also compare with the head committed at git revision REV.
    A records folder that cannot be read raises :class:`AuditError` (exit code 8)."""
    name, bp = _env_target(target, "history")
    return _history(name, bp, limit=limit, verify=verify, against=against, sandbox=sandbox, root=root)


def _history(name: str, bp: Blueprint | None, *, limit: int = 20, verify: bool = False, against: str | None = None,
             sandbox: bool = False, root: PathLike | None = None) -> History:
    """:func:`history` of environment ``name`` (``bp``: its blueprint, when known)."""
    from . import records, records_audit, records_heads, shared_store
    from .workspace import Workspace

    ws = Workspace(root=Path(root) if root is not None else Path.cwd(), name=name)
    notes: list[str] = []
    shared = shared_store.for_reading(bp, sandbox, ws.state_dir, notes.append)
    pulled = shared_store.locked_pull(shared, ws.records_dir, notes.append) if shared is not None else None
    heads = records_heads.heads_for(ws.root, name, bp, shared=shared, sandbox=sandbox)
    if against is not None:
        heads.append(records_heads.GitHead(records_heads.head_dir(ws.root) / f"{name}.json", against))
    report = records_audit.audit(ws.records_dir, name, heads if verify else [h for h in heads if h.local],
                                 records.hmac_key())
    report.warnings[:0] = notes
    if not report.readable:  # nothing to list or check: one line, whatever the flags
        raise AuditError(report.problems, hint="infra needs to read (and, to record runs, write) that folder")
    if verify and shared is not None:
        problems, warnings = shared.compare(ws.records_dir, pulled)
        report.problems.extend(problems)
        report.warnings.extend(warnings)
    if verify:
        note = records_heads.unchecked_backend(bp)
        if bp is None:
            note = "given an environment name, no state-backend head was checked (pass the blueprint file for that)"
        report.warnings.extend([note] if note else [])
    shown = report.entries[-limit:] if limit > 0 else report.entries
    return History(env=name, records_dir=ws.records_dir, entries=[_entry(e) for e in shown],
                   count=len(report.entries), problems=list(report.problems), warnings=list(report.warnings),
                   verified=(not report.problems) if verify else None, heads_matched=list(report.heads_matched))


def _entry(e: Any) -> HistoryEntry:
    from .stages.commands import restorable

    if not e.ok:
        return HistoryEntry(seq=e.seq, file=e.path.name, ok=False, corrupt=e.problem)
    r = e.data
    return HistoryEntry(seq=r["seq"], file=e.path.name, ok=True, id=r["id"], command=r["command"],
                        outcome=r["outcome"], user=r["user"], finished_at=r["finished_at"], sandbox=bool(r["sandbox"]),
                        duration_s=r["duration_s"], plan=r["plan"], rollback_of=r.get("rollback_of"),
                        restorable=restorable(r) is not None, data=r)


def verify(target: PathLike, *, against: str | None = None, sandbox: bool = False,
           root: PathLike | None = None) -> History:
    """Check every record, signature and head of the environment's audit chain: the whole
    :class:`History` (``verified`` True) when intact, else :class:`AuditError` (exit code 8), one
    problem per line in ``problems``."""
    found = history(target, limit=0, verify=True, against=against, sandbox=sandbox, root=root)
    found.check()
    return found


# --- jobs -----------------------------------------------------------------------------------------


def _target_options(team: str | None, namespace: str | None, blueprint: PathLike | None,
                    kubeconfig: PathLike | None, context: str | None) -> Any:
    from .ops.target import TargetOptions

    return TargetOptions(blueprint=Path(blueprint) if blueprint is not None else None, team=team,
                         namespace=namespace, kubeconfig=Path(kubeconfig) if kubeconfig is not None else None,
                         context=context)


def _job_info(d: dict[str, Any]) -> JobInfo:
    return JobInfo(name=d["name"], namespace=d["namespace"], team=d.get("team"), queue=d.get("queue"),
                   state=d["state"], gpus=int(d.get("gpus") or 0), created=d.get("created"),
                   started=d.get("started"), completed=d.get("completed"))


def submit_job(*, team: str, file: PathLike | None = None, image: str | None = None, command: str | None = None,
               gpus: int = 0, cpu: str = "2", memory: str = "8Gi", name: str | None = None,
               priority: str = "batch", namespace: str | None = None, blueprint: PathLike | None = None,
               kubeconfig: PathLike | None = None, context: str | None = None) -> JobInfo:
    """Queue a Job in ``team``'s LocalQueue (suspended until Kueue admits it): a batch/v1 Job file,
    or one made from ``image`` and ``command`` (split like a shell would, not run by one).
    ``blueprint``: the team's namespace and the GPU pools' taints; ``kubeconfig``/``context``: the
    cluster (default: the kubeconfig ``up`` saved for ``blueprint``, else $KUBECONFIG)."""
    from .ops import jobs

    spec = jobs.JobSpec(image=image, command=command, gpus=gpus, cpu=cpu, memory=memory, name=name,
                        priority=priority)
    opts = _target_options(team, namespace, blueprint, kubeconfig, context)
    return _job_info(jobs.submit(opts, Path(file) if file is not None else None, spec))


def list_jobs(*, team: str | None = None, namespace: str | None = None, blueprint: PathLike | None = None,
              kubeconfig: PathLike | None = None, context: str | None = None) -> list[JobInfo]:
    """Queued, running and finished jobs of the team or namespace (every team's when neither is given)."""
    from .ops import jobs

    return [_job_info(d) for d in jobs.list_jobs(_target_options(team, namespace, blueprint, kubeconfig, context))]


def job_status(name: str, *, team: str | None = None, namespace: str | None = None,
               blueprint: PathLike | None = None, kubeconfig: PathLike | None = None,
               context: str | None = None) -> JobStatus:
    """A job's state and why it waits (the blueprint's quota stands in for queues the caller
    may not read). A job that does not exist: :class:`KubernetesError` (exit code 5)."""
    from .ops import jobs

    d = jobs.status(_target_options(team, namespace, blueprint, kubeconfig, context), name)
    conditions = [JobCondition(c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                  for c in d.get("conditions") or []]
    return JobStatus(job=_job_info(d), workload=d.get("workload"), conditions=conditions,
                     explanation=d["explanation"])


def job_logs(name: str, *, follow: bool = False, tail: int | None = None, team: str | None = None,
             namespace: str | None = None, blueprint: PathLike | None = None, kubeconfig: PathLike | None = None,
             context: str | None = None) -> Iterator[str]:
    """The lines of the job's latest pod's log (``follow``: until the pod ends)."""
    from .ops import jobs

    return jobs.logs(_target_options(team, namespace, blueprint, kubeconfig, context), name, follow=follow,
                     tail=tail)


def cancel_job(name: str, *, team: str | None = None, namespace: str | None = None,
               blueprint: PathLike | None = None, kubeconfig: PathLike | None = None,
               context: str | None = None) -> str:
    """Delete the job (its pods and Workload go with it); the namespace it was in."""
    from .ops import jobs

    return jobs.cancel(_target_options(team, namespace, blueprint, kubeconfig, context), name)


# --- configure, handoff, drift, rollback ---------------------------------------------------------


def configure(file: PathLike, *, limit: str | None = None, check: bool = False,
              extra_vars: Sequence[PathLike] = (), root: PathLike | None = None,
              progress: ProgressCallback | Progress | None = None) -> RunResult:
    """Render, then the Ansible stage alone (Terraform is not run): configure the blueprint's hosts.
    ``limit``: only these hosts or groups (comma-separated); ``check``: a dry run that changes
    nothing; ``extra_vars``: YAML files of role variables. A provider without hosts to configure
    (every pool managed): :class:`UsageError`; a failing host: :class:`AnsibleError` (exit code 4)."""
    from .stages import commands

    reporter = _reporter(progress)
    ctx = commands.configure(Path(file), limit=limit, check=check, extra_vars=tuple(Path(f) for f in extra_vars),
                             root=Path(root) if root is not None else None, progress=reporter)
    return _run_result(ctx, "configure", reporter)


def handoff(file: PathLike, *, sandbox: bool = False, kubeconfig: PathLike | None = None,
            context: str | None = None, prune: bool = True, force: bool = True, wait: bool = True,
            timeout: float = 300.0, root: PathLike | None = None,
            progress: ProgressCallback | Progress | None = None) -> RunResult:
    """Render the Kubernetes manifests and apply them (teams, quotas, queues, device plugin, models);
    ``prune``: delete what infra applied before and no longer renders (never a namespace). A failure
    of the cluster: :class:`KubernetesError` (exit code 5)."""
    from .stages import commands
    from .stages.context import KubeTarget

    reporter = _reporter(progress)
    kube = KubeTarget(kubeconfig=Path(kubeconfig) if kubeconfig is not None else None, context=context)
    ctx = commands.handoff(Path(file), sandbox=sandbox, kube=kube, force=force, prune=prune, wait=wait,
                           timeout=timeout, root=Path(root) if root is not None else None, progress=reporter)
    return _run_result(ctx, "handoff", reporter)


def drift(file: PathLike, *, sandbox: bool = False, root: PathLike | None = None,
          progress: ProgressCallback | Progress | None = None) -> DriftResult:
    """A refresh-only plan (bare metal: Ansible in check mode): did anything change outside infra
    since the last apply? Changes nothing; the run is recorded. Drift is not an error: see
    ``DriftResult.drifted`` (``exit_code`` 2, as ``infra drift``)."""
    from .stages import commands

    reporter = _reporter(progress)
    ctx = commands.drift(Path(file), sandbox=sandbox, root=Path(root) if root is not None else None,
                         progress=reporter)
    found = ctx.state.record.plan or {}
    drifted = bool(ctx.state.plan is not None and ctx.state.plan.has_changes)
    return DriftResult(run=_run_result(ctx, "drift", reporter), drifted=drifted, items=list(found.get("drift") or []))


def rollback(target: PathLike, run_id: str, *, sandbox: bool = False, auto_approve: bool = False,
             confirm: Callable[[PlanSummary], bool] | None = None, root: PathLike | None = None,
             progress: ProgressCallback | Progress | None = None) -> RollbackResult:
    """Re-apply the blueprint an earlier successful ``up`` (run ``run_id``) applied: plan, confirm
    (as for :func:`up`), apply; the new record says it is a rollback of ``run_id``. ``target``: the
    environment's name, or its blueprint file (which also reads the records kept beside an S3
    state). A run that is unknown or cannot be rolled back to: :class:`UsageError` (exit code 2)."""
    from .stages import commands

    name, bp = _env_target(target, "rollback")
    reporter = _reporter(progress)
    ctx = commands.rollback(name, run_id, _confirm(auto_approve, confirm, "apply"), sandbox=sandbox,
                            root=Path(root) if root is not None else None, bp=bp, progress=reporter)
    return RollbackResult(run=_run_result(ctx, "up", reporter), rollback_of=run_id,
                          blueprint_file=Path(ctx.loaded.path))


# --- models ---------------------------------------------------------------------------------------


def deploy_models(names: Sequence[str] = (), *, blueprint: PathLike | None = None, uri: str | None = None,
                  name: str | None = None, team: str | None = None, gpu: int = 0, replicas: int = 1,
                  runtime: str | None = None, namespace: str | None = None, kubeconfig: PathLike | None = None,
                  context: str | None = None, wait: bool = True, timeout: float = 300.0,
                  progress: ProgressCallback | Progress | None = None) -> ModelDeployment:
    """Deploy the blueprint's models (``blueprint`` and, optionally, some ``names``), or an ad-hoc
    one (``uri``, ``name``, ``team``; ``runtime`` onnx or seldon), and wait for them (``wait``)."""
    from .ops import models

    opts = _target_options(team, namespace, blueprint, kubeconfig, context)
    adhoc = models.AdhocModel(uri=uri, name=name, gpu=gpu, replicas=replicas, runtime=runtime)
    result = models.deploy(opts, list(names), adhoc, wait=wait, timeout=timeout, progress=_reporter(progress))
    return ModelDeployment(applied=list(result.applied), created=list(result.created), waited_s=result.waited_s,
                           not_ready=list(result.not_ready))


def list_models(*, team: str | None = None, namespace: str | None = None, blueprint: PathLike | None = None,
                kubeconfig: PathLike | None = None, context: str | None = None) -> list[ModelInfo]:
    """Deployed models of the team or namespace (every namespace's when neither is given), sorted."""
    from .ops import models

    return [ModelInfo(name=r["name"], namespace=r["namespace"], team=r["team"], runtime=r["runtime"],
                      status=r["status"], uri=r["uri"], source=r["source"], endpoint=r["endpoint"])
            for r in models.list_models(_target_options(team, namespace, blueprint, kubeconfig, context))]


def delete_model(name: str, *, team: str | None = None, namespace: str | None = None,
                 blueprint: PathLike | None = None, kubeconfig: PathLike | None = None,
                 context: str | None = None) -> ModelDeletion:
    """Delete a model's Deployment and Service (or its Seldon Model). None there: :class:`KubernetesError`."""
    from .ops import models

    deleted, warning = models.delete(_target_options(team, namespace, blueprint, kubeconfig, context), name)
    return ModelDeletion(deleted=list(deleted), warning=warning)


# --- report, state, sandbox, init, graph ----------------------------------------------------------


def report(files: Sequence[PathLike], *, html: PathLike, limit: int = 10, kubeconfig: PathLike | None = None,
           context: str | None = None, root: PathLike | None = None) -> Report:
    """Write the static report page (docs/report.md) to ``html``, mode 0600: per environment the
    last plan, cost per pool, capacity and placement, the last ``limit`` runs and their audit chain,
    and the cluster's queues when it answers. Reads only. Bad input, or ``html`` a folder or not
    writable: :class:`UsageError` / :class:`BlueprintError` (exit code 2)."""
    from .report_page import collect
    from .report_page import render as render_page
    from .workspace import write_private

    out = Path(html)
    if out.is_dir():
        raise UsageError(f"infra report: --html {out} is a folder; give a file name (e.g. {out / 'report.html'})")
    page = collect([Path(f) for f in files], root=Path(root) if root is not None else Path.cwd(), limit=limit,
                   kubeconfig=Path(kubeconfig) if kubeconfig is not None else None, context=context)
    text = render_page(page)
    try:
        write_private(out, text)
    except OSError as exc:
        raise UsageError(f"infra report: cannot write {out}: {exc.strerror or exc}") from None
    return Report(path=out, title=page.title, environments=[e.name for e in page.environments],
                  waves=[list(w) for w in page.waves])


def bootstrap_state(file: PathLike, *, sandbox: bool = False, root: PathLike | None = None) -> StateBootstrap:
    """Create the state backend's storage before the first ``up``: an S3 bucket (versioning,
    encryption, public access blocked; idempotent); gcs and azurerm: the commands to run
    (``commands``); local: nothing to do."""
    from .state_bootstrap import bootstrap

    b = bootstrap(Path(file), sandbox=sandbox, root=Path(root) if root is not None else None)
    return StateBootstrap(backend=b.backend, target=b.target, created=b.created, changed=list(b.done),
                          unchanged=list(b.ok), commands=list(b.commands), note=b.note)


def _sandbox_dir(root: PathLike | None) -> Path:
    from .workspace import Workspace

    return Workspace(root=Path(root) if root is not None else Path.cwd(), name="-").state_dir


def _server(info: Any) -> SandboxServer | None:
    if info is None:
        return None
    return SandboxServer(pid=info.pid, port=info.port, generation=info.generation, started_at=info.started_at,
                         host=info.host)


def sandbox_start(*, root: PathLike | None = None) -> SandboxServer:
    """Start the embedded AWS emulator (if it is not running); where it answers. Fails: :class:`SandboxError`."""
    from . import sandbox

    server = _server(sandbox.start(_sandbox_dir(root)))
    assert server is not None
    return server


def sandbox_stop(*, root: PathLike | None = None) -> SandboxServer | None:
    """Stop the emulator (its resources vanish with it): the server stopped, None if none was running."""
    from . import sandbox

    return _server(sandbox.stop(_sandbox_dir(root)))


def sandbox_status(*, root: PathLike | None = None) -> SandboxServer | None:
    """The running emulator, or None."""
    from . import sandbox

    return _server(sandbox.status(_sandbox_dir(root)))


def init(target: PathLike, *, state_bucket: str | None = None) -> list[Path]:
    """Write a GitOps repository to start from into ``target`` (blueprints/, rollout.yaml,
    .gitignore, CI workflow, README): the files written. Any of them there already:
    :class:`UsageError`, nothing written. ``state_bucket``: the S3 state buckets' prefix."""
    from .rollout.scaffold import scaffold

    return list(scaffold(Path(target), state_bucket))


def graph(file: PathLike, *, reverse: bool = False) -> RolloutGraph:
    """A rollout's order (``infra graph``): waves of environments that may run together
    (``reverse``: the order ``down`` uses), as data and as the text and Mermaid the CLI prints."""
    from .blueprint.rollout import expand
    from .rollout import graph as g

    rollout = expand([Path(file)])
    return RolloutGraph(name=rollout.name, max_parallel=rollout.max_parallel, on_failure=rollout.on_failure,
                        waves=g.waves(rollout, reverse),
                        after={e.name: sorted(e.after) for e in rollout.environments},
                        providers={e.name: e.provider for e in rollout.environments},
                        text=g.text(rollout, reverse), mermaid=g.mermaid(rollout))


def _hold_store(target: PathLike, sandbox: bool, root: PathLike | None, command: str):
    """(environment name, the store beside its S3 state); the blueprint file, or the name of the one
    blueprint under ``root`` with that name."""
    from . import shared_store
    from .blueprint import by_name
    from .workspace import Workspace

    name, bp = _env_target(target, command)
    base = Path(root) if root is not None else Path.cwd()
    if bp is None:
        found = []
        for path in by_name.candidates(name, base):
            try:
                model = _load(base / path).model
            except InfraError:
                continue
            if model.name == name:
                found.append(model)
        if len(found) != 1:
            raise UsageError(f"infra {command}: {len(found) or 'no'} blueprint files of {name} found under {base}: "
                             "pass the file")
        bp = found[0]
    if bp.state.backend != "s3" or not bp.state.bucket:
        raise UsageError(f"infra {command}: {name}'s state backend is {bp.state.backend}: only an environment whose "
                         "state is in S3 can be held")
    shared = shared_store.for_reading(bp, sandbox, Workspace(root=base, name=name, sandbox=sandbox).state_dir,
                                      lambda message: None)
    if shared is None:
        raise UsageError(f"infra {command} --sandbox: the sandbox emulator is not running")
    return name, shared


def _hold(name: str, shared: Any, hold: dict[str, Any] | None, changed: bool) -> Hold:
    from . import pr_lock

    where = shared.where(pr_lock.KEY)
    if hold is None:
        return Hold(env=name, holder=None, taken_by=None, since=None, where=where, changed=changed)
    return Hold(env=name, holder=hold.get("holder"), taken_by=f"{hold.get('user', '?')}@{hold.get('host', '?')}",
                since=hold.get("since"), where=where, changed=changed)


def hold(target: PathLike, holder: str, *, sandbox: bool = False, root: PathLike | None = None) -> Hold:
    """Hold the environment (state in S3) for ``holder``: ``up``/``down`` then run only where
    ``INFRA_LOCK_HOLDER`` names it. Held by another holder: :class:`LockedError` (exit 6)."""
    from . import pr_lock

    name, shared = _hold_store(target, sandbox, root, "lock acquire")
    taken, changed = pr_lock.acquire(shared, holder)
    return _hold(name, shared, taken, changed)


def release_hold(target: PathLike, holder: str, *, force: bool = False, sandbox: bool = False,
                 root: PathLike | None = None) -> Hold:
    """Release ``holder``'s hold (``force``: whoever holds it); ``changed`` False when none was there.
    Held by another holder without ``force``: :class:`LockedError` (exit 6)."""
    from . import pr_lock

    name, shared = _hold_store(target, sandbox, root, "lock release")
    released = pr_lock.release(shared, holder, force=force)
    return _hold(name, shared, released, released is not None)


def show_hold(target: PathLike, *, sandbox: bool = False, root: PathLike | None = None) -> Hold:
    """Who holds the environment (``holder`` None: nobody)."""
    from . import pr_lock

    name, shared = _hold_store(target, sandbox, root, "lock show")
    current = pr_lock.read(shared)
    return _hold(name, shared, current[0] if current else None, False)
