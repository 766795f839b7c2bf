"""The rollout scheduler with fake per-environment runs (the scheduler itself is the real one):
dependency order, the ``max_parallel`` bound, ``down`` in reverse, ``on_failure``, cancel."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from orchestrator.blueprint.rollout import Rollout, RolloutEnv
from orchestrator.errors import TerraformError
from orchestrator.rollout.scheduler import EnvResult, schedule


def _rollout(spec: dict[str, tuple[str, ...]], max_parallel: int = 4, on_failure: str = "stop") -> Rollout:
    envs = [RolloutEnv(name, Path(f"{name}.yaml"), after, "aws") for name, after in spec.items()]
    return Rollout("t", envs, max_parallel, on_failure)


class Fake:
    """Per-environment run: sleeps, notes start/end, fails the names in ``fail``."""

    def __init__(self, seconds: float = 0.05, fail: tuple[str, ...] = (), gate: threading.Event | None = None):
        self.seconds, self.fail, self.gate = seconds, fail, gate
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.peak = 0

    def __call__(self, env: RolloutEnv, status) -> EnvResult:
        with self.lock:
            self.events.append(("start", env.name))
            self.running += 1
            self.peak = max(self.peak, self.running)
        status("working")
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.events.append(("end", env.name))
        if env.name in self.fail:
            raise TerraformError(f"{env.name}: apply failed")
        return EnvResult(env.name, result="success", record_id=f"id-{env.name}",
                         changes={"has_changes": True, "add": 1, "change": 0, "destroy": 0})


def _index(events, kind, name):
    return events.index((kind, name))


def test_dependents_start_after_their_dependencies_and_independents_overlap() -> None:
    fake = Fake(seconds=0.2)
    ro = _rollout({"onprem": (), "burst": ("onprem",), "other": ()})
    results = schedule(ro, fake)
    assert [(r.name, r.result, r.record_id) for r in results] == [
        ("onprem", "success", "id-onprem"), ("burst", "success", "id-burst"), ("other", "success", "id-other")]
    ev = fake.events
    assert _index(ev, "start", "burst") > _index(ev, "end", "onprem")
    assert _index(ev, "start", "other") < _index(ev, "end", "onprem")  # overlapped
    by = {r.name: r for r in results}
    assert by["other"].started < by["onprem"].finished and by["burst"].started >= by["onprem"].finished


def test_never_more_than_max_parallel_at_once() -> None:
    fake = Fake(seconds=0.1)
    results = schedule(_rollout({f"e{i}": () for i in range(7)}, max_parallel=3), fake)
    assert fake.peak == 3
    assert [r.result for r in results] == ["success"] * 7
    fake1 = Fake(seconds=0.02)
    schedule(_rollout({f"e{i}": () for i in range(4)}, max_parallel=1), fake1)
    assert fake1.peak == 1


def test_down_runs_in_reverse_order() -> None:
    fake = Fake()
    schedule(_rollout({"base": (), "mid": ("base",), "top": ("mid",)}), fake, reverse=True)
    assert [name for kind, name in fake.events if kind == "start"] == ["top", "mid", "base"]


def test_on_failure_stop_starts_nothing_new() -> None:
    fake = Fake(fail=("a",))
    ro = _rollout({"a": (), "b": ("a",), "c": ("b",), "d": ()}, max_parallel=1, on_failure="stop")
    results = {r.name: r for r in schedule(ro, fake)}
    assert results["a"].result == "failed" and results["a"].error == "a: apply failed"
    assert results["a"].code == 3
    assert (results["b"].result, results["c"].result, results["d"].result) == ("not-started",) * 3
    assert [n for k, n in fake.events if k == "start"] == ["a"]


def test_on_failure_continue_runs_what_does_not_depend_on_the_failure() -> None:
    fake = Fake(fail=("a",))
    ro = _rollout({"a": (), "b": ("a",), "c": ("b",), "d": ()}, max_parallel=1, on_failure="continue")
    results = {r.name: r for r in schedule(ro, fake)}
    assert {n: r.result for n, r in results.items()} == {
        "a": "failed", "b": "skipped", "c": "skipped", "d": "success"}
    assert results["c"].error == "b did not succeed"


def test_cancel_lets_running_environments_finish_and_starts_no_more() -> None:
    gate = threading.Event()
    fake = Fake(seconds=0.05, gate=gate)
    cancel = threading.Event()
    ro = _rollout({"a": (), "b": (), "c": (), "d": ("a",)}, max_parallel=2)
    out: list = []
    t = threading.Thread(target=lambda: out.extend(schedule(ro, fake, cancel=cancel)))
    t.start()
    deadline = time.monotonic() + 5
    while len(fake.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    cancel.set()  # what Ctrl-C sets
    gate.set()
    t.join(10)
    results = {r.name: r.result for r in out}
    assert results == {"a": "success", "b": "success", "c": "cancelled", "d": "cancelled"}
    assert sorted(n for k, n in fake.events if k == "end") == ["a", "b"]


def test_status_lines_report_start_progress_and_end() -> None:
    lines: list[tuple[str, str, bool]] = []
    lock = threading.Lock()

    def status(name: str, text: str, milestone: bool) -> None:
        with lock:
            lines.append((name, text, milestone))

    schedule(_rollout({"a": ()}), Fake(fail=("a",)), status=status)
    assert lines == [("a", "starting", True), ("a", "working", False), ("a", "failed: a: apply failed", True)]
