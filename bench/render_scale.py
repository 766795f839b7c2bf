"""``python -m bench.render_scale``: render N environments of 8 node pools in one process.

A GitOps repository renders every environment on every pull request. This writes N generated
AWS blueprints (8 pools: a system pool, CPU pools and L4 GPU pools, one of them for inference;
3 zones; 3 teams with GPU quotas; one ONNX model; S3 state) to a folder and measures, each in a
fresh process:

* ``render``: ``orchestrator.render.render_files`` of every environment, one after another, in
  one process (blueprints loaded first, not timed here; each result dropped once counted, as
  ``infra render`` drops it once written), and that process's peak RSS (``VmHWM``);
* ``load``: ``blueprint.loader.load`` with the checks ``validate`` and ``render`` run (YAML with
  positions, the model, the semantic rules and the placement proof), same process;
* ``infra render DIR --out OUT``: the command end to end (start-up, load and check every
  blueprint, render, write), its wall time and peak RSS.

Goal (issue 24): 200 environments render in < 2 s, linearly, with a peak under 500 MB.
Options: ``--envs 1,10,100,200``, ``--runs 3``, ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POOLS = 8
GOAL_S, GOAL_MIB, GOAL_ENVS = 2.0, 500.0, 200


def blueprint(i: int, pools: int = POOLS, teams: int = 3) -> dict:
    node_pools = [{"name": "system", "instance_type": "m6i.xlarge", "min": 2, "max": 6}]
    for p in range(1, pools):
        if p % 2:
            pool = {"name": f"gpu-{p}", "instance_type": "g6.xlarge", "gpu": {"type": "l4", "count": 1},
                    "min": 0, "max": 4, "labels": {"tier": "gpu"}}
            if p == 1:
                pool["purpose"] = "inference"
        else:
            pool = {"name": f"cpu-{p}", "instance_type": "m6i.large", "min": 1, "max": 3}
        node_pools.append(pool)
    return {
        "blueprint": 1, "name": f"env-{i:03d}", "provider": "aws", "region": "us-east-1",
        "tags": {"cost-center": f"cc-{i % 7}"},
        "network": {"cidr": f"10.{i % 250}.0.0/16", "zones": 3},
        "kubernetes": {"private_access": {"via": "inside_network"}},
        "node_pools": node_pools,
        "teams": [{"name": f"team-{t}", "gpu_quota": 2, "borrowing_limit": 1, "groups": [f"team-{t}-devs"],
                   "members": [f"arn:aws:iam::123456789012:role/team-{t}-env-{i}"]} for t in range(teams)],
        "inference": {"runtime": "onnx", "models": [
            {"name": "resnet", "uri": f"s3://models-{i}/resnet50.onnx", "replicas": 1, "gpu": 1, "team": "team-0"}]},
        "state": {"backend": "s3", "bucket": f"tf-state-{i}"},
    }


def write_blueprints(folder: Path, count: int) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"env-{i:03d}.yaml").write_text(yaml.safe_dump(blueprint(i), sort_keys=False))
    return folder


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(folder: Path) -> dict:
    """In this (fresh) process: load every blueprint, then render each; times and peak RSS."""
    from orchestrator.blueprint.loader import load
    from orchestrator.providers.registry import get
    from orchestrator.render import render_files
    from orchestrator.render.kubernetes.placement import CHECKS

    files = sorted(folder.glob("*.yaml"))
    started = time.perf_counter()
    models = [load(path, checks=CHECKS).model for path in files]
    load_s = time.perf_counter() - started
    count = size = 0
    cpu, started = time.process_time(), time.perf_counter()
    for model in models:
        rendered = render_files(model, get(model.provider))
        count += sum(len(part) for part in rendered.values())
        size += sum(len(text) for part in rendered.values() for text in part.values())
        del rendered
    render_s, render_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {"envs": len(files), "load_s": load_s, "render_s": render_s, "render_cpu_s": render_cpu_s,
            "files": count, "chars": size,
            "peak_mib": _hwm_mib()}


_HWM_PROBE = """
import atexit, sys
def _report(path=sys.argv.pop(1)):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(_report)
sys.argv[0] = "infra"
from orchestrator.cli.main import run
run()
"""


def infra_peak(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, the process's own ``VmHWM``) of ``infra ARGS``, run in a
    fresh interpreter exactly as the console script runs it."""
    with tempfile.NamedTemporaryFile(prefix="infra-hwm-") as out:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _HWM_PROBE, out.name, *args], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"bench: infra {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return seconds, int(Path(out.name).read_text()) / 1024


