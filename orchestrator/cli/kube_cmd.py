"""``infra handoff``, ``infra job ...``, ``infra model ...``: the Kubernetes side.

Commands only parse arguments, call one function of ``orchestrator.ops`` and print. The options
every job/model command shares (which blueprint, team, namespace, kubeconfig, context) are
declared once below and reach the library as one ``ops.target.TargetOptions``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import common

if TYPE_CHECKING:
    from ..ops.target import TargetOptions

job_app = typer.Typer(help="Batch jobs queued by Kueue in a team's queue.", no_args_is_help=True)
model_app = typer.Typer(help="Inference models (ONNX on Triton over OIP v2, or Seldon Core v2).",
                        no_args_is_help=True)

# The shared options, declared once (Typer has no option groups: each command lists them).
KubeconfigOpt = Annotated[Path | None, typer.Option(
    "--kubeconfig", help="Kubeconfig file (default: the one built from the environment's Terraform outputs; "
    "else $KUBECONFIG or ~/.kube/config).")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context to use.")]
BlueprintOpt = Annotated[Path | None, typer.Option(
    "--blueprint", "-b", help="Blueprint of the environment: team namespaces, GPU pool taints and the kubeconfig "
    "saved by `infra up`.")]
TeamOpt = Annotated[str | None, typer.Option("--team", "-t", help="Team (its LocalQueue and namespace).")]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: the team's).")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for objects to become ready.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Do not wait for readiness.")]
JobName = Annotated[str, typer.Argument(help="Job name.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("handoff")(handoff)
    app.add_typer(job_app, name="job")
    app.add_typer(model_app, name="model")


def _target(output: str, blueprint: Path | None, team: str | None, namespace: str | None,
            kubeconfig: Path | None, context: str | None) -> TargetOptions:
    """Check ``--output``; the shared options as one object."""
    from ..ops.target import TargetOptions

    common.check_output(output)
    return TargetOptions(blueprint=blueprint, team=team, namespace=namespace, kubeconfig=kubeconfig,
                         context=context)


def _table(title: str, columns: list[str], rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(row[c] if row[c] is not None else "") for c in columns])
    common.console().print(table)


# --- handoff ------------------------------------------------------------------------------------


def handoff(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Delete objects infra applied before and no "
                               "longer renders (namespaces are never deleted)."),
    force: bool = typer.Option(True, "--force/--no-force", help="Take over fields another field manager set."),
    no_wait: NoWaitOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Render the Kubernetes manifests and apply them: teams, quotas, queues, device plugin, models."""
    from ..stages import commands
    from ..stages.context import KubeTarget

    ctx = commands.handoff(file, sandbox=sandbox, kube=KubeTarget(kubeconfig=kubeconfig, context=context),
                           force=force, prune=prune, wait=not no_wait, timeout=timeout)
    common.print_stage_summary(ctx, "handoff")


# --- jobs ---------------------------------------------------------------------------------------


