"""Apply what was reviewed: ``infra plan FILE --out DIR`` saves each environment's Terraform plan
with what it was made from; ``infra up FILE --plan DIR`` applies exactly that plan, or refuses
(exit 2, nothing applied) when anything it was made from changed since. docs/gitops.md, "Apply
what was reviewed".

``DIR/<env>/`` holds ``plan.tfplan`` (``terraform plan -out``; none when the plan has no changes)
and ``manifest.json``, both 0600 in a 0700 folder. The manifest records:

- ``blueprint``: the merged blueprint (references only, never secret values: what a run record
  keeps as ``merged``) and its sha256;
- ``inputs``: the sha256 of every rendered file under ``build/<env>/``, ``terraform/`` being the
  folder Terraform ran in (with ``--sandbox``, the render's copy with the emulator's endpoints).
  The render holds no secret values by design (render/__init__.py), so these digests reveal
  nothing. ``.terraform.lock.hcl`` is left out: the plan file carries the lock file and Terraform
  refuses a plan whose providers differ from it;
- ``versions``: infra, Terraform and the providers init selected;
- ``state``: the serial and lineage of the state the plan was made against (``state pull``);
- ``plan``: the summary (counts, by type, addresses and actions) and the plan file's sha256.

Secret values are not digested at all, not even salted: Terraform never receives them (the tfvars
hold none), so they cannot change what the plan does; the configure and handoff stages resolve
them when ``up`` runs, as always. A digest of a short secret (a password) could be guessed offline
from a leaked manifest, and a salt that travels with the manifest would not stop that.

The plan file itself holds values in clear (Terraform writes the configuration and state
snapshots into it): the folder is as sensitive as the state.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import TerraformError, UsageError
from ..workspace import private_dir, write_private
from .context import Confirm, Context, KubeTarget, Stage
from .terraform import ApplyStage, PlanStage, _init

if TYPE_CHECKING:
    from ..progress import Progress
    from ..workspace import Workspace

MANIFEST = "manifest.json"
PLAN_FILE = "plan.tfplan"
KIND = "infra-saved-plan"
FORMAT = 1
_SKIP_DIRS = frozenset({".terraform"})
_SKIP_FILES = frozenset({".terraform.lock.hcl"})


class SavedPlanChanged(UsageError):
    """``up --plan``: what the saved plan was made from changed since (exit 2, nothing applied)."""


# --- digests ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path, prefix: str, leave_out: Path | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for here, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and Path(here, d) != leave_out]
        for name in names:
            path = Path(here, name)
            if name in _SKIP_FILES or path.is_symlink() or not path.is_file():
                continue
            found[prefix + path.relative_to(folder).as_posix()] = _sha256(path)
    return found


def rendered_digests(ws: Workspace) -> dict[str, str]:
    """sha256 of every rendered file an ``up`` uses, by path under ``build/<env>/``; ``terraform/``
    is the folder Terraform runs in (``--sandbox``: the render's copy with the overrides)."""
    build, tf = ws.build_dir, ws.terraform_dir
    own = tf == build / "terraform"
    files = _files(build, "", leave_out=None if own else build / "terraform")
    if not own:
        files.update(_files(tf, "terraform/"))
    return dict(sorted(files.items()))


def inputs_digest(files: dict[str, str]) -> str:
    """One sha256 over the per-file digests (path and digest of each, in path order)."""
    digest = hashlib.sha256()
    for name, value in sorted(files.items()):
        digest.update(f"{name}\0{value}\n".encode())
    return digest.hexdigest()


def describe(ctx: Context) -> dict[str, Any]:
    """What a plan depends on that can be known without Terraform (after the render stage)."""
    files = rendered_digests(ctx.ws)
    return {
        "environment": ctx.bp.name,
        "sandbox": ctx.ws.sandbox,
        "blueprint": {"file": _shown(ctx.loaded.path, ctx.ws.root), "sha256": ctx.loaded.sha256,
                      "merged": ctx.loaded.data},
        "inputs": {"sha256": inputs_digest(files), "files": files},
        "versions": {"infra": __version__},
    }


def _terraform_facts(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(versions, state)`` once init has run (``_init`` put the versions in the record)."""
    versions = ctx.state.record.versions
    serial, lineage = ctx.terraform().state_meta()
    return ({"terraform": versions.get("terraform"), "providers": dict(versions.get("providers") or {})},
            {"serial": serial, "lineage": lineage})


# --- what changed -------------------------------------------------------------------------------


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _show(value: Any) -> str:
    text = "none" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _few(items: Sequence[str], n: int = 3) -> str:
    more = len(items) - n
    return ", ".join(items[:n]) + (f" and {more} more" if more > 0 else "")


def _short(provider: str) -> str:
    """A provider's address without its host (``namespace/type``)."""
    return "/".join(provider.split("/")[-2:])


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two merged blueprints differ: ``node_pools[0].max 4 -> 6``, ``tags.team added``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{sub} added")
            elif key not in new:
                out.append(f"{sub} removed")
            else:
                out += changed_paths(old[key], new[key], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True))
                for line in changed_paths(a, b, f"{path}[{i}]")]
    if old == new:
        return []
    scalar = (str, int, float, bool, type(None))
    if isinstance(old, scalar) and isinstance(new, scalar):
        return [f"{path or 'blueprint'} {_show(old)} -> {_show(new)}"]
    return [f"{path or 'blueprint'} changed"]


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Why the plan saved with manifest ``saved`` may not be applied now, one phrase per reason
    (none: it may). Only what ``now`` holds is compared (Terraform's facts come after init)."""
    reasons: list[str] = []
    if saved.get("environment") != now["environment"]:
        reasons.append(f"it was made for environment {_show(saved.get('environment'))}, not {now['environment']}")
    if bool(saved.get("sandbox")) != now["sandbox"]:
        reasons.append(f"it was made {'with' if saved.get('sandbox') else 'without'} --sandbox")
    if saved.get("placeholders"):
        refs = [str(p) for p in saved["placeholders"]] if isinstance(saved["placeholders"], list) else []
        reasons.append(f"it was made with placeholder outputs ({_few(refs)}), so it cannot be applied")
    old_bp, new_bp = _dict(saved.get("blueprint")), now["blueprint"]
    if old_bp.get("sha256") != new_bp["sha256"]:
        paths = changed_paths(old_bp.get("merged"), new_bp["merged"]) if "merged" in old_bp else []
        reasons.append(f"the blueprint changed ({_few(paths)})" if paths else "the blueprint changed")
    old_in, new_in = _dict(saved.get("inputs")), now["inputs"]
    if old_in.get("sha256") != new_in["sha256"]:
        old_files, new_files = _dict(old_in.get("files")), new_in["files"]
        names = sorted(n for n in set(old_files) | set(new_files) if old_files.get(n) != new_files.get(n))
        reasons.append(f"the rendered inputs changed ({_few(names)})" if names else "the rendered inputs changed")
    old_v, new_v = _dict(saved.get("versions")), now["versions"]
    for key, label in (("infra", "infra"), ("terraform", "Terraform")):
        if key in new_v and old_v.get(key) != new_v[key]:
            reasons.append(f"the {label} version changed ({_show(old_v.get(key))} -> {_show(new_v[key])})")
    if "providers" in new_v:
        old_p, new_p = _dict(old_v.get("providers")), new_v["providers"]
        moved = [f"{_short(p)} {_show(old_p.get(p))} -> {_show(new_p.get(p))}"
                 for p in sorted(set(old_p) | set(new_p)) if old_p.get(p) != new_p.get(p)]
        if moved:
            reasons.append(f"the provider versions changed ({_few(moved)})")
    if "state" in now:
        old_s, new_s = _dict(saved.get("state")), now["state"]
        if old_s.get("lineage") and new_s["lineage"] and old_s["lineage"] != new_s["lineage"]:
            reasons.append(f"the state is another one (lineage {old_s['lineage']} -> {new_s['lineage']})")
        elif old_s.get("serial") != new_s["serial"]:
            reasons.append(f"the state changed since (serial {_show(old_s.get('serial'))} -> "
                           f"{_show(new_s['serial'])}): something was applied in between")
    return reasons


def refusal(base: Path, folder: Path, reasons: Sequence[str], ctx: Context) -> SavedPlanChanged:
    file = _shown(ctx.loaded.path, Path.cwd())
    return SavedPlanChanged(
        f"saved plan {folder} no longer matches: {'; '.join(reasons)}; nothing was applied",
        hint=f"plan again and review it: `infra plan {file} --out {base}`, then `infra up {file} --plan {base}`",
    )


# --- files --------------------------------------------------------------------------------------


def env_folder(base: Path, env: str) -> Path:
    """Where ``env``'s saved plan is: ``base/<env>/``, or ``base`` itself when it holds a manifest."""
    base = Path(base)
    return base if (base / MANIFEST).is_file() else base / env


def read_manifest(base: Path, folder: Path, env: str) -> dict[str, Any]:
    """The manifest in ``folder``; a missing or foreign one is bad input (exit 2)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--plan {base}: no saved plan for {env} ({path} does not exist)",
                         hint="save one with `infra plan FILE --out DIR`") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a saved plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise UsageError(f"{path}: not a saved plan of infra (kind: {_show(_dict(data).get('kind'))})")
    if data.get("format") != FORMAT:
        raise UsageError(f"{path}: saved plan format {_show(data.get('format'))}, this infra reads {FORMAT}",
                         hint="plan again with this infra")
    return data


def _write_bytes_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _shown(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def _summary(plan: Any) -> dict[str, Any]:
    return {"has_changes": plan.has_changes, "add": plan.add, "change": plan.change, "destroy": plan.destroy,
            "by_type": plan.by_type}


# --- stages -------------------------------------------------------------------------------------


class SavePlanStage:
    """After ``plan`` (which keeps its plan file): the plan and its manifest to ``OUT/<env>/``.
    An environment planned with placeholder outputs gets a manifest that ``up --plan`` refuses."""

    name = "save-plan"

    def __init__(self, out: Path, placeholders: Sequence[str] = ()) -> None:
        self.out = Path(out)
        self.placeholders = list(placeholders)

    def run(self, ctx: Context) -> str:
        folder = private_dir(self.out / ctx.bp.name, tighten=True)
        manifest = {"kind": KIND, "format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "git": ctx.state.record.git, **describe(ctx), "placeholders": self.placeholders, "plan": None}
        target = folder / PLAN_FILE
        target.unlink(missing_ok=True)
        plan = ctx.state.plan
        try:
            if ctx.provider.terraform_module is not None:
                versions, manifest["state"] = _terraform_facts(ctx)
                manifest["versions"].update(versions)
            if plan is not None:
                manifest["plan"] = {**_summary(plan), "changes": [list(c) for c in plan.changes],
                                    "file": None, "sha256": None}
                if plan.has_changes and not self.placeholders and ctx.ws.plan_file.is_file():
                    _write_bytes_private(target, ctx.ws.plan_file.read_bytes())
                    manifest["plan"].update(file=PLAN_FILE, sha256=_sha256(target))
        finally:
            ctx.ws.plan_file.unlink(missing_ok=True)  # the copy in OUT is the one to apply
        from ..secrets import redact

        write_private(folder / MANIFEST, redact(json.dumps(manifest, indent=2, sort_keys=True, default=str)) + "\n")
        if self.placeholders:
            return f"{folder}: manifest only (placeholder outputs: `up --plan` refuses it)"
        return f"{folder}: {'plan and manifest' if target.is_file() else 'manifest (no changes to apply)'}"


class SavedPlanStage:
    """``up --plan DIR`` in place of ``plan``: checks that nothing the saved plan was made from
    changed (blueprint, rendered inputs, infra, Terraform and provider versions, the state's serial
    and lineage, the plan file itself), then hands that plan to ``apply``. Refuses otherwise."""

    name = "saved-plan"

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def run(self, ctx: Context) -> str:
        folder = env_folder(self.base, ctx.bp.name)
        saved = read_manifest(self.base, folder, ctx.bp.name)
        now = describe(ctx)
        reasons = differences(saved, now)
        terraform = ctx.provider.terraform_module is not None
        if not reasons and terraform:  # Terraform's facts only when the rest matches: init costs time
            _init(ctx)
            versions, now["state"] = _terraform_facts(ctx)
            now["versions"].update(versions)
            reasons = differences(saved, now)
        info = saved.get("plan")
        if terraform and not reasons and not isinstance(info, dict):
            reasons.append("it holds no Terraform plan")
        info = _dict(info)
        path = folder / PLAN_FILE
        if terraform and not reasons and info.get("has_changes") and info.get("file") is None:
            reasons.append("its plan has changes but no plan file")
        if not reasons and info.get("file") is not None:
            if info.get("file") != PLAN_FILE or not path.is_file():
                reasons.append(f"its plan file {path} is missing")
            elif _sha256(path) != info.get("sha256"):
                reasons.append(f"its plan file {path} was changed after it was saved")
        if reasons:
            raise refusal(self.base, folder, reasons, ctx)
        for item in (folder, path):
            mode = item.stat().st_mode & 0o777 if item.exists() else 0
            if mode & 0o077:
                ctx.progress.warn(f"{item} is open to others ({mode:04o}): a saved plan holds values in clear")
        if not terraform:
            return f"{folder}: unchanged since it was saved at {saved.get('created_at')}"
        plan = _plan_result(info, ctx.ws.plan_file if info.get("file") else None)
        ctx.ws.plan_file.unlink(missing_ok=True)
        if plan.plan_file is not None:
            private_dir(ctx.ws.plan_file.parent)
            _write_bytes_private(ctx.ws.plan_file, path.read_bytes())
        ctx.state.plan = plan
        ctx.state.record.plan = _summary(plan)
        changes = (f"{plan.add} to add, {plan.change} to change, {plan.destroy} to destroy"
                   if plan.has_changes else "no changes")
        serial = _dict(saved.get("state")).get("serial")
        return f"{folder}: unchanged since it was saved at {saved.get('created_at')} (state serial {_show(serial)}); " \
               f"{changes}"


def _plan_result(info: dict[str, Any], plan_file: Path | None):
    from ..engines.tfjson import PlanResult

    def count(key: str) -> int:
        value = info.get(key)
        return value if isinstance(value, int) else 0

    changes = [(str(c[0]), str(c[1])) for c in info.get("changes") or [] if isinstance(c, list) and len(c) == 2]
    by_type = {str(k): dict(v) for k, v in _dict(info.get("by_type")).items() if isinstance(v, dict)}
    return PlanResult(has_changes=bool(info.get("has_changes")), add=count("add"), change=count("change"),
                      destroy=count("destroy"), by_type=by_type, changes=changes, plan_file=plan_file)


class SavedApplyStage(ApplyStage):
    """``apply`` of a saved plan: Terraform's own refusal of a stale plan (the state changed after
    the plan was made, e.g. between our check and the apply) is the same refusal as ours."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def run(self, ctx: Context) -> str:
        try:
            return super().run(ctx)
        except TerraformError as exc:
            if "plan is stale" not in exc.message.lower():
                raise
            folder = env_folder(self.base, ctx.bp.name)
            raise refusal(self.base, folder, ["Terraform found it stale: the state changed after it was made"],
                          ctx) from exc


