"""Environment outputs beside a remote state (``s3://BUCKET/infra/<name>/outputs.json``): written by
``up``'s outputs stage, removed by a ``down`` that destroyed everything, read for
``${output:ENV.NAME}`` and ``infra status`` in any clone (docs/records.md, "Shared where the state is")."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .shared_store import (
    PreconditionFailed,
    SharedEnv,
    SharedStoreError,
    Warn,
    for_blueprint,
    for_context,
    running_endpoint,
)

if TYPE_CHECKING:
    from .blueprint.outputs import EnvOutputs
    from .stages.context import Context


def outputs_source(file: Path, sandbox: bool, root: Path) -> Callable[[str], EnvOutputs | None]:
    """For ``${output:ENV.NAME}`` in ``file``: ENV's outputs in the shared store, found from ENV's
    blueprint beside ``file`` (same folder, ``name: ENV``) or else ``file``'s own bucket; None when
    neither has them (or cannot be read: then the copy in ``.infra/`` is used)."""
    cache: dict[str, SharedEnv | None] = {}

    def store_of(path: Path) -> SharedEnv | None:
        from .blueprint.loader import load
        from .errors import InfraError
        from .workspace import Workspace

        key = str(path)
        if key not in cache:
            cache[key] = None
            with contextlib.suppress(InfraError, OSError):
                endpoint = running_endpoint(Workspace(root=root, name="-").state_dir) if sandbox else None
                cache[key] = for_blueprint(load(path).model, sandbox=sandbox, endpoint=endpoint)
        return cache[key]

    def sibling(env: str) -> Path | None:
        pattern = re.compile(rf"^name:\s*[\"']?{re.escape(env)}[\"']?\s*(#.*)?$", re.MULTILINE)
        for path in sorted(file.parent.glob("*.y*ml")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if path.suffix in (".yaml", ".yml") and pattern.search(path.read_text()):
                    return path
        return None

    def lookup(env: str) -> EnvOutputs | None:
        own = sibling(env)
        for path in ([own] if own is not None else []) + [file]:
            shared = store_of(path)
            if shared is None:
                continue
            with contextlib.suppress(SharedStoreError):
                found = shared.of(env).get_outputs()
                if found is not None:
                    return found
        return None

    return lookup


def publish_outputs(ctx: Context, values: dict[str, Any], sensitive: list[str]) -> None:
    """After ``up``'s outputs stage: the outputs beside the state too, for ``${output:}`` elsewhere and
    ``infra status`` from any clone (a warning when the bucket cannot be written: the next up retries)."""
    shared = for_context(ctx)
    if shared is None:
        return
    try:
        shared.put_outputs(values, sensitive)
    except (SharedStoreError, PreconditionFailed) as exc:
        ctx.progress.warn(f"outputs kept in {ctx.ws.outputs_file} but not shared: "
                          f"{getattr(exc, 'message', None) or exc}")


def forget_outputs(shared: SharedEnv, ws: Any, warn: Warn) -> None:
    """After a ``down`` that destroyed everything: no outputs left to refer to, here or beside the state."""
    from .stages.terraform import SENSITIVE_OUTPUTS

    try:
        shared.drop_outputs()
    except (SharedStoreError, PreconditionFailed) as exc:
        warn(f"the shared outputs {shared.where('outputs.json')} were not removed: "
             f"{getattr(exc, 'message', None) or exc}")
    for path in (ws.outputs_file, ws.env_dir / SENSITIVE_OUTPUTS):
        path.unlink(missing_ok=True)
