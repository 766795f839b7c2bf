"""``python -m bench`` (``make bench``): paired benchmarks, written to docs/benchmarks.md.

Every comparison runs as alternating pairs in this one run (A B A B ..., after one untimed run
of each; the median of the per-pair ratios A / B with its min and max, wall and CPU time):

* ``infra --help`` vs a minimal Typer app (``bench/minimal_typer.py``);
* ``infra validate examples/sandbox.yaml`` vs ``infra --help``;
* a no-op ``infra up --sandbox`` vs ``terraform plan -detailed-exitcode``, ``infra up --sandbox``
  vs ``terraform apply`` and ``infra down --sandbox`` vs ``terraform destroy``, terraform on the
  same root module infra ran (``bench/sandbox_pairs.py``; needs terraform and a provider mirror,
  ``INFRA_TF_PLUGIN_MIRROR``);
* a rollout of N sandbox environments vs the same N one after another (``bench/rollout_parallel.py``);

and, not paired: the render of 1, 10, 100 and 200 environments of 8 node pools in one process,
time and peak memory (``bench/render_scale.py``); the Ansible configure stage on 1 vs 4 SSH test
hosts (``bench/ansible_fanout.py``); the import profile of ``--help`` and ``validate``.

``--quick`` runs the CLI pairs and the render only (a minute or two). Benchmarks, not tests:
nothing here fails on a slow result. Hand-written analysis between ``<!-- notes:KEY -->`` and
``<!-- /notes:KEY -->`` in the existing docs/benchmarks.md is carried over when it is rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import paired  # noqa: E402

EXAMPLE = REPO / "examples" / "sandbox.yaml"
MINIMAL_APP = REPO / "bench" / "minimal_typer.py"
HEAVY = ("jinja2", "pydantic", "rich", "yaml", "boto3", "botocore", "kubernetes", "ansible_runner", "moto")
NOTES = re.compile(r"<!-- notes:(?P<key>[\w-]+) -->\n(?P<text>.*?)<!-- /notes:(?P=key) -->\n?", re.S)


def infra_binary() -> str:
    beside = Path(sys.executable).with_name("infra")
    if beside.is_file():
        return str(beside)
    found = shutil.which("infra")
    if found is None:
        sys.exit("bench: the `infra` console script is not installed (pip install -e .)")
    return found


# --- the CLI pairs --------------------------------------------------------------------------


def compile_package() -> None:
    """Bytecode for infra's own modules, as an installed wheel has it: a checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (or a fresh worktree) would otherwise compile every module from
    source on every start, while the minimal app's Typer comes compiled from site-packages, and
    the CLI pairs would measure the compiler (``--help`` 1.45 instead of 1.29 here)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("orchestrator")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def cli_pairs(count: int, work: Path) -> list[paired.Pairs]:
    compile_package()
    infra = infra_binary()
    help_ = paired.command([infra, "--help"], work)
    minimal = paired.command([sys.executable, str(MINIMAL_APP), "--help"], work)
    validate = paired.command([infra, "validate", str(EXAMPLE)], work)
    minimal_run = paired.command([sys.executable, str(MINIMAL_APP), "hello", "x"], work)
    return [
        paired.alternate(paired.Pairs("`infra --help`", "minimal Typer app `--help`", goal=1.3), help_, minimal, count),
        paired.alternate(paired.Pairs("`infra validate examples/sandbox.yaml`", "`infra --help`", goal=1.5),
                         validate, help_, count),
        # not a goal of the issue: the floor under any command with an argument (Typer builds a pydantic
        # TypeAdapter per parameter, importing pydantic, which `--help` never does)
        paired.alternate(paired.Pairs("minimal Typer app `hello x`", "`infra --help`"), minimal_run, help_, count),
        paired.alternate(paired.Pairs("`infra validate examples/sandbox.yaml`", "minimal Typer app `hello x`"),
                         validate, minimal_run, count),
    ]


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