def stages(ctx: Context, command: str, *, out: Path | None = None, plan_dir: Path | None = None,
           placeholders: Sequence[str] = ()) -> list[Stage]:
    """``command``'s stages (``commands.stages_for``), for ``plan --out OUT`` or ``up --plan DIR``:

    - plan: ... ``plan`` (keeping its plan file), ``save-plan``;
    - up: ``saved-plan`` in place of ``plan`` (bare metal: after ``render``), ``apply`` of that plan.
    """
    from .commands import stages_for
    from .render import RenderStage

    base = stages_for(ctx, command)
    if out is not None:
        if command != "plan":
            raise UsageError(f"--out saves a plan: it is for infra plan, not infra {command}")
        return [*(PlanStage(keep=True) if isinstance(s, PlanStage) else s for s in base),
                SavePlanStage(out, placeholders)]
    if plan_dir is None:
        return base
    if command != "up":
        raise UsageError(f"--plan applies a saved plan: it is for infra up, not infra {command}")
    chosen: list[Stage] = []
    for stage in base:
        if isinstance(stage, PlanStage):
            chosen.append(SavedPlanStage(plan_dir))
        elif isinstance(stage, ApplyStage):
            chosen.append(SavedApplyStage(plan_dir))
        else:
            chosen.append(stage)
            if isinstance(stage, RenderStage) and ctx.provider.terraform_module is None:
                chosen.append(SavedPlanStage(plan_dir))
    return chosen


