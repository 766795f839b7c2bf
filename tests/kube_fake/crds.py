"""The CustomResourceDefinitions the double serves, from upstream releases only.

* Kueue: every CRD of the vendored release ``orchestrator/data/vendor/kueue-v0.19.2/manifests.yaml``
  (read as a data file, never imported; its SHA-256 must be the one its ``manifests.yaml.sha256``
  names), and that release's ``ValidatingWebhookConfiguration``: the webhooks whose rules
  ``kueue.py`` carries out.
* Seldon Core v2: ``tests/fixtures/kube/crds/seldon_*.yaml``, unmodified files of a Seldon Core
  v2 release (see the README there).

Nothing here is written from what ``infra`` renders.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
KUEUE_RELEASE = REPO / "orchestrator/data/vendor/kueue-v0.19.2/manifests.yaml"  # a data file, never imported
FIXTURE_CRDS = REPO / "tests" / "fixtures" / "kube" / "crds"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def kueue_release() -> tuple[dict[str, Any], ...]:
    """Every object of the vendored Kueue release, after checking its checksum."""
    data = KUEUE_RELEASE.read_bytes()
    expected = (KUEUE_RELEASE.parent / "manifests.yaml.sha256").read_text().split()[0]
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RuntimeError(f"{KUEUE_RELEASE}: sha256 {actual}, its manifests.yaml.sha256 says {expected}")
    return tuple(d for d in yaml.load_all(data, Loader=_LOADER) if d)


def kueue_crds() -> list[dict[str, Any]]:
    return [d for d in kueue_release() if d["kind"] == "CustomResourceDefinition"]


def kueue_crd(plural: str) -> dict[str, Any]:
    """One CRD of the release, e.g. ``kueue_crd("resourceflavors")``."""
    return next(c for c in kueue_crds() if c["metadata"]["name"] == f"{plural}.kueue.x-k8s.io")


def kueue_webhooks() -> list[dict[str, Any]]:
    """The release's ValidatingWebhookConfiguration(s)."""
    return [d for d in kueue_release() if d["kind"] == "ValidatingWebhookConfiguration"]


@functools.cache
def seldon_crds() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.load(p.read_bytes(), Loader=_LOADER) for p in sorted(FIXTURE_CRDS.glob("seldon_*.yaml")))


def all_crds() -> list[dict[str, Any]]:
    return kueue_crds() + list(seldon_crds())


def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind) -> openAPIV3Schema`` of every version of every CRD here."""
    out = {}
    for crd in all_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return out
