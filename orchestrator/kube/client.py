"""A small client for the Kubernetes API: raw REST calls through the ``kubernetes`` package's
``ApiClient`` (kubeconfig loading, TLS, exec credential plugins), with our retry policy.

Server-side apply is a ``PATCH`` with ``Content-Type: application/apply-patch+yaml`` and
``fieldManager=infra`` (the typed ``patch_*`` methods would send a merge patch). ``kubernetes``
is imported only when a client is made.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conventions import FIELD_MANAGER
from ..errors import KubernetesError
from . import rest
from .rest import RetryPolicy, parse_retry_after, retryable

APPLY_PATCH = "application/apply-patch+yaml"
DEFAULT_TIMEOUT = (5.0, 60.0)  # connect, read (seconds)
# An unreachable API is reported within this many seconds (retries included): a retry is not
# started when its backoff plus its own connect timeout would end past it (a server that drops
# connection attempts makes every try last the whole connect timeout).
UNREACHABLE_WITHIN = 10.0
NOISY_LOGGERS = ("kubernetes", "urllib3", "urllib3.connectionpool", "root")


def quiet_library_logs() -> None:
    """The client library's and urllib3's warnings (retries, exec plugin errors) stay out of
    the output unless ``--debug`` turned logging on (the error we raise says what happened)."""
    if logging.getLogger().level <= logging.DEBUG and logging.getLogger().handlers:
        return
    for name in NOISY_LOGGERS[:-1]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("kubernetes.config.exec_provider").setLevel(logging.CRITICAL)


class _RootErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297].rsplit(" ", 1)[0] + " ..."


def _reason(text: str) -> str:
    """The innermost reason of a urllib3 error (``[Errno 111] Connection refused``), whole."""
    text = " ".join(text.split())
    # a parenthesised part belongs to the reason: "timed out. (connect timeout=5.0)" stays whole
    found = re.findall(r"(\[Errno -?\d+\][^'\")]*|timed out(?:[^'\"()]|\([^)]*\))*)", text)
    return found[-1].strip().rstrip(".") if found else _one_line(Exception(text))


class ApiError(KubernetesError):
    """A request the API server refused (after retries, where retrying made sense)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None, hint: str | None = None,
                 attempts: int = 1):
        super().__init__(message, hint)
        self.status = status
        self.body = body or {}
        self.attempts = attempts

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: bytes

    def json(self) -> dict[str, Any]:
        try:
            return json.loads(self.data or b"{}")
        except ValueError:
            return {}


def _status_message(method: str, path: str, status: int, body: dict[str, Any], raw: bytes) -> str:
    text = body.get("message") or raw.decode("utf-8", "replace").strip()[:300] or "no message"
    return f"{method} {path}: HTTP {status}: {text}"


