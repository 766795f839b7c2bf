"""Values whose form depends on the provider: cloud principals (``access.admins``,
``teams[].members``) and zone names (``network.zones``).

Which form a provider takes is data (``principal`` and ``zone_names`` under ``settings:`` in
data/catalog/<provider>.yaml; defaults: AWS's). The loader passes the blueprint's provider to
validation (``context={"provider": ...}``); without it (data validated again later, e.g. a
rollout restoring an applied blueprint) any provider's form is accepted.
"""

from __future__ import annotations

import re

from pydantic import ValidationInfo

from . import catalog

# re.ASCII: IAM names are ASCII (\w would also admit look-alike letters of other scripts).
_AWS_PRINCIPAL = re.compile(r"arn:aws(-[a-z]+)*:(iam::\d{12}:(role|user)(/[\w+=,.@-]+)*/[\w+=,.@-]{1,128}"
                            r"|sts::\d{12}:assumed-role/[\w+=,.@-]{1,64}/[\w+=,.@-]{1,64})", re.ASCII)
_ENTRA_OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_GOOGLE_MEMBER = re.compile(r"((user|group|serviceAccount):)?[A-Za-z0-9._%+'-]+@"
                            r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# principal form -> (pattern, what the error says it must be)
PRINCIPAL_FORMS = {
    "aws_arn": (_AWS_PRINCIPAL, "an IAM role or user ARN such as arn:aws:iam::123456789012:role/ml-admins"),
    "entra_object_id": (_ENTRA_OBJECT_ID, "an Entra ID object ID on azure: a GUID such as "
                                          "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f (of a group or a user)"),
    "google_member": (_GOOGLE_MEMBER, "a Google identity on gcp: an email, or user:, group: or serviceAccount: "
                                      "and an email (e.g. group:ml-admins@example.com)"),
}
# teams[].groups per provider (settings ``group.form``): what its RBAC sees of a group.
GROUP_FORMS = {
    "entra_object_id": _ENTRA_OBJECT_ID,
    "google_group": re.compile(r"[A-Za-z0-9._%+'-]+@([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"),
}
AWS_ZONE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9][a-z]?(-[a-z0-9]+)?[a-z]")


def context_provider(info: ValidationInfo) -> str | None:
    """The blueprint's provider, when the loader passed it and it is known."""
    provider = (info.context or {}).get("provider")
    return provider if isinstance(provider, str) and provider in catalog.providers() else None


def principal(value: str, info: ValidationInfo) -> str:
    """``value`` if it is a principal in the provider's form (Entra object IDs lowercased, as
    Entra ID writes them); else ValueError saying what that form is."""
    provider = context_provider(info)
    kinds = [catalog.setting(provider, "principal", "aws_arn")] if provider else list(PRINCIPAL_FORMS)
    for kind in kinds:
        if PRINCIPAL_FORMS[kind][0].fullmatch(value):
            return value.lower() if kind == "entra_object_id" else value
    raise ValueError("must be " + " or ".join(PRINCIPAL_FORMS[k][1] for k in kinds))


def zone_forms(info: ValidationInfo) -> list[tuple[re.Pattern[str], str]]:
    """(pattern, example) of a zone name on the provider (default: AWS's, us-east-1a)."""
    provider = context_provider(info)
    found = []
    for name in [provider] if provider else catalog.providers():
        names = catalog.setting(name, "zone_names") or {"pattern": AWS_ZONE.pattern, "example": "us-east-1a"}
        found.append((re.compile(names["pattern"]), str(names["example"])))
    return list(dict.fromkeys(found))
