"""Secret references resolve at plan/up time, located errors when they cannot."""

from __future__ import annotations

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError
from orchestrator.secrets import resolve

BLUEPRINT = """\
blueprint: 1
name: sec
provider: aws
region: us-east-1
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
secrets:
  token: ${env:INFRA_TEST_TOKEN}
  key: ${file:keys/id.pem}
kubernetes: {private_access: {via: inside_network}}
"""


def test_resolves_env_and_file_relative_to_the_blueprint(tmp_path, monkeypatch):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id.pem").write_text("PEM-DATA\n")
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    monkeypatch.setenv("INFRA_TEST_TOKEN", "tok-123")
    assert resolve(load(tmp_path / "bp.yaml")) == {"token": "tok-123", "key": "PEM-DATA"}


def test_unresolvable_references_are_all_reported_with_location(tmp_path, monkeypatch):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    monkeypatch.delenv("INFRA_TEST_TOKEN", raising=False)
    with pytest.raises(BlueprintError) as err:
        resolve(load(tmp_path / "bp.yaml"))
    lines = err.value.lines()
    assert len(lines) == 2
    assert lines[0].endswith(":8:10 secrets.token: environment variable INFRA_TEST_TOKEN is not set")
    assert ":9:8 secrets.key: cannot read " in lines[1]
    assert err.value.exit_code == 2
