"""Secret values never leave the process: ``secrets.redact`` at every boundary (docs/security.md).

The canary test runs the real ``infra`` entry point on a blueprint whose ``secrets.token`` is
``${env:CANARY}``, with a stand-in terraform that quotes the canary in a warning, in an error and
on stderr (as a provider echoing a bad token would), and looks for it everywhere a user or an
auditor could read: stdout, stderr, the run record and the logs under ``.infra/``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import secrets
from orchestrator.progress import Progress
from tests.blueprints import with_way_in

REPO = Path(__file__).resolve().parents[2]
INFRA = Path(sys.executable).with_name("infra")
FAKE_TF = REPO / "tests" / "fixtures" / "tfengine" / "fake_terraform.py"
CANARY = "canary-7f3a9c2e-d41b-4b8e"


@pytest.fixture(autouse=True)
def _empty_registry() -> Iterator[None]:
    secrets.forget()
    yield
    secrets.forget()


# --- the function -----------------------------------------------------------------------------


def test_redact_replaces_every_occurrence() -> None:
    assert secrets.redact("token=abc123; again abc123", ["abc123"]) == "token=[redacted]; again [redacted]"


def test_redact_longest_first() -> None:
    # Shortest first would leave "[redacted]-suffix" behind for the longer secret.
    assert secrets.redact("a=pass b=pass-suffix", ["pass", "pass-suffix"]) == "a=[redacted] b=[redacted]"
    assert secrets.redact("a=pass b=pass-suffix", ["pass-suffix", "pass"]) == "a=[redacted] b=[redacted]"


def test_redact_ignores_empty_values_and_keeps_other_text() -> None:
    assert secrets.redact("nothing secret here", ["", "absent"]) == "nothing secret here"


def test_registered_values_are_redacted_with_no_list_passed() -> None:
    secrets.register(["hunter2-hunter2", ""])
    assert secrets.redact("login hunter2-hunter2 failed") == "login [redacted] failed"
    secrets.forget()
    assert secrets.redact("login hunter2-hunter2 failed") == "login hunter2-hunter2 failed"


def test_each_long_line_of_a_multi_line_secret_and_its_json_form_are_redacted() -> None:
    key = "-----BEGIN KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJD\n-----END KEY-----"
    quoted = 'pa"ss\\word-1'
    secrets.register([key, quoted])
    # A tool quoting one line of the key; a JSON document holding the quoted value.
    assert secrets.redact("bad key line b3BlbnNzaC1rZXktdjEAAAAA here") == "bad key line [redacted] here"
    assert secrets.redact('{"token": "pa\\"ss\\\\word-1"}') == '{"token": "[redacted]"}'
    assert secrets.redact("QUJD stays: 4 characters are too common to scrub alone") == (
        "QUJD stays: 4 characters are too common to scrub alone"
    )


@pytest.mark.parametrize("encode", [
    lambda v: json.dumps({"t": v}),
    lambda v: json.dumps({"t": v}).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
    lambda v: urllib.parse.quote(v, safe=""),
    lambda v: urllib.parse.quote_plus(v),
    lambda v: shlex.quote(v),
    lambda v: base64.b64encode(v.encode()).decode(),
    lambda v: base64.b64encode(('{"auths": {"r": {"password": "' + v + '"}}}').encode()).decode(),
    lambda v: base64.urlsafe_b64encode(("x" + v + "yz").encode()).decode(),
], ids=["json", "go-json", "url", "url-plus", "shell", "base64", "base64-inside-a-document", "base64-url-offset"])
def test_every_encoding_a_tool_may_print_is_redacted(encode) -> None:
    value = "s3cr&t<v>al\"ue'\\ with space/+="
    secrets.register([value])
    printed = encode(value)
    assert value not in secrets.redact(printed)
    assert "[redacted]" in secrets.redact(printed)
    secrets.forget()
    assert secrets.redact(printed) == printed  # not vacuous: the printed form held the value


def test_progress_redacts_every_line_it_prints() -> None:
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(stream=out, err_stream=err, interactive=False)
    secrets.register(["tok-0123456789"])
    progress.stage("plan tok-0123456789")
    progress.info("using tok-0123456789")
    progress.start_task(1, "apply")
    progress.advance("res.tok-0123456789", "failed")
    progress.warn("provider echoed tok-0123456789")
    assert out.getvalue() == (
        "==> plan [redacted]\nusing [redacted]\napply: 1 to do\n  [1/1] res.[redacted]: failed\n"
    )
    assert err.getvalue() == "warning: provider echoed [redacted]\n"


# --- the canary, through the real entry point ---------------------------------------------------


def _blueprint(tmp_path: Path) -> Path:
    path = tmp_path / "canary.yaml"
    path.write_text(with_way_in(
        "blueprint: 1\nname: canary\nprovider: aws\nregion: us-east-1\n"
        "network: {cidr: 10.20.0.0/16, zones: 2}\n"
        "node_pools:\n  - {name: system, instance_type: m6i.large, min: 1, max: 2}\n"
        "secrets:\n  token: ${env:CANARY}\n"
    ))
    return path


def _fake_terraform(tmp_path: Path) -> Path:
    fake = tmp_path / "fake-terraform"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_TF.read_text())
    fake.chmod(0o755)
    return fake


def _encoded(value: str) -> list[str]:
    """How a tool may have written the value: raw, JSON as Python and as Go (Terraform) escape it."""
    python = json.dumps(value)[1:-1]
    go = json.dumps(value, ensure_ascii=False)[1:-1].replace("&", "\\u0026").replace("<", "\\u003c").replace(
        ">", "\\u003e")
    return sorted({value, python, go})


@pytest.mark.parametrize("canary", [CANARY, CANARY + "&<>\"'\\x"], ids=["plain", "json-html-shell-characters"])
def test_canary_secret_reaches_no_output_record_or_log(tmp_path: Path, canary: str) -> None:
    _blueprint(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_", "FAKE_TF_"))}
    env.update(CANARY=canary, INFRA_TERRAFORM=str(_fake_terraform(tmp_path)),
               FAKE_TF_MODE="fail-echo", FAKE_TF_ECHO="CANARY")
    proc = subprocess.run([str(INFRA), "plan", "canary.yaml"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 3, proc.stderr
    # The messages got through, with the value scrubbed from each.
    assert proc.stderr.splitlines() == [
        "warning: Deprecated token [redacted]",
        "error: Invalid token [redacted]",
        "hint: The API refused token [redacted].",
    ]
    assert not any(form in proc.stdout + proc.stderr for form in _encoded(canary))
    infra_files = sorted(p for p in (tmp_path / ".infra").rglob("*") if p.is_file())
    records = [p for p in infra_files if p.parent.name == "canary" and p.suffix == ".json"]
    logs = [p for p in infra_files if p.suffix == ".jsonl"]
    assert len(records) == 1 and '"error": "Invalid token [redacted]' in records[0].read_text()
    assert "Deprecated token [redacted]" in (tmp_path / ".infra/env/canary/logs/plan.jsonl").read_text()
    assert [p.name for p in logs] == ["init.jsonl", "plan.jsonl"]
    files = [*infra_files, *(p for p in (tmp_path / "build").rglob("*") if p.is_file())]
    leaked = [(str(p.relative_to(tmp_path)), form) for p in files for form in _encoded(canary)
              if form.encode() in p.read_bytes()]
    assert leaked == []
    if "&" in canary:  # not vacuous: Terraform's log held the value in its escaped form, now scrubbed
        assert "\\u0026" not in (tmp_path / ".infra/env/canary/logs/plan.jsonl").read_text()
