"""The fast manifest path writes exactly what PyYAML writes (issue 24: render at GitOps scale).

``render/yamlout.dump`` against ``yaml.dump`` with the settings every manifest uses, on random
documents full of hostile scalars; the manifest builders' ``data`` against the template path it
replaced (JSON text read back as YAML); the Kueue release's documents found by string search
against a full parse; the shipped data files read with libyaml against ``yaml.safe_load``.
"""

from __future__ import annotations

import enum
import json
import random

import pytest
import yaml

from orchestrator import datafiles, paths
from orchestrator.render import yamlout
from orchestrator.render.kubernetes import kueue, manifests, placement
from orchestrator.render.kubernetes.templates import dump

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

WORDS = [
    "a", "name", "app.kubernetes.io/name", "nvidia.com/gpu", "k8s-app", "/models", "s3://b/k.onnx", "0.0.0.0/0",
    "10.0.0.0/16", "50m", "64Mi", "--flag=1", "a=b", "a@b", "a+b", "a:b", "arn:aws:iam::1:role/x",
    # resolve to something other than a string: written quoted
    "true", "false", "yes", "no", "on", "off", "Y", "n", "True", "FALSE", "null", "~", "1", "-1", "+1", "1.5", "1e3",
    ".inf", ".nan", "NaN", "Infinity", "0x1f", "0o17", "0b101", "012", "1_000", "1:30", "2024-01-01", "=", "<<",
    # indicators, quotes, spaces, breaks, non-ASCII, controls
    "", " ", "-", "- a", "a: b", "a:", ":a", "#x", "a #b", "a#b", "'q'", '"dq"', "*star", "&amp", "!bang", "%pct",
    "@at", "`bt", "|pipe", ">gt", "[br]", "{br}", ",comma", "?q", "? q", "trailing ", " leading", "---", "...",
    "..a", "x\ny", "tab\there", "back\\slash", "ünïcode", "emoji\U0001F600", "\x00nul", "\u2028ls", "\x85nel",
    # long: near the width PyYAML folds at, a complex key, a folded line
    "x" * 130, "x" * 995, ("word " * 250).strip(),
]
FLOATS = [0.5, 1.0, 1e-05, 1e20, -2.5, 3.14159, float("inf")]


def _scalar(rng: random.Random):
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(WORDS)
    if roll < 0.7:
        return rng.randint(-10**6, 10**6)
    if roll < 0.75:
        return rng.choice([True, False, None])
    if roll < 0.85:
        return rng.choice(FLOATS)
    return "".join(rng.choice("ab :-#'\"\\\n\tü/.") for _ in range(rng.randint(0, 8)))


def _value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return _scalar(rng)
    if roll < 0.7:
        return {(rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randint(0, 99))): _value(rng, depth + 1)
                for _ in range(rng.randint(0, 5))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _pyyaml(obj) -> str:
    return yaml.dump(obj, Dumper=DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)


@pytest.mark.parametrize("seed", range(4))
def test_dump_writes_what_pyyaml_writes(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        doc = {rng.choice(WORDS): _value(rng) for _ in range(rng.randint(1, 5))}
        assert yamlout.dump(doc) == _pyyaml(doc), doc


def test_dump_of_what_it_does_not_write_itself_is_pyyamls() -> None:
    """Top levels that are not a non-empty mapping, multi-line and folded strings, long keys:
    PyYAML writes them (and refuses what it refuses)."""
    for doc in ([1, 2], "text", {}, None, {"k": "a\nb"}, {"k": ("word " * 300)}, {"k" * 200: 1},
                {"k": {"deep": "x" * 998}}, {"k": [{"a": "\u2029"}]}):
        assert yamlout.dump(doc) == _pyyaml(doc), doc

    class Colour(enum.StrEnum):
        RED = "red"

    with pytest.raises(yaml.representer.RepresenterError):
        _pyyaml({"k": Colour.RED})
    with pytest.raises(yaml.representer.RepresenterError):
        yamlout.dump({"k": Colour.RED})


def test_dump_of_shared_objects_has_no_anchors() -> None:
    shared = {"a": 1}
    assert dump([{"x": shared, "y": shared}]) == "x:\n  a: 1\ny:\n  a: 1\n"


def test_manifest_data_is_what_the_templates_made() -> None:
    """The builders' values are the templates' ``| tojson`` read back as YAML: JSON text, so a
    float without a dot stays text, tuples are lists, an enum is its value, and no object is
    shared between two places (PyYAML would write an anchor)."""

    class Tier(enum.StrEnum):
        GOLD = "gold"

    shared = {"k": "v"}
    objs = [{"a": (1, 2), "b": 1e-05, "c": 1.5, "d": float("inf"), "e": Tier.GOLD, "f": shared, "g": shared,
             "h": 10**20, "i": "x: y", "j": None, "k": True}]
    got = manifests.data(objs)
    # what a template line `key: {{ value | tojson }}` gave once parsed
    template = yaml.load("".join(f"{k}: {json.dumps(v)}\n" for k, v in objs[0].items()), Loader=LOADER)
    assert got == [template]
    assert got[0]["b"] == "1e-05" and got[0]["d"] == "Infinity" and got[0]["e"] == "gold"
    assert got[0]["f"] == got[0]["g"] and got[0]["f"] is not got[0]["g"]


def test_kueue_documents_found_by_search_are_the_parsed_ones() -> None:
    text = kueue.install_manifest()
    parsed = [d for d in yaml.load_all(text, Loader=LOADER) if d]
    for kinds in (placement._WORKLOADS, ("ConfigMap",), ("Service", "Deployment", "Namespace"),
                  ("CustomResourceDefinition",)):
        assert kueue._documents(text, tuple(kinds)) == [d for d in parsed if d.get("kind") in kinds], kinds
    workloads = kueue.install_documents(*placement._WORKLOADS)
    assert workloads == [d for d in parsed if d.get("kind") in placement._WORKLOADS]
    assert [d["kind"] for d in workloads] == ["Deployment"]
    # documents are separated by bare `---` lines, which is what the search relies on
    assert all(line == "---" for line in text.splitlines() if line.startswith("---"))
    assert text.count("\n---\n") == len(parsed) - 1


def test_shipped_data_files_read_alike() -> None:
    files = sorted((paths.package_data()).glob("*/*.yaml"))
    assert len(files) >= 8, files
    for path in files:
        assert datafiles.load(path) == yaml.safe_load(path.read_text("utf-8")), path
