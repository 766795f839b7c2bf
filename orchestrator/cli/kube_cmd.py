"""``infra handoff``, ``infra job ...``, ``infra model ...``: the Kubernetes side.

Commands only parse arguments and print; the work is in ``orchestrator.kube``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from . import common

job_app = typer.Typer(help="Batch jobs queued by Kueue in a team's queue.", no_args_is_help=True)
model_app = typer.Typer(help="Inference models (ONNX on Triton over OIP v2, or Seldon Core v2).",
                        no_args_is_help=True)

KUBECONFIG_OPT = typer.Option(None, "--kubeconfig", help="Kubeconfig file (default: the one built from the "
                              "environment's Terraform outputs; else $KUBECONFIG or ~/.kube/config).")
CONTEXT_OPT = typer.Option(None, "--context", help="Kubeconfig context to use.")
BLUEPRINT_OPT = typer.Option(None, "--blueprint", "-b", help="Blueprint of the environment: team namespaces, "
                             "GPU pool taints and the kubeconfig saved by `infra up`.")
TEAM_OPT = typer.Option(None, "--team", "-t", help="Team (its LocalQueue and namespace).")
NAMESPACE_OPT = typer.Option(None, "--namespace", "-n", help="Namespace (default: the team's).")
TIMEOUT_OPT = typer.Option(300.0, "--timeout", help="Seconds to wait for objects to become ready.")
NO_WAIT_OPT = typer.Option(False, "--no-wait", help="Do not wait for readiness.")


def register(app: typer.Typer) -> None:
    app.command("handoff")(handoff)
    app.add_typer(job_app, name="job")
    app.add_typer(model_app, name="model")


# --- helpers ------------------------------------------------------------------------------------


def _loaded(blueprint: Path | None):
    return common.load(blueprint) if blueprint else None


def _client(kubeconfig: Path | None, context: str | None, loaded):
    from ..kube.client import Client
    from ..kube.kubeconfig import resolve

    if kubeconfig is None and loaded is not None:
        ws = common.workspace(loaded, sandbox=False)
        if ws.outputs_file.is_file():  # deployed from here: use its cluster; else the default kubeconfig
            kubeconfig, context = resolve(ws, loaded.model, common.provider_for(loaded), None, None, context)
    return Client.from_kubeconfig(kubeconfig, context)


def _target(output: str, blueprint: Path | None, team: str | None, namespace: str | None,
            kubeconfig: Path | None, context: str | None, *, required: bool = True):
    """What every job/model command starts with: check --output, load the blueprint (if given),
    pick the namespace, and a client for the cluster. Returns (loaded, namespace, client)."""
    common.check_output(output)
    loaded = _loaded(blueprint)
    ns = _namespace(loaded, team, namespace, required)
    return loaded, ns, _client(kubeconfig, context, loaded)


def _team(loaded, team: str | None):
    if loaded is None or team is None:
        return None
    from ..errors import UsageError

    found = next((t for t in loaded.model.teams if t.name == team), None)
    if found is None:
        names = ", ".join(t.name for t in loaded.model.teams) or "none"
        raise UsageError(f"no team {team!r} in blueprint {loaded.model.name} (teams: {names})")
    return found


def _namespace(loaded, team: str | None, namespace: str | None, required: bool = True) -> str | None:
    from ..errors import UsageError

    if namespace:
        return namespace
    found = _team(loaded, team)
    if found is not None:
        return found.effective_namespace
    if team:
        return team
    if required:
        raise UsageError("say which team (--team) or namespace (--namespace)")
    return None


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(v if v is not None else "") for v in row])
    common.console().print(table)


# --- handoff ------------------------------------------------------------------------------------


def handoff(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Delete objects infra applied before and no "
                               "longer renders (namespaces are never deleted)."),
    force: bool = typer.Option(True, "--force/--no-force", help="Take over fields another field manager set."),
    no_wait: bool = NO_WAIT_OPT,
    timeout: float = TIMEOUT_OPT,
) -> None:
    """Render the Kubernetes manifests and apply them: teams, quotas, queues, device plugin, models."""
    from ..kube.stage import HandoffStage
    from ..stages import RenderStage, run
    from .lifecycle import build_context

    ctx = build_context(file, sandbox, "handoff", auto_approve=True, action="apply", start_sandbox=False)
    stage = HandoffStage(kubeconfig=kubeconfig, context=context, force=force, prune=prune, wait=not no_wait,
                         timeout=timeout)
    run(ctx, "handoff", [RenderStage(), stage])
    common.print_stage_summary(ctx, "handoff")


# --- jobs ---------------------------------------------------------------------------------------


@job_app.command("submit")
def job_submit(
    file: Path = typer.Argument(None, help="A batch/v1 Job (YAML); or use --image and --command.",
                                show_default=False),
    team: str = TEAM_OPT,
    image: str = typer.Option(None, "--image", help="Container image."),
    command: str = typer.Option(None, "--command", help="Command line (split like a shell would, not run by one)."),
    gpus: int = typer.Option(0, "--gpus", min=0, help="GPUs for the job's container."),
    cpu: str = typer.Option("2", "--cpu", help="CPU request (= limit)."),
    memory: str = typer.Option("8Gi", "--memory", help="Memory request (= limit)."),
    name: str = typer.Option(None, "--name", help="Job name (default: <team>-<image>-<random>)."),
    priority: str = typer.Option("batch", "--priority", help="batch, interactive or inference."),
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Queue a Job in the team's LocalQueue (suspended until Kueue admits it)."""
    from ..errors import UsageError
    from ..kube import jobs
    from ..kube.inference import Placement, placement

    common.check_output(output)
    if not team:
        raise UsageError("--team is required: it names the queue the job waits in")
    loaded = _loaded(blueprint)
    ns = _namespace(loaded, team, namespace)
    where = placement(loaded.model, team) if _team(loaded, team) else Placement(ns)
    if file is not None:
        if image or command:
            raise UsageError("give either a Job file or --image/--command, not both")
        from ..kube.base import load_all

        docs = load_all(file.read_text())
        if len(docs) != 1:
            raise UsageError(f"{file} must hold exactly one Job (found {len(docs)} documents)")
        job = jobs.prepare_job(docs[0], team, ns, where.gpu_tolerations)
    else:
        if not image or not command:
            raise UsageError("--image and --command are required without a Job file")
        job = jobs.build_job(jobs.JobRequest(team=team, namespace=ns, image=image, command=command, gpus=gpus,
                                             cpu=cpu, memory=memory, name=name, priority=priority,
                                             tolerations=where.gpu_tolerations))
    created = jobs.submit(_client(kubeconfig, context, loaded), job)
    info = jobs.summary(created)
    if output == "json":
        common.print_json(info)
        return
    typer.echo(f"job {info['name']} queued in {info['queue']} (namespace {info['namespace']}, {info['gpus']} GPUs); "
               f"`infra job status {info['name']} -n {info['namespace']}` says why it waits")


