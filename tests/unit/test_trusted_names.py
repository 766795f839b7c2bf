"""Names a reviewer can trust (issue 21): identifiers that bind identities or resources are
printable ASCII, nothing anywhere is invisible, infra's own tag keys are reserved, and each cloud's
limits on tags hold at validate. Each case: `infra validate` exits 2 with one located line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.blueprints import with_way_in

HEAD = {  # lines 1-6: the blueprint up to its teams
    "aws": "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\nnode_pools:\n"
           "  - {name: s, instance_type: m6i.large, min: 1, max: 2}\n",
    "azure": "blueprint: 1\nname: t-env\nprovider: azure\nregion: westeurope\nnode_pools:\n"
             "  - {name: s, instance_type: Standard_D4s_v5, min: 1, max: 2}\n",
    "gcp": "blueprint: 1\nname: t-env\nprovider: gcp\nregion: us-central1\nnode_pools:\n"
           "  - {name: s, instance_type: n2-standard-4, min: 1, max: 2}\n",
}


def _validate(tmp_path: Path, provider: str, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(HEAD[provider] + body), encoding="utf-8")
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", "validate",
                           str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("provider", "body", "where", "says"), [
    ("aws", "teams:\n  - {name: v, groups: ['vis\u200bion-devs']}\n", "8:24 teams[0].groups[0]",
     "must not contain invisible characters (U+200B at character 4"),
    ("aws", "teams:\n  - {name: v, groups: ['v\u0456sion-devs']}\n", "8:24 teams[0].groups[0]",
     "must be printable ASCII (a group name binds whoever carries it): U+0456 at character 2"),
    ("aws", "teams:\n  - {name: v, groups: [vision-devs\u2060]}\n", "8:24 teams[0].groups[0]",
     "invisible characters (U+2060"),
    ("aws", "teams:\n  - name: v\n    groups: [v]\n    members: ['arn:aws:iam::123456789012:role/ml-\u0430dmins']\n",
     "10:15 teams[0].members[0]", "must be an IAM role or user ARN"),
    ("aws", "tags: {cost\u00adcenter: ml}\n", "7:8 tags.cost\\xadcenter", "invisible characters (U+00AD"),
    ("aws", "tags: {team: 'ml\ufe0f'}\n", "7:14 tags.team", "invisible characters (U+FE0F"),
    ("aws", "tags: {infra.dev/environment: prod}\n", "7:8 tags.infra.dev/environment", "is infra's own tag"),
    ("aws", "tags: {Managed-By: me}\n", "7:8 tags.Managed-By", "is infra's own tag"),
    ("aws", "tags: {'c\u043est': ml}\n", "7:8 tags.c\u043est", "must be printable ASCII"),
    ("azure", "tags: {a/b: x}\n", "7:13 tags.a/b", "azure tag names cannot contain '/'"),
    ("gcp", "tags: {Cost Center: a, cost-center: b}\n", "7:37 tags.cost-center",
     "becomes the label 'cost-center', as 'Cost Center' does"),
    ("gcp", "tags: {team: " + "x" * 64 + "}\n", "7:14 tags.team", "value of 64 characters: gcp allows 63"),
])
def test_names_a_reviewer_cannot_trust_are_refused_located(tmp_path, provider, body, where, says) -> None:
    proc = _validate(tmp_path, provider, body)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'bp.yaml'}:{where}: ") and says in first, first


def test_tag_counts_follow_the_cloud_less_what_infra_writes(tmp_path) -> None:
    tags = lambda n: "tags:\n" + "".join(f"  k{i}: v\n" for i in range(n))  # noqa: E731
    assert _validate(tmp_path, "aws", tags(47)).returncode == 0
    proc = _validate(tmp_path, "aws", tags(48))
    assert proc.returncode == 2
    assert "tags: 48 tags: aws allows 50 per resource and infra writes 3 itself, so at most 47" in proc.stderr
    assert _validate(tmp_path, "gcp", tags(62)).returncode == 0
    assert _validate(tmp_path, "gcp", tags(63)).returncode == 2


def test_ordinary_names_still_pass(tmp_path) -> None:
    body = ("tags: {cost-center: ml, 'aws:cloudformation-like': ok, owner: 'J\u00f6rg M\u00fcller'}\n"
            "teams:\n  - {name: v, groups: ['CN=ML Devs,OU=Groups', vision-devs]}\n")
    proc = _validate(tmp_path, "aws", body)
    assert proc.returncode == 0, proc.stderr  # tag values may be any script; keys and groups are ASCII