def measure(counts: list[int], runs: int, work: Path, log=lambda m: print(m, file=sys.stderr)) -> list[dict]:
    results = []
    for count in counts:
        folder = write_blueprints(work / f"envs-{count}", count)
        samples = []
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-m", "bench.render_scale", "--child", str(folder)], cwd=REPO,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"bench: render of {count} environments failed:\n{proc.stderr[-3000:]}")
            samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        cli = [infra_peak(["render", str(folder), "--out", str(work / f"out-{count}-{i}")], work)
               for i in range(runs)]
        result = {
            "envs": count, "pools": POOLS, "runs": runs,
            "render_s": statistics.median(s["render_s"] for s in samples),
            "render_s_all": [round(s["render_s"], 3) for s in samples],
            "render_cpu_s": statistics.median(s["render_cpu_s"] for s in samples),
            "load_s": statistics.median(s["load_s"] for s in samples),
            "peak_mib": max(s["peak_mib"] for s in samples),
            "files": samples[0]["files"], "chars": samples[0]["chars"],
            "cli_s": statistics.median(c[0] for c in cli), "cli_peak_mib": max(c[1] for c in cli),
        }
        log(f"  render {count} x {POOLS} pools: render {result['render_s']:.2f}s, load+checks "
            f"{result['load_s']:.2f}s, peak {result['peak_mib']:.0f} MiB; infra render DIR {result['cli_s']:.2f}s "
            f"(peak {result['cli_peak_mib']:.0f} MiB)")
        results.append(result)
    return results


def table(results: list[dict]) -> str:
    lines = ["| environments | render (median) | its CPU | per environment | load + checks | peak RSS | "
             "`infra render DIR` | its peak RSS | files | MB rendered |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['envs']} | {r['render_s']:.2f} s | {r['render_cpu_s']:.2f} s | "
                     f"{r['render_s'] / r['envs'] * 1000:.1f} ms | "
                     f"{r['load_s']:.2f} s | {r['peak_mib']:.0f} MiB | {r['cli_s']:.2f} s | "
                     f"{r['cli_peak_mib']:.0f} MiB | {r['files']} | {r['chars'] / 1e6:.0f} |")
    at_goal = [r for r in results if r["envs"] == GOAL_ENVS]
    if at_goal:
        r = at_goal[0]
        time_ok, mem_ok = r["render_s"] < GOAL_S, r["peak_mib"] < GOAL_MIB
        cpu_ok = r["render_cpu_s"] < GOAL_S
        lines += ["", f"Goal: {GOAL_ENVS} environments in < {GOAL_S:g} s ({'meets' if time_ok else 'MISSES'}: "
                      f"{r['render_s']:.2f} s wall; {'meets' if cpu_ok else 'MISSES'} in CPU time: "
                      f"{r['render_cpu_s']:.2f} s), peak < {GOAL_MIB:g} MB ({'meets' if mem_ok else 'MISSES'}: "
                      f"{r['peak_mib'] * 1.048576:.0f} MB)."]
        smallest = min(results, key=lambda x: x["envs"])
        if smallest["envs"] < r["envs"]:
            per_small = smallest["render_s"] / smallest["envs"]
            per_big = r["render_s"] / r["envs"]
            lines.append(f"Per environment: {per_small * 1000:.1f} ms at {smallest['envs']}, "
                         f"{per_big * 1000:.1f} ms at {r['envs']} (x{per_big / per_small:.2f}; 1.00 is linear, "
                         "below it the one-off costs of the first render are spread).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="1,10,100,200", help="environment counts (default 1,10,100,200)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per count (default 3)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="infra-bench-render-") as tmp:
        results = measure([int(c) for c in args.envs.split(",")], args.runs, Path(tmp))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    sys.exit(main())
