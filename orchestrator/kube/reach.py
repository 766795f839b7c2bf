"""Can this machine reach the Kubernetes API at all? Asked before the handoff sends anything.

A private endpoint answers only inside its network (``kubernetes.private_access``): ``infra up``
run from a laptop or a hosted CI runner applies Terraform, then cannot connect. The probe says
so within ``REACH_WITHIN`` seconds, name resolution and a TCP connection together, before any
credential plugin runs or any request is retried (docs/security.md, "Who can reach what").
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REACH_WITHIN = 8.0  # seconds for name resolution and TCP together; the stage reports within 10


def server_of(kubeconfig: Path, context: str | None) -> str | None:
    """The ``server`` URL of the kubeconfig's (current or named) context, or None when the file
    does not say (the client reports that itself)."""
    try:
        data = yaml.safe_load(Path(kubeconfig).read_text()) or {}
        name = context or data.get("current-context")
        ctx = next(c["context"] for c in data.get("contexts") or [] if c.get("name") == name)
        cluster = next(c["cluster"] for c in data.get("clusters") or [] if c.get("name") == ctx.get("cluster"))
        return str(cluster["server"])
    except (OSError, yaml.YAMLError, StopIteration, KeyError, TypeError, AttributeError):
        return None


def _resolve(host: str, port: int, within: float) -> list[tuple] | str:
    """getaddrinfo in a thread: the C resolver has no timeout of its own."""
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(f"cannot resolve {host}: {exc.strerror or exc}")

    thread = threading.Thread(target=lookup, name="infra-resolve", daemon=True)
    thread.start()
    thread.join(within)
    return found[0] if found else f"cannot resolve {host} within {within:g} s"


def probe(server: str, within: float = REACH_WITHIN) -> str | None:
    """None when a TCP connection to ``server`` opens within ``within`` seconds, else the reason."""
    parts = urlsplit(server)
    host = parts.hostname
    if not host:
        return f"{server!r} is not a URL"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    started = time.monotonic()
    addresses = _resolve(host, port, within)
    if isinstance(addresses, str):
        return addresses
    reasons = []
    for family, kind, proto, _, address in addresses:
        left = within - (time.monotonic() - started)
        if left <= 0:
            reasons.append(f"no answer within {within:g} s")
            break
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(left)
            try:
                sock.connect(address)
                return None
            except TimeoutError:
                reasons.append(f"{address[0]}:{port}: no answer within {within:g} s")
            except OSError as exc:
                reasons.append(f"{address[0]}:{port}: {exc.strerror or exc}")
    return "; ".join(reasons) or f"{host} has no address"
