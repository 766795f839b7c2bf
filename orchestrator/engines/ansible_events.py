"""What an ansible-runner run reports: its events folded into per-host stats, failures and the
data a play published (``EventCollector``), and the error raised when a host failed."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import AnsibleError
from orchestrator.progress import Progress

_RESULT_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
                  "runner_on_skipped": "skipped"}
_TASK_EVENTS = ("playbook_on_task_start", "playbook_on_handler_task_start")
CONFIGURED_KEY = "infra_configured"  # set_stats key of ansible/site.yml's last task


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def __str__(self) -> str:
        return " ".join(f"{k}={getattr(self, k)}" for k in ("ok", "changed", "failed", "unreachable", "skipped"))


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False
    not_configured: bool = False  # no task failed, but the host's roles never all ran
    not_run: tuple[str, ...] = ()  # the host's planned roles that never started (after the failure)

    def describe(self) -> str:
        if self.not_configured:
            return f"{self.host} not configured: {self.message}"
        what = "unreachable" if self.unreachable else "failed"
        left = f" (not configured: {', '.join(self.not_run)})" if self.not_run else ""
        return f"{self.host} {what} at task '{self.task}': {self.message}{left}"


@dataclass
class AnsibleResult:
    rc: int
    status: str
    stats: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    duration_s: float = 0.0
    artifacts: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)  # set_stats data (e.g. discovered GPUs)
    roles: dict[str, list[str]] = field(default_factory=dict)  # per host: the roles that ran tasks on it
    # per host: the tasks (and handlers) that changed it, in order; in check mode: that would change it
    changed_tasks: dict[str, list[str]] = field(default_factory=dict)
    # The hosts the playbook must mark configured (set_stats ``infra_configured``, ansible/site.yml's
    # last task); empty: no such check (playbooks without the marker).
    expected: tuple[str, ...] = ()
    # per host: the roles the playbook runs on it, in play order (ansible/site.yml; see
    # inventory.site_roles); empty: unknown. A failed host's roles after the last one that ran are
    # reported not configured.
    plan: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stopped: str = ""  # why the playbook stopped early, when it did (ansible-playbook's last words)

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.stats.values())

    @property
    def configured(self) -> set[str]:
        marks = (self.data or {}).get(CONFIGURED_KEY) or {}
        return {str(h) for h, v in marks.items() if v} if isinstance(marks, dict) else set()

    def not_configured(self) -> list[str]:
        """Expected hosts that neither failed nor were marked configured: their roles never all ran."""
        bad = {h for h, s in self.stats.items() if s.failed or s.unreachable}
        return sorted(h for h in self.expected if h not in bad and h not in self.configured)

    def not_run(self, host: str, unreachable: bool = False) -> tuple[str, ...]:
        """The planned roles of ``host`` after the last one that ran tasks on it: on a host that
        failed part-way, what was never configured. A failed host on which no planned role ran
        (it failed gathering facts, or in a helper role such as ``host_facts`` that ``common``
        includes first) names its whole plan, ``common`` included; an unreachable one names none
        (nothing was configured, and saying so role by role adds nothing)."""
        planned = self.plan.get(host) or ()
        ran = [i for i, role in enumerate(planned) if role in (self.roles.get(host) or [])]
        if not ran:
            return () if unreachable else tuple(planned)
        return tuple(planned[max(ran) + 1:])

    def host_failures(self) -> list[Failure]:
        """The failures that stand (not rescued, not ignored), first per host, in host order; hosts
        whose roles never all ran (``not_configured``) count as failed too."""
        bad = {h for h, s in self.stats.items() if s.failed or s.unreachable}
        seen: dict[str, Failure] = {}
        for f in self.failures:
            if f.host in bad and f.host not in seen:
                seen[f.host] = replace(f, not_run=self.not_run(f.host, f.unreachable))
        for host in bad - set(seen):
            gone = bool(self.stats[host].unreachable) and not self.stats[host].failed
            seen[host] = Failure(host, "?", "failed (see the artifacts)", gone, not_run=self.not_run(host, gone))
        for host in self.not_configured():
            ran = ", ".join(self.roles.get(host) or []) or "none"
            why = "the playbook stopped before this host's roles all ran"
            seen[host] = Failure(host, "?", f"{why} (roles that ran: {ran}){self.stopped}", not_configured=True)
        return [seen[h] for h in sorted(seen)]

    def summary(self) -> str:
        total = HostStats()
        for s in self.stats.values():
            for k in total.__dataclass_fields__:
                setattr(total, k, getattr(total, k) + getattr(s, k))
        n = len(self.stats)
        return f"{n} host{'s' if n != 1 else ''}: {total}"


# A Python warning as the warnings module prints it (``FILE.py:LINE: SomeWarning: text``), and
# the source line it quotes after it: library noise (a deprecation on the controller or the
# host), never the reason a task failed.
_PY_WARNING = re.compile(r"^\s*\S+\.py:\d+: \w*Warning: ")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A task name Ansible could not template (a variable undefined when the task started).
_NAME_ERROR = re.compile(r"\s*<< error \d+ - .*? >>")
# What a failure under no_log may still say: Ansible's own reason categories (the words before
# the first colon of its "Task failed: ..." line) and, after them, only messages that name
# variables or attributes that are undefined (names, never values).
_NO_LOG_CATEGORY = re.compile(r"^[A-Z][A-Za-z ]*(?: for '[\w.]+' failed)?$")
_NO_LOG_DETAIL = re.compile(r"'[\w.\-]+' is undefined|object of type '\w+' has no attribute '\w+'"
                            r"|'[\w ]+' has no attribute '\w+'|non-zero return code")
NO_LOG_HIDDEN = "output hidden by no_log"


def without_warnings(text: str) -> list[str]:
    """The lines of ``text`` less Python warnings (``x.py:12: DeprecationWarning: ...`` and the
    indented source line the warnings module prints under one)."""
    kept: list[str] = []
    skip_source = False
    for line in text.splitlines():
        if _PY_WARNING.match(line):
            skip_source = True
            continue
        if skip_source and line.startswith((" ", "\t")):
            skip_source = False
            continue
        skip_source = False
        if line.strip():
            kept.append(line)
    return kept


def task_name(name: str) -> str:
    """A task name as shown: Ansible renders a name whose variable is undefined when the task
    starts as ``<< error 1 - 'x' is undefined >>``; that part is dropped (and brackets it leaves empty)."""
    clean = _NAME_ERROR.sub("", name)
    return re.sub(r"\s*\(\s*\)", "", clean).strip() or name


def censored_reason(event_stdout: str) -> str:
    """Why a ``no_log`` task failed, without what no_log hides: Ansible's reason category from
    the display line of the event (``[ERROR]: Task failed: Module failed: non-zero return code``)
    and, after it, only an undefined variable or attribute name. Never the task's own message or
    output (a ``fail`` message or a command's stderr may hold the secret)."""
    text = _ANSI.sub("", str(event_stdout or ""))
    found = re.search(r"\[ERROR\]: Task failed: ([^\r\n]*)", text)
    if not found:
        return NO_LOG_HIDDEN
    category, _, detail = found.group(1).strip().partition(": ")
    if not _NO_LOG_CATEGORY.match(category):
        return NO_LOG_HIDDEN
    names = _NO_LOG_DETAIL.findall(detail)
    return f"{category}{': ' + names[-1] if names else ''} ({NO_LOG_HIDDEN})"


def _message(res: Any, limit: int = 400, event_stdout: str = "") -> str:
    if not isinstance(res, dict):
        return str(res)[:limit]
    if "censored" in res:  # no_log: the result is hidden; say why it failed, safely
        return censored_reason(event_stdout)[:limit]
    failed_items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if failed_items:
        return _message(failed_items[0], limit)
    msg = " ".join(without_warnings(str(res.get("msg") or ""))).strip()
    detail = without_warnings(str(res.get("stderr") or res.get("module_stderr") or ""))
    if detail:
        last = detail[-1].strip()
        msg = f"{msg}: {last}" if msg and last not in msg else last
    return (msg or "failed").replace("\n", " ")[:limit]


class EventCollector:
    """Turns ansible-runner events into progress lines, per-host stats and failures."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stats: dict[str, HostStats] = {}
        self.failures: list[Failure] = []
        self.data: dict[str, Any] = {}
        self.roles: dict[str, list[str]] = {}
        self.changed_tasks: dict[str, list[str]] = {}
        self._task: str | None = None
        self._task_started = 0.0
        self._counts: dict[str, int] = {}
        self._stdout: list[str] = []
        self._censored: dict[str, str] = {}  # per task: the reason a no_log failure gave (shown once)

    def feed(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind in _TASK_EVENTS:
            self._flush()
            role = data.get("role")
            name = task_name(str(data.get("task") or data.get("task_action") or "task"))
            self._task = f"{role} : {name}" if role and not name.startswith(f"{role} : ") else name
            self._task_started = time.monotonic()
        elif kind == "runner_on_start":
            self.progress.current(f"{self._task} [{data.get('host')}]")
        elif kind in _RESULT_EVENTS:
            self._result(_RESULT_EVENTS[kind], data, event.get("stdout") or "")
        elif kind == "playbook_on_stats":
            self._flush()
            self._stats(data)
        elif kind in ("verbose", "error") or (not kind and event.get("stdout")):
            lines = without_warnings(_ANSI.sub("", str(event.get("stdout") or "")))
            if lines:
                self._stdout = (self._stdout + lines)[-5:]
        return True

    def _result(self, status: str, data: dict[str, Any], event_stdout: str) -> None:
        host = str(data.get("host"))
        res = data.get("res") or {}
        role = data.get("role")
        if role and status != "skipped" and role not in self.roles.setdefault(host, []):
            self.roles[host].append(str(role))
        if status == "ok" and isinstance(res, dict) and res.get("changed"):
            status = "changed"
        elif status == "ok" and isinstance(res, dict) and "censored" in res:
            # no_log hides the result, ``changed`` included; the display line still says it
            status = "changed" if str(event_stdout).lstrip().startswith("changed") else "ok"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        task = self._task or str(data.get("task"))
        if status == "changed" and task not in self.changed_tasks.setdefault(host, []):
            self.changed_tasks[host].append(task)
        self._counts[status] = self._counts.get(status, 0) + 1
        if status in ("failed", "unreachable"):
            message = _message(res, event_stdout=event_stdout)
            if message == NO_LOG_HIDDEN and self._censored.get(task):  # Ansible shows the reason once per task
                message = self._censored[task]
            elif isinstance(res, dict) and "censored" in res and message != NO_LOG_HIDDEN:
                self._censored.setdefault(task, message)
            failure = Failure(host, task, message, status == "unreachable")
            self.failures.append(failure)
            self.progress.warn(failure.describe())

    def _flush(self) -> None:
        if self._task is None:
            return
        if not self._counts:  # meta tasks and tasks no host ran: nothing to report
            self._task = None
            return
        order = ("failed", "unreachable", "changed", "ok", "ignored", "skipped")
        status = " ".join(f"{k}={self._counts[k]}" for k in order if self._counts.get(k)) or "no hosts"
        self.progress.advance(self._task, status, elapsed=time.monotonic() - self._task_started)
        self._task, self._counts = None, {}

    def _stats(self, data: dict[str, Any]) -> None:
        fields = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
                  "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}
        for key, attr in fields.items():
            for host, count in (data.get(key) or {}).items():
                setattr(self.stats.setdefault(host, HostStats()), attr, count)
        self.data = dict(data.get("artifact_data") or {})
        for host in sorted(self.stats):
            self.progress.info(f"    {host:<24} {self.stats[host]}")

    def tail(self) -> str:
        return " | ".join(self._stdout) or "no output"

    def result(self, **kwargs: Any) -> AnsibleResult:
        return AnsibleResult(stats=self.stats, failures=self.failures, data=self.data, roles=self.roles,
                             changed_tasks=self.changed_tasks, **kwargs)


class AnsibleRunError(AnsibleError):
    """Some hosts failed or were unreachable; ``lines()`` names each host and task."""

    def __init__(self, result: AnsibleResult) -> None:
        self.result = result
        failures = result.host_failures()
        total = len(result.stats)
        total = max(total, len(set(result.stats) | set(result.expected)))
        self.header = f"ansible: {len(failures)} of {total} host{'s' if total != 1 else ''} failed"
        message = f"{self.header}: {failures[0].describe()}" if len(failures) == 1 else self.header
        hint = "fix the host (or the blueprint) and run again: hosts that converged report no changes"
        if result.artifacts:
            hint += f"; details under {result.artifacts}"
        super().__init__(message, hint=hint)

    def lines(self) -> list[str]:
        failures = self.result.host_failures()
        if len(failures) <= 1:
            return [self.message]
        return [f"{self.header}:"] + [f"  {f.describe()}" for f in failures]