class Client:
    def __init__(self, api_client: Any, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT):
        self.api = api_client
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.host = api_client.configuration.host

    @classmethod
    def from_kubeconfig(cls, path: Path | str | None = None, context: str | None = None, **kw: Any) -> Client:
        """Every kubeconfig problem (missing, malformed, unknown context, exec plugin that cannot
        run) is one ``KubernetesError`` line (exit 5), never a traceback or library log noise."""
        quiet_library_logs()
        from kubernetes import client, config

        cfg = client.Configuration()
        where = path or "the default kubeconfig (~/.kube/config or $KUBECONFIG)"
        hint = "pass --kubeconfig FILE (and --context NAME), or run `infra up` to write one"
        errors = _RootErrors()
        logging.getLogger().addHandler(errors)  # the library logs an exec plugin's failure to root
        try:
            config.load_kube_config(config_file=str(path) if path else None, context=context,
                                    client_configuration=cfg, persist_config=False)
        except Exception as exc:  # noqa: BLE001 - the library raises anything from a bad file: one line
            raise KubernetesError(f"cannot load kubeconfig {where}: {_one_line(exc)}", hint=hint) from None
        finally:
            logging.getLogger().removeHandler(errors)
        if errors.messages:
            raise KubernetesError(f"cannot get credentials from kubeconfig {where}: {_one_line(errors.messages[0])}",
                                  hint="its exec plugin (e.g. aws) must be installed and on PATH; " + hint)
        cfg.retries = False  # one retry layer, ours: set before the client builds its connection pool
        api = client.ApiClient(configuration=cfg)
        api.user_agent = "infra"
        return cls(api, **kw)

    # --- raw requests ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str | None,
              timeout: Any) -> Any:
        import urllib3

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        method_, url, hdrs, body_, _ = self.api.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.api.call_api(method_, url, header_params=hdrs, body=body_, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return exc

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, stream: bool = False, idempotent: bool = True) -> Any:
        """Send with retries; a ``Response`` (or, with ``stream``, the open urllib3 response).

        A request that is not ``idempotent`` (a POST whose name the server generates) is retried
        only after a 429, which the server sends before doing anything. An unreachable server is
        reported within ``UNREACHABLE_WITHIN`` seconds, its last try included."""
        attempt, waited, started = 0, 0.0, time.monotonic()
        while True:
            timeout = (self.timeout[0], None) if stream else self.timeout
            raw = self._send(method, path, query, body, content_type, timeout)
            if isinstance(raw, Exception):
                status, headers, data, parsed = 0, {}, str(raw).encode(), {}
            else:
                status, headers = raw.status, dict(raw.headers or {})
                if stream and 200 <= status <= 299:
                    return raw.response
                data = raw.read() or b""
                parsed = Response(status, headers, data).json() if data[:1] == b"{" else {}
                if 200 <= status <= 299:
                    return Response(status, headers, data)
            attempt += 1
            exhausted = attempt >= self.retry.attempts or waited >= self.retry.deadline
            delay = self.retry.delay(attempt - 1, parse_retry_after(_header(headers, "Retry-After")))
            if status == 0 and max(time.monotonic() - started, waited) + delay + self.timeout[0] > UNREACHABLE_WITHIN:
                exhausted = True
            if exhausted or not retryable(status, parsed) or (not idempotent and status != 429):
                raise self._error(method, path, status, parsed, data, attempt)
            self.retry.wait(delay)
            waited += delay

    def _error(self, method: str, path: str, status: int, body: dict[str, Any], data: bytes, attempts: int) -> ApiError:
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        if status == 0:
            return ApiError(0, f"cannot reach the Kubernetes API at {self.host}{tries}: {_reason(data.decode())}", body,
                            hint="check the kubeconfig's server, your network (VPN?) and the cluster's state",
                            attempts=attempts)
        hint = None
        if status in (401, 403):
            hint = "check the kubeconfig's credentials and your RBAC permissions"
        elif status == 409 and any(c.get("type") == "FieldManagerConflict"
                                   for c in (body.get("details") or {}).get("causes") or []):
            hint = "another field manager owns these fields; re-run with --force to take them over"
        return ApiError(status, _status_message(method, path, status, body, data) + tries, body, hint, attempts)

    # --- object operations ----------------------------------------------------------------------

    def get(self, res: rest.Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.request("GET", res.path(namespace, name)).json()
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, res: rest.Resource, namespace: str | None = None, selector: str | None = None) -> list[dict]:
        data = self.request("GET", res.path(namespace), query={"labelSelector": selector}).json()
        items = data.get("items") or []
        for item in items:  # list items omit apiVersion/kind
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return items

    def apply(self, obj: dict[str, Any], force: bool = True) -> tuple[dict[str, Any], bool]:
        """Server-side apply; returns the object as stored and whether it was created."""
        res = rest.for_object(obj)
        meta = obj["metadata"]
        body = {k: v for k, v in obj.items() if k != "status"}
        body["metadata"] = {k: v for k, v in meta.items() if k not in ("managedFields", "resourceVersion", "uid")}
        query = {"fieldManager": FIELD_MANAGER, "force": force}
        resp = self.request("PATCH", res.path(meta.get("namespace"), meta["name"]), query=query, body=body,
                            content_type=APPLY_PATCH)
        return resp.json(), resp.status == 201

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST; retried only when the object has a client-side name (a second try then finds it)."""
        res = rest.for_object(obj)
        path = res.path(obj["metadata"].get("namespace"))
        named = bool(obj["metadata"].get("name"))
        try:
            return self.request("POST", path, query={"fieldManager": FIELD_MANAGER}, body=obj, idempotent=named).json()
        except ApiError as exc:
            # A create retried after a 5xx may have succeeded the first time.
            if exc.reason == "AlreadyExists" and exc.attempts > 1 and obj["metadata"].get("name"):
                existing = self.get(res, obj["metadata"]["name"], obj["metadata"].get("namespace"))
                if existing is not None:
                    return existing
            raise

    def delete(self, res: rest.Resource, name: str, namespace: str | None = None) -> bool:
        """Delete in the background (dependents are garbage-collected); False if it was gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self.request("DELETE", res.path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def lines(self, path: str, query: dict[str, Any] | None = None) -> Iterator[str]:
        """A streamed response, line by line (e.g. ``pods/log?follow=true``)."""
        raw = self.request("GET", path, query=query, stream=True)
        buffer = b""
        try:
            for chunk in raw.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")
            if buffer:
                yield buffer.decode("utf-8", "replace")
        finally:
            raw.release_conn()

    def server_version(self) -> str:
        data = self.request("GET", "/version").json()
        return str(data.get("gitVersion") or "unknown")

    def close(self) -> None:
        self.api.close()


def _header(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None
