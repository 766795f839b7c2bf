"""A set of test hosts sharing one SSH keypair: ``with TestHosts.start(4, base) as hosts: ...``.

Addresses are 127.0.0.11, .12, ... (the whole of 127/8 is loopback on Linux); one port that is
free on all of them is chosen at start. ``known_hosts`` lists every node's host key so that SSH
runs with strict host key checking, as against real machines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import rootfs
from .node import TestHost, overlay_supported

FIRST_OCTET = 11
FIRST_OCTET_ENV = "INFRA_TEST_FIRST_HOST"  # another last octet for the first host (parallel test sessions)
PORTS = range(2222, 2300)


def _free_port(addresses: list[str]) -> int:
    for port in PORTS:
        ok = True
        for address in addresses:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((address, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError(f"no port in {PORTS.start}-{PORTS.stop - 1} is free on {', '.join(addresses)}")


@dataclass
class TestHosts:
    __test__ = False

    base: Path
    hosts: list[TestHost]
    private_key: Path
    public_key: str
    rootfs: Path
    build_seconds: float = 0.0
    start_seconds: float = 0.0
    _known_hosts: Path | None = field(default=None, repr=False)

    @classmethod
    def start(cls, count: int, base: Path, *, prefix: str = "node", log=print, offset: int = 0) -> TestHosts:
        base.mkdir(parents=True, exist_ok=True)
        root, built = rootfs.ensure(log=log)
        started = time.monotonic()
        key = base / "id_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "infra-tests", "-f", str(key)],
                           check=True)
        public = key.with_suffix(".pub").read_text()
        first = int(os.environ.get(FIRST_OCTET_ENV) or FIRST_OCTET) + offset  # offset: a second set of hosts
        addresses = [f"127.0.0.{first + i}" for i in range(count)]
        port = _free_port(addresses)
        overlay = overlay_supported(base)
        hosts = [
            TestHost(f"{prefix}-{i + 1}", address, port, base / "nodes", root, overlay)
            for i, address in enumerate(addresses)
        ]
        self = cls(base=base, hosts=hosts, private_key=key, public_key=public, rootfs=root, build_seconds=built)
        try:
            for host in hosts:
                host.start(public)
        except BaseException:
            self.destroy()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def __enter__(self) -> TestHosts:
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def destroy(self) -> None:
        errors = []
        for host in self.hosts:
            try:
                host.destroy()
            except Exception as exc:  # keep tearing the others down
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))

    def by_name(self, name: str) -> TestHost:
        return next(h for h in self.hosts if h.name == name)

    def known_hosts(self) -> str:
        lines = []
        for host in self.hosts:
            pub = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"[{host.address}]:{host.port} {pub[0]} {pub[1]}")
        return "\n".join(lines) + "\n"

    def ssh(self, host: TestHost, command: str) -> subprocess.CompletedProcess:
        """Run ``command`` on ``host`` over SSH (as the tests' controller would)."""
        return subprocess.run(
            [
                "ssh", "-i", str(self.private_key), "-p", str(host.port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", f"root@{host.address}", command,
            ],
            capture_output=True, text=True, timeout=60,
        )
