"""Alternating pairs: A B A B ... in one run, so that a machine whose load drifts (other jobs,
thermal state, page cache) slows both sides of a pair alike. Each pair gives one ratio A / B;
the report is the median ratio with its min and max, beside each side's median time.

Wall time is what a user waits; CPU time (user + system of this process and every child it
waited for: infra, terraform, its provider plugins) is reported beside it, because on a shared
machine wall time also measures everyone else's load. The emulator (``infra sandbox start``)
is no child of the timed commands: its CPU counts in neither.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Pairs:
    """``a[i]`` and ``b[i]`` (seconds) were measured one right after the other."""

    label_a: str
    label_b: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    a_cpu: list[float] = field(default_factory=list)
    b_cpu: list[float] = field(default_factory=list)
    goal: float | None = None  # A / B at most this (None: no goal, just the numbers)
    note: str = ""

    def add(self, a: tuple[float, float], b: tuple[float, float]) -> None:
        """One pair: ``(wall, cpu)`` seconds of A, then of B."""
        self.a.append(a[0])
        self.a_cpu.append(a[1])
        self.b.append(b[0])
        self.b_cpu.append(b[1])

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(x / y for x, y in zip(self.a_cpu, self.b_cpu, strict=True))

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        return f"<= {self.goal:g}: {'meets' if self.ratio <= self.goal else 'MISSES'}"

    def summary(self) -> dict:
        return {"a": self.label_a, "b": self.label_b, "pairs": len(self.a), "a_s": self.a, "b_s": self.b,
                "a_cpu_s": self.a_cpu, "b_cpu_s": self.b_cpu, "ratio_median": self.ratio,
                "ratio_min": min(self.ratios), "ratio_max": max(self.ratios), "cpu_ratio_median": self.cpu_ratio,
                "goal": self.goal, "note": self.note}


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it has waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of ``fn()``."""
    cpu, started = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - started, cpu_seconds() - cpu


def command(args: list[str], cwd: Path, env: Mapping[str, str] | None = None,
            ok: tuple[int, ...] = (0,)) -> Callable[[], subprocess.CompletedProcess]:
    """A callable that runs ``args`` and fails loudly on an unexpected exit code."""

    def run() -> subprocess.CompletedProcess:
        proc = subprocess.run(args, cwd=cwd, env=None if env is None else dict(env), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        if proc.returncode not in ok:
            raise SystemExit(f"bench: {' '.join(args)} exited {proc.returncode} (in {cwd}):\n"
                             f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return proc

    return run


def alternate(pairs: Pairs, a: Callable[[], object], b: Callable[[], object], count: int,
              warmup: bool = True) -> Pairs:
    """``count`` pairs of ``a`` then ``b`` (after one untimed run of each when ``warmup``)."""
    if warmup:
        a()
        b()
    for _ in range(count):
        pairs.add(timed(a), timed(b))
    return pairs


def ms_or_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def table(rows: list[Pairs]) -> str:
    lines = ["| A | B | pairs | A median | B median | A / B median | min | max | goal | CPU: A | CPU: B | "
             "CPU A / B |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for p in rows:
        lines.append(f"| {p.label_a} | {p.label_b} | {len(p.a)} | {ms_or_s(statistics.median(p.a))} | "
                     f"{ms_or_s(statistics.median(p.b))} | **{p.ratio:.2f}** | {min(p.ratios):.2f} | "
                     f"{max(p.ratios):.2f} | {p.verdict} | {ms_or_s(statistics.median(p.a_cpu))} | "
                     f"{ms_or_s(statistics.median(p.b_cpu))} | {p.cpu_ratio:.2f} |")
    notes = [f"- {p.label_a} / {p.label_b}: {p.note}" for p in rows if p.note]
    return "\n".join(lines + ([""] + notes if notes else []))
