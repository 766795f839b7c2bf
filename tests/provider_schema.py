"""The azurerm and google Terraform providers' schemas, offline, and a checker of rendered HCL.

Those providers cannot be downloaded here, so ``terraform validate`` cannot run on the Azure and
GCP renders. Their schemas are published another way: the prebuilt CDK-for-Terraform packages
(``cdktf-cdktf-provider-azurerm``, ``cdktf-cdktf-provider-google``) embed them in their jsii
assembly: every resource and data source is a ``<Name>Config`` interface whose properties are
the arguments (``optional`` absent = required; the jsii type gives string, number, boolean,
lists and maps) and nested blocks (struct types: one struct = at most one block, an array of
structs = a list of blocks), each with a documentation link that names the Terraform spelling
(``.../docs/resources/<type>#<name>``) and the provider version the package was generated from.
The google package's docs also carry the provider's generated enums (``Possible values: [...]``).

What the assemblies lack (the allowed values of hand-written arguments, ExactlyOneOf /
AtLeastOneOf / ConflictsWith rules) comes from ``tests/fixtures/provider_constraints.yaml``, one
public source per entry, for the arguments and blocks our modules set.

Two releases of each package are checked (:data:`RELEASES`): the newest we test, and the one
generated from the floor of the range ``templates/terraform/<cloud>/versions.tf`` pins.
``make provider-schemas`` downloads the wheels (pip, into ``$INFRA_TEST_CACHE/schemas/``) and
builds a virtualenv with python-hcl2 (``$INFRA_TEST_CACHE/hcl2-venv``); :func:`load` extracts a
compact schema once per wheel and caches it as JSON beside it. Nothing here is part of the app.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("INFRA_TEST_CACHE") or "/var/cache/infra-tests")
SCHEMAS = Path(os.environ.get("INFRA_PROVIDER_SCHEMAS") or CACHE / "schemas")
HCL2_PYTHON = Path(os.environ.get("INFRA_HCL2_PYTHON") or CACHE / "hcl2-venv" / "bin" / "python")
# Terraform provider name -> the PyPI package whose jsii assembly carries its schema.
PACKAGES = {"azurerm": "cdktf_cdktf_provider_azurerm", "google": "cdktf_cdktf_provider_google"}
# The package releases checked (the Makefile's SCHEMA_WHEELS fetches exactly these): "newest",
# and "floor", generated from the lowest provider version versions.tf admits (azurerm 4.40.0,
# google 6.20.0; the provider version is in each assembly's doc links).
RELEASES = {"azurerm": {"newest": "14.23.1", "floor": "14.9.0"},
            "google": {"newest": "16.12.1", "floor": "14.19.0"}}
CONSTRAINTS = Path(__file__).resolve().parent / "fixtures" / "provider_constraints.yaml"
# Meta-arguments and blocks every resource takes (Terraform's own, not the provider's).
META_ARGS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "connection", "provisioner", "dynamic"}
_FORMAT = 2  # of the cached compact schema: bump when extract() changes

_CLASS_LINK = re.compile(r"/providers/hashicorp/[a-z0-9-]+/([0-9.]+)/docs/(?:resources|data-sources)/"
                         r"[a-z0-9_]+ ([a-z0-9_]+)\}")
_LINK = re.compile(r"/providers/hashicorp/[a-z0-9-]+/([0-9.]+)/docs/(resources|data-sources)/([a-z0-9_]+)#([a-z0-9_]+)")
_ENUM = re.compile(r'Possible values: \[((?:"[^"]*"(?:, )?)+)\]')


def wheel(provider: str, release: str = "newest") -> Path | None:
    path = SCHEMAS / f"{PACKAGES[provider]}-{RELEASES[provider][release]}-py3-none-any.whl"
    return path if path.is_file() else None


def _docs(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    return f"{docs.get('summary', '')} {docs.get('remarks', '')}"


def _structs(type_: dict[str, Any]) -> list[str]:
    if "fqn" in type_:
        return [type_["fqn"]]
    if "union" in type_:
        return [f for t in type_["union"]["types"] for f in _structs(t)]
    if "collection" in type_:
        return _structs(type_["collection"]["elementtype"])
    return []


def _type(type_: dict[str, Any]) -> str:
    """The Terraform type of a jsii property type: string, number, bool, list(T), map(T) or any."""
    if "primitive" in type_:
        return {"boolean": "bool", "string": "string", "number": "number"}.get(type_["primitive"], "any")
    if "collection" in type_:
        kind = "map" if type_["collection"]["kind"] == "map" else "list"
        return f"{kind}({_type(type_['collection']['elementtype'])})"
    if "union" in type_:  # T | cdktf.IResolvable: a value of T, or an expression
        kinds = [t for t in type_["union"]["types"] if t.get("fqn") != "cdktf.IResolvable"]
        return _type(kinds[0]) if len(kinds) == 1 else "any"
    return "any"


def _block(types: dict[str, Any], fqn: str, depth: int = 0) -> dict[str, Any]:
    """``{"attributes": {name: {"required", "type"[, "enum"]}},
    "blocks": {name: {"required", "max_one", **block}}}``."""
    attributes: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        match = _LINK.search(_docs(prop))
        if match is None:
            continue
        name, required = match.group(4), not prop.get("optional", False)
        nested = [f for f in _structs(prop["type"]) if types.get(f, {}).get("datatype") and not f.startswith("cdktf.")]
        if nested and depth < 12:
            blocks[name] = {"required": required, "max_one": "fqn" in prop["type"],
                            **_block(types, nested[0], depth + 1)}
            continue
        attributes[name] = {"required": required, "type": _type(prop["type"])}
        enum = _ENUM.search(_docs(prop))
        if enum:
            attributes[name]["enum"] = re.findall(r'"([^"]*)"', enum.group(1))
    return {"attributes": attributes, "blocks": blocks}


def extract(whl: Path, provider: str) -> dict[str, Any]:
    """The compact schema of every resource and data source in the wheel's jsii assembly."""
    with zipfile.ZipFile(whl) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(zf.read(member))) as tgz:
            assembly = json.load(tgz.extractfile("package/.jsii"))  # type: ignore[arg-type]
    types = assembly["types"]
    out: dict[str, Any] = {"provider": provider, "package": whl.name, "provider_version": None,
                           "resource": {}, "data": {}}
    for fqn, spec in types.items():
        base = spec.get("base")
        if spec.get("kind") != "class" or base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
            continue
        match = _CLASS_LINK.search(spec.get("docs", {}).get("summary", ""))
        if match is None or f"{fqn}Config" not in types:
            continue
        out["provider_version"] = match.group(1)
        section = "resource" if base == "cdktf.TerraformResource" else "data"
        out[section][match.group(2)] = _block(types, f"{fqn}Config")
    return out


