"""``infra plan``, ``infra up``, ``infra down``, ``infra status``: parse, call ``orchestrator.api``
(``api.plan``, ``up``, ``down``, ``status``: docs/api.md), print. A rollout file (or, for ``plan``,
several files or a folder) goes to ``rollout_cmd.run_many``."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common, rollout_cmd


def _many(files: list[Path]) -> bool:
    """Several files, a folder or a rollout file: run them as a rollout."""
    from ..blueprint.rollout import is_rollout

    return len(files) != 1 or files[0].is_dir() or is_rollout(files[0])


OUT_OPT = typer.Option(None, "--out", metavar="DIR", show_default=False,
                       help="Save each environment's plan and its manifest in DIR/<environment>/ for "
                            "`infra up --plan DIR` (it holds values in clear: keep it private).")
PLAN_OPT = typer.Option(None, "--plan", metavar="DIR", show_default=False,
                        help="Apply the plan `infra plan --out DIR` saved; refuse (exit 2) if anything it was "
                             "made from changed since.")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)


def plan(files: list[Path] = rollout_cmd.FILES_ARG, sandbox: bool = common.SANDBOX_OPT,
         fmt: str = rollout_cmd.FORMAT_OPT, include: list[str] = rollout_cmd.INCLUDE_OPT,
         exclude: list[str] = rollout_cmd.EXCLUDE_OPT, changed_since: str = rollout_cmd.CHANGED_SINCE_OPT,
         out: Path = OUT_OPT) -> None:
    """Render, then show what `up` would change (summary per resource type) and the estimated
    monthly cost per pool (approximate list prices, docs/cost.md). Applies nothing.

    On bare metal (no cloud resources) it lists the hosts `up` would configure. Several files, a
    folder or a rollout file plan every environment (in parallel, in the rollout's order);
    `--format markdown` prints a pull-request comment, `--format json` a document. An environment
    reading an output of one not applied yet plans with placeholders, marked in the report.
    `--include`/`--exclude`/`--changed-since` plan only some environments (docs/rollouts.md).
    `--out DIR` saves each plan for `infra up --plan DIR` (docs/gitops.md).
    """
    from .. import api
    from ..progress import Progress

    chosen = rollout_cmd.selection(include, exclude, changed_since)
    if _many(files) or rollout_cmd.check_format(fmt) != "text" or chosen:
        rollout_cmd.run_many(files, "plan", sandbox=sandbox, fmt=fmt, select=chosen, out=out)
    result = api.plan(files[0], sandbox=sandbox, out=out, progress=Progress())
    if result.plan is not None:
        common.print_plan_table(result.plan)
    common.print_run(result, "plan")
    common.print_cost(result.cost)


def up(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    auto_approve: bool = common.AUTO_APPROVE_OPT,
    kubeconfig: Path = typer.Option(
        None, "--kubeconfig", help="Kubeconfig for the handoff stage (default: built from Terraform outputs)."
    ),
    context: str = typer.Option(None, "--context", help="Context in --kubeconfig to use."),
    include: list[str] = rollout_cmd.INCLUDE_OPT,
    exclude: list[str] = rollout_cmd.EXCLUDE_OPT,
    changed_since: str = rollout_cmd.CHANGED_SINCE_OPT,
    plan_dir: Path = PLAN_OPT,
) -> None:
    """Bring the environment to the blueprint: render, plan, confirm, apply, configure, hand off.

    Terraform applies the cloud resources (nothing when the plan has no changes); Ansible then
    configures the hosts (bare metal; skipped where every pool is a managed node group); the
    Kubernetes stage applies namespaces, quotas, queues and models. Every run is recorded
    (`infra history`). Exit codes: 3 Terraform, 4 Ansible (names hosts and tasks), 5 Kubernetes.
    A rollout file applies its environments in order; `--include`/`--exclude`/`--changed-since`
    apply only some of them (docs/rollouts.md). `up` never applies placeholder outputs.
    `--plan DIR` applies the plans `infra plan --out DIR` saved, or refuses (exit 2) if anything
    they were made from changed since (docs/gitops.md).
    """
    from .. import api
    from ..progress import Progress

    chosen = rollout_cmd.selection(include, exclude, changed_since)
    if _many([file]) or chosen:
        rollout_cmd.run_many([file], "up", sandbox=sandbox, auto_approve=auto_approve, select=chosen,
                             plan_dir=plan_dir)
    result = api.up(file, sandbox=sandbox, confirm=common.confirmer(auto_approve, "apply"), kubeconfig=kubeconfig,
                    context=context, plan_dir=plan_dir, progress=Progress())
    common.print_run(result, "up")


def down(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    auto_approve: bool = common.AUTO_APPROVE_OPT,
) -> None:
    """Destroy every resource of the environment (asks first unless --auto-approve)."""
    from .. import api
    from ..progress import Progress

    if _many([file]):
        rollout_cmd.run_many([file], "down", sandbox=sandbox, auto_approve=auto_approve)
    result = api.down(file, sandbox=sandbox, confirm=common.confirmer(auto_approve, "destroy"), progress=Progress())
    common.print_run(result, "down")


def status(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Show the environment's Terraform outputs (bare metal: its hosts and their last configure) and last run."""
    from .. import api
    from ..progress import Progress

    common.check_output(output)
    st = api.status(file, sandbox=sandbox, progress=Progress())
    if output == "json":
        common.print_json(st.as_json())
        return
    out = common.console()
    out.print(f"[bold]{st.name}[/bold] ({st.provider}{', sandbox' if sandbox else ''}): {st.state}")
    for label, value in st.rows:
        out.print(f"  {label:<13} {value}")
    last = st.last_run
    if last:
        out.print(f"  last run      {last['command']} {last['outcome']} at {last['finished_at']} by {last['user']}")
    if sandbox:
        out.print(f"  sandbox       {st.sandbox_server or 'emulator not running'}")
