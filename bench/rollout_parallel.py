"""``python -m bench.rollout_parallel``: a rollout of N independent sandbox environments at once vs
the same N environments one after another.

Each environment is a small AWS blueprint (one node pool, two zones) in the same region with its
own VPC range, applied with the real terraform and AWS provider against the sandbox emulator.
Parallel: ``infra up ROLLOUT --sandbox --auto-approve`` (``max_parallel: N``). Sequential: ``infra
up ENV --sandbox --auto-approve`` for each in turn. Each side runs in a fresh project whose
emulator is started before the clock (``infra sandbox start``); both are torn down with ``down``
afterwards (not timed). Reports wall times and parallel / sequential against the goal
(<= 1.3 / N). Needs terraform and a provider mirror (``INFRA_TF_PLUGIN_MIRROR`` or
``scripts/find-tf-mirror``). A benchmark, not a test: nothing fails on a slow result.

Options: ``--envs 2,4`` (the N to measure), ``--json FILE`` (also write the numbers).
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
import time
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


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run([_infra(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: infra {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")
    return seconds


def scenario(count: int, work: Path, tf_mirror: str) -> dict:
    """Seconds for N environments up at once (a rollout) and one after another."""
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror}
    env.pop("INFRA_STATE_DIR", None)
    result: dict = {"envs": count}
    for mode in ("sequential", "parallel"):
        folder = work / f"{mode}-{count}"
        names = _project(folder, count)
        _run(["sandbox", "start"], folder, env)
        try:
            if mode == "parallel":
                seconds = _run(["up", "rollout.yaml", "--sandbox", "--auto-approve"], folder, env)
                _run(["down", "rollout.yaml", "--sandbox", "--auto-approve"], folder, env)
            else:
                seconds = sum(_run(["up", f"{n}.yaml", "--sandbox", "--auto-approve"], folder, env) for n in names)
                for n in names:
                    _run(["down", f"{n}.yaml", "--sandbox", "--auto-approve"], folder, env)
        finally:
            subprocess.run([_infra(), "sandbox", "stop"], cwd=folder, env=env, capture_output=True)
        result[mode] = round(seconds, 1)
        print(f"  {count} environments, {mode}: {seconds:.1f}s", file=sys.stderr)
    return result


def table(results: list[dict]) -> str:
    lines = ["| environments | one after another | rollout (parallel) | parallel / sequential | goal |",
             "|---:|---:|---:|---:|---:|"]
    for r in results:
        ratio, goal = r["parallel"] / r["sequential"], 1.3 / r["envs"]
        verdict = "meets" if ratio <= goal else "misses"
        lines.append(f"| {r['envs']} | {r['sequential']:.1f} s | {r['parallel']:.1f} s | {ratio:.2f} | "
                     f"<= {goal:.2f}: {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="2", help="environment counts to measure (default 2; e.g. 2,4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    tf_mirror = mirror()
    if shutil.which("terraform") is None or tf_mirror is None:
        print("bench: needs terraform and a provider mirror (INFRA_TF_PLUGIN_MIRROR)", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.envs.split(",")]
    print(f"rollout bench: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, N = {counts}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="infra-bench-rollout-") as tmp:
        results = [scenario(c, Path(tmp), tf_mirror) for c in counts]
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(),
              "load": [round(x, 2) for x in os.getloadavg()], "results": results}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
