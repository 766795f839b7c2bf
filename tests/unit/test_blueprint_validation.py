"""Bad blueprints: each problem names the exact field path, line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError, Problem
from tests.blueprints import with_way_in

# Building blocks; the line numbers they occupy are part of each case's expectation.
AWS = "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\n"  # lines 1-4
POOL = "node_pools:\n  - name: system\n    instance_type: m6i.large\n    min: 1\n    max: 2\n"  # lines 5-9
BM = (  # lines 1-7
    "blueprint: 1\nname: t-env\nprovider: baremetal\n"
    "hosts:\n  - name: cp-01\n    address: 10.1.0.10\n    roles: [control_plane]\n"
)


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def item(text: str) -> str:
    """One more list item under ``node_pools`` (indented by two spaces)."""
    return textwrap.indent(y(text), "  ")


def problems_in(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(text))
    with pytest.raises(BlueprintError) as info:
        load(path)
    return info.value.problems


def case(id_, text, path, line, column, snippet):
    return pytest.param(text, path, line, column, snippet, id=id_)


CASES = [
    # --- field-level (model) errors ---------------------------------------------------------
    case("unknown-top-key", "blueprint: 1\nname: t-env\nprovider: aws\nregoin: us-east-1\n",
         "regoin", 4, 1, "unknown field 'regoin' (did you mean 'region'?)"),
    case("unknown-pool-key", AWS + y("""
        node_pools:
          - name: system
            instnce_type: m6i.large
            min: 1
            max: 2
        """), "node_pools[0].instnce_type", 7, 5, "did you mean 'instance_type'?"),
    case("gpu-count-zero", AWS + POOL + item("""
          - name: gpu
            instance_type: p4d.24xlarge
            gpu:
              type: a100
              count: 0
            min: 0
            max: 2
        """), "node_pools[1].gpu.count", 14, 14, "must be >= 1"),
    case("gpu-type-unknown", AWS + y("""
        node_pools:
          - name: gpu
            instance_type: p3.2xlarge
            gpu: {type: v100, count: 1}
            min: 0
            max: 1
        """), "node_pools[0].gpu.type", 8, 17, "must be one of: t4, l4, a10, a10g, a100, h100, h200, l40s"),
    case("gpu-type-missing", AWS + y("""
        node_pools:
          - name: gpu
            instance_type: x9.large
            gpu:
              count: 1
            min: 0
            max: 1
        """), "node_pools[0].gpu.type", 8, 5, "required field is missing"),
    case("pool-name-missing", AWS + y("""
        node_pools:
          - instance_type: m6i.large
            min: 1
            max: 2
        """), "node_pools[0].name", 6, 5, "required field is missing"),
    case("format-version", "blueprint: 2\nname: t-env\nprovider: aws\nregion: us-east-1\n" + POOL,
         "blueprint", 1, 12, "must be 1"),
    case("env-name-pattern", "blueprint: 1\nname: Prod_US\nprovider: aws\nregion: us-east-1\n" + POOL,
         "name", 2, 7, "lowercase letters, digits and '-', starting with a letter"),
    case("provider-enum", "blueprint: 1\nname: t-env\nprovider: openstack\n",
         "provider", 3, 11, "must be one of: aws, azure, gcp, baremetal"),
    case("name-missing", "blueprint: 1\nprovider: aws\nregion: us-east-1\n" + POOL,
         "name", 1, 1, "required field is missing"),
    case("cidr-public", AWS + "network:\n  cidr: 8.8.0.0/16\n" + POOL,
         "network.cidr", 6, 9, "not a private (RFC 1918) range"),
    case("zones-range", AWS + "network: {zones: 7}\n" + POOL, "network.zones", 5, 18, "must be >= 2 and <= 6"),
    case("k8s-version-unquoted", AWS + "kubernetes:\n  version: 1.30\n" + POOL,
         "kubernetes.version", 6, 12, "must be a string (put it in quotes)"),
    case("authorized-network-not-cidr",
         AWS + "kubernetes:\n  authorized_networks: [10.0.0.0/8, not-a-cidr]\n",
         "kubernetes.authorized_networks[1]", 6, 37, "'not-a-cidr' is not a CIDR block"),
    case("taint-effect", AWS + POOL + "    taints:\n      - {key: dedicated, effect: NoWhere}\n",
         "node_pools[0].taints[0].effect", 11, 34, "must be one of: NoSchedule, PreferNoSchedule, NoExecute"),
    case("spot-not-bool", AWS + POOL + "    spot: maybe\n",
         "node_pools[0].spot", 10, 11, "must be true or false"),
    case("min-negative", AWS + y("""
        node_pools:
          - name: system
            instance_type: m6i.large
            min: -1
            max: 2
        """), "node_pools[0].min", 8, 10, "must be >= 0"),
    case("host-role-enum", BM.replace("[control_plane]", "[control_plane, gpu-worker]"),
         "hosts[0].roles[1]", 7, 28, "must be one of: control_plane, worker, inference"),
    case("host-roles-empty", BM.replace("[control_plane]", "[]"),
         "hosts[0].roles", 7, 5, "must have at least 1 item"),
    case("host-port-range", BM + "    port: 70000\n", "hosts[0].port", 8, 11, "must be <= 65535"),
    case("model-uri-scheme", AWS + POOL + y("""
        teams:
          - name: vision
        inference:
          models:
            - name: resnet
              uri: ftp://models/resnet.onnx
              team: vision
        """), "inference.models[0].uri", 15, 12, "must start with one of: s3://"),
    case("model-replicas", AWS + POOL + y("""
        inference:
          models:
            - {name: resnet, uri: "s3://m/r.onnx", team: vision, replicas: 0}
        """), "inference.models[0].replicas", 12, 68, "must be >= 1"),
    case("inference-runtime", AWS + "inference: {runtime: triton}\n" + POOL,
         "inference.runtime", 5, 22, "must be one of: onnx, seldon"),
    case("state-backend", AWS + "state: {backend: ftp}\n" + POOL,
         "state.backend", 5, 18, "must be one of: local, s3, azurerm, gcs"),
    case("tag-not-string", AWS + "tags: {team: [a]}\n" + POOL, "tags.team", 5, 8, "must be a string"),
    case("secret-literal", AWS + POOL + "secrets:\n  db_password: hunter2\n",
         "secrets.db_password", 11, 16, "must be a reference like ${env:NAME} or ${file:path}"),
    # --- semantic rules ---------------------------------------------------------------------
    case("region-required", "blueprint: 1\nname: t-env\nprovider: aws\n" + POOL,
         "region", 1, 1, "required for provider aws"),
    case("region-on-baremetal", BM + "region: us-east-1\n", "region", 8, 9, "not allowed on baremetal"),
    case("hosts-on-cloud", AWS + POOL + "hosts:\n  - {name: h1, address: 10.0.0.5, roles: [worker]}\n",
         "hosts", 10, 1, "only allowed on baremetal (provider is aws)"),
    case("hosts-required-baremetal", "blueprint: 1\nname: t-env\nprovider: baremetal\n",
         "hosts", 1, 1, "at least one host is required on baremetal"),
    case("pools-required-cloud", "blueprint: 1\nname: t-env\nprovider: gcp\nregion: europe-west4\n",
         "node_pools", 1, 1, "at least one node pool is required on gcp"),
    case("pool-instance-type-missing", AWS + "node_pools:\n  - name: system\n    min: 1\n    max: 2\n",
         "node_pools[0].instance_type", 6, 5, "required field is missing (node pools on aws need it)"),
    case("pool-max-missing", AWS + "node_pools:\n  - {name: system, instance_type: m6i.large, min: 1}\n",
         "node_pools[0].max", 6, 5, "required field is missing"),
    case("desired-below-min", AWS + POOL.replace("min: 1", "min: 2") + "    desired: 1\n",
         "node_pools[0].desired", 10, 14, "must be >= min (2)"),
    case("desired-above-max", AWS + POOL + "    desired: 3\n",
         "node_pools[0].desired", 10, 14, "must be <= max (2)"),
    case("min-above-max", AWS + POOL.replace("min: 1", "min: 3"),
         "node_pools[0].min", 8, 10, "must be <= max (2)"),
    case("baremetal-pool-instance-type", BM + "node_pools:\n  - name: dgx\n    instance_type: p4d.24xlarge\n",
         "node_pools[0].instance_type", 10, 20, "not allowed on baremetal"),
    case("duplicate-pool", AWS + POOL + "  - {name: system, instance_type: m6i.xlarge, min: 0, max: 1}\n",
         "node_pools[1].name", 10, 12, "duplicate node pool name 'system' (already used by node_pools[0])"),
    case("duplicate-team", AWS + POOL + "teams:\n  - name: vision\n  - name: vision\n",
         "teams[1].name", 12, 11, "duplicate team name 'vision'"),
    case("duplicate-namespace",
         AWS + POOL + "teams:\n  - {name: a, namespace: shared}\n  - {name: b, namespace: shared}\n",
         "teams[1].namespace", 12, 26, "duplicate namespace 'shared' (already used by teams[0])"),
    case("namespace-defaults-to-name", AWS + POOL + "teams:\n  - {name: a, namespace: b}\n  - {name: b}\n",
         "teams[1].name", 12, 12, "duplicate namespace 'b'"),
    case("duplicate-host", BM + "  - {name: cp-01, address: 10.1.0.11, roles: [worker]}\n",
         "hosts[1].name", 8, 12, "duplicate host name 'cp-01'"),
    case("duplicate-model", AWS + POOL + y("""
        teams: [{name: vision}]
        inference:
          models:
            - {name: resnet, uri: "s3://m/a.onnx", team: vision}
            - {name: resnet, uri: "s3://m/b.onnx", team: vision}
        """), "inference.models[1].name", 14, 14, "duplicate model name 'resnet'"),
    case("model-team-unknown", AWS + POOL + y("""
        teams: [{name: vision}]
        inference:
          models:
            - {name: resnet, uri: "s3://m/a.onnx", team: nlp}
        """), "inference.models[0].team", 13, 50, "no team named 'nlp' (teams: vision)"),
    case("mig-without-gpu", AWS + POOL + "    mig: {profile: all-1g.10gb}\n",
         "node_pools[0].mig", 10, 5, "needs a gpu block"),
    case("mig-on-t4", AWS + POOL + item("""
          - name: t4
            instance_type: g4dn.xlarge
            gpu: {type: t4, count: 1}
            mig: {profile: all-1g.10gb}
            min: 0
            max: 1
        """), "node_pools[1].mig", 13, 5, "MIG is only available on a100, h100, h200 (this pool has t4)"),
    case("catalog-count", AWS + POOL + item("""
          - name: a100
            instance_type: p4d.24xlarge
            gpu: {type: a100, count: 4}
            min: 0
            max: 2
        """), "node_pools[1].gpu.count", 12, 30, "p4d.24xlarge has 8 x a100, not 4 x a100"),
    case("catalog-type", AWS + POOL + item("""
          - name: a100
            instance_type: p4d.24xlarge
            gpu: {type: h100, count: 4}
            min: 0
            max: 2
        """), "node_pools[1].gpu.type", 12, 17, "p4d.24xlarge has 8 x a100, not 4 x h100"),
    case("catalog-gpu-block-missing",
         AWS + POOL + "  - {name: g5, instance_type: g5.xlarge, min: 0, max: 1}\n",
         "node_pools[1].instance_type", 10, 31,
         "g5.xlarge has 1 x a10g GPUs: add gpu: {type: a10g, count: 1}"),
    case("catalog-no-gpus", AWS + POOL + "    gpu: {type: t4, count: 1}\n",
         "node_pools[0].gpu", 10, 5, "m6i.large has no GPUs"),
    case("catalog-azure", "blueprint: 1\nname: t-env\nprovider: azure\nregion: westeurope\n" + y("""
        node_pools:
          - name: h100
            instance_type: Standard_ND96isr_H100_v5
            gpu: {type: a100, count: 8}
            min: 0
            max: 1
        """), "node_pools[0].gpu.type", 8, 17, "Standard_ND96isr_H100_v5 has 8 x h100, not 8 x a100"),
    case("catalog-gcp", "blueprint: 1\nname: t-env\nprovider: gcp\nregion: us-central1\n" + y("""
        node_pools:
          - name: h100
            instance_type: a3-highgpu-8g
            gpu: {type: h200, count: 8}
            min: 0
            max: 1
        """), "node_pools[0].gpu.type", 8, 17, "a3-highgpu-8g has 8 x h100, not 8 x h200"),
    case("host-pool-unknown", BM + "    pool: dgx\n", "hosts[0].pool", 8, 11, "no node pool named 'dgx'"),
    case("host-gpu-disagrees", BM + "    pool: dgx\n    gpu: {type: h100, count: 4}\n"
         + "node_pools:\n  - name: dgx\n    gpu: {type: h100, count: 8}\n",
         "hosts[0].gpu", 9, 5, "4 x h100 disagrees with node pool 'dgx' (8 x h100)"),
    case("no-control-plane", BM.replace("[control_plane]", "[worker]"),
         "hosts[0].roles", 7, 5, "a worker joins a Kubernetes control plane: at least one host needs the role"),
    case("seldon-without-kubernetes", BM.replace("[control_plane]", "[inference]")
         + "teams: [{name: ml}]\ninference:\n  runtime: seldon\n"
         + "  models: [{name: m, uri: 'https://x/m.onnx', team: ml}]\n",
         "inference.runtime", 10, 12, "seldon runs on Kubernetes, and no host has the role control_plane"),
    case("public-endpoint-open", AWS + POOL + "kubernetes:\n  public_endpoint: true\n",
         "kubernetes.public_endpoint", 11, 20, "true requires kubernetes.authorized_networks"),
    case("authorized-everyone", AWS + POOL + "kubernetes:\n  authorized_networks: [0.0.0.0/0]\n",
         "kubernetes.authorized_networks[0]", 11, 25,
         "0.0.0.0/0 opens the API endpoint to the whole internet"),
    case("capacity", AWS + "network: {zones: 2}\n" + y("""
        node_pools:
          - {name: a, instance_type: m6i.large, min: 0, max: 200}
          - {name: b, instance_type: m6i.large, min: 0, max: 100}
        """), "node_pools[1].max", 8, 54, "ask for up to 300 nodes but the private subnets of 10.0.0.0/16 "
         "across 2 zone(s) fit 255"),
    case("zones-one", AWS + "network: {zones: 1}\n" + POOL, "network.zones", 5, 18, "EKS needs two zones"),
    case("spot-one-type", AWS + y("""
        node_pools:
          - {name: a, instance_type: m6i.large, min: 0, max: 2, spot: true}
        """), "node_pools[0].instance_type", 6, 30, "a spot pool needs at least 2 instance_types"),
    case("member-arn", AWS + POOL + "teams:\n  - {name: t, groups: [g], members: [arn:aws:iam::12:role/x]}\n",
         "teams[0].members[0]", 11, 38, "must be an IAM role or user ARN"),
    case("s3-bucket-missing", AWS + POOL + "state: {backend: s3}\n",
         "state.bucket", 10, 1, "required for backend s3"),
    case("azurerm-bucket",
         AWS + POOL + "state: {backend: azurerm, bucket: b, storage_account: sa, container: c}\n",
         "state.bucket", 10, 35, "not allowed with backend azurerm (it uses storage_account and container)"),
    case("azurerm-container-missing", AWS + POOL + "state: {backend: azurerm, storage_account: sa}\n",
         "state.container", 10, 1, "required for backend azurerm"),
    case("local-container", AWS + POOL + "state:\n  container: c\n", "state.container", 11, 14,
         "not allowed with backend local"),
    # --- file shape ---------------------------------------------------------------------------
    case("not-a-mapping", "- blueprint: 1\n", "", 1, 1, "a blueprint must be a mapping"),
    case("rollout-file", "rollout: 1\nname: hybrid\nenvironments: []\n",
         "rollout", 1, 1, "this is a rollout file"),
    case("duplicate-key", AWS + POOL + "region: us-west-2\n", "region", 10, 1,
         "duplicate key 'region' (first given on line 4)"),
    case("yaml-syntax", AWS + "node_pools: [\n  {name: a\n", "", 7, 1, "invalid YAML"),
]


@pytest.mark.parametrize(("text", "path", "line", "column", "snippet"), CASES)
def test_bad_blueprint(tmp_path, text, path, line, column, snippet):
    problems = problems_in(tmp_path, text)
    got = [(p.path, p.line, p.column) for p in problems]
    assert got == [(path, line, column)], [str(p) for p in problems]
    assert problems[0].file == str(tmp_path / "bp.yaml")
    assert snippet in problems[0].message


def test_all_problems_reported_at_once_in_file_order(tmp_path):
    text = AWS + y("""
        node_pools:
          - name: system
            instnce_type: m6i.large
            min: -1
            max: 2
          - name: gpu
            instance_type: p4d.24xlarge
            gpu: {type: a100, count: 0}
            max: 2
        network: {zones: 9}
        """)
    problems = problems_in(tmp_path, text)
    assert [(p.path, p.line, p.column) for p in problems] == [
        ("node_pools[0].instnce_type", 7, 5),
        ("node_pools[0].min", 8, 10),
        ("node_pools[1].gpu.count", 12, 30),
        ("network.zones", 14, 18),
    ]


def test_semantic_problems_are_all_reported(tmp_path):
    text = "blueprint: 1\nname: t-env\nprovider: aws\n" + POOL.replace("min: 1", "min: 5") + y("""
        teams:
          - name: vision
          - name: vision
        state: {backend: s3}
        """)
    problems = problems_in(tmp_path, text)
    assert [(p.path, p.line) for p in problems] == [
        ("region", 1), ("node_pools[0].min", 7), ("teams[1].name", 11), ("state.bucket", 12),
    ]


def test_problem_renders_as_file_line_column_path_message(tmp_path):
    problems = problems_in(tmp_path, AWS + POOL + "    desired: 3\n")
    assert str(problems[0]) == f"{tmp_path / 'bp.yaml'}:10:14 node_pools[0].desired: must be <= max (2)"


def test_unknown_key_without_close_match_lists_allowed_fields(tmp_path):
    problems = problems_in(tmp_path, AWS + "network: {cidr: 10.0.0.0/16, colour: blue}\n" + POOL)
    assert [(p.path, p.line, p.column) for p in problems] == [("network.colour", 5, 30)]
    assert problems[0].message == "unknown field 'colour' (allowed: cidr, zones)"


def test_misspelled_extends_suggests_extends(tmp_path):
    problems = problems_in(tmp_path, "extend: base.yaml\n" + AWS + POOL)
    assert problems[0].message == "unknown field 'extend' (did you mean 'extends'?)"


def test_secret_values_never_appear_in_messages(tmp_path):
    secret = "s3cr3t-Pa55w0rd"
    text = AWS + POOL + y(f"""
        secrets:
          registry_password: {secret}
          api_token: "${{env:{secret}"
          ok: ${{env:REGISTRY}}
          nested: {{value: {secret}}}
        """)
    problems = problems_in(tmp_path, text)
    assert [p.path for p in problems] == ["secrets.registry_password", "secrets.api_token", "secrets.nested"]
    for problem in problems:
        assert secret not in str(problem)
