"""``infra status``: an environment's outputs (bare metal: its hosts and their last configure), its
state in words, and its last run. Reads only: it starts and locks nothing, and writes nothing but
the local copy of run records kept beside a remote state (``shared_store``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .providers.base import Provider
    from .workspace import Workspace


@dataclass(frozen=True)
class EnvStatus:
    name: str
    provider: str
    sandbox: bool
    deployed: bool
    #: in words: "deployed", "not deployed", "not configured", "2 of 3 hosts configured"
    state: str
    outputs: dict[str, Any]
    #: the provider's summary of the outputs, (label, value) per line
    rows: list[tuple[str, str]]
    last_run: dict[str, Any] | None
    #: the emulator's endpoint (``--sandbox``; None when it is not running)
    sandbox_server: str | None = None
    #: what could not be read (the outputs or records kept beside a remote state), one line each
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "sandbox": self.sandbox,
            "deployed": self.deployed,
            "outputs": self.outputs,
            "last_run": self.last_run,
        }
        if self.sandbox:
            data["sandbox_server"] = self.sandbox_server
        return data


def status(file: Path, sandbox: bool = False, root: Path | None = None,
           warn: Callable[[str], None] | None = None) -> EnvStatus:
    """``warn``: where warnings go (default: printed to stderr, ``Progress.warn``)."""
    from . import records, shared_store
    from . import sandbox as sandbox_mod
    from .stages.commands import open_environment

    loaded, provider, ws = open_environment(file, sandbox, root)
    if warn is None:
        from .progress import Progress

        warn = Progress().warn
    shared = shared_store.for_reading(loaded.model, sandbox, ws.state_dir, warn)
    if shared is not None and provider.terraform_module is not None:
        shared_store.locked_pull(shared, ws.records_dir, warn)
    outputs = _read_outputs(ws) or _shared_outputs(shared, warn) or provider.static_outputs(loaded.model, ws.env_dir)
    history = records.list_records(ws.records_dir)
    last = next((r for r in reversed(history) if r.get("sandbox") == sandbox), None)
    server = sandbox_mod.status(ws.state_dir) if sandbox else None
    return EnvStatus(
        name=loaded.model.name,
        provider=provider.name,
        sandbox=sandbox,
        deployed=_deployed(provider, outputs),
        state=_state(provider, outputs),
        outputs=outputs,
        rows=provider.summarize_outputs(outputs),
        last_run={k: last.get(k) for k in ("id", "command", "outcome", "finished_at", "user")} if last else None,
        sandbox_server=server.endpoint if server else None,
    )


def _deployed(provider: Provider, outputs: dict[str, Any]) -> bool:
    """Cloud: Terraform has outputs; bare metal: a configure run has finished."""
    return bool(outputs.get("configured_at") if provider.terraform_module is None else outputs)


def _state(provider: Provider, outputs: dict[str, Any]) -> str:
    if provider.terraform_module is not None:
        return "deployed" if _deployed(provider, outputs) else "not deployed"
    if not _deployed(provider, outputs):
        return "not configured"
    hosts = (outputs.get("hosts") or {}).values()
    done = sum(1 for h in hosts if (h.get("last_configure") or {}).get("status") in ("ok", "changed"))
    return f"{done} of {len(hosts)} hosts configured"


def _shared_outputs(shared: Any, warn: Any) -> dict[str, Any]:
    """The outputs the last ``up`` left beside the state (a clone where it did not run)."""
    from .shared_store import SharedStoreError

    if shared is None:
        return {}
    try:
        found = shared.get_outputs()
    except SharedStoreError as exc:
        warn(f"the shared outputs were not read: {exc.message}")
        return {}
    return dict(found.values) if found is not None else {}


def _read_outputs(ws: Workspace) -> dict[str, Any]:
    """Live ``terraform output`` when the environment was initialised here, else nothing."""
    from .engines.terraform import Terraform

    if not ws.tf_data_dir.is_dir() or not ws.terraform_dir.is_dir():
        return {}
    tf = Terraform(ws.terraform_dir, data_dir=ws.tf_data_dir, config_dir=ws.env_dir)
    return dict(tf.output())
