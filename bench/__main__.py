"""``python -m bench``: measure, print a table, write docs/benchmarks.md.

(a) ``infra --help`` wall time, (b) ``infra validate examples/sandbox.yaml`` wall time, both
as subprocesses of the installed console script; (c) ``render_files`` in process on generated
blueprints of 1, 10 and 50 node pools with 50 teams; (d) peak RSS of ``infra render``; and the
import profile of the CLI module (``python -X importtime``); (e) the Ansible configure stage on
1 vs 4 SSH test hosts, first vs second run (``bench/ansible_fanout.py``; ``--no-ansible`` skips
it); (f) a rollout of 2 and of 4 sandbox environments at once vs one after another
(``bench/rollout_parallel.py``; ``--no-rollout`` skips it). Benchmarks, not tests: nothing here
fails on a slow result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sandbox.yaml"
HELP_TARGET_MS = 200.0
HEAVY = ("jinja2", "pydantic", "rich", "yaml", "boto3", "botocore", "kubernetes", "ansible_runner", "moto")


def infra_binary() -> str:
    beside = Path(sys.executable).with_name("infra")
    if beside.is_file():
        return str(beside)
    found = shutil.which("infra")
    if found is None:
        sys.exit("bench: the `infra` console script is not installed (pip install -e .)")
    return found


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Timing:
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min(self) -> float:
        return min(self.samples_ms)

    @property
    def max(self) -> float:
        return max(self.samples_ms)


def time_command(args: list[str], runs: int, cwd: Path) -> Timing:
    """Wall time of ``args`` as a subprocess, after one untimed warm-up run."""
    subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return Timing(samples)


def time_call(fn: Callable[[], object], runs: int) -> Timing:
    """Wall time of ``fn()`` in process, after one untimed warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return Timing(samples)


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


def peak_rss_mib(args: list[str], cwd: Path) -> float:
    """Peak resident set size of ``infra ARGS`` (``args[0]`` is the console script).

    Read as ``VmHWM`` from the process's own /proc status at exit: ``wait4``'s ``ru_maxrss`` would
    include the forking parent's memory (Linux keeps the pre-exec peak), i.e. this benchmark's.
    The console script is the same ``run()`` on the same interpreter.
    """
    with tempfile.NamedTemporaryFile(prefix="infra-hwm-") as out:
        proc = subprocess.run([sys.executable, "-c", _HWM_PROBE, out.name, *args[1:]], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(args)} exited {proc.returncode}")
        return int(Path(out.name).read_text()) / 1024  # KiB


# --- render scale ---------------------------------------------------------------------------


def generated_blueprint(pools: int, teams: int) -> dict:
    """A valid AWS blueprint: alternating CPU and L4 GPU pools (every other GPU pool spot)."""
    node_pools = []
    for i in range(pools):  # GPU (training) pools at even positions, so one pool is still a GPU pool
        if i % 2 == 1:
            pool = {"name": f"cpu-{i}", "instance_type": "m6i.large", "min": 1, "max": 2, "labels": {"tier": "cpu"}}
        else:
            pool = {"name": f"gpu-{i}", "instance_type": "g6.xlarge", "gpu": {"type": "l4", "count": 1},
                    "min": 0, "max": 2, "labels": {"tier": "gpu"}}
        node_pools.append(pool)
    return {
        "blueprint": 1,
        "name": f"bench-{pools}",
        "provider": "aws",
        "region": "us-east-1",
        "tags": {"cost-center": "bench"},
        "network": {"cidr": "10.0.0.0/16", "zones": 3},
        "kubernetes": {"private_access": {"via": "inside_network"}},
        "node_pools": node_pools,
        "teams": [{"name": f"team-{i}", "gpu_quota": 4, "borrowing_limit": 2, "groups": [f"team-{i}-devs"]}
                  for i in range(teams)],
        "state": {"backend": "s3", "bucket": "bench-tf-state"},
        # many teams on few GPUs: the bench measures rendering, not a capacity plan (docs/kubernetes.md)
        "overcommit": True,
    }


@dataclass
class RenderScale:
    pools: int
    teams: int
    load: Timing
    render: Timing
    files: int
    bytes: int


def render_scale(pools: int, teams: int, runs: int, workdir: Path) -> tuple[RenderScale, Path]:
    import yaml

    from orchestrator.blueprint.loader import load
    from orchestrator.providers.registry import get
    from orchestrator.render import render_files

    path = workdir / f"bench-{pools}.yaml"
    path.write_text(yaml.safe_dump(generated_blueprint(pools, teams), sort_keys=False))
    model = load(path).model
    provider = get(model.provider)
    files = render_files(model, provider)
    total = [text for part in files.values() for text in part.values()]
    return (
        RenderScale(
            pools=pools,
            teams=teams,
            load=time_call(lambda: load(path), runs),
            render=time_call(lambda: render_files(model, provider), runs),
            files=len(total),
            bytes=sum(len(t.encode()) for t in total),
        ),
        path,
    )


# --- import profile -------------------------------------------------------------------------