@job_app.command("list")
def job_list(
    team: str = TEAM_OPT,
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """List queued, running and finished jobs (all teams' if no --team or --namespace)."""
    from ..kube import jobs

    _, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context, required=False)
    rows = jobs.list_jobs(client, ns, team)
    if output == "json":
        common.print_json(rows)
        return
    cols = ["name", "namespace", "team", "state", "gpus", "created"]
    _table("jobs", cols, [[r[c] for c in cols] for r in rows])


@job_app.command("status")
def job_status(
    name: str = typer.Argument(..., help="Job name.", show_default=False),
    team: str = TEAM_OPT,
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Show a job's state and, in one sentence, why it is pending (Kueue Workload and team quota)."""
    from ..kube import jobs

    loaded, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context)
    found = _team(loaded, team)
    fallback = (found.gpu_quota, found.borrowing_limit) if found else None
    info = jobs.status(client, ns, name, fallback)
    if output == "json":
        common.print_json(info)
        return
    typer.echo(f"{info['name']} ({info['namespace']}): {info['state']}, {info['gpus']} GPUs")
    typer.echo(f"  {info['explanation']}")


@job_app.command("logs")
def job_logs(
    name: str = typer.Argument(..., help="Job name.", show_default=False),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new lines."),
    tail: int = typer.Option(None, "--tail", help="Only the last N lines."),
    team: str = TEAM_OPT,
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Print the logs of the job's (latest) pod; -f follows them."""
    from ..kube import jobs

    _, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context)
    lines = jobs.logs(client, ns, name, follow=follow, tail=tail)
    for line in lines:
        sys.stdout.write((json.dumps({"job": name, "line": line}) if output == "json" else line) + "\n")
        sys.stdout.flush()


