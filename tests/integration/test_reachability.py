"""``infra up`` from a machine that cannot reach the API: Terraform applied, then one line and
exit 5 within 10 s; ``infra handoff FILE`` from a machine that can finishes the job.

The endpoint that drops connection attempts is a loopback socket whose accept queue is full
(Linux then drops the SYNs, as a security group does for a private endpoint reached from
outside). The cloud is the sandbox's AWS emulator; the cluster the handoff finally reaches is the
Kubernetes test double (``--sandbox --kubeconfig`` applies to the cluster it names).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube_fake.fixtures import THREE_TEAMS, fake, kubeconfig  # noqa: F401

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))


@pytest.fixture()
def silent_endpoint():
    """A port that takes no connection: its queue (backlog 0) holds one unaccepted client."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(2):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        fillers.append(client)
    yield f"https://127.0.0.1:{port}"
    for sock in (*fillers, server):
        sock.close()


def test_up_stops_at_an_unreachable_api_and_handoff_finishes_later(tmp_path, tf_mirror, silent_endpoint,
                                                                      fake, kubeconfig):  # noqa: F811
    blueprint = tmp_path / "lab.yaml"
    blueprint.write_text(THREE_TEAMS.read_text())
    outside = tmp_path / "outside.kubeconfig"
    outside.write_text(kubeconfig.read_text().replace(fake.url, silent_endpoint))
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror}
    try:
        up = subprocess.run([INFRA, "up", str(blueprint), "--sandbox", "--auto-approve", "--kubeconfig", str(outside)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 5, up.stdout + up.stderr
        errors = [line for line in up.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: cannot reach the Kubernetes API at {silent_endpoint} from this machine "
                          f"({silent_endpoint.removeprefix('https://')}: no answer within 8 s); "
                          "kubernetes.private_access is inside_network: run from 10.30.0.0/16"], up.stderr
        assert f"infra handoff {blueprint}" in up.stderr  # the hint: how to finish

        record = json.loads(max((tmp_path / ".infra/records/gpu-lab").glob("*.json")).read_text())
        stages = {s["name"]: s for s in record["stages"]}
        assert stages["apply"]["status"] == "ok" and " added, " in stages["apply"]["detail"]
        assert stages["handoff"]["status"] == "failed" and stages["handoff"]["seconds"] <= 10
        state = json.loads((tmp_path / ".infra/sandbox/gpu-lab/terraform.tfstate").read_text())
        assert any(r["type"] == "aws_eks_cluster" for r in state["resources"])
        assert any(r["type"] == "aws_security_group_rule" and r["name"] == "cluster_from_operators"
                   for r in state["resources"])

        later = subprocess.run([INFRA, "handoff", str(blueprint), "--sandbox", "--kubeconfig", str(kubeconfig),
                                "--no-wait"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert later.returncode == 0, later.stdout + later.stderr
        assert "applied" in later.stdout
        assert fake.get("kueue.x-k8s.io/v1beta2", "LocalQueue", "nlp", "nlp-team") is not None
    finally:
        subprocess.run([INFRA, "sandbox", "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
