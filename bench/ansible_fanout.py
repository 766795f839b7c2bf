"""``python -m bench.ansible_fanout``: configure 1 host vs 4 hosts, first run vs second run.

Real SSH hosts as in the tests (debootstrap'd chroots on 127.0.0.11.., built once and cached,
see tests/hosts/): each scenario gets fresh hosts whose apt points at the local signed test
repository (tests/hosts/aptrepo.py), runs `infra configure` (site.yml: common, nvidia_gpu
discovery, containerd and the test kubeadm packages installed with real apt) twice, and reports
wall time per run, the 4-host/1-host ratio and the no-op/first-run ratio (goals: <= 1.3 and
<= 0.6). Needs root, debootstrap, sshd, gpg and dpkg-dev. A benchmark, not a test: nothing
fails on a slow result.

CPU time is measured too, because here the "hosts" share the controller's CPUs: *controller*
is infra's own process tree (infra, ansible-playbook, its forks and ssh clients), *all* is every
CPU of the machine busy (from /proc/stat, so other load counts). ``all / CPUs`` is the shortest
wall time the machine could give that work; its ratio to the 1-host wall time is the floor under
the 4-host/1-host ratio on this machine, whatever the controller does.

Options: ``--hosts 1,4`` (the host counts to compare), ``--json FILE`` (also write the numbers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.hosts import aptrepo, rootfs  # noqa: E402
from tests.hosts.cluster import TestHosts  # noqa: E402
from tests.integration.conftest import run_infra  # noqa: E402


def _blueprint(path: Path, hosts: TestHosts) -> None:
    entries = []
    for i, host in enumerate(hosts.hosts):
        entries.append({"name": host.name, "address": host.address, "port": host.port,
                        "roles": ["control_plane"] if i == 0 else ["worker"]})
    path.write_text(yaml.safe_dump({
        "blueprint": 1, "name": "bench", "provider": "baremetal", "hosts": entries,
        "kubernetes": {"version": aptrepo.VERSIONS[0].split("-")[0]},  # the test packages' version A
        "secrets": {"ssh_key": f"${{file:{hosts.private_key}}}"},
    }, sort_keys=False))


def _own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (infra runs in-process; ansible-playbook,
    its forks and ssh clients are its children, reaped when they end)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _busy_cpu_s() -> float:
    """CPU seconds every CPU of the machine spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def scenario(count: int, work: Path) -> dict:
    """Fresh hosts; `infra configure` twice; seconds per run and the changes each made."""
    base = work / f"hosts-{count}"
    hosts = TestHosts.start(count, base, prefix="bench", log=lambda m: print(m, file=sys.stderr))
    server, _ = aptrepo.serve_for(hosts, base, log=lambda m: print(m, file=sys.stderr))
    try:
        lab = work / f"lab-{count}"
        lab.mkdir()
        _blueprint(lab / "bench.yaml", hosts)
        extra = lab / "vars.yml"
        extra.write_text(yaml.safe_dump({
            "kubernetes_node_repo_base": f"{server.url}/kubernetes",
            # the CNI: the test manifest in Calico's shape, served by the local repository (no network)
            "kubernetes_node_cni_manifest_url": f"{server.url}{aptrepo.CNI_PATH}",
            "kubernetes_node_cni_manifest_sha256": hashlib.sha256(aptrepo.CNI_MANIFEST.read_bytes()).hexdigest(),
        }))
        env = {"INFRA_ANSIBLE_EXTRA_VARS": str(extra)}
        runs = []
        for label in ("first", "second"):
            started, own0, busy0 = time.monotonic(), _own_cpu_s(), _busy_cpu_s()
            result = run_infra(["configure", str(lab / "bench.yaml")], lab, env)
            seconds = time.monotonic() - started
            controller, busy = _own_cpu_s() - own0, _busy_cpu_s() - busy0
            if result.code != 0:
                raise SystemExit(f"bench: {label} run on {count} host(s) failed ({result.code}):\n{result.stderr}")
            changes = next((line.split(", ")[1] for line in result.stdout.splitlines()
                            if "hosts configured" in line), "?")
            runs.append({"run": label, "seconds": round(seconds, 1), "changes": changes,
                         "controller_cpu_s": round(controller, 1), "all_cpu_s": round(busy, 1)})
            print(f"  {count} host(s), {label} run: {seconds:.1f}s ({changes}); CPU: controller "
                  f"{controller:.1f}s, all {busy:.1f}s", file=sys.stderr)
        return {"hosts": count, "runs": runs, "rootfs_build_seconds": round(hosts.build_seconds, 1)}
    finally:
        server.stop()
        hosts.destroy()


def table(results: list[dict], nproc: int) -> str:
    by = {r["hosts"]: {x["run"]: x for x in r["runs"]} for r in results}
    lines = ["| hosts | first run (converge) | second run (no changes) | no-op / converge |",
             "|---:|---:|---:|---:|"]
    for count in sorted(by):
        first, second = by[count]["first"], by[count]["second"]
        lines.append(f"| {count} | {first['seconds']:.1f} s ({first['changes']}) | "
                     f"{second['seconds']:.1f} s ({second['changes']}) | "
                     f"{second['seconds'] / first['seconds']:.2f} |")
    lines += ["", "| hosts | run | wall | CPU: controller | CPU: all | all / CPUs |", "|---:|---|---:|---:|---:|---:|"]
    for count in sorted(by):
        for run in ("first", "second"):
            r = by[count][run]
            if "all_cpu_s" in r:
                lines.append(f"| {count} | {run} | {r['seconds']:.1f} s | {r['controller_cpu_s']:.1f} s | "
                             f"{r['all_cpu_s']:.1f} s | {r['all_cpu_s'] / nproc:.1f} s |")
    counts = sorted(by)
    if len(counts) >= 2:
        lo, hi = counts[0], counts[-1]
        lines.append("")
        for run in ("first", "second"):
            ratio = by[hi][run]["seconds"] / by[lo][run]["seconds"]
            floor = by[hi][run].get("all_cpu_s", 0) / nproc / by[lo][run]["seconds"]
            lines.append(f"{hi} hosts / {lo} host{'s' if lo != 1 else ''}, {run} run: wall time x{ratio:.2f} "
                         f"(x{hi / lo:.0f} the hosts; the CPU floor on {nproc} CPUs: x{floor:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,4", help="host counts to compare (default 1,4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    missing = rootfs.tools_missing() + aptrepo.tools_missing()
    if missing:
        print(f"bench: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.hosts.split(",")]
    print(f"ansible fan-out bench: {os.cpu_count()} CPUs, hosts {counts}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="infra-bench-") as tmp:
        results = [scenario(c, Path(tmp)) for c in counts]
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(),
              "results": results}
    print(table(results, os.cpu_count() or 1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