def load(provider: str, release: str = "newest") -> dict[str, Any] | None:
    """The provider's schema (extracted once, cached as JSON beside the wheel), or None."""
    whl = wheel(provider, release)
    if whl is None:
        return None
    cached = whl.with_suffix(f".schema{_FORMAT}.json")
    if not cached.is_file():
        data = extract(whl, provider)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(cached)
    return json.loads(cached.read_text())


@functools.cache
def constraints() -> dict[str, Any]:
    """``tests/fixtures/provider_constraints.yaml``: ``enums`` {path: {values, source}}, ``rules`` [...]."""
    import yaml

    return yaml.safe_load(CONSTRAINTS.read_text())


_PARSE = (
    "import hcl2, json, sys\n"
    "out = {}\n"
    "for path in sys.argv[1:]:\n"
    "    with open(path) as f:\n"
    "        out[path] = hcl2.load(f)\n"
    "print(json.dumps(out, default=str))\n"
)


def parse_hcl(paths: list[Path]) -> dict[str, Any]:
    """``{path: python-hcl2 document}`` through the hcl2 virtualenv's interpreter."""
    proc = subprocess.run([str(HCL2_PYTHON), "-c", _PARSE, *map(str, paths)], capture_output=True, text=True,
                          check=False, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"python-hcl2 could not parse {paths}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


# Values. python-hcl2 gives literals as Python values and everything else as "${...}" text; of
# an expression only the literal branches of a conditional (`c ? "a" : null`) are known offline.
_UNSET = object()
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_VAR = re.compile(r"\$\{var\.([A-Za-z0-9_-]+)\}")
_CONTAINS = re.compile(r"\$\{contains\(\[([^\]]*)\],\s*var\.([A-Za-z0-9_-]+)\)\}")


def _split_conditional(expr: str) -> tuple[str, str, str] | None:
    """``(condition, then, else)`` of a top-level ``c ? a : b`` (strings and brackets respected)."""
    depth, question, pending, i = 0, -1, 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch == '"':
            i += 1
            while i < len(expr) and expr[i] != '"':
                i += 2 if expr[i] == "\\" else 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:  # "${a}-${b}": a template, not one expression
                return None
        elif depth == 0 and ch == "?":
            if question < 0:
                question = i
            else:
                pending += 1
        elif depth == 0 and ch == ":" and question >= 0:
            if not pending:
                return expr[:question].strip(), expr[question + 1:i].strip(), expr[i + 1:].strip()
            pending -= 1
        i += 1
    return None


def _literal(text: str) -> Any:
    """The value of a literal in expression syntax, or ``_UNSET``."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _NUMBER.fullmatch(text):
        return float(text) if re.search(r"[.eE]", text) else int(text)
    match = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', text)
    if match and "${" not in match.group(1):
        return match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    return _UNSET


def _candidates(value: Any) -> list[Any]:
    """The literal values an argument may take: itself, or the non-null literal branches of a
    conditional; none for any other expression (references cannot be typed offline)."""
    if not isinstance(value, str) or "${" not in value:
        return [value]
    if not (value.startswith("${") and value.endswith("}")):
        return []  # an interpolated string
    parts = _split_conditional(value[2:-1])
    if parts is None:
        return []
    out = []
    for branch in parts[1:]:
        literal = _literal(branch)
        if literal is _UNSET:
            out += _candidates("${" + branch + "}")  # a nested conditional, else nothing
        elif literal is not None:
            out.append(literal)
    return out


def _mistyped(value: Any, type_: str) -> bool:
    """Whether a literal fails Terraform's conversion to ``type_`` (which accepts "5" as a
    number, "true" as a bool, and numbers and bools as strings). Expressions pass."""
    if type_ == "any" or value is None or (isinstance(value, str) and "${" in value):
        return False
    if type_.startswith("list("):
        return not isinstance(value, list) or any(_mistyped(v, type_[5:-1]) for v in value)
    if type_.startswith("map("):
        return not isinstance(value, dict) or any(_mistyped(v, type_[4:-1]) for v in value.values())
    if isinstance(value, list | dict):
        return True
    if type_ == "number":
        if isinstance(value, bool):
            return True
        return isinstance(value, str) and not _NUMBER.fullmatch(value.strip())
    if type_ == "bool":
        return not (isinstance(value, bool) or value in ("true", "false"))
    return False  # string: every primitive converts


@dataclass
class _Context:
    enums: dict[str, list[str]]  # path -> allowed values, from the constraints file
    rules: dict[str, list[dict[str, Any]]]  # path -> rules
    var_values: dict[str, list[str]] = field(default_factory=dict)  # variable -> the values its validation admits


def _check_value(key: str, value: Any, spec: dict[str, Any], path: str, where: str, ctx: _Context) -> list[str]:
    problems: list[str] = []
    for literal in _candidates(value):
        if _mistyped(literal, spec["type"]):
            problems.append(f"{where}: {key!r} expects {spec['type']}, got {literal!r}")
    allowed = ctx.enums.get(path) or spec.get("enum")
    if not allowed:
        return problems
    if spec["type"].startswith("list(") and isinstance(value, list):
        given = [v for v in value if isinstance(v, str) and "${" not in v]
    else:
        given = [v for v in _candidates(value) if isinstance(v, str)]
    problems += [f"{where}: {key!r} = {v!r} is not one of {allowed}" for v in given if v not in allowed]
    var = _VAR.fullmatch(value) if isinstance(value, str) else None
    if var and var.group(1) in ctx.var_values:
        problems += [f"{where}: {key!r} = var.{var.group(1)}, whose validation admits {v!r}, not one of {allowed}"
                     for v in ctx.var_values[var.group(1)] if v not in allowed]
    return problems


def _check_rules(body: dict[str, Any], dynamic: set[str], path: str, where: str, ctx: _Context) -> list[str]:
    problems: list[str] = []
    for rule in ctx.rules.get(path, []):
        for kind in ("exactly_one_of", "at_least_one_of", "conflicts"):
            if kind not in rule:
                continue
            names = rule[kind]
            present = [n for n in names if (n in body and body[n] is not None) or n in dynamic]
            listed = ", ".join(map(repr, names))
            if kind == "exactly_one_of" and len(present) != 1:
                has = ", ".join(map(repr, present)) or "none"
                problems.append(f"{where}: needs exactly one of {listed}, has {has}")
            elif kind == "at_least_one_of" and not present:
                problems.append(f"{where}: needs at least one of {listed}, has none")
            elif kind == "conflicts" and len(present) > 1:
                problems.append(f"{where}: {listed} conflict (at most one may be set)")
    return problems


def _check_body(body: dict[str, Any], schema: dict[str, Any], where: str, path: str, ctx: _Context) -> list[str]:
    problems: list[str] = []
    attributes, blocks = schema["attributes"], schema["blocks"]
    for key, value in body.items():
        if key in META_ARGS or key.startswith("__"):
            continue
        if key == "dynamic":
            for dyn in value:
                for name, spec in dyn.items():
                    if name not in blocks:
                        problems.append(f"{where}: unknown dynamic block {name!r}")
                    else:
                        content = spec.get("content", [{}])
                        for item in content if isinstance(content, list) else [content]:
                            problems += _check_body(item, blocks[name], f"{where}.{name}", f"{path}.{name}", ctx)
            continue
        if key in META_BLOCKS:
            continue
        if key in blocks:
            items = value if isinstance(value, list) else [value]
            if blocks[key].get("max_one") and len(items) > 1:
                problems.append(f"{where}: block {key!r} given {len(items)} times, at most once allowed")
            for item in items:
                if isinstance(item, dict):
                    problems += _check_body(item, blocks[key], f"{where}.{key}", f"{path}.{key}", ctx)
                else:
                    problems.append(f"{where}: {key!r} is a block, written as an argument")
        elif key not in attributes:
            problems.append(f"{where}: unknown argument {key!r}")
        else:
            problems += _check_value(key, value, attributes[key], f"{path}.{key}", where, ctx)
    dynamic = {n for d in body.get("dynamic", []) for n in d}
    for name, spec in attributes.items():
        if spec["required"] and name not in body and name != "id":
            problems.append(f"{where}: missing required argument {name!r}")
    for name, spec in blocks.items():
        if spec["required"] and name not in body and name not in dynamic:
            problems.append(f"{where}: missing required block {name!r}")
    return problems + _check_rules(body, dynamic, path, where, ctx)


def _validated_values(documents: dict[str, Any]) -> dict[Path, dict[str, list[str]]]:
    """Per module folder: variable -> the values a ``contains([...], var.x)`` validation admits."""
    out: dict[Path, dict[str, list[str]]] = {}
    for path, doc in documents.items():
        for entry in doc.get("variable", []):
            for name, spec in entry.items():
                for validation in spec.get("validation", []):
                    match = _CONTAINS.fullmatch(str(validation.get("condition", "")))
                    if match and match.group(2) == name:  # python-hcl2 drops the quotes in the list
                        values = [v.strip().strip('"') for v in match.group(1).split(",")]
                        out.setdefault(Path(path).parent, {})[name] = values
    return out


def check(documents: dict[str, Any], schemas: dict[str, dict[str, Any]],
          extra: dict[str, Any] | None = None) -> list[str]:
    """Every resource and data source of the parsed files against the providers' schemas and
    ``extra`` (default: the constraints file): unknown types, unknown arguments and blocks,
    missing required ones, a block repeated that allows one, literal values of the wrong type
    or outside the allowed values (also the values a variable's validation admits), and
    exactly-one-of / at-least-one-of / conflicts rules (one line each)."""
    extra = constraints() if extra is None else extra
    rules: dict[str, list[dict[str, Any]]] = {}
    for rule in extra.get("rules", []):
        rules.setdefault(rule["at"], []).append(rule)
    enums = {path: spec["values"] for path, spec in extra.get("enums", {}).items()}
    validated = _validated_values(documents)
    problems: list[str] = []
    for path, doc in sorted(documents.items()):
        ctx = _Context(enums, rules, validated.get(Path(path).parent, {}))
        for section in ("resource", "data"):
            for entry in doc.get(section, []):
                for type_name, instances in entry.items():
                    provider = type_name.split("_", 1)[0]
                    if provider not in schemas:
                        continue
                    schema = schemas[provider][section].get(type_name)
                    for name, body in instances.items():
                        where = f"{Path(path).name}: {section} {type_name}.{name}"
                        if schema is None:
                            problems.append(f"{where}: unknown {section} type for {provider} "
                                            f"{schemas[provider]['provider_version']}")
                        else:
                            root = type_name if section == "resource" else f"data.{type_name}"
                            problems += _check_body(body, schema, where, root, ctx)
    return problems
