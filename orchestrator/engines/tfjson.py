"""Terraform's machine-readable UI (``-json`` JSON Lines) and its diagnostics.

Pure functions and small collectors, no processes: ``terraform.py`` feeds them one decoded
message at a time. Unknown message types and fields are ignored, as the UI contract asks.
Reference: developer.hashicorp.com/terraform/internals/machine-readable-ui.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import LockedError, TerraformError

SUPPORTED_UI_MAJOR = 1

# planned_change action -> which change_summary counter it feeds
_COUNTERS = {"create": ("add",), "update": ("change",), "delete": ("destroy",), "replace": ("add", "destroy")}
# apply steps a planned action produces (replace = destroy + create hooks); noop/move/import/forget: none
_STEPS = {"create": 1, "update": 1, "delete": 1, "read": 1, "replace": 2}
PAST_TENSE = {
    "create": "created",
    "update": "updated",
    "delete": "destroyed",
    "read": "read",
    "replace": "replaced",
}
_CONDITION_SUMMARIES = re.compile(
    r"(pre|post)condition failed|Check block assertion failed|Invalid value for (variable|input)",
    re.IGNORECASE,
)
_CONTEXT_ADDR = re.compile(r'^(resource|data|module|output|variable)\s+"([^"]+)"(?:\s+"([^"]+)")?')
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    address: str | None = None
    filename: str | None = None
    line: int | None = None

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> Diagnostic:
        d = msg.get("diagnostic") or {}
        rng = d.get("range") or {}
        address = d.get("address") or _address_from_context((d.get("snippet") or {}).get("context"))
        return cls(
            severity=str(d.get("severity") or "error"),
            summary=str(d.get("summary") or msg.get("@message") or "unknown error"),
            detail=str(d.get("detail") or ""),
            address=address,
            filename=rng.get("filename"),
            line=(rng.get("start") or {}).get("line"),
        )

    def one_line(self) -> str:
        """``<summary>: <address> (<file>:<line>)``, plus the user's message for failed conditions."""
        text = one_line(self.summary)
        if self.address:
            text += f": {self.address}"
        if self.filename:
            text += f" ({self.filename}:{self.line})" if self.line else f" ({self.filename})"
        if self.detail and _CONDITION_SUMMARIES.search(self.summary):
            text += f": {first_sentence(self.detail)}"
        return text

    def with_detail(self) -> str:
        """``one_line()`` followed by the detail's first sentence (for warnings, which get no hint)."""
        text = self.one_line()
        sentence = first_sentence(self.detail) if self.detail else ""
        return f"{text}: {sentence}" if sentence and not text.endswith(sentence) else text