@job_app.command("cancel")
def job_cancel(
    name: str = typer.Argument(..., help="Job name.", show_default=False),
    team: str = TEAM_OPT,
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Delete the job, its pods and its Kueue Workload."""
    from ..errors import KubernetesError
    from ..kube import jobs

    _, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context)
    if not jobs.cancel(client, ns, name):
        raise KubernetesError(f"job {name} not found in namespace {ns}")
    if output == "json":
        common.print_json({"name": name, "namespace": ns, "cancelled": True})
        return
    typer.echo(f"job {name} cancelled (namespace {ns})")


# --- models -------------------------------------------------------------------------------------


@model_app.command("deploy")
def model_deploy(
    names: list[str] = typer.Argument(None, help="Blueprint models to deploy (default: all of them).",
                                      show_default=False),
    blueprint: Path = BLUEPRINT_OPT,
    uri: str = typer.Option(None, "--uri", help="Ad-hoc model: where the ONNX model is (s3://, gs://, https://...)."),
    name: str = typer.Option(None, "--name", help="Ad-hoc model: its name."),
    team: str = TEAM_OPT,
    gpu: int = typer.Option(0, "--gpu", min=0, help="Ad-hoc model: GPUs per replica."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ad-hoc model: replicas."),
    runtime: str = typer.Option(None, "--runtime", help="Ad-hoc model: onnx or seldon (default: the blueprint's, "
                                "else onnx)."),
    namespace: str = NAMESPACE_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    no_wait: bool = NO_WAIT_OPT,
    timeout: float = TIMEOUT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Deploy the blueprint's models (-b FILE [NAME...]) or an ad-hoc one (--uri --name --team)."""
    from ..errors import UsageError
    from ..kube import serving
    from ..kube.apply import Options
    from ..progress import Progress

    common.check_output(output)
    loaded = _loaded(blueprint)
    bp = loaded.model if loaded else None
    if uri:
        if names:
            raise UsageError("give blueprint model names or --uri, not both")
        if not name or not team:
            raise UsageError("an ad-hoc model needs --name and --team")
        rt = runtime or (bp.inference.runtime if bp and bp.inference else "onnx")
        if rt not in ("onnx", "seldon"):
            raise UsageError(f"--runtime must be onnx or seldon, not {rt!r}")
        objs = serving.adhoc_objects(name, uri, team, namespace, gpu, replicas, rt, bp)
    else:
        if bp is None:
            raise UsageError("say which models: --blueprint FILE [NAME...], or an ad-hoc --uri")
        objs = serving.blueprint_objects(bp, names or None)
    version = bp.kubernetes.version if bp else serving.DEFAULT_K8S_VERSION
    progress = Progress(quiet=output == "json")
    result = serving.deploy(_client(kubeconfig, context, loaded), objs, version,
                            Options(wait=not no_wait, timeout=timeout), progress)
    if output == "json":
        common.print_json({"applied": result.applied, "created": result.created, "waited_s": result.waited_s})
        return
    typer.echo(result.summary())


@model_app.command("list")
def model_list(
    namespace: str = NAMESPACE_OPT,
    team: str = TEAM_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """List deployed models: where, whose, ready or not, and their endpoint."""
    from ..kube import serving

    _, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context, required=False)
    rows = serving.list_models(client, ns)
    if output == "json":
        common.print_json(rows)
        return
    cols = ["name", "namespace", "team", "runtime", "status", "source", "endpoint"]
    _table("models", cols, [[r[c] for c in cols] for r in rows])


@model_app.command("delete")
def model_delete(
    name: str = typer.Argument(..., help="Model name.", show_default=False),
    team: str = TEAM_OPT,
    namespace: str = NAMESPACE_OPT,
    blueprint: Path = BLUEPRINT_OPT,
    kubeconfig: Path = KUBECONFIG_OPT,
    context: str = CONTEXT_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Delete a model's Deployment and Service (or its Seldon Model)."""
    from ..kube import serving

    _, ns, client = _target(output, blueprint, team, namespace, kubeconfig, context)
    deleted, warning = serving.delete_model(client, name, ns)
    if output == "json":
        common.print_json({"deleted": deleted, "warning": warning})
        return
    for item in deleted:
        typer.echo(f"deleted {item}")
    if warning:
        typer.echo(f"warning: {warning}", err=True)
