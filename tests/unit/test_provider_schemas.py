"""The Azure and GCP renders against the azurerm and google providers' own schemas, offline.

Those providers cannot be downloaded here, so ``terraform validate`` cannot run on the renders;
tests/provider_schema.py reads the schemas from the prebuilt CDK-for-Terraform packages
(``make provider-schemas`` fetches them with pip into ``$INFRA_TEST_CACHE/schemas/``), at the
newest provider release we test and at the floor of the range versions.tf pins, and checks every
resource and data source type, argument, nested block, required argument, literal value's type,
allowed values and one-of rules (tests/fixtures/provider_constraints.yaml). Each kind of mistake
has a test that makes it by hand in a render and expects the one line that names it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.terraform import render_terraform
from tests import provider_schema
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
# blueprint -> the Terraform provider its render uses
CASES = {"azure-gpu": "azurerm", "gcp-gpu": "google"}
# The provider versions the check runs against (the cdktf packages' generation source): the
# newest, and the floor of the range templates/terraform/<cloud>/versions.tf pins.
CHECKED = {"azurerm": {"newest": "4.55.0", "floor": "4.40.0"}, "google": {"newest": "6.50.0", "floor": "6.20.0"}}
NODE_POOL = "main.tf: resource azurerm_kubernetes_cluster_node_pool.pool"
AKS = "main.tf: resource azurerm_kubernetes_cluster.this"


@functools.cache
def _load(provider: str, release: str) -> dict | None:
    return provider_schema.load(provider, release)


def _schema(provider: str, release: str = "newest") -> dict:
    require(provider_schema.wheel(provider, release) is not None,
            f"the {provider_schema.PACKAGES[provider]} {provider_schema.RELEASES[provider][release]} wheel under "
            f"{provider_schema.SCHEMAS} (make provider-schemas)")
    require(provider_schema.HCL2_PYTHON.is_file(),
            f"python-hcl2 at {provider_schema.HCL2_PYTHON} (make provider-schemas)")
    schema = _load(provider, release)
    assert schema is not None
    assert schema["provider_version"] == CHECKED[provider][release]
    return schema


def _render(example: str, tmp_path: Path) -> list[Path]:
    bp = load(REPO / "examples" / f"{example}.yaml").model
    for rel, text in render_terraform(bp, get_provider(bp.provider)).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return sorted(tmp_path.rglob("*.tf"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    """example -> (its render's .tf files, their parse), made once per module."""
    made: dict[str, tuple[list[Path], dict]] = {}

    def get(example: str) -> tuple[list[Path], dict]:
        if example not in made:
            require(provider_schema.HCL2_PYTHON.is_file(),
                    f"python-hcl2 at {provider_schema.HCL2_PYTHON} (make provider-schemas)")
            files = _render(example, tmp_path_factory.mktemp(example))
            made[example] = (files, provider_schema.parse_hcl(files))
        return made[example]

    return get


@pytest.mark.parametrize("release", ["newest", "floor"])
@pytest.mark.parametrize("example", sorted(CASES))
def test_render_matches_the_provider_schema(example: str, release: str, rendered) -> None:
    schema = _schema(CASES[example], release)
    documents = rendered(example)[1]
    assert provider_schema.check(documents, {CASES[example]: schema}) == []
    kinds = {t for d in documents.values() for e in d.get("resource", []) for t in e}
    assert len(kinds) >= 5  # the check saw the module's resources, not an empty parse


def _range(text: str, provider: str) -> tuple[tuple[int, int], tuple[int, int]]:
    block = re.search(rf'{provider}\s*=\s*\{{[^}}]*version\s*=\s*"([^"]+)"', text)
    assert block, text
    low = re.search(r">=\s*(\d+)\.(\d+)", block.group(1))
    high = re.search(r"<\s*(\d+)\.(\d+)", block.group(1))
    assert low and high, block.group(1)
    return (int(low[1]), int(low[2])), (int(high[1]), int(high[2]))


@pytest.mark.parametrize("example", sorted(CASES))
def test_rendered_pins_admit_exactly_the_checked_range(example: str, rendered) -> None:
    """Every versions.tf the render carries pins the provider; together (Terraform takes the
    intersection) they admit from the floor the check ran against up to the next major."""
    provider = CASES[example]
    ranges = [_range(p.read_text(), provider) for p in rendered(example)[0] if p.name == "versions.tf"]
    assert len(ranges) == 2  # the root module's and the vendored cluster module's
    floor = tuple(int(x) for x in CHECKED[provider]["floor"].split(".")[:2])
    newest_major = int(CHECKED[provider]["newest"].split(".")[0])
    assert max(low for low, _ in ranges) == floor
    assert min(high for _, high in ranges) == (newest_major + 1, 0)
    root = (REPO / "templates" / "terraform" / example.split("-")[0] / "versions.tf").read_text()
    assert _range(root, provider) == (floor, (newest_major + 1, 0))
    assert CHECKED[provider]["floor"] in root and CHECKED[provider]["newest"] in root  # the comment says both


def test_makefile_fetches_the_checked_releases() -> None:
    wheels = re.search(r"^SCHEMA_WHEELS\s*:?=\s*(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert wheels
    assert sorted(wheels.group(1).split()) == sorted(
        f"{provider}-{version}" for provider, releases in provider_schema.RELEASES.items()
        for version in releases.values())


def _mutated(tmp_path: Path, example: str, old: str, new: str, file: str = "main.tf", rendered=None) -> dict:
    """The render's parse with one edit made in the cluster module's ``file``: with ``rendered``
    (the fixture) only that file is parsed again, else the whole render is made in ``tmp_path``."""
    if rendered is None:
        files = _render(example, tmp_path / "render")
        documents = None
    else:
        files, documents = rendered(example)
    path = next(p for p in files if p.as_posix().endswith(f"_gpu_cluster/{file}"))
    text = path.read_text()
    assert old in text
    if documents is None:
        path.write_text(text.replace(old, new, 1))
        return provider_schema.parse_hcl(files)
    (tmp_path / file).write_text(text.replace(old, new, 1))
    return {**documents, str(path): provider_schema.parse_hcl([tmp_path / file])[str(tmp_path / file)]}


def test_check_fails_on_a_misspelled_argument(tmp_path: Path, rendered) -> None:
    schema = _schema("azurerm")
    docs = _mutated(tmp_path, "azure-gpu", "local_account_disabled ", "local_accounts_disabled", rendered=rendered)
    assert provider_schema.check(docs, {"azurerm": schema}) == [f"{AKS}: unknown argument 'local_accounts_disabled'"]


def test_check_fails_on_a_misspelled_nested_argument(tmp_path: Path, rendered) -> None:
    schema = _schema("google")
    docs = _mutated(tmp_path, "gcp-gpu", "gpu_driver_version", "driver_version", rendered=rendered)
    at = ("main.tf: resource google_container_node_pool.pool.node_config.guest_accelerator"
          ".gpu_driver_installation_config")
    assert provider_schema.check(docs, {"google": schema}) == [
        f"{at}: unknown argument 'driver_version'", f"{at}: missing required argument 'gpu_driver_version'"]


def test_check_fails_on_a_missing_required_argument(tmp_path: Path, rendered) -> None:
    schema = _schema("azurerm")
    docs = _mutated(tmp_path, "azure-gpu", "kubernetes_cluster_id = azurerm_kubernetes_cluster.this.id", "",
                    rendered=rendered)
    assert provider_schema.check(docs, {"azurerm": schema}) == [
        f"{NODE_POOL}: missing required argument 'kubernetes_cluster_id'"]


def test_check_fails_on_an_unknown_resource_type(tmp_path: Path, rendered) -> None:
    schema = _schema("google")
    docs = _mutated(tmp_path, "gcp-gpu", 'resource "google_container_node_pool"',
                    'resource "google_container_nodepool"', rendered=rendered)
    assert provider_schema.check(docs, {"google": schema}) == [
        "main.tf: resource google_container_nodepool.pool: unknown resource type for google 6.50.0"]


def test_check_fails_on_a_block_repeated_that_allows_one(tmp_path: Path, rendered) -> None:
    schema = _schema("azurerm")
    block = 'upgrade_settings {\n      max_surge = "10%"\n    }'
    docs = _mutated(tmp_path, "azure-gpu", block, f"{block}\n    {block}", rendered=rendered)
    assert provider_schema.check(docs, {"azurerm": schema}) == [
        f"{AKS}.default_node_pool: block 'upgrade_settings' given 2 times, at most once allowed"]


@pytest.mark.parametrize(("example", "old", "new", "expected"), [
    # a string where a number is expected
    ("azure-gpu", "max_pods              = 50", 'max_pods = "fifty"',
     f"{NODE_POOL}: 'max_pods' expects number, got 'fifty'"),
    # a string where a bool is expected
    ("azure-gpu", "local_account_disabled              = true", 'local_account_disabled = "yes"',
     f"{AKS}: 'local_account_disabled' expects bool, got 'yes'"),
    # a list where a string is expected
    ("gcp-gpu", 'disk_type       = "pd-balanced"', 'disk_type = ["pd-balanced"]',
     "main.tf: resource google_container_node_pool.pool.node_config: 'disk_type' expects string, got ['pd-balanced']"),
    # a literal branch of a conditional
    ("azure-gpu", "each.value.spot ? each.value.spot_max_price : null", 'each.value.spot ? "cheap" : null',
     f"{NODE_POOL}: 'spot_max_price' expects number, got 'cheap'"),
], ids=["string-for-number", "string-for-bool", "list-for-string", "conditional-branch"])
def test_check_fails_on_a_literal_of_the_wrong_type(example: str, old: str, new: str, expected: str,
                                                    tmp_path: Path, rendered) -> None:
    schema = _schema(CASES[example])
    docs = _mutated(tmp_path, example, old, new, rendered=rendered)
    assert provider_schema.check(docs, {CASES[example]: schema}) == [expected]


@pytest.mark.parametrize(("value", "type_", "mistyped"), [
    ("fifty", "number", True), ("50", "number", False), (True, "number", True), (0.5, "number", False),
    ("yes", "bool", True), ("true", "bool", False), (1, "bool", True),
    (["a"], "string", True), (50, "string", False), (False, "string", False),
    (["a", 1], "list(string)", False), ("a", "list(string)", True), ([["a"]], "list(string)", True),
    ({"k": "v"}, "map(string)", False), ({"k": ["v"]}, "map(string)", True), (["v"], "map(string)", True),
    ("${var.max_pods}", "number", False), (None, "bool", False), ({"x": 1}, "any", False),
])
def test_types_follow_terraforms_conversions(value: object, type_: str, mistyped: bool) -> None:
    assert provider_schema._mistyped(value, type_) is mistyped


@pytest.mark.parametrize(("value", "literals"), [
    ("Managed", ["Managed"]), (50, [50]), (["a"], [["a"]]),
    ('${each.value.spot ? "Delete" : null}', ["Delete"]),
    ('${a || b > 0 ? "ANY" : "BALANCED"}', ["ANY", "BALANCED"]),
    ('${a ? "x" : b ? 2 : "z"}', ["x", 2, "z"]),
    ('${a ? x.y : "a:b?"}', ["a:b?"]),
    ("${var.zones}", []), ("${x ? y : null}", []), ("authorized-${k}", []), ("${a}-${b}", []),
    ('${length(z) > 0 ? z : null}', []),
])
def test_the_literal_values_of_an_expression(value: object, literals: list) -> None:
    assert provider_schema._candidates(value) == literals


@pytest.mark.parametrize(("example", "file", "old", "new", "expected"), [
    # from the constraints file (the azurerm assembly carries no allowed values)
    ("azure-gpu", "main.tf", '"Delete"', '"Deallocated"',
     f"{NODE_POOL}: 'eviction_policy' = 'Deallocated' is not one of ['Deallocate', 'Delete']"),
    # an element of a literal list
    ("gcp-gpu", "main.tf", '"WORKLOADS"', '"WORKLOAD"',
     "main.tf: resource google_container_cluster.this.logging_config: 'enable_components' = 'WORKLOAD' is not one of "
     "['SYSTEM_COMPONENTS', 'APISERVER', 'CONTROLLER_MANAGER', 'KCP_CONNECTION', 'KCP_SSHD', 'KCP_HPA', 'SCHEDULER', "
     "'WORKLOADS']"),
    # from the google assembly's own "Possible values"
    ("gcp-gpu", "network.tf", 'direction               = "INGRESS"', 'direction = "INBOUND"',
     "network.tf: resource google_compute_firewall.webhooks: 'direction' = 'INBOUND' is not one of "
     "['INGRESS', 'EGRESS']"),
    # what a variable's validation admits for an argument set to it
    ("gcp-gpu", "variables.tf", '"STABLE"], var.release_channel', '"STABLE", "BETA"], var.release_channel',
     "main.tf: resource google_container_cluster.this.release_channel: 'channel' = var.release_channel, whose "
     "validation admits 'BETA', not one of ['UNSPECIFIED', 'RAPID', 'REGULAR', 'STABLE', 'EXTENDED']"),
], ids=["azurerm-constraints-file", "list-element", "google-assembly", "variable-validation"])
def test_check_fails_on_a_value_the_provider_does_not_allow(example: str, file: str, old: str, new: str,
                                                            expected: str, tmp_path: Path, rendered) -> None:
    schema = _schema(CASES[example])
    docs = _mutated(tmp_path, example, old, new, file, rendered=rendered)
    assert provider_schema.check(docs, {CASES[example]: schema}) == [expected]


@pytest.mark.parametrize(("example", "file", "old", "new", "expected"), [
    ("azure-gpu", "main.tf", "dns_prefix              = var.name", "",
     f"{AKS}: needs exactly one of 'dns_prefix', 'dns_prefix_private_cluster', has none"),
    ("gcp-gpu", "network.tf", "allow {", 'deny {\n    protocol = "udp"\n  }\n\n  allow {',
     "network.tf: resource google_compute_firewall.webhooks: needs exactly one of 'allow', 'deny', has 'allow', "
     "'deny'"),
    ("azure-gpu", "main.tf", "secret_rotation_enabled = true", "",
     f"{AKS}.key_vault_secrets_provider: needs at least one of 'secret_rotation_enabled', "
     "'secret_rotation_interval', has none"),
    ("gcp-gpu", "network.tf", "target_service_accounts =", 'target_tags = ["gke-node"]\n  target_service_accounts =',
     "network.tf: resource google_compute_firewall.webhooks: 'target_service_accounts', 'target_tags' conflict "
     "(at most one may be set)"),
], ids=["exactly-one-none", "exactly-one-both", "at-least-one", "conflicts"])
def test_check_fails_on_a_broken_one_of_rule(example: str, file: str, old: str, new: str, expected: str,
                                             tmp_path: Path, rendered) -> None:
    schema = _schema(CASES[example])
    docs = _mutated(tmp_path, example, old, new, file, rendered=rendered)
    assert provider_schema.check(docs, {CASES[example]: schema}) == [expected]


@pytest.mark.parametrize(("example", "old", "new", "expected"), [
    # undrainable_node_behavior: azurerm, after 4.40.0
    ("azure-gpu", 'max_surge = "10%"', 'max_surge = "10%"\n      undrainable_node_behavior = "Cordon"',
     f"{AKS}.default_node_pool.upgrade_settings: unknown argument 'undrainable_node_behavior'"),
    # flex_start: google 6.x, after 6.20.0
    ("gcp-gpu", "spot            = each.value.spot", "spot = each.value.spot\n    flex_start = false",
     "main.tf: resource google_container_node_pool.pool.node_config: unknown argument 'flex_start'"),
], ids=["azurerm-undrainable-node-behavior", "google-flex-start"])
def test_check_fails_on_an_argument_newer_than_the_floor(example: str, old: str, new: str, expected: str,
                                                         tmp_path: Path, rendered) -> None:
    newest, floor = _schema(CASES[example]), _schema(CASES[example], "floor")
    docs = _mutated(tmp_path, example, old, new, rendered=rendered)
    assert provider_schema.check(docs, {CASES[example]: newest}) == []
    assert provider_schema.check(docs, {CASES[example]: floor}) == [expected]


def _node(schema: dict, path: str) -> tuple[dict, str]:
    """The block a dotted path leads to from its resource type, and the last name."""
    type_name, *rest = path.split(".")
    block = schema["resource"][type_name]
    for name in rest[:-1]:
        block = block["blocks"][name]
    return block, rest[-1] if rest else ""


@pytest.mark.parametrize("release", ["newest", "floor"])
@pytest.mark.parametrize("provider", sorted(provider_schema.PACKAGES))
def test_constraints_name_real_arguments_and_their_sources(provider: str, release: str) -> None:
    schema = _schema(provider, release)
    extra = provider_schema.constraints()
    docs = (f"https://registry.terraform.io/providers/hashicorp/{provider}/",
            f"https://github.com/hashicorp/terraform-provider-{provider}/")
    enums = {p: s for p, s in extra["enums"].items() if p.split("_", 1)[0] == provider}
    rules = [r for r in extra["rules"] if r["at"].split("_", 1)[0] == provider]
    assert enums and rules
    for path, spec in enums.items():
        block, name = _node(schema, path)
        assert name in block["attributes"], path
        assert spec["values"] and all(isinstance(v, str) for v in spec["values"]), path
        assert spec["source"].startswith(docs), path
    for rule in rules:
        block, _ = _node(schema, f"{rule['at']}.x")
        kinds = [k for k in ("exactly_one_of", "at_least_one_of", "conflicts") if k in rule]
        assert len(kinds) == 1, rule
        assert all(n in block["attributes"] or n in block["blocks"] for n in rule[kinds[0]]), rule
        assert rule["source"].startswith(docs), rule
