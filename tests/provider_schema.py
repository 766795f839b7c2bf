"""The azurerm and google Terraform providers' schemas, offline, and a checker of rendered HCL.

Those providers cannot be downloaded here, so ``terraform validate`` cannot run on the Azure and
GCP renders. Their schemas are published another way: the prebuilt CDK-for-Terraform packages
(``cdktf-cdktf-provider-azurerm``, ``cdktf-cdktf-provider-google``) embed them in their jsii
assembly: every resource and data source is a ``<Name>Config`` interface whose properties are
the arguments (``optional`` absent = required) and nested blocks (struct types), each with a
documentation link that names the Terraform spelling (``.../docs/resources/<type>#<name>``) and
the provider version the package was generated from.

``make provider-schemas`` downloads the wheels (pip, into ``$INFRA_TEST_CACHE/schemas/``) and
builds a virtualenv with python-hcl2 (``$INFRA_TEST_CACHE/hcl2-venv``); :func:`load` extracts a
compact schema once per wheel and caches it as JSON beside it. Nothing here is part of the app.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("INFRA_TEST_CACHE") or "/var/cache/infra-tests")
SCHEMAS = Path(os.environ.get("INFRA_PROVIDER_SCHEMAS") or CACHE / "schemas")
HCL2_PYTHON = Path(os.environ.get("INFRA_HCL2_PYTHON") or CACHE / "hcl2-venv" / "bin" / "python")
# Terraform provider name -> the PyPI package whose jsii assembly carries its schema.
PACKAGES = {"azurerm": "cdktf_cdktf_provider_azurerm", "google": "cdktf_cdktf_provider_google"}
# Meta-arguments and blocks every resource takes (Terraform's own, not the provider's).
META_ARGS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "connection", "provisioner", "dynamic"}

_CLASS_LINK = re.compile(r"/providers/hashicorp/[a-z0-9-]+/([0-9.]+)/docs/(?:resources|data-sources)/"
                         r"[a-z0-9_]+ ([a-z0-9_]+)\}")
_LINK = re.compile(r"/providers/hashicorp/[a-z0-9-]+/([0-9.]+)/docs/(resources|data-sources)/([a-z0-9_]+)#([a-z0-9_]+)")


def wheel(provider: str) -> Path | None:
    found = sorted(SCHEMAS.glob(f"{PACKAGES[provider]}-*.whl"))
    return found[-1] if found else None


def _link(prop: dict[str, Any]) -> re.Match[str] | None:
    docs = prop.get("docs", {})
    return _LINK.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")


def _structs(type_: dict[str, Any]) -> list[str]:
    if "fqn" in type_:
        return [type_["fqn"]]
    if "union" in type_:
        return [f for t in type_["union"]["types"] for f in _structs(t)]
    if "collection" in type_:
        return _structs(type_["collection"]["elementtype"])
    return []


def _block(types: dict[str, Any], fqn: str, depth: int = 0) -> dict[str, Any]:
    """``{"attributes": {name: required}, "blocks": {name: {"required": bool, **block}}}``."""
    attributes: dict[str, bool] = {}
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        match = _link(prop)
        if match is None:
            continue
        name, required = match.group(4), not prop.get("optional", False)
        nested = [f for f in _structs(prop["type"]) if types.get(f, {}).get("datatype") and not f.startswith("cdktf.")]
        if nested and depth < 12:
            blocks[name] = {"required": required, **_block(types, nested[0], depth + 1)}
        else:
            attributes[name] = required
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


def load(provider: str) -> dict[str, Any] | None:
    """The provider's schema (extracted once, cached as JSON beside the wheel), or None."""
    whl = wheel(provider)
    if whl is None:
        return None
    cached = whl.with_suffix(".schema.json")
    if not cached.is_file():
        data = extract(whl, provider)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(cached)
    return json.loads(cached.read_text())


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


def _check_body(body: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
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
                            problems += _check_body(item, blocks[name], f"{where}.{name}")
            continue
        if key in META_BLOCKS:
            continue
        if key in blocks:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    problems += _check_body(item, blocks[key], f"{where}.{key}")
                else:
                    problems.append(f"{where}: {key!r} is a block, written as an argument")
        elif key not in attributes:
            problems.append(f"{where}: unknown argument {key!r}")
    dynamic = {n for d in body.get("dynamic", []) for n in d}
    for name, required in attributes.items():
        if required and name not in body and name != "id":
            problems.append(f"{where}: missing required argument {name!r}")
    for name, spec in blocks.items():
        if spec["required"] and name not in body and name not in dynamic:
            problems.append(f"{where}: missing required block {name!r}")
    return problems


def check(documents: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> list[str]:
    """Every resource and data source of the parsed files against the providers' schemas:
    unknown types, unknown arguments and blocks, missing required ones (one line each)."""
    problems: list[str] = []
    for path, doc in sorted(documents.items()):
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
                            problems += _check_body(body, schema, where)
    return problems
