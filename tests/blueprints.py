"""Small blueprint texts for tests.

A cloud blueprint whose API endpoint is private must declare how operators reach it
(``kubernetes.private_access``, docs/security.md); tests about something else write their text
through ``with_way_in``, which adds ``{via: inside_network}`` where the text declares no way in.
It never moves a line the text already has (its line numbers are often what a test asserts): a
``kubernetes:`` block gets the field as its last line, a text without one gets it at the end.
"""

from __future__ import annotations

import re

import yaml

WAY_IN = "private_access: {via: inside_network}"
# One control plane + worker host: the smallest valid bare-metal blueprint (lines 1-14), for tests
# about the loader, secrets and site variables rather than the cluster.
LAB = """\
blueprint: 1
name: lab
provider: baremetal
kubernetes:
  version: "1.31"
node_pools:
  - name: general
hosts:
  - name: cp-1
    address: 10.0.0.1
    roles: [control_plane, worker]
    pool: general
teams:
  - name: vision
"""
# One host nobody listens on (port 1), for tests of plan/render/report/rollout commands that
# never reach a host: ``UNREACHABLE_LAB.format(name=...)``; a rollout of three of them, the second
# after the first (``LABS_ROLLOUT``).
UNREACHABLE_LAB = """blueprint: 1
name: {name}
provider: baremetal
hosts:
  - {{name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}}
"""
LABS_ROLLOUT = """rollout: 1
name: labs
environments:
  - path: lab-a.yaml
  - path: lab-b.yaml
    after: [lab-a]
  - path: lab-c.yaml
max_parallel: 2
"""
_CLOUD = re.compile(r"^provider: *(aws|azure|gcp)\b", re.M)
_BLOCK = re.compile(r"^kubernetes: *\n((?:[ #].*\n|\n)*)", re.M)


def with_way_in(text: str) -> str:
    """``text`` with a declared way in to its private endpoint, when it lacks one."""
    if not _CLOUD.search(text) or "private_access" in text or re.search(r"public_endpoint: *true", text):
        return text
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)  # syntax only: values are the loader's to judge
    except yaml.YAMLError:
        return text  # a test of broken YAML: its error must stay where it is
    block = _BLOCK.search(text)
    if block:
        body = block.group(1).rstrip("\n")
        indent = re.match(r" *", body).group(0) if body.strip() else "  "
        end = block.start(1) + len(body)
        sep = "\n" if body else ""
        return text[:end] + f"{sep}{indent}{WAY_IN}" + ("\n" if not body else "") + text[end:]
    if re.search(r"^kubernetes:", text, re.M):
        return text  # a flow mapping: the test writes its own
    return text + ("" if text.endswith("\n") or not text else "\n") + f"kubernetes: {{{WAY_IN}}}\n"
