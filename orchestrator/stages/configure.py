"""The configure stage: Ansible over the environment's hosts, after Terraform.

``ConfigureStage`` slots into the ``up`` pipeline after the Terraform outputs are read (for bare
metal, straight after render: there is no Terraform). ``infra configure`` runs render + this
stage through ``pipeline.run`` (same lock, same run record); it reads the Terraform outputs the
last ``up`` saved. Providers whose node pools are all managed node groups have no hosts: the
stage says so and does nothing.

The inventory is rendered (``render/ansible.py``) into ``.infra/env/<name>/ansible/inventory/``
with the Terraform outputs; the last result per host is kept in ``.../ansible/hosts.json`` for
``infra status``. Role variables a site wants to set (driver branch, package mirrors, ...) come
from YAML files given with ``--extra-vars`` or named by ``$INFRA_ANSIBLE_EXTRA_VARS``; they are
passed by reference, so secrets in them never reach the artifacts. They are data: each is read and
held to the roles' variables (``check_site_files``) when the stage is built, before anything runs.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import inventory
from ..engines.ansible import (
    Ansible,
    AnsibleResult,
    AnsibleRunError,
    HostStats,
    SshSettings,
    allowed_site_vars,
    load_site_vars,
)
from ..errors import UsageError
from ..render.ansible import render_ansible
from ..render.writer import write_tree
from ..workspace import read_json, write_private
from .context import Context

if TYPE_CHECKING:
    from ..blueprint.models import Blueprint

PLAYBOOK = "site.yml"
EXTRA_VARS_ENV = "INFRA_ANSIBLE_EXTRA_VARS"
ADMIN_CONF = "admin.conf"  # fetched from the first control plane (kubeadm), kept 0600
_SECRET = re.compile(r"^\$\{(env|file):([^}]+)\}$")


def ssh_settings(bp: Blueprint, secrets: Mapping[str, str], base: Path | None = None) -> SshSettings:
    """The SSH key from ``secrets.ssh_key``: a ``${file:...}`` key is used in place (``--private-key``);
    an ``${env:...}`` key goes to ssh-agent through a FIFO. ``secrets`` are the resolved values
    (``secrets.resolve``); nothing is written anywhere."""
    ref = (bp.secrets or {}).get("ssh_key")
    if not ref:
        return SshSettings()
    match = _SECRET.match(ref)
    if match is not None and match.group(1) == "file":
        path = Path(match.group(2)).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return SshSettings(private_key_file=str(path))
    value = secrets.get("ssh_key")
    if not value:
        raise UsageError("secrets.ssh_key has no value", hint="resolve secrets before the configure stage")
    return SshSettings(key_data=value if value.endswith("\n") else value + "\n")


def extravars_files(given: list[Path] | tuple[Path, ...] = (), env: dict[str, str] | None = None) -> list[Path]:
    env = dict(os.environ) if env is None else env
    files = [Path(p) for p in given]
    if env.get(EXTRA_VARS_ENV):
        files += [Path(p) for p in env[EXTRA_VARS_ENV].split(os.pathsep) if p]
    for path in files:
        if not path.is_file():
            raise UsageError(f"extra variables file {path} does not exist")
    return files


def check_site_files(files: list[Path]) -> list[Path]:
    """``files``, once each is a YAML mapping of role variables only (``allowed_site_vars``: the names
    in the shipped roles' defaults; an ``ansible_*`` connection, interpreter, become or behaviour
    variable never): else bad input, every key it may not set located (exit 2)."""
    if files:
        allowed = allowed_site_vars()
        for path in files:
            load_site_vars(path, allowed)
    return files


def limited_hosts(hosts: list[inventory.InventoryHost], limit: str | None) -> list[str]:
    """Host names a ``--limit`` of host/group names selects; an unknown name is a usage error."""
    names = [h.name for h in hosts]
    if not limit:
        return names
    groups = inventory.groups(hosts)
    chosen: list[str] = []
    for token in re.split(r"[,:]", limit):
        token = token.strip().lstrip("&!")
        if not token:
            continue
        if any(c in token for c in "*?[~"):  # an Ansible pattern: let Ansible match it
            return names
        if token in names:
            chosen.append(token)
        elif token in groups or token == "all":
            chosen += groups.get(token, names)
        else:
            raise UsageError(
                f"--limit {limit}: no host or group named '{token}'",
                hint=f"hosts: {', '.join(names)}; groups: {', '.join(sorted(g for g in groups if groups[g]))}",
            )
    return [n for n in names if n in set(chosen)]


class HostsStage:
    """``plan`` without Terraform (bare metal): list the hosts ``up`` would configure; touches nothing."""

    name = "hosts"

    def run(self, ctx: Context) -> str:
        outputs = ctx.state.outputs
        outputs.update(ctx.provider.static_outputs(ctx.bp, ctx.ws.env_dir))
        hosts = outputs.get("hosts")
        n = len(hosts) if isinstance(hosts, dict) else 0
        cluster = "" if ctx.bp.has_kubernetes else "; no Kubernetes cluster: inference-only hosts"
        return f"{n} host{'s' if n != 1 else ''} to configure with ansible/site.yml (no cloud resources{cluster})"


class ConfigureStage:
    """Runs ansible/site.yml on the hosts the provider names (``--limit``, ``--check`` for ``infra configure``)."""

    name = "configure"

    def __init__(self, limit: str | None = None, check: bool = False,
                 extra_vars: list[Path] | tuple[Path, ...] = (), playbook: str = PLAYBOOK) -> None:
        self.limit = limit
        self.check = check
        self.extra_vars = tuple(extra_vars)
        # Checked now, when a command builds its stages: bad site variables stop it before anything runs.
        self.site_files = check_site_files(extravars_files(self.extra_vars))
        self.playbook = playbook
        self.result: AnsibleResult | None = None  # the last run's, once it succeeded

    def run(self, ctx: Context) -> str:
        bp, provider, outputs = ctx.bp, ctx.provider, ctx.state.outputs
        if not outputs:  # `infra configure` alone: the outputs the last `up` saved
            outputs.update(read_json(ctx.ws.outputs_file))
        hosts = inventory.provider_hosts(provider, bp, outputs)
        if not hosts:
            ctx.progress.info(f"    {provider.name}: every node pool is a managed node group; no hosts to configure")
            return "skipped: no hosts to configure (managed node groups only)"
        selected = limited_hosts(hosts, self.limit)
        ssh = ssh_settings(bp, ctx.secrets, ctx.loaded.path.parent)
        files = self.site_files
        private = ctx.ws.env_dir / "ansible"
        inv_dir = private / "inventory"
        write_tree(inv_dir, render_ansible(bp, provider, outputs))
        engine = Ansible(private, progress=ctx.progress, ssh=ssh)
        ctx.state.record.versions["ansible"] = engine.version()
        fetched = private / ADMIN_CONF
        try:
            result = engine.run(self.playbook, inv_dir / "inventory.yml", host_count=len(selected),
                                limit=self.limit, check=self.check, extravars_files=files,
                                extravars={"infra_kubeconfig_fetch": str(fetched),
                                           # the rolling plays' batch of workers (site.yml's `serial`)
                                           "infra_max_unavailable": bp.kubernetes.max_unavailable or 1},
                                label=f"ansible {self.playbook}",
                                expect_configured=selected if self.playbook == PLAYBOOK else (),
                                role_plan=({h.name: inventory.site_roles(h.roles) for h in hosts}
                                           if self.playbook == PLAYBOOK else None))
        except AnsibleRunError as exc:
            self._finish(ctx, exc.result, hosts)
            raise
        self.result = result
        self._finish(ctx, result, hosts)
        if not self.check:
            save_exported_outputs(ctx)
        c = sum(s.changed for s in result.stats.values())
        mode = " (check mode: nothing was changed)" if self.check else ""
        return f"{len(result.stats)} hosts configured, {c} changes{mode}"

    def _finish(self, ctx: Context, result: AnsibleResult, hosts: list[inventory.InventoryHost]) -> None:
        if not self.check:
            save_hosts_file(inventory.hosts_file(ctx.ws.env_dir), result)
        fetched = ctx.ws.env_dir / "ansible" / ADMIN_CONF
        if fetched.is_file():  # kubeadm's admin kubeconfig: the Kubernetes stage's credentials
            os.chmod(fetched, 0o600)
            kubeconfig = ctx.ws.env_dir / "kubeconfig"
            if not kubeconfig.is_file() or kubeconfig.read_bytes() != fetched.read_bytes():
                write_private(kubeconfig, fetched.read_text())
            ctx.state.kubeconfig = kubeconfig
        ctx.state.outputs.update(ctx.provider.static_outputs(ctx.bp, ctx.ws.env_dir))


def save_exported_outputs(ctx: Context) -> None:
    """After a successful configure, a provider without Terraform (bare metal) saves its outputs
    where the outputs stage saves Terraform's (0600), none sensitive: ``${output:ENV.NAME}`` of
    another environment finds them there. Cloud providers export none here: nothing is written."""
    from .terraform import SENSITIVE_OUTPUTS

    exported = ctx.provider.exported_outputs(ctx.bp)
    if exported:
        write_private(ctx.ws.outputs_file, json.dumps(exported, indent=2, sort_keys=True) + "\n")
        write_private(ctx.ws.env_dir / SENSITIVE_OUTPUTS, "[]\n")


class HostsDriftStage(ConfigureStage):
    """``infra drift`` on bare metal (no Terraform state): ansible/site.yml in check mode over every
    host, changing nothing; each task that would change a host is drift. A host that cannot be
    reached or fails fails the stage (exit 4), as in ``infra configure --check``."""

    name = "drift"

    def __init__(self, extra_vars: list[Path] | tuple[Path, ...] = ()) -> None:
        super().__init__(check=True, extra_vars=extra_vars)

    def run(self, ctx: Context) -> str:
        from ..engines.tfjson import PlanResult

        super().run(ctx)
        drifted = host_drift(self.result) if self.result is not None else {}
        items = [f"{host}: {task}" for host, tasks in drifted.items() for task in tasks]
        ctx.state.plan = PlanResult(has_changes=bool(items), drift=[(item, "would change") for item in items])
        ctx.state.record.plan = {"has_changes": bool(items), "add": 0, "change": 0, "destroy": 0,
                                 "by_type": {}, "drift": items, "hosts": drifted}
        if not items:
            return f"no drift ({len(self.result.stats) if self.result else 0} hosts checked)"
        return f"drift on {len(drifted)} host{'s' if len(drifted) != 1 else ''}: {'; '.join(items)}"


def host_drift(result: AnsibleResult) -> dict[str, list[str]]:
    """Per host with changes, the tasks a check-mode run reported as changed (host order)."""
    return {host: list(result.changed_tasks[host]) for host in sorted(result.changed_tasks)
            if result.changed_tasks[host]}


def host_status(result: AnsibleResult) -> dict[str, dict[str, Any]]:
    failures = {f.host: f for f in result.host_failures()}
    gpus = (result.data or {}).get("gpus") or {}
    kube_versions = (result.data or {}).get("kubernetes_versions") or {}
    out: dict[str, dict[str, Any]] = {}
    for host in sorted(set(result.stats) | set(failures)):  # a host the playbook never reached has no stats
        s = result.stats.get(host) or HostStats()
        status = "unreachable" if s.unreachable else "failed" if s.failed else "changed" if s.changed else "ok"
        if host in failures and failures[host].not_configured:
            status = "not configured"
        entry: dict[str, Any] = {"status": status, "ok": s.ok, "changed": s.changed, "failed": s.failed,
                                 "unreachable": s.unreachable, "roles": result.roles.get(host, [])}
        if host in failures:
            entry["task"] = failures[host].task
            if failures[host].not_configured:
                entry["reason"] = failures[host].message
            if failures[host].not_run:  # the roles that never started on it
                entry["not_configured"] = list(failures[host].not_run)
        if host in gpus:
            entry["gpus_found"] = gpus[host].get("count")
            entry["nvswitches"] = gpus[host].get("nvswitches")
        if isinstance(kube_versions, dict) and kube_versions.get(host):  # kubernetes_node: what the node runs
            entry["kubernetes_version"] = str(kube_versions[host])
        out[host] = entry
    return out


def save_hosts_file(path: Path, result: AnsibleResult) -> None:
    """Merge this run's per-host results into ``hosts.json`` (a ``--limit`` run updates only its hosts).
    A host's ``kubernetes_version`` stays until a run reports another: a run that failed before the
    role reported it (or a check-mode run) leaves the version the node last ran."""
    data = read_json(path)
    hosts = data.setdefault("hosts", {})
    for host, entry in host_status(result).items():
        known = (hosts.get(host) or {}).get("kubernetes_version") if isinstance(hosts.get(host), dict) else None
        hosts[host] = {**({"kubernetes_version": known} if known else {}), **entry}
    data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
