"""Syntax a real API server checks on every write: names, label and annotation keys and values,
resource quantities. Ported from k8s.io/apimachinery (``pkg/util/validation``,
``pkg/api/validation``, ``pkg/api/resource``), messages included, so that a refusal reads
like a real server's. Never imports ``orchestrator``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = r"(" + QUALIFIED_NAME + r")?"

_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character")
_QUALIFIED_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                  "alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    eg = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {eg}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def is_dns1123_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(DNS1123_LABEL, value):
        errs.append(_regex_error(_LABEL_MSG, DNS1123_LABEL, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(DNS1035_LABEL, value):
        errs.append(_regex_error(_DNS1035_MSG, DNS1035_LABEL, "my-name", "abc-123"))
    return errs


def is_path_segment_name(value: str) -> list[str]:
    """RBAC objects, CertificateSigningRequests, flow-control objects: any name usable in a path."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def is_qualified_name(value: str) -> list[str]:
    """A label or annotation key: an optional DNS-subdomain prefix and '/', then a name."""
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) > 2:
        return ["a qualified name " + _regex_error(_QUALIFIED_MSG, QUALIFIED_NAME, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not re.fullmatch(QUALIFIED_NAME, name):
        errs.append("name part " + _regex_error(_QUALIFIED_MSG, QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(LABEL_VALUE, value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def _q(value: Any) -> str:
    return '"' + str(value).replace('"', '\\"') + '"'


def invalid(path: str, value: Any, detail: str) -> str:
    """A field.Invalid error as the API server prints it."""
    return f"{path}: Invalid value: {_q(value)}: {detail}"


def label_errors(labels: Any, path: str) -> list[str]:
    """``ValidateLabels``: keys are qualified names, values label values."""
    if not isinstance(labels, dict):
        return []
    errs = []
    for key, value in labels.items():
        errs += [invalid(path, key, m) for m in is_qualified_name(str(key))]
        if isinstance(value, str):
            errs += [invalid(path, value, m) for m in is_label_value(value)]
    return errs


def annotation_errors(annotations: Any, path: str) -> list[str]:
    """``ValidateAnnotations``: keys are qualified names (case-insensitive); 256 KiB in all."""
    if not isinstance(annotations, dict):
        return []
    errs = []
    for key in annotations:
        errs += [invalid(path, key, m) for m in is_qualified_name(str(key).lower())]
    total = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if total > 256 * 1024:
        errs.append(f"{path}: Too long: must have at most {256 * 1024} bytes")
    return errs


# Which names a kind accepts (the ``nameFn`` its strategy passes to ValidateObjectMeta).
DNS_LABEL_NAMED = {("v1", "Namespace")}
DNS1035_NAMED = {("v1", "Service")}
PATH_SEGMENT_NAMED = {
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration"),
}


def name_errors(api_version: str, kind: str, name: Any) -> list[str]:
    if not isinstance(name, str) or not name:
        return ["metadata.name: Required value: name or generateName is required"]
    if (api_version, kind) in DNS_LABEL_NAMED:
        check = is_dns1123_label
    elif (api_version, kind) in DNS1035_NAMED:
        check = is_dns1035_label
    elif (api_version, kind) in PATH_SEGMENT_NAMED:
        check = is_path_segment_name
    else:
        check = is_dns1123_subdomain
    return [invalid("metadata.name", name, m) for m in check(name)]


def meta_errors(obj: dict[str, Any]) -> list[str]:
    """``ValidateObjectMeta``: the name for the kind, labels, annotations."""
    meta = obj.get("metadata") or {}
    return (name_errors(obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name"))
            + label_errors(meta.get("labels"), "metadata.labels")
            + annotation_errors(meta.get("annotations"), "metadata.annotations"))


# --- quantities (k8s.io/apimachinery/pkg/api/resource) ---------------------------------------

QUANTITY_FORMAT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{QUANTITY_FORMAT}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def _split(text: str) -> tuple[str, str]:
    """``parseQuantityString``: (the signed number, the suffix), or ValueError(ERR_FORMAT)."""
    pos, end = 0, len(text)
    if text[:1] in ("-", "+"):
        pos = 1
    i = pos
    while i < end and text[i].isdigit():
        i += 1
    if i < end and text[i] == ".":
        i += 1
        while i < end and text[i].isdigit():
            i += 1
    number, start = text[:i], i
    while i < end and text[i] in "eEinumkKMGTP":
        i += 1
    if i < end and text[i] in "+-":
        i += 1
    while i < end and text[i].isdigit():
        i += 1
    if i < end:
        raise ValueError(ERR_FORMAT)
    return number, text[start:]


def parse_quantity(value: Any) -> Decimal:
    """The value of a Kubernetes quantity (a JSON string or number), or ValueError with the
    message ``resource.ParseQuantity`` gives."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(ERR_FORMAT)
    text = str(value).strip()
    if not text:
        raise ValueError(ERR_FORMAT)
    number, suffix = _split(text)
    digits = number.lstrip("+-")
    if digits in ("", "."):
        if digits == "" and number:  # a bare sign is 0 to Kubernetes
            return Decimal(0)
        raise ValueError(ERR_NUMERIC if digits == "." else ERR_FORMAT)
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(ERR_NUMERIC) from None
    if suffix in _BINARY:
        return base * (2 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return base.scaleb(_DECIMAL[suffix])
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        return base.scaleb(int(suffix[1:]))
    raise ValueError(ERR_SUFFIX)
