"""The client against the fake API server: server-side apply, retries, errors."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import KubernetesError
from orchestrator.kube import rest
from orchestrator.kube.client import APPLY_PATCH, ApiError, Client
from orchestrator.kube.rest import MAX_RETRY_AFTER, RetryPolicy, parse_retry_after, retryable
from tests.unit.kube_fixtures import client, fake, kubeconfig, team_namespaces  # noqa: F401

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch", "labels": {"a": "b"}}}
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "vision"}, "data": {"k": "v"}}


@pytest.fixture(autouse=True)
def _namespaces(team_namespaces):  # noqa: F811 - CM goes into namespace vision, which must exist
    return team_namespaces


def test_server_side_apply_is_a_patch_with_field_manager(client, fake):  # noqa: F811
    obj, created = client.apply(NS)
    assert created and obj["metadata"]["uid"]
    obj, created = client.apply({**NS, "metadata": {**NS["metadata"], "resourceVersion": "9", "managedFields": []}})
    assert not created
    patches = [r for r in fake.requests if r["method"] == "PATCH"]
    assert len(patches) == 2
    for r in patches:
        assert r["path"] == "/api/v1/namespaces/scratch"
        assert r["content_type"] == APPLY_PATCH
        assert r["query"] == {"fieldManager": "infra", "force": "true"}
        assert r["auth"] == "Bearer fake-token"
    assert fake.get("v1", "Namespace", "scratch")["metadata"]["managedFields"][0]["manager"] == "infra"


def test_force_false_is_sent(client, fake):  # noqa: F811
    client.apply(CM, force=False)
    assert fake.requests[-1]["query"]["force"] == "false"
    assert fake.requests[-1]["path"] == "/api/v1/namespaces/vision/configmaps/c"


def test_a_429_storm_is_survived_honouring_retry_after(client, fake):  # noqa: F811
    fake.fail_next(5, 429, retry_after=3)
    obj, created = client.apply(NS)
    assert created
    assert client.retry.slept == [3.0, 3.0, 3.0, 3.0, 3.0]
    assert [r.get("status") for r in fake.requests] == [429] * 5 + [201]


def test_retry_after_is_capped_and_may_be_a_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # in the past: now
    assert RetryPolicy().delay(0, 3600) == MAX_RETRY_AFTER


def test_without_retry_after_backoff_is_exponential_capped_and_jittered(client, fake):  # noqa: F811
    fake.fail_next(9, 429)
    client.apply(NS)
    assert client.retry.slept == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]  # rand=.5: half of .5 * 2**n, cap 30
    policy = RetryPolicy(rand=lambda: 0.0)
    assert policy.backoff(3) == pytest.approx(0.4)  # never below a tenth of the ceiling
    policy = RetryPolicy(rand=lambda: 1.0)
    assert [policy.backoff(n) for n in (0, 5, 6, 20)] == [0.5, 16.0, 30.0, 30.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(client, fake, status):  # noqa: F811
    fake.fail_next(3, status)
    assert client.apply(CM)[1]
    assert len(client.retry.slept) == 3


def test_optimistic_conflict_is_retried(client, fake):  # noqa: F811
    fake.fail_next(2, 409, reason="Conflict")
    assert client.apply(CM)[1]
    assert len(client.retry.slept) == 2


def test_field_manager_conflict_is_not_retried_and_says_how_to_resolve(client, fake):  # noqa: F811
    causes = [{"type": "FieldManagerConflict", "message": 'conflict with "kubectl-edit"', "field": ".data.k"}]
    fake.fail_next(1, 409, reason="Conflict", causes=causes)
    with pytest.raises(ApiError) as info:
        client.apply(CM, force=False)
    assert info.value.status == 409 and "--force" in info.value.hint
    assert client.retry.slept == []


def test_validation_errors_are_not_retried(client, fake):  # noqa: F811
    fake.fail_next(1, 422, reason="Invalid")
    with pytest.raises(ApiError) as info:
        client.apply(CM)
    assert info.value.status == 422 and "HTTP 422" in info.value.message
    assert client.retry.slept == [] and len(fake.requests) == 1
    assert isinstance(info.value, KubernetesError) and info.value.exit_code == 5


def test_giving_up_after_the_attempts_names_them(client, fake):  # noqa: F811
    fake.fail_next(100, 503, retry_after=1)
    with pytest.raises(ApiError, match=r"HTTP 503: injected 503 \(after 10 attempts\)"):
        client.apply(CM)
    assert len(fake.requests) == 10 and client.retry.slept == [1.0] * 9


def test_deadline_stops_retrying(kubeconfig, fake):  # noqa: F811
    c = Client.from_kubeconfig(kubeconfig, retry=RetryPolicy(sleep=lambda s: None, deadline=5))
    fake.fail_next(100, 429, retry_after=2)
    with pytest.raises(ApiError):
        c.apply(CM)
    assert c.retry.slept == [2.0, 2.0, 2.0]


def test_retryable_statuses():
    assert retryable(429, {}) and retryable(500, {}) and retryable(0, {}) and retryable(409, {"reason": "Conflict"})
    assert not retryable(409, {"reason": "AlreadyExists"})
    assert not any(retryable(s, {}) for s in (400, 401, 403, 404, 415, 422))


def test_create_get_list_delete(client, fake):  # noqa: F811
    ns_res = rest.resource("v1", "Namespace")
    client.create(NS)
    with pytest.raises(ApiError) as info:
        client.create(NS)
    assert info.value.reason == "AlreadyExists" and client.retry.slept == []
    assert client.get(ns_res, "scratch")["metadata"]["name"] == "scratch"
    assert client.get(ns_res, "nope") is None
    listed = client.list(ns_res, selector="a=b")
    assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in listed] == [("Namespace", "v1", "scratch")]
    assert client.list(ns_res, selector="a=c") == []
    assert client.delete(ns_res, "scratch") is True
    assert client.delete(ns_res, "scratch") is False


def test_a_create_retried_after_it_succeeded_returns_the_object(client, fake):  # noqa: F811
    fake.fail_next(1, 500, method="POST")
    fake.put(dict(CM))  # as if the first POST had gone through before the 500
    assert client.create(CM)["metadata"]["name"] == "c"


def test_unreachable_server_is_retried_then_explained(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "kc"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: x, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: x, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    c = Client.from_kubeconfig(cfg, retry=RetryPolicy(sleep=lambda s: None, attempts=3))
    with pytest.raises(ApiError, match="cannot reach the Kubernetes API") as info:
        c.server_version()
    assert info.value.status == 0 and len(c.retry.slept) == 2


def test_a_server_that_drops_connection_attempts_is_reported_within_ten_seconds(tmp_path, monkeypatch):
    """Every try lasts the whole connect timeout (5 s) when packets are dropped: a second try
    after the backoff would end past 10 s, so the error comes after the first (it came after 11-15 s
    when only the backoff was counted). The clock is simulated: each try and each sleep advance it."""
    from orchestrator.kube import client as client_module

    now = [100.0]
    monkeypatch.setattr(client_module.time, "monotonic", lambda: now[0])
    cfg = tmp_path / "kc"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'https://192.0.2.1:443'}}]\n"
        "users: [{name: x, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    c = Client.from_kubeconfig(cfg, retry=RetryPolicy(sleep=lambda s: now.__setitem__(0, now[0] + s),
                                                      rand=lambda: 1.0))

    def dropped(*args, **kwargs):  # what urllib3 gives after the connect timeout
        now[0] += c.timeout[0]
        return Exception("HTTPSConnectionPool(host='192.0.2.1', port=443): Max retries exceeded with url: /version "
                         "(Caused by ConnectTimeoutError(<urllib3.connection.HTTPSConnection object at 0x7f>, "
                         "'Connection to 192.0.2.1 timed out. (connect timeout=5.0)'))")

    monkeypatch.setattr(c, "_send", dropped)
    with pytest.raises(ApiError) as dropped_info:
        c.server_version()
    assert dropped_info.value.message == ("cannot reach the Kubernetes API at https://192.0.2.1:443: "
                                          "timed out. (connect timeout=5.0)")  # whole, not cut at the ")"
    assert now[0] - 100.0 <= client_module.UNREACHABLE_WITHIN  # reported in time, last try included
    refused = Client.from_kubeconfig(cfg, retry=RetryPolicy(sleep=lambda s: now.__setitem__(0, now[0] + s),
                                                            rand=lambda: 1.0))
    monkeypatch.setattr(refused, "_send", lambda *a, **k: Exception("[Errno 111] Connection refused"))
    start = now[0]
    with pytest.raises(ApiError, match=r"\(after \d+ attempts\): \[Errno 111\] Connection refused") as info:
        refused.server_version()  # a fast refusal is retried while a try still fits the budget
    assert info.value.attempts >= 3 and now[0] - start + refused.timeout[0] <= client_module.UNREACHABLE_WITHIN + 5


def test_missing_kubeconfig_is_a_kubernetes_error(tmp_path):
    with pytest.raises(KubernetesError, match="cannot load kubeconfig") as info:
        Client.from_kubeconfig(tmp_path / "missing")
    assert "--kubeconfig" in info.value.hint


def test_streamed_lines(client, fake):  # noqa: F811
    fake.logs[("vision", "p")] = ["one", "two", "three"]
    assert list(client.lines("/api/v1/namespaces/vision/pods/p/log", {"follow": True})) == ["one", "two", "three"]


# --- what a user sees: one line, exit 5, in time ------------------------------------------------

INFRA = Path(sys.executable).with_name("infra")
KUBECONFIGS = {
    "malformed": "apiVersion: v1\nkind: Config\nclusters: [\n",
    "unreachable": ("apiVersion: v1\nkind: Config\ncurrent-context: x\n"
                    "clusters: [{name: x, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: x, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"),
    "exec": ("apiVersion: v1\nkind: Config\ncurrent-context: x\n"
             "clusters: [{name: x, cluster: {server: 'https://127.0.0.1:1'}}]\n"
             "users: [{name: x, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
             "command: infra-test-no-such-binary}}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"),
    "context": ("apiVersion: v1\nkind: Config\ncurrent-context: nope\nclusters: []\nusers: []\ncontexts: []\n"),
}
FIRST_LINES = {
    "malformed": "error: cannot load kubeconfig kc: while parsing a flow node expected the node content, "
                 "but found '<stream end>' in \"kc\", line 4, column 1",
    "unreachable": "error: cannot reach the Kubernetes API at https://127.0.0.1:1 (after N attempts): "
                   "[Errno 111] Connection refused",  # N: as many as fit the budget (backoff has jitter)
    "exec": "error: cannot get credentials from kubeconfig kc: [Errno 2] No such file or directory: "
            "'infra-test-no-such-binary'",
    "context": "error: cannot load kubeconfig kc: Invalid kube-config file. Expected object with name nope in "
               "kc/contexts list",
}


@pytest.mark.parametrize("case", sorted(KUBECONFIGS))
def test_kubeconfig_problems_are_one_error_line_and_exit_5(tmp_path, case):
    (tmp_path / "kc").write_text(KUBECONFIGS[case])
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    started = time.monotonic()
    proc = subprocess.run([str(INFRA), "job", "list", "-n", "default", "--kubeconfig", "kc"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.splitlines()
    assert re.sub(r"after \d+ attempts", "after N attempts", lines[0]) == FIRST_LINES[case]
    assert len(lines) == 2 and lines[1].startswith("hint: ")  # no traceback, no library logging
    assert proc.stdout == ""
    assert elapsed < 10.0  # connect timeout and retry budget: reported within 10 s


def test_no_retry_beneath_ours(tmp_path):
    (tmp_path / "kc").write_text(KUBECONFIGS["unreachable"])
    c = Client.from_kubeconfig(tmp_path / "kc")
    retries = c.api.rest_client.pool_manager.connection_pool_kw["retries"]
    assert (retries.total, retries.redirect) == (False, 0)  # urllib3's default would retry 3 times


def test_a_post_with_a_server_generated_name_is_not_retried(client, fake):  # noqa: F811
    fake.fail_next(1, 500, method="POST")
    job = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c-", "namespace": "vision"}}
    with pytest.raises(ApiError) as info:
        client.create(job)
    assert info.value.status == 500 and client.retry.slept == []
    assert [r["method"] for r in fake.requests] == ["POST"]
    fake.fail_next(2, 429, method="POST")  # refused before anything was done: safe to repeat
    assert client.create(job)["metadata"]["name"].startswith("c-")
    assert len(client.retry.slept) == 2
