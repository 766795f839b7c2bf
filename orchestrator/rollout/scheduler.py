"""Run a rollout's environments: dependency order, at most ``max_parallel`` at once.

``schedule`` knows nothing of Terraform: it calls ``run_one(env, status)`` for each environment
in a worker thread (``runner.env_runner`` makes the real one; tests pass fakes of that per-environment
run). An environment starts once everything it comes after has succeeded; ``down`` reverses the
order. When one fails, ``on_failure: stop`` starts nothing new (running ones finish), ``continue``
goes on with every environment that does not depend on the failed one. ``cancel`` (set on Ctrl-C)
starts nothing new and lets the running environments finish, so they save their state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ..blueprint.rollout import Rollout, RolloutEnv
from .graph import deps

OK = ("success", "no-changes", "drift")  # drift: `infra drift` ran and found some (exit 2)
Status = Callable[[str, str, bool], None]  # (environment, one-line state, a milestone: start/end)


@dataclass
class EnvResult:
    name: str
    provider: str = ""
    result: str = "not-started"  # success, no-changes, drift, failed, cancelled, interrupted, skipped, not-started
    started: float | None = None  # time.time()
    finished: float | None = None
    changes: dict[str, Any] | None = None  # {"add", "change", "destroy", "by_type"} when a plan ran
    record_id: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the render's file counts, drift
    code: int = 0  # the exit code of a failure (docs/exit-codes.md); not in the record

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def as_json(self) -> dict[str, Any]:
        return {"environment": self.name, "provider": self.provider, "result": self.result,
                "started": self.started, "finished": self.finished, "duration_s": _round(self.duration),
                "changes": self.changes, "record": self.record_id, "error": self.error, **self.extra}


RunOne = Callable[[RolloutEnv, Callable[[str], None]], EnvResult]


def schedule(
    rollout: Rollout,
    run_one: RunOne,
    *,
    reverse: bool = False,
    cancel: threading.Event | None = None,
    status: Status | None = None,
) -> list[EnvResult]:
    """Run every environment once its dependencies succeeded; results in the rollout's order."""
    cancel = cancel if cancel is not None else threading.Event()
    say = status or (lambda name, text, milestone: None)
    need = deps(rollout, reverse)
    envs = {e.name: e for e in rollout.environments}
    results = {e.name: EnvResult(e.name, e.provider) for e in rollout.environments}
    pending = [e.name for e in rollout.environments]
    running: dict[Future, str] = {}
    stopping = False
    with ThreadPoolExecutor(max_workers=rollout.max_parallel, thread_name_prefix="rollout") as pool:
        while pending or running:
            if not (stopping or cancel.is_set()):
                _start_ready(pending, need, results, rollout.max_parallel - len(running),
                             lambda name: running.__setitem__(
                                 pool.submit(_one, run_one, envs[name], results[name], say), name), say)
            if not running:
                break
            try:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                cancel.set()
                for name in pending:
                    say(name, "not started (interrupted)", True)
                continue
            for fut in done:
                name = running.pop(fut)
                if results[name].result not in OK and rollout.on_failure == "stop":
                    stopping = True
    for name in pending:
        results[name].result = "cancelled" if cancel.is_set() else "not-started"
    return [results[e.name] for e in rollout.environments]


def _start_ready(pending: list[str], need: dict[str, set[str]], results: dict[str, EnvResult], free: int,
                 start: Callable[[str], None], say: Status) -> None:
    """Skip what depends on a failure (repeatedly: skips cascade), then start what is ready."""
    changed = True
    while changed:
        changed = False
        for name in list(pending):
            failed = [d for d in sorted(need[name]) if results[d].result not in (*OK, "not-started")]
            if failed:
                pending.remove(name)
                results[name].result = "skipped"
                results[name].error = f"{failed[0]} did not succeed"
                say(name, f"skipped: {failed[0]} did not succeed", True)
                changed = True
    for name in list(pending):
        if free <= 0:
            return
        if all(results[d].result in OK for d in need[name]):
            pending.remove(name)
            say(name, "starting", True)
            start(name)
            free -= 1


def _one(run_one: RunOne, env: RolloutEnv, slot: EnvResult, say: Status) -> None:
    slot.started = time.time()
    try:
        got = run_one(env, lambda text: say(env.name, text, False))
        slot.result, slot.changes, slot.record_id, slot.error = got.result, got.changes, got.record_id, got.error
        slot.code = got.code
        slot.extra.update(got.extra)
    except BaseException as exc:  # a worker must never die silently
        from ..errors import InfraError

        slot.result, slot.code = "failed", exc.exit_code if isinstance(exc, InfraError) else 1
        slot.error = exc.message if isinstance(exc, InfraError) else f"{type(exc).__name__}: {exc}"
    finally:
        slot.finished = time.time()
        say(env.name, slot.result + (f": {slot.error.splitlines()[0]}" if slot.error else ""), True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