@job_app.command("submit")
def job_submit(
    file: Path = typer.Argument(None, help="A batch/v1 Job (YAML); or use --image and --command.",
                                show_default=False),
    team: TeamOpt = None,
    image: str = typer.Option(None, "--image", help="Container image."),
    command: str = typer.Option(None, "--command", help="Command line (split like a shell would, not run by one)."),
    gpus: int = typer.Option(0, "--gpus", min=0, help="GPUs for the job's container."),
    cpu: str = typer.Option("2", "--cpu", help="CPU request (= limit)."),
    memory: str = typer.Option("8Gi", "--memory", help="Memory request (= limit)."),
    name: str = typer.Option(None, "--name", help="Job name (default: <team>-<image>-<random>)."),
    priority: str = typer.Option("batch", "--priority",
                                 help="batch (default) or interactive; inference is for model servers only."),
    burst: bool = typer.Option(False, "--burst", help="Local first, then the team's burst queue (blueprint "
                               "burst:; docs/hybrid.md): at once if no local flavor can run it."),
    burst_after: float = typer.Option(None, "--burst-after", help="With --burst: seconds pending locally before "
                                      "moving (default: the blueprint's burst.after_seconds; 0: only if it cannot "
                                      "run locally)."),
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Queue a Job in the team's LocalQueue (suspended until Kueue admits it)."""
    from ..ops import jobs

    opts = _target(output, blueprint, team, namespace, kubeconfig, context)
    spec = jobs.JobSpec(image=image, command=command, gpus=gpus, cpu=cpu, memory=memory, name=name,
                        priority=priority, burst=burst, burst_after=burst_after)
    info = jobs.submit(opts, file, spec)
    if output == "json":
        common.print_json(info)
        return
    if info.get("burst"):
        typer.echo(f"job {info['name']} moved to burst queue {info['queue']}: {info['burst']}")
    typer.echo(f"job {info['name']} queued in {info['queue']} (namespace {info['namespace']}, {info['gpus']} GPUs); "
               f"`infra job status {info['name']} -n {info['namespace']}` says why it waits")


@job_app.command("list")
def job_list(
    team: TeamOpt = None,
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """List queued, running and finished jobs (all teams' if no --team or --namespace)."""
    from ..ops import jobs

    rows = jobs.list_jobs(_target(output, blueprint, team, namespace, kubeconfig, context))
    if output == "json":
        common.print_json(rows)
        return
    _table("jobs", ["name", "namespace", "team", "state", "gpus", "created"], rows)


@job_app.command("status")
def job_status(
    name: JobName,
    team: TeamOpt = None,
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Show a job's state and, in one sentence, why it is pending (Kueue Workload and team quota)."""
    from ..ops import jobs

    info = jobs.status(_target(output, blueprint, team, namespace, kubeconfig, context), name)
    if output == "json":
        common.print_json(info)
        return
    where = f" on worker cluster {info['cluster']}" if info.get("cluster") else ""
    typer.echo(f"{info['name']} ({info['namespace']}): {info['state']}{where}, {info['gpus']} GPUs")
    typer.echo(f"  {info['explanation']}")


@job_app.command("logs")
def job_logs(
    name: JobName,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new lines."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
    team: TeamOpt = None,
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Print the logs of the job's (latest) pod; -f follows them."""
    from ..ops import jobs

    lines = jobs.logs(_target(output, blueprint, team, namespace, kubeconfig, context), name, follow, tail)
    for line in lines:
        sys.stdout.write((json.dumps({"job": name, "line": line}) if output == "json" else line) + "\n")
        sys.stdout.flush()


@job_app.command("cancel")
def job_cancel(
    name: JobName,
    team: TeamOpt = None,
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Delete the job, its pods and its Kueue Workload."""
    from ..ops import jobs

    ns = jobs.cancel(_target(output, blueprint, team, namespace, kubeconfig, context), name)
    if output == "json":
        common.print_json({"name": name, "namespace": ns, "cancelled": True})
        return
    typer.echo(f"job {name} cancelled (namespace {ns})")


# --- models -------------------------------------------------------------------------------------


@model_app.command("deploy")
def model_deploy(
    names: list[str] = typer.Argument(None, help="Blueprint models to deploy (default: all of them).",
                                      show_default=False),
    blueprint: BlueprintOpt = None,
    uri: str = typer.Option(None, "--uri", help="Ad-hoc model: where the ONNX model is (s3://, gs://, https://...)."),
    name: str = typer.Option(None, "--name", help="Ad-hoc model: its name."),
    team: TeamOpt = None,
    gpu: int = typer.Option(0, "--gpu", min=0, help="Ad-hoc model: GPUs per replica."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ad-hoc model: replicas."),
    runtime: str = typer.Option(None, "--runtime", help="Ad-hoc model: onnx or seldon (default: the blueprint's, "
                                "else onnx)."),
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    no_wait: NoWaitOpt = False,
    timeout: TimeoutOpt = 300.0,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Deploy the blueprint's models (-b FILE [NAME...]) or an ad-hoc one (--uri --name --team)."""
    from ..ops import models
    from ..progress import Progress

    opts = _target(output, blueprint, team, namespace, kubeconfig, context)
    adhoc = models.AdhocModel(uri=uri, name=name, gpu=gpu, replicas=replicas, runtime=runtime)
    result = models.deploy(opts, names or [], adhoc, wait=not no_wait, timeout=timeout,
                           progress=Progress(quiet=output == "json"))
    if output == "json":
        common.print_json({"applied": result.applied, "created": result.created, "waited_s": result.waited_s})
        return
    typer.echo(result.summary())


@model_app.command("list")
def model_list(
    namespace: NamespaceOpt = None,
    team: TeamOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """List deployed models: where, whose, ready or not, and their endpoint."""
    from ..ops import models

    rows = models.list_models(_target(output, blueprint, team, namespace, kubeconfig, context))
    if output == "json":
        common.print_json(rows)
        return
    _table("models", ["name", "namespace", "team", "runtime", "status", "source", "endpoint"], rows)


@model_app.command("delete")
def model_delete(
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    team: TeamOpt = None,
    namespace: NamespaceOpt = None,
    blueprint: BlueprintOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Delete a model's Deployment and Service (or its Seldon Model)."""
    from ..ops import models

    deleted, warning = models.delete(_target(output, blueprint, team, namespace, kubeconfig, context), name)
    if output == "json":
        common.print_json({"deleted": deleted, "warning": warning})
        return
    for item in deleted:
        typer.echo(f"deleted {item}")
    if warning:
        typer.echo(f"warning: {warning}", err=True)