# --- commands -----------------------------------------------------------------------------------


def _check_folder(plan_dir: Path) -> None:
    if not Path(plan_dir).is_dir():
        raise UsageError(f"--plan {plan_dir}: no such folder", hint="save plans with `infra plan FILE --out DIR`")


def plan(file: Path, confirm: Confirm, out: Path, *, sandbox: bool = False, root: Path | None = None,
         progress: Progress | None = None) -> Context:
    """``infra plan FILE --out OUT``: render, plan, save the plan and its manifest to ``OUT/<env>/``."""
    from .commands import build_context
    from .pipeline import run

    ctx = build_context(file, "plan", confirm, sandbox=sandbox, root=root, progress=progress)
    return run(ctx, "plan", stages(ctx, "plan", out=out))


def up(file: Path, confirm: Confirm, plan_dir: Path, *, sandbox: bool = False, kube: KubeTarget | None = None,
       root: Path | None = None, progress: Progress | None = None) -> Context:
    """``infra up FILE --plan DIR``: the saved plan, checked, confirmed, applied; then as ``up``."""
    from .commands import build_context
    from .pipeline import run

    _check_folder(plan_dir)
    ctx = build_context(file, "up", confirm, sandbox=sandbox, kube=kube, root=root, progress=progress)
    return run(ctx, "up", stages(ctx, "up", plan_dir=plan_dir))