@dataclass
class PlanResult:
    has_changes: bool
    add: int = 0
    change: int = 0
    destroy: int = 0
    imported: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    changes: list[tuple[str, str]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    plan_file: Path | None = None
    drift: list[tuple[str, str]] = field(default_factory=list)  # resource_drift: address, action
    drift_attributes: dict[str, list[str]] = field(default_factory=dict)  # address: changed attribute paths

    @property
    def steps(self) -> int:
        """How many resource operations an apply of this plan reports (the progress total)."""
        return sum(_STEPS.get(action, 0) for _, action in self.changes)


@dataclass
class ApplyResult:
    add: int = 0
    change: int = 0
    destroy: int = 0
    imported: int = 0
    completed: list[tuple[str, str, float | None]] = field(default_factory=list)  # address, action, secs
    failed: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # non-sensitive values from the stream
    diagnostics: list[Diagnostic] = field(default_factory=list)
    duration_s: float = 0.0


class Outputs(dict[str, Any]):
    """``{name: value}`` from ``terraform output -json``; ``sensitive`` names the values to redact."""

    def __init__(self, values: dict[str, Any], sensitive: set[str] | None = None) -> None:
        super().__init__(values)
        self.sensitive: frozenset[str] = frozenset(sensitive or ())

    def redacted(self, mask: str = "(sensitive)") -> dict[str, Any]:
        return {k: (mask if k in self.sensitive else v) for k, v in self.items()}


# --- text helpers -------------------------------------------------------------------------------


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def first_sentence(text: str) -> str:
    """First sentence of the first paragraph, on one line (``terraform.json`` is not a sentence end)."""
    para = one_line(re.split(r"\n\s*\n", str(text).strip(), maxsplit=1)[0])
    return re.split(r"(?<=[.!?])\s+(?=[A-Z(\"'])", para, maxsplit=1)[0]


def _address_from_context(context: str | None) -> str | None:
    m = _CONTEXT_ADDR.match(context or "")
    if not m:
        return None
    kind, first, second = m.groups()
    if kind in ("resource", "data"):
        if not second:
            return None
        return f"{first}.{second}" if kind == "resource" else f"data.{first}.{second}"
    return {"module": "module.", "output": "output.", "variable": "var."}[kind] + first


def parse_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def ui_major(msg: dict[str, Any]) -> int | None:
    try:
        return int(str(msg.get("ui", "")).split(".")[0])
    except ValueError:
        return None


def _stderr_boxes(stderr: str) -> list[tuple[str, str, str]]:
    """``(level, summary, detail)`` for each ``Error:``/``Warning:`` box in Terraform's human output."""
    lines = [raw.strip().lstrip("╷│╵").strip() for raw in _ANSI.sub("", stderr).splitlines()]
    boxes = []
    for i, line in enumerate(lines):
        for level in ("Error", "Warning"):
            if line.startswith(f"{level}: "):
                detail = []
                for nxt in lines[i + 1 :]:
                    if nxt.startswith(("Error: ", "Warning: ")):
                        break
                    detail.append(nxt)
                boxes.append((level, one_line(line[len(level) + 2 :]), "\n".join(detail).strip()))
    return boxes


def summarize_stderr(stderr: str) -> tuple[str, str | None] | None:
    """``(message, hint)`` from Terraform's human error box on stderr (flag errors, old ``init``)."""
    for level, summary, detail in _stderr_boxes(stderr):
        if level == "Error":
            return summary, (first_sentence(detail) if detail else None)
    meaningful = [ln.strip() for ln in _ANSI.sub("", stderr).splitlines() if ln.strip()]
    return (meaningful[0], None) if meaningful else None


def stderr_warnings(stderr: str, *, include_errors: bool = False) -> list[str]:
    """Warning boxes on stderr (and error boxes of a command that still succeeded, such as
    "There are some problems with the CLI configuration"), one line each."""
    return [
        f"{summary}: {first_sentence(detail)}" if detail else summary
        for level, summary, detail in _stderr_boxes(stderr)
        if level == "Warning" or include_errors
    ]


# --- errors -------------------------------------------------------------------------------------


def lock_info(detail: str) -> dict[str, str]:
    info = {}
    for m in re.finditer(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):[ \t]*(.*?)\s*$", detail, re.M):
        info[m.group(1)] = m.group(2)
    return info


def error_from_diagnostics(
    diags: list[Diagnostic], *, workdir: Path, unlock_cmd: str
) -> TerraformError | LockedError | None:
    """The exception for the first error diagnostic (``None`` when there is none)."""
    errors = [d for d in diags if d.severity == "error"]
    if not errors:
        return None
    first = errors[0]
    if first.summary.strip() == "Error acquiring the state lock":
        return _locked(first, workdir=workdir, unlock_cmd=unlock_cmd)
    message = first.one_line()
    if len(errors) > 1:
        extra = len(errors) - 1
        message += f" (+{extra} more error{'s' if extra > 1 else ''})"
    if "plan is stale" in first.summary.lower():
        hint = "the state changed after this plan was made: re-plan, review it, then apply the new plan"
    else:
        hint = first_sentence(first.detail) or None
    err = TerraformError(message, hint)
    err.diagnostics = errors  # type: ignore[attr-defined]
    return err


def _locked(diag: Diagnostic, *, workdir: Path, unlock_cmd: str) -> LockedError:
    info = lock_info(diag.detail)
    lock_id = info.get("ID") or "?"
    created = info.get("Created", "")
    created = re.sub(r"(\d\d:\d\d:\d\d)\.\d+", r"\1", created).replace(" +0000 UTC", " UTC")
    since = f", since {created}" if created else ""
    message = (
        f"state is locked by {info.get('Who') or 'another run'} "
        f"({info.get('Operation') or 'unknown operation'}{since}), lock ID {lock_id}"
    )
    hint = f"wait for that run to finish; if it died, run `{unlock_cmd} {lock_id}` in {workdir} yourself"
    err = LockedError(message, hint)
    err.lock_info = info  # type: ignore[attr-defined]
    return err


# --- collectors ---------------------------------------------------------------------------------


class PlanCollector:
    """Feeds on a ``plan -json`` stream; ``result()`` builds the PlanResult."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []  # address, resource_type, action
        self.drift: list[tuple[str, str]] = []  # changed outside Terraform: address, action
        self.summary: dict[str, Any] | None = None
        self.summary_message: str | None = None

    def feed(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "planned_change":
            change = msg.get("change") or {}
            res = change.get("resource") or {}
            addr = str(res.get("addr") or "?")
            rtype = str(res.get("resource_type") or "unknown")
            self.changes.append((addr, rtype, str(change.get("action") or "unknown")))
        elif kind == "resource_drift":
            change = msg.get("change") or {}
            addr = str((change.get("resource") or {}).get("addr") or "?")
            self.drift.append((addr, str(change.get("action") or "unknown")))
        elif kind == "change_summary":
            self.summary = msg.get("changes") or {}
            self.summary_message = msg.get("@message")

    def result(self, has_changes: bool, diagnostics: list[Diagnostic]) -> PlanResult:
        by_type: dict[str, dict[str, int]] = {}
        for _, rtype, action in self.changes:
            for counter in _COUNTERS.get(action, ()):
                counts = by_type.setdefault(rtype, {"add": 0, "change": 0, "destroy": 0})
                counts[counter] += 1
        s = self.summary or {}
        return PlanResult(
            has_changes=has_changes,
            add=int(s.get("add", 0)),
            change=int(s.get("change", 0)),
            destroy=int(s.get("remove", 0)),
            imported=int(s.get("import", 0)),
            by_type=by_type,
            changes=[(addr, action) for addr, _, action in self.changes],
            diagnostics=diagnostics,
            drift=list(self.drift),
        )


def hook_resource(msg: dict[str, Any]) -> tuple[str, str, float | None]:
    hook = msg.get("hook") or {}
    addr = str((hook.get("resource") or {}).get("addr") or "?")
    elapsed = hook.get("elapsed_seconds")
    return addr, str(hook.get("action") or ""), (float(elapsed) if elapsed is not None else None)


class ApplyCollector:
    """Feeds on an ``apply -json`` stream, reporting each resource operation to a Progress."""

    def __init__(self, progress: Any, total: int | None = None) -> None:
        self.progress = progress
        self.total = total
        self._counted_total = 0
        self._started = False
        self.result = ApplyResult()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            total = self.total if self.total is not None else self._counted_total
            self.progress.start_task(total or None, "apply")

    def feed(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "planned_change":
            self._counted_total += _STEPS.get(str((msg.get("change") or {}).get("action")), 0)
        elif kind in ("apply_start", "apply_progress"):
            self._start()
            addr, _, elapsed = hook_resource(msg)
            self.progress.current(addr, elapsed=elapsed)
        elif kind == "apply_complete":
            self._start()
            addr, action, elapsed = hook_resource(msg)
            self.result.completed.append((addr, action, elapsed))
            self.progress.advance(addr, PAST_TENSE.get(action, action or "done"), elapsed=elapsed)
        elif kind == "apply_errored":
            self._start()
            addr, _, elapsed = hook_resource(msg)
            self.result.failed.append(addr)
            self.progress.advance(addr, "failed", elapsed=elapsed)
        elif kind == "change_summary":
            changes = msg.get("changes") or {}
            if changes.get("operation") != "plan":
                self.result.add = int(changes.get("add", 0))
                self.result.change = int(changes.get("change", 0))
                self.result.destroy = int(changes.get("remove", 0))
                self.result.imported = int(changes.get("import", 0))
        elif kind == "outputs":
            for name, out in (msg.get("outputs") or {}).items():
                if isinstance(out, dict) and not out.get("sensitive") and "value" in out:
                    self.result.outputs[name] = out["value"]

    @property
    def started(self) -> bool:
        return self._started


class PlanApplyCollector:
    """Feeds on ``apply -auto-approve -json`` without a saved plan, where Terraform plans and then
    applies in one process: the plan part (up to its ``change_summary`` of operation ``plan``, and
    the ``outputs`` message that follows it) goes to a PlanCollector; ``on_plan`` then gets the
    PlanResult, while Terraform goes on applying; the rest goes to an ApplyCollector sized by it."""

    def __init__(self, progress: Any, on_plan: Any) -> None:
        self.progress = progress
        self.on_plan = on_plan
        self.plan_part = PlanCollector()
        self.apply_part: ApplyCollector | None = None
        self.plan: PlanResult | None = None
        self._summary_seen = False
        self._outputs_change = False

    def feed(self, msg: dict[str, Any]) -> None:
        if self.apply_part is not None:
            self.apply_part.feed(msg)
            return
        kind = msg.get("type")
        if not self._summary_seen:
            self.plan_part.feed(msg)
            self._summary_seen = kind == "change_summary" and (msg.get("changes") or {}).get("operation") == "plan"
            return
        if kind == "outputs":  # the plan's output changes (actions, no values): part of the plan
            self._outputs_change = any(isinstance(out, dict) and out.get("action") not in (None, "noop")
                                       for out in (msg.get("outputs") or {}).values())
            self._planned()
            return
        self._planned()
        self.feed(msg)

    def finish(self) -> None:
        """At the end of the stream: a plan whose summary was the last thing Terraform said."""
        if self._summary_seen and self.apply_part is None:
            self._planned()

    def _planned(self) -> None:
        s = self.plan_part.summary or {}
        changes = any(int(s.get(k, 0) or 0) for k in ("add", "change", "remove", "import"))
        self.plan = self.plan_part.result(changes or self._outputs_change, [])
        self.apply_part = ApplyCollector(self.progress, self.plan.steps)
        self.on_plan(self.plan)

    @property
    def planned(self) -> bool:
        return self.plan is not None


_MAX_DRIFT_PATHS = 12  # per resource; the rest is counted


def _changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """Attribute paths (``tags.Owner``, ``scaling_config[0].max_size``) whose values differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after)):
            found += _changed_paths(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            found += _changed_paths(b, a, f"{path}[{i}]")
        return found
    return [] if before == after else [path or "(whole object)"]


def drift_attributes(plan: dict[str, Any]) -> dict[str, list[str]]:
    """``{address: [changed attribute path, ...]}`` from ``terraform show -json`` of a
    refresh-only plan (its ``resource_drift``). Names only, never values: a drifted attribute may
    be sensitive."""
    found: dict[str, list[str]] = {}
    for entry in plan.get("resource_drift") or []:
        if not isinstance(entry, dict):
            continue
        change = entry.get("change") or {}
        paths = _changed_paths(change.get("before"), change.get("after"))
        if len(paths) > _MAX_DRIFT_PATHS:
            paths = paths[:_MAX_DRIFT_PATHS] + [f"+{len(paths) - _MAX_DRIFT_PATHS} more"]
        found[str(entry.get("address"))] = paths
    return found
