"""``infra plan``, ``infra up``, ``infra down``, ``infra status``."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)


def build_context(
    file: Path,
    sandbox: bool,
    command: str,
    auto_approve: bool,
    action: str,
    *,
    start_sandbox: bool = True,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
):
    """Load, check, resolve secrets and (for --sandbox) start the emulator: a ready stages.Context."""
    from .. import records
    from ..progress import Progress
    from ..sandbox import Sandbox
    from ..secrets import resolve
    from ..stages import Context

    loaded = common.load(file)
    provider = common.provider_for(loaded)
    common.require_sandbox_support(provider, sandbox)
    secrets = resolve(loaded)  # before anything runs: an unresolvable reference changes nothing
    ws = common.workspace(loaded, sandbox)
    progress = Progress()
    overrides = None
    if sandbox and start_sandbox:
        session = Sandbox.start(ws.state_dir)
        progress.info(f"sandbox: AWS emulator at {session.endpoint} (stop it with `infra sandbox stop`)")
        overrides = session.overrides(provider)
    record = records.RunRecord(
        env=loaded.model.name,
        command=command,
        blueprint_path=str(loaded.path),
        blueprint_sha256=loaded.sha256,
        sandbox=sandbox,
        git=records.git_info(loaded.path),
    )
    return Context(
        loaded=loaded,
        provider=provider,
        ws=ws,
        progress=progress,
        confirm=common.confirmer(auto_approve, action),
        record=record,
        overrides=overrides,
        secrets=secrets,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
    )


def plan(file: Path = common.FILE_ARG, sandbox: bool = common.SANDBOX_OPT) -> None:
    """Render, then show what `up` would change (summary per resource type). Applies nothing.

    On bare metal (no cloud resources) it lists the hosts `up` would configure.
    """
    from ..stages import run

    ctx = run(build_context(file, sandbox, "plan", False, "apply"), "plan")
    if ctx.plan is not None:
        common.print_plan_table(ctx.plan)
    common.print_stage_summary(ctx, "plan")


def up(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    auto_approve: bool = common.AUTO_APPROVE_OPT,
    kubeconfig: Path = typer.Option(
        None, "--kubeconfig", help="Kubeconfig for the handoff stage (default: built from Terraform outputs)."
    ),
    context: str = typer.Option(None, "--context", help="Context in --kubeconfig to use."),
) -> None:
    """Bring the environment to the blueprint: render, plan, confirm, apply, configure, hand off.

    Terraform applies the cloud resources (nothing when the plan has no changes); Ansible then
    configures the hosts (bare metal; skipped where every pool is a managed node group); the
    Kubernetes stage applies namespaces, quotas, queues and models. Every run is recorded
    (`infra history`). Exit codes: 3 Terraform, 4 Ansible (names hosts and tasks), 5 Kubernetes.
    """
    from ..stages import run

    ctx = build_context(file, sandbox, "up", auto_approve, "apply", kubeconfig=kubeconfig, kube_context=context)
    ctx = run(ctx, "up")
    common.print_stage_summary(ctx, "up")


def down(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    auto_approve: bool = common.AUTO_APPROVE_OPT,
) -> None:
    """Destroy every resource of the environment (asks first unless --auto-approve)."""
    from ..stages import pipeline, run

    ctx = build_context(file, sandbox, "down", auto_approve, "destroy")
    stages = pipeline("down", ctx.provider)  # bare metal: a usage error before anything is locked or recorded
    ctx = run(ctx, "down", stages)
    common.print_stage_summary(ctx, "down")


def status(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Show the environment's Terraform outputs (bare metal: its hosts and their last configure) and last run."""
    from .. import records
    from .. import sandbox as sandbox_mod

    common.check_output(output)
    loaded = common.load(file)
    provider = common.provider_for(loaded)
    common.require_sandbox_support(provider, sandbox)
    ws = common.workspace(loaded, sandbox)
    outputs = _read_outputs(ws) or provider.static_outputs(loaded.model, ws.env_dir)
    history = records.list_records(ws.records_dir)
    last = next((r for r in reversed(history) if r.get("sandbox") == sandbox), None)
    server = sandbox_mod.status(ws.state_dir) if sandbox else None
    data = {
        "name": loaded.model.name,
        "provider": provider.name,
        "sandbox": sandbox,
        "deployed": _deployed(provider, outputs),
        "outputs": outputs,
        "last_run": {k: last.get(k) for k in ("id", "command", "outcome", "finished_at", "user")} if last else None,
    }
    if sandbox:
        data["sandbox_server"] = server.endpoint if server else None
    if output == "json":
        common.print_json(data)
        return
    out = common.console()
    state = _state(provider, outputs)
    out.print(f"[bold]{loaded.model.name}[/bold] ({provider.name}{', sandbox' if sandbox else ''}): {state}")
    _print_rows(provider.summarize_outputs(outputs))
    if last:
        out.print(f"  last run      {last['command']} {last['outcome']} at {last['finished_at']} by {last['user']}")
    if sandbox:
        out.print(f"  sandbox       {server.endpoint if server else 'emulator not running'}")


def _print_rows(rows: list[tuple[str, str]]) -> None:
    out = common.console()
    for label, value in rows:
        out.print(f"  {label:<13} {value}")


def _deployed(provider, outputs: dict) -> bool:
    """Cloud: Terraform has outputs; bare metal: a configure run has finished."""
    return bool(outputs.get("configured_at") if provider.terraform_module is None else outputs)


def _state(provider, outputs: dict) -> str:
    if provider.terraform_module is not None:
        return "deployed" if _deployed(provider, outputs) else "not deployed"
    if not _deployed(provider, outputs):
        return "not configured"
    hosts = (outputs.get("hosts") or {}).values()
    done = sum(1 for h in hosts if (h.get("last_configure") or {}).get("status") in ("ok", "changed"))
    return f"{done} of {len(hosts)} hosts configured"


def _read_outputs(ws) -> dict:
    """Live ``terraform output`` when the environment was initialised here, else nothing."""
    from ..engines.terraform import Terraform

    if not ws.tf_data_dir.is_dir() or not ws.terraform_dir.is_dir():
        return {}
    tf = Terraform(ws.terraform_dir, data_dir=ws.tf_data_dir, config_dir=ws.env_dir)
    return dict(tf.output())
