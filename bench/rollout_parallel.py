"""``python -m bench.rollout_parallel``: a rollout of N independent sandbox environments at once vs
the same N environments one after another.

Each environment is a small AWS blueprint (one node pool, two zones) in the same region with its
own VPC range, applied with the real terraform and AWS provider against the sandbox emulator.
Parallel: ``infra up ROLLOUT --sandbox --auto-approve`` (``max_parallel: N``). Sequential: ``infra
up ENV --sandbox --auto-approve`` for each in turn. Alternating pairs (sequential, then the
rollout, ``--pairs`` times): each side has its own project whose emulator is started before the
clock (``infra sandbox start``), and is torn down with ``down`` after each run (not timed).
Reports the median of rollout / sequential (min, max) against the goal (<= 1.3 / N), wall and CPU.
Needs terraform and a provider mirror (``INFRA_TF_PLUGIN_MIRROR`` or ``scripts/find-tf-mirror``).
A benchmark, not a test: nothing fails on a slow result.

Options: ``--envs 2,4`` (the N to measure), ``--pairs 5``, ``--json FILE`` (also write the numbers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BLUEPRINT = """blueprint: 1
name: {name}
provider: aws
region: us-east-1
network: {{cidr: 10.{octet}.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 2}}
kubernetes: {{private_access: {{via: inside_network}}}}
"""


def _infra() -> str:
    beside = Path(sys.executable).with_name("infra")
    return str(beside) if beside.is_file() else (shutil.which("infra") or sys.exit("bench: no `infra` script"))


def mirror() -> str | None:
    found = os.environ.get("INFRA_TF_PLUGIN_MIRROR")
    if found:
        return found
    proc = subprocess.run([str(REPO / "scripts" / "find-tf-mirror")], capture_output=True, text=True)
    return proc.stdout.strip() or None


def _project(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True)
    names = [f"bench-{i + 1}" for i in range(count)]
    for i, name in enumerate(names):
        (folder / f"{name}.yaml").write_text(BLUEPRINT.format(name=name, octet=40 + i))
    envs = "".join(f"  - path: {name}.yaml\n" for name in names)
    (folder / "rollout.yaml").write_text(f"rollout: 1\nname: bench\nenvironments:\n{envs}max_parallel: {count}\n")
    return names


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([_infra(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"bench: infra {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")


def scenario(count: int, work: Path, tf_mirror: str, pairs: int = 1, log=None) -> dict:
    """``pairs`` alternating pairs: N environments one after another (A), then at once (B).

    Each side has its own project and emulator, started before the clock; the ``down`` after
    each side is not timed. Returns the wall and CPU seconds of each side, pair by pair."""
    from bench.paired import Pairs, timed

    log = log or (lambda m: print(m, file=sys.stderr))
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror}
    env.pop("INFRA_STATE_DIR", None)
    folders = {mode: work / f"{mode}-{count}" for mode in ("sequential", "parallel")}
    names = {mode: _project(folder, count) for mode, folder in folders.items()}
    result = Pairs(f"{count} environments one after another", f"a rollout of {count} (max_parallel: {count})")
    seq, par = folders["sequential"], folders["parallel"]
    for folder in folders.values():
        _run(["sandbox", "start"], folder, env)
    failed: list[str] = []
    try:
        while len(result.a) < pairs:
            i = len(result.a)
            try:
                a = timed(lambda: [_run(["up", f"{n}.yaml", "--sandbox", "--auto-approve"], seq, env)
                                   for n in names["sequential"]])
                for n in names["sequential"]:
                    _run(["down", f"{n}.yaml", "--sandbox", "--auto-approve"], seq, env)
                b = timed(lambda: _run(["up", "rollout.yaml", "--sandbox", "--auto-approve"], par, env))
                _run(["down", "rollout.yaml", "--sandbox", "--auto-approve"], par, env)
            except SystemExit as exc:  # a failed run: the pair is dropped, both sides torn down, run again
                failed.append(str(exc).splitlines()[0].removeprefix("bench: ")[:160])
                log(f"  rollout pair {i + 1} failed ({failed[-1]}); cleaning up, running it again")
                if len(failed) > pairs:
                    raise
                for folder, files in ((seq, [f"{n}.yaml" for n in names["sequential"]]), (par, ["rollout.yaml"])):
                    for file in files:
                        subprocess.run([_infra(), "down", file, "--sandbox", "--auto-approve"], cwd=folder, env=env,
                                       capture_output=True)
                continue
            result.add(a, b)
            log(f"  rollout pair {i + 1}/{pairs}, {count} environments: one after another {a[0]:.1f}s, "
                f"at once {b[0]:.1f}s ({b[0] / a[0]:.2f})")
        if failed:
            result.note = f"{len(failed)} pair(s) failed and were run again (not counted): " + "; ".join(failed)
    finally:
        for folder in folders.values():
            subprocess.run([_infra(), "sandbox", "stop"], cwd=folder, env=env, capture_output=True)
    # parallel / sequential is what the goal is about: B / A of these pairs
    return {"envs": count, "pairs": result}


def table(results: list[dict]) -> str:
    import statistics

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    lines = ["| environments | pairs | one after another (median) | rollout (median) | rollout / sequential "
             "median | min | max | goal | CPU: sequential | CPU: rollout | CPU floor |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = r["pairs"]
        ratios = [b / a for a, b in zip(p.a, p.b, strict=True)]
        ratio, goal = statistics.median(ratios), 1.3 / r["envs"]
        # the least a rollout can take on these cores: its own CPU spread over all of them
        floor = statistics.median(cpu / cores / wall for cpu, wall in zip(p.b_cpu, p.a, strict=True))
        lines.append(f"| {r['envs']} | {len(p.a)} | {statistics.median(p.a):.1f} s | {statistics.median(p.b):.1f} s | "
                     f"**{ratio:.2f}** | {min(ratios):.2f} | {max(ratios):.2f} | <= {goal:.2f}: "
                     f"{'meets' if ratio <= goal else 'MISSES'} | {statistics.median(p.a_cpu):.1f} s | "
                     f"{statistics.median(p.b_cpu):.1f} s | {floor:.2f} |")
    notes = [f"- {r['envs']} environments: {r['pairs'].note}" for r in results if r["pairs"].note]
    lines += ["", f"*CPU* is infra's process tree (infra, terraform, the provider plugins; not the emulator, "
                  f"which also runs on these {cores} cores). *CPU floor*: the rollout's CPU spread over all "
                  f"{cores} cores, as a fraction of the sequential wall time: no schedule can go below it here."]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="2", help="environment counts to measure (default 2; e.g. 2,4)")
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs per N (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    tf_mirror = mirror()
    if shutil.which("terraform") is None or tf_mirror is None:
        print("bench: needs terraform and a provider mirror (INFRA_TF_PLUGIN_MIRROR)", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.envs.split(",")]
    print(f"rollout bench: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, N = {counts}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="infra-bench-rollout-") as tmp:
        results = [scenario(c, Path(tmp), tf_mirror, args.pairs) for c in counts]
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(),
              "load": [round(x, 2) for x in os.getloadavg()],
              "results": [{"envs": r["envs"], **r["pairs"].summary()} for r in results]}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