def import_profile(code: str) -> list[tuple[str, int, int, int]]:
    """``(module, depth, self_us, cumulative_us)`` from ``python -X importtime -c code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, raw_name = line.split(":", 1)[1].split("|")
        depth = (len(raw_name) - len(raw_name.lstrip(" ")) - 1) // 2
        rows.append((raw_name.strip(), depth, int(self_us), int(cum_us)))
    return rows


# --- facts and report -----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _terraform_version() -> str:
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary is None:
        return "not on PATH"
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "CHECKPOINT_DISABLE": "1"})
        return f"{Path(binary).name} {json.loads(out.stdout)['terraform_version']}"
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return f"{binary} (version unknown)"


def machine_facts() -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    load1, load5, _ = os.getloadavg()
    return {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "nproc": str(usable),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "terraform": _terraform_version(),
        "infra": _version("infra-orchestrator"),
        "typer / pydantic / jinja2": " / ".join(_version(d) for d in ("typer", "pydantic", "jinja2")),
        "load average at start (1 min, 5 min)": f"{load1:.2f}, {load5:.2f}",
    }


def _ms(t: Timing) -> str:
    return f"{t.median:.1f} | {t.min:.1f} | {t.max:.1f}"


def report(results: dict) -> str:
    facts, help_t, validate_t = results["facts"], results["help"], results["validate"]
    verdict = "meets" if help_t.median < HELP_TARGET_MS else "MISSES"
    lines = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m bench` (`make bench`); rerun it to refresh this page.",
        "Benchmarks, not tests: nothing fails on a slow result. Wall times include process start",
        "(the `infra` console script as a user runs it); each command gets one untimed warm-up run.",
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in facts.items()),
        "",
        "## CLI start-up",
        "",
        "| command | runs | median ms | min ms | max ms | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| `infra --help` | {len(help_t.samples_ms)} | {_ms(help_t)} | < {HELP_TARGET_MS:.0f} ms: {verdict} |",
        f"| `infra validate examples/sandbox.yaml` | {len(validate_t.samples_ms)} | {_ms(validate_t)} | |",
        "",
        "## Render scale (in process)",
        "",
        "`orchestrator.render.render_files` on generated AWS blueprints (alternating CPU and L4 pools,",
        "3 zones, S3 backend), after one warm-up call; `load` is `blueprint.loader.load` (YAML parse,",
        "model validation, semantic checks) of the same file.",
        "",
        "| node pools | teams | runs | render median ms | min | max | load median ms | files | bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["scale"]:
        lines.append(
            f"| {r.pools} | {r.teams} | {len(r.render.samples_ms)} | {_ms(r.render)} | "
            f"{r.load.median:.1f} | {r.files} | {r.bytes} |"
        )
    lines += ["", *ansible_section(results.get("ansible"))]
    lines += ["", *rollout_section(results.get("rollout"))]
    lines += [
        "",
        "## Peak memory (RSS of the `infra` process)",
        "",
        "| command | peak RSS MiB |",
        "|---|---:|",
        *(f"| `{cmd}` | {mib:.1f} |" for cmd, mib in results["rss"]),
        "",
        "## Import profile",
        "",
        "`python -X importtime` while running the command in process (`orchestrator.cli.main.run()`),",
        "so imports done lazily inside the command count too. Rows: imports at nesting depth 0 and 1",
        "(depth 1 indented with `↳`) costing at least 2 ms, by cumulative time; one run, expect a few",
        "ms of noise.",
        "",
    ]
    for label, (total, top, heavy) in results["imports"].items():
        lines += [
            f"### `{label}`: {total / 1000:.0f} ms of imports",
            "",
            "| module | cumulative ms | self ms |",
            "|---|---:|---:|",
            *(f"| {'↳ ' if depth else ''}`{name}` | {cum / 1000:.1f} | {own / 1000:.1f} |"
              for name, depth, cum, own in top),
            "",
            f"Heavy modules imported: {', '.join(heavy) or 'none'} (checked: {', '.join(HEAVY)}).",
            "",
        ]
    return "\n".join(lines)


def ansible_section(ansible: dict | list | None) -> list[str]:
    head = [
        "## Ansible fan-out (configure stage)",
        "",
        "`bench/ansible_fanout.py`: fresh SSH test hosts (debootstrap'd chroots with their own sshd on",
        "127.0.0.11.., as in the tests), `infra configure` on them twice: the first run converges,",
        "the second finds nothing to change. 1 host against 4, on this machine's CPUs.",
        "",
    ]
    if ansible is None:
        return [*head, "Not run (`--no-ansible`)."]
    if isinstance(ansible, dict):  # {"skipped": why}
        return [*head, f"Not run: {ansible['skipped']}."]
    from bench.ansible_fanout import table

    return [*head, table(ansible)]


def rollout_section(rollout: dict | list | None) -> list[str]:
    head = [
        "## Rollout: N sandbox environments at once vs one after another",
        "",
        "`bench/rollout_parallel.py`: N small AWS blueprints (one pool, two zones, one region, their own",
        "VPC ranges) applied with the real terraform and AWS provider against the sandbox emulator:",
        "`infra up ROLLOUT --sandbox --auto-approve` (`max_parallel: N`) against `infra up` of each in",
        "turn, each side in a fresh project with its emulator already started. Goal (issue 14):",
        "parallel <= 1.3 / N of sequential.",
        "",
    ]
    if rollout is None:
        return [*head, "Not run (`--no-rollout`)."]
    if isinstance(rollout, dict):  # {"skipped": why}
        return [*head, f"Not run: {rollout['skipped']}."]
    from bench.rollout_parallel import table

    return [*head, table(rollout)]


def run_rollout_bench(counts: tuple[int, ...] = (2, 4)) -> dict | list:
    from bench import rollout_parallel

    tf_mirror = rollout_parallel.mirror()
    if shutil.which("terraform") is None or tf_mirror is None:
        return {"skipped": "needs terraform and a provider mirror (INFRA_TF_PLUGIN_MIRROR)"}
    with tempfile.TemporaryDirectory(prefix="infra-bench-rollout-") as tmp:
        return [rollout_parallel.scenario(c, Path(tmp), tf_mirror) for c in counts]


def run_ansible_bench(counts: tuple[int, ...] = (1, 4)) -> dict | list:
    from bench import ansible_fanout
    from tests.hosts import rootfs

    missing = rootfs.tools_missing()
    if missing:
        return {"skipped": f"needs {', '.join(missing)}"}
    with tempfile.TemporaryDirectory(prefix="infra-bench-ansible-") as tmp:
        return [ansible_fanout.scenario(c, Path(tmp)) for c in counts]


def print_table(results: dict) -> None:
    help_t, validate_t = results["help"], results["validate"]
    rows = [
        ("infra --help (ms)", _ms(help_t).replace(" | ", " / "), f"target < {HELP_TARGET_MS:.0f}"),
        ("infra validate sandbox.yaml (ms)", _ms(validate_t).replace(" | ", " / "), ""),
        *((f"render_files {r.pools} pools, {r.teams} teams (ms)", _ms(r.render).replace(" | ", " / "),
           f"{r.files} files") for r in results["scale"]),
        *((f"peak RSS {cmd} (MiB)", f"{mib:.1f}", "") for cmd, mib in results["rss"]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median / min / max':<24}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<24}  {note}")
    print(f"heavy modules on --help: {results['heavy'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per CLI command (default 10)")
    parser.add_argument("--render-runs", type=int, default=5, help="runs per render size (default 5)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--no-ansible", action="store_true",
                        help="skip the Ansible fan-out bench (about 3 minutes; needs root, debootstrap, sshd)")
    parser.add_argument("--no-rollout", action="store_true",
                        help="skip the rollout bench, N = 2 and 4 (about 20 minutes; needs terraform, a mirror)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    infra = infra_binary()
    results: dict = {"facts": machine_facts()}
    with tempfile.TemporaryDirectory(prefix="infra-bench-") as tmp:
        work = Path(tmp)
        results["help"] = time_command([infra, "--help"], args.runs, work)
        results["validate"] = time_command([infra, "validate", str(EXAMPLE)], args.runs, work)
        results["scale"] = []
        biggest = None
        for pools in (1, 10, 50):
            scale, biggest = render_scale(pools, 50, args.render_runs, work)
            results["scale"].append(scale)
        results["rss"] = [
            ("infra --help", peak_rss_mib([infra, "--help"], work)),
            ("infra render examples/sandbox.yaml", peak_rss_mib(
                [infra, "render", str(EXAMPLE), "--out", str(work / "out")], work)),
            (f"infra render {biggest.name} (50 pools)", peak_rss_mib(
                [infra, "render", str(biggest), "--out", str(work / "out")], work)),
        ]
    results["imports"] = {}
    profiled = (("infra --help", ["--help"]), ("infra validate examples/sandbox.yaml", ["validate", str(EXAMPLE)]))
    for label, argv in profiled:
        rows = import_profile(
            f"import sys; from orchestrator.cli.main import run; sys.argv = ['infra', *{argv!r}]\n"
            "try:\n    run()\nexcept SystemExit:\n    pass"
        )
        top = sorted((r for r in rows if r[1] <= 1 and r[3] >= 2000), key=lambda r: r[3], reverse=True)[:12]
        total = sum(cum for _, depth, _, cum in rows if depth == 0)
        heavy = sorted({name for name, *_ in rows if name in HEAVY})
        results["imports"][label] = (total, [(name, depth, cum, own) for name, depth, own, cum in top], heavy)
    results["heavy"] = ", ".join(results["imports"]["infra --help"][2])
    results["ansible"] = None if args.no_ansible else run_ansible_bench()
    results["rollout"] = None if args.no_rollout else run_rollout_bench()

    print_table(results)
    if isinstance(results["ansible"], list):
        from bench.ansible_fanout import table

        print(table(results["ansible"]))
    if isinstance(results["rollout"], list):
        from bench.rollout_parallel import table as rollout_table

        print(rollout_table(results["rollout"]))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(results))
        print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