def imports() -> dict:
    result = {}
    profiled = (("infra --help", ["--help"]), ("infra validate examples/sandbox.yaml", ["validate", str(EXAMPLE)]))
    for label, argv in profiled:
        rows = import_profile(
            f"import sys; from orchestrator.cli.main import run; sys.argv = ['infra', *{argv!r}]\n"
            "try:\n    run()\nexcept SystemExit:\n    pass"
        )
        top = sorted((r for r in rows if r[1] <= 1 and r[3] >= 2000), key=lambda r: r[3], reverse=True)[:12]
        total = sum(cum for _, depth, _, cum in rows if depth == 0)
        heavy = sorted({name for name, *_ in rows if name in HEAVY})
        result[label] = (total, [(name, depth, cum, own) for name, depth, own, cum in top], heavy)
    return result


# --- facts ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


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


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine_facts() -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU cores usable": str(usable),
        "cpu": _cpu_model(),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "terraform": _terraform_version(),
        "infra": _version("infra-orchestrator"),
        "typer / pydantic / PyYAML (libyaml)": " / ".join(_version(d) for d in ("typer", "pydantic", "PyYAML"))
        + f" ({'yes' if _has_libyaml() else 'no'})",
        "load average at start (1, 5, 15 min)": _load(),
    }


def _has_libyaml() -> bool:
    try:
        import yaml

        return hasattr(yaml, "CSafeDumper")
    except ImportError:
        return False


# --- report ---------------------------------------------------------------------------------


def _notes(notes: dict[str, str], key: str) -> list[str]:
    """The hand-written block of ``key`` (carried over), or an empty one to fill in."""
    return [f"<!-- notes:{key} -->", *notes.get(key, "").rstrip("\n").splitlines(), f"<!-- /notes:{key} -->"]


def report(results: dict, notes: dict[str, str]) -> str:
    facts = results["facts"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m bench` (`make bench`) in one run; rerun it to refresh this",
        "page (`--quick`: the CLI pairs and the render only). Benchmarks, not tests: nothing fails",
        "on a slow result. Text between `notes` markers is hand-written and kept by the rerun.",
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in facts.items()),
        "",
        "## Paired comparisons",
        "",
        "Alternating pairs A B A B ... (one untimed run of each first): the ratio of each pair, A / B,",
        "then the median with its min and max. Wall time is what a user waits; CPU is user + system",
        "time of the command and every process it waited for (infra, terraform, its provider",
        "plugins; not the emulator, which is no child of either). On a shared machine the wall time",
        "also measures the other jobs: the pairs keep both sides under the same load, the CPU",
        "column shows what each side costs itself. Commands run as a user runs them (the `infra`",
        "console script, output captured).",
        "",
    ]
    rows = results.get("cli", []) + (results["sandbox"]["pairs"] if isinstance(results.get("sandbox"), dict)
                                     and "pairs" in results["sandbox"] else [])
    lines.append(paired.table(rows))
    lines.append("")
    sandbox = results.get("sandbox")
    if sandbox is None:
        lines.append("The terraform pairs were not run (`--quick` or `--no-sandbox`).")
    elif "skipped" in sandbox:
        lines.append(f"The terraform pairs were not run: {sandbox['skipped']}.")
    else:
        lines += [
            "The terraform pairs (`bench/sandbox_pairs.py`): `examples/sandbox.yaml` (the demo EKS",
            "environment, 3 pools) against the sandbox emulator. Each cycle runs `infra up` (fresh),",
            "`infra up` again (no-op), `terraform plan -detailed-exitcode`, `infra down`, `terraform",
            "apply -auto-approve` (fresh), `terraform destroy -auto-approve`; terraform in the root",
            "module infra ran (`.infra/sandbox/demo/terraform`) with its `TF_DATA_DIR`, provider-mirror",
            f"CLI config and local state. Provider mirror: {sandbox['mirror']}.",
        ]
    lines += ["", *_notes(notes, "pairs"), ""]
    lines += render_section(results.get("render"))
    lines += ["", *_notes(notes, "render"), ""]
    lines += rollout_section(results.get("rollout"))
    lines += ["", *_notes(notes, "rollout"), ""]
    lines += ansible_section(results.get("ansible"), int(facts["CPU cores usable"]))
    lines += ["", *_notes(notes, "ansible"), ""]
    lines += [
        "## Import profile",
        "",
        "`python -X importtime` while running the command in process (`orchestrator.cli.main.run()`),",
        "so imports done lazily inside the command count too. Rows: imports at nesting depth 0 and 1",
        "(depth 1 indented with `↳`) costing at least 2 ms, by cumulative time; one run, expect a few",
        "ms of noise (more on a loaded machine).",
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
    lines += [*_notes(notes, "imports"), "", f"Load average at the end (1, 5, 15 min): {results['load_end']}.", ""]
    return "\n".join(lines)


def render_section(render: list | None) -> list[str]:
    from bench import render_scale

    head = [
        "## Render at GitOps scale (one process)",
        "",
        "`bench/render_scale.py`: N generated AWS blueprints of 8 node pools (system, CPU and L4 GPU",
        "pools, one for inference; 3 zones; 3 teams; one ONNX model; S3 state). *render*:",
        "`render_files` of every environment in one fresh process (blueprints loaded first), the",
        "median of the runs, and that process's peak RSS; *load + checks*: loading them with the",
        "checks validate runs (model, semantic rules, placement proof); `infra render DIR`: the",
        "command end to end (start-up, load and check, render, write), and its peak RSS.",
        "",
    ]
    if render is None:
        return [*head, "Not run (`--no-render`)."]
    return [*head, render_scale.table(render)]


def ansible_section(ansible: dict | list | None, nproc: int) -> list[str]:
    head = [
        "## Ansible fan-out (configure stage)",
        "",
        "`bench/ansible_fanout.py`: fresh SSH test hosts (debootstrap'd chroots with their own sshd on",
        "127.0.0.11.., as in the tests), `infra configure` on them twice: the first run converges,",
        "the second finds nothing to change. 1 host against 4, on this machine's CPUs; *controller*",
        "CPU is infra's process tree, *all* every CPU of the machine (/proc/stat).",
        "",
    ]
    if ansible is None:
        return [*head, "Not run (`--quick` or `--no-ansible`)."]
    if isinstance(ansible, dict):  # {"skipped": why}
        return [*head, f"Not run: {ansible['skipped']}."]
    from bench.ansible_fanout import table

    return [*head, table(ansible, nproc)]


def rollout_section(rollout: dict | list | None) -> list[str]:
    head = [
        "## Rollout: N sandbox environments at once vs one after another",
        "",
        "`bench/rollout_parallel.py`: N small AWS blueprints (one pool, two zones, their own VPC",
        "ranges) applied with the real terraform and AWS provider against the sandbox emulator, as",
        "alternating pairs: `infra up` of each in turn, then `infra up ROLLOUT --sandbox` (`max_parallel:",
        "N`); each side in its own project with its emulator started before the clock, `down` after",
        "each run (not timed). Goal (issue 14): rollout <= 1.3 / N of sequential.",
        "",
    ]
    if rollout is None:
        return [*head, "Not run (`--quick` or `--no-rollout`)."]
    if isinstance(rollout, dict):  # {"skipped": why}
        return [*head, f"Not run: {rollout['skipped']}."]
    from bench.rollout_parallel import table

    return [*head, table(rollout)]


# --- the slow parts -------------------------------------------------------------------------


def run_sandbox_pairs(count: int) -> dict:
    from bench import sandbox_pairs

    why = sandbox_pairs.missing()
    if why:
        print(f"bench: the terraform pairs are not run: {why}", file=sys.stderr)
        return {"skipped": why}
    with tempfile.TemporaryDirectory(prefix="infra-bench-sandbox-") as tmp:
        return sandbox_pairs.run_pairs(count, Path(tmp))


def run_rollout_bench(counts: list[int], pairs: int) -> dict | list:
    from bench import rollout_parallel, sandbox_pairs

    why = sandbox_pairs.missing()
    if why:
        print(f"bench: the rollout pairs are not run: {why}", file=sys.stderr)
        return {"skipped": why}
    tf_mirror, _ = sandbox_pairs.find_mirror()
    with tempfile.TemporaryDirectory(prefix="infra-bench-rollout-") as tmp:
        return [rollout_parallel.scenario(c, Path(tmp), tf_mirror, pairs) for c in counts]


def run_ansible_bench(counts: tuple[int, ...] = (1, 4)) -> dict | list:
    from bench import ansible_fanout
    from tests.hosts import aptrepo, rootfs

    missing = rootfs.tools_missing() + aptrepo.tools_missing()
    if missing:
        return {"skipped": f"needs {', '.join(missing)}"}
    with tempfile.TemporaryDirectory(prefix="infra-bench-ansible-") as tmp:
        return [ansible_fanout.scenario(c, Path(tmp)) for c in counts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the CLI pairs (5) and the render (one run per size) only: a minute or two")
    parser.add_argument("--pairs", type=int, default=10, help="pairs per CLI comparison (default 10)")
    parser.add_argument("--render-envs", default="1,10,100,200", help="environment counts to render")
    parser.add_argument("--render-runs", type=int, default=3, help="fresh processes per render size (default 3)")
    parser.add_argument("--sandbox-pairs", type=int, default=5,
                        help="infra vs terraform cycles (default 5; about 5 minutes each on 2 CPUs)")
    parser.add_argument("--rollout-envs", default="2", help="rollout sizes N (default 2; e.g. 2,4)")
    parser.add_argument("--rollout-pairs", type=int, default=5, help="pairs per rollout size (default 5)")
    parser.add_argument("--no-render", action="store_true", help="skip the render scale")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the infra vs terraform pairs")
    parser.add_argument("--no-rollout", action="store_true", help="skip the rollout pairs")
    parser.add_argument("--no-ansible", action="store_true",
                        help="skip the Ansible fan-out (about 3 minutes; needs root, debootstrap, sshd)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.render_runs = min(args.pairs, 5), 1
        args.no_sandbox = args.no_rollout = args.no_ansible = True

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict = {"facts": machine_facts()}
    with tempfile.TemporaryDirectory(prefix="infra-bench-") as tmp:
        log(f"bench: CLI pairs ({args.pairs} each)")
        results["cli"] = cli_pairs(args.pairs, Path(tmp))
        if not args.no_render:
            from bench import render_scale

            log("bench: render scale")
            results["render"] = render_scale.measure([int(c) for c in args.render_envs.split(",")],
                                                     args.render_runs, Path(tmp), log)
    log("bench: import profile")
    results["imports"] = imports()
    if not args.no_sandbox:
        log(f"bench: infra vs terraform ({args.sandbox_pairs} cycles)")
        results["sandbox"] = _guarded(lambda: run_sandbox_pairs(args.sandbox_pairs), log)
    if not args.no_rollout:
        log(f"bench: rollout pairs (N = {args.rollout_envs}, {args.rollout_pairs} pairs)")
        results["rollout"] = _guarded(lambda: run_rollout_bench([int(c) for c in args.rollout_envs.split(",")],
                                                                args.rollout_pairs), log)
    if not args.no_ansible:
        log("bench: ansible fan-out")
        results["ansible"] = _guarded(run_ansible_bench, log)
    results["load_end"] = _load()

    rows = results["cli"] + (results["sandbox"]["pairs"] if "pairs" in results.get("sandbox", {}) else [])
    print(paired.table(rows))
    if "render" in results:
        from bench.render_scale import table as render_table

        print(render_table(results["render"]))
    if isinstance(results.get("rollout"), list):
        from bench.rollout_parallel import table as rollout_table

        print(rollout_table(results["rollout"]))
    if args.json:
        args.json.write_text(json.dumps(_jsonable(results), indent=2, default=str) + "\n")
    if not args.no_write:
        notes = {}
        if args.out.is_file():
            notes = {m["key"]: m["text"] for m in NOTES.finditer(args.out.read_text())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(results, notes))
        log(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


def _guarded(part, log):
    """A slow part that fails (a command it runs exits non-zero) is reported, not fatal: the other
    parts' numbers still reach the page."""
    try:
        return part()
    except SystemExit as exc:
        why = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        log(f"bench: failed: {why[0] if why else exc}")
        return {"skipped": f"it failed: {why[0][:300] if why else exc}"}


def _jsonable(value):
    if isinstance(value, paired.Pairs):
        return value.summary()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
