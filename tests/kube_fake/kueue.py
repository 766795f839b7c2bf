"""Kueue's validating webhooks (release v0.19.2, ``pkg/webhooks/``), as the API server calls them.

Some of Kueue's rules are not in its CRDs but in its webhook server, which the release installs
with a ``ValidatingWebhookConfiguration`` (``failurePolicy: Fail``). The double applies the rules
of a webhook when the store holds a ValidatingWebhookConfiguration that names it and whose
rules match the write (group, version, resource, CREATE or UPDATE), as the Kueue install leaves
(``fixtures.install_crds`` stores the release's). A denial is what the API server makes of
controller-runtime's ``Denied``: 403 Forbidden, ``admission webhook "<name>" denied the request:
<errors>``.

Carried over, from ``clusterqueue_webhook.go`` / ``common.go`` (``vclusterqueue.kb.io``):
coveredResources are valid resource names and unique across resource groups; each flavor's
``resources[i].name`` equals ``coveredResources[i]`` (same order); flavor names are unique across
resource groups; ``nominalQuota``, ``borrowingLimit``, ``lendingLimit`` are not negative;
``borrowingLimit`` and ``lendingLimit`` only with a cohort; ``lendingLimit <= nominalQuota``; at
most 256 flavors and 256 covered resources in all and 512 flavor-resource pairs per group;
``admissionChecksStrategy`` names only flavors of the queue; ``namespaceSelector`` is a valid
label selector. From ``resourceflavor_webhook.go`` (``vresourceflavor.kb.io``): ``nodeLabels``
are valid labels; ``nodeTaints`` have valid keys and values and are unique by key and effect;
tolerations have valid keys. Not carried over: the webhooks of Workloads, Cohorts, LocalQueues
and of the job integrations (``vjob.kb.io``, ``vpod.kb.io``, ...), feature-gated rules
(ConcurrentAdmission), and what the rules above share with the CRDs' CEL rules (those are
checked as CEL, 422, before any webhook runs).

Never imports ``orchestrator``.
"""

from __future__ import annotations

from typing import Any

from .syntax import invalid, is_label_value, is_qualified_name, label_errors, parse_quantity

GROUP = "kueue.x-k8s.io"
_NEGATIVE = "must be greater than or equal to 0"


def _duplicate(path: str, value: Any, detail: str = "") -> str:
    return f'{path}: Duplicate value: "{value}"' + (f": {detail}" if detail else "")


def _quantity(value: Any, path: str) -> tuple[Any, list[str]]:
    try:
        q = parse_quantity(value)
    except ValueError as exc:
        return None, [invalid(path, value, str(exc))]
    return q, [invalid(path, value, _NEGATIVE)] if q < 0 else []


def selector_errors(selector: Any, path: str) -> list[str]:
    """``ValidateLabelSelector`` (metav1 validation)."""
    if not isinstance(selector, dict):
        return []
    errors = label_errors(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, req in enumerate(selector.get("matchExpressions") or []):
        at = f"{path}.matchExpressions[{i}]"
        op, values = req.get("operator"), req.get("values") or []
        if op in ("In", "NotIn") and not values:
            errors.append(f"{at}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist") and values:
            errors.append(f"{at}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errors.append(f'{at}.operator: Invalid value: "{op}": not a valid selector operator')
        errors += [invalid(f"{at}.key", req.get("key", ""), m) for m in is_qualified_name(str(req.get("key", "")))]
    return errors


def cluster_queue_errors(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    has_cohort = bool(spec.get("cohortName") or spec.get("cohort"))
    groups = spec.get("resourceGroups") or []
    errors: list[str] = []
    seen_resources: set[str] = set()
    seen_flavors: set[str] = set()
    for g, group in enumerate(groups):
        at = f"spec.resourceGroups[{g}]"
        covered = group.get("coveredResources") or []
        for j, name in enumerate(covered):
            errors += [invalid(f"{at}.coveredResources[{j}]", name, m) for m in is_qualified_name(str(name))]
            if name in seen_resources:
                errors.append(_duplicate(f"{at}.coveredResources[{j}]", name))
            seen_resources.add(name)
        for j, flavor in enumerate(group.get("flavors") or []):
            fat = f"{at}.flavors[{j}]"
            for i, rq in enumerate((flavor.get("resources") or [])[: len(covered)]):
                rat = f"{fat}.resources[{i}]"
                if rq.get("name") != covered[i]:
                    errors.append(invalid(f"{rat}.name", rq.get("name"), "must match the name in coveredResources"))
                nominal, errs = _quantity(rq.get("nominalQuota", 0), f"{rat}.nominalQuota")
                errors += errs
                if rq.get("borrowingLimit") is not None:
                    if not has_cohort:
                        errors.append(invalid(f"{rat}.borrowingLimit", rq["borrowingLimit"],
                                              "must be nil when cohort is empty"))
                    errors += _quantity(rq["borrowingLimit"], f"{rat}.borrowingLimit")[1]
                if rq.get("lendingLimit") is not None:
                    lending, errs = _quantity(rq["lendingLimit"], f"{rat}.lendingLimit")
                    errors += errs
                    if not has_cohort:
                        errors.append(invalid(f"{rat}.lendingLimit", rq["lendingLimit"],
                                              "must be nil when cohort is empty"))
                    if lending is not None and nominal is not None and lending > nominal:
                        errors.append(invalid(f"{rat}.lendingLimit", rq["lendingLimit"],
                                              "must be less than or equal to the nominalQuota"))
            if flavor.get("name") in seen_flavors:
                errors.append(_duplicate(f"{fat}.name", flavor.get("name")))
            seen_flavors.add(flavor.get("name"))
    errors += selector_errors(spec.get("namespaceSelector"), "spec.namespaceSelector")
    total_flavors = sum(len(g.get("flavors") or []) for g in groups)
    if total_flavors > 256:
        errors.append(invalid("spec.resourceGroups", total_flavors, "total number of flavors across all "
                              f"resourceGroups must be ≤ 256, got {total_flavors}"))
    total_covered = sum(len(g.get("coveredResources") or []) for g in groups)
    if total_covered > 256:
        errors.append(invalid("spec.resourceGroups", total_covered, "total number of covered resources across all "
                              f"resourceGroups must be ≤ 256, got {total_covered}"))
    for g, group in enumerate(groups):
        pairs = sum(len(f.get("resources") or []) for f in group.get("flavors") or [])
        if pairs > 512:
            errors.append(invalid(f"spec.resourceGroups[{g}]", pairs, "number of flavor-resource combinations in a "
                                  f"resourceGroup must be ≤ 512, got {pairs}"))
    flavors = sorted(seen_flavors, key=str)
    for i, check in enumerate(((spec.get("admissionChecksStrategy") or {}).get("admissionChecks")) or []):
        for j, name in enumerate(check.get("onFlavors") or []):
            if name not in seen_flavors:
                supported = ", ".join(f'"{f}"' for f in flavors)
                errors.append(f'spec.admissionChecksStrategy.admissionChecks[{i}].onFlavors[{j}]: Unsupported value: '
                              f'"{name}": supported values: {supported}')
    return errors


def resource_flavor_errors(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    errors = label_errors(spec.get("nodeLabels"), "spec.nodeLabels")
    seen: dict[Any, set[str]] = {}
    for i, taint in enumerate(spec.get("nodeTaints") or []):
        at = f"spec.nodeTaints[{i}]"
        key, value = str(taint.get("key", "")), str(taint.get("value", ""))
        errors += [invalid(f"{at}.key", key, m) for m in is_qualified_name(key)]
        problems = is_label_value(value)
        if problems:
            errors.append(invalid(f"{at}.value", value, ";".join(problems)))
        if key in seen.get(taint.get("effect"), set()):
            errors.append(_duplicate(at, taint, "taints must be unique by key and effect pair"))
            continue
        seen.setdefault(taint.get("effect"), set()).add(key)
    for i, toleration in enumerate(spec.get("tolerations") or []):
        key = str(toleration.get("key") or "")
        if key:
            errors += [invalid(f"spec.tolerations[{i}].key", key, m) for m in is_qualified_name(key)]
    return errors


WEBHOOKS = {  # webhook name -> (resource, its rules)
    "vclusterqueue.kb.io": ("clusterqueues", cluster_queue_errors),
    "vresourceflavor.kb.io": ("resourceflavors", resource_flavor_errors),
}


def _matches(rule: dict[str, Any], group: str, plural: str, operation: str) -> bool:
    """Group, resource and operation; not the version: with ``matchPolicy: Equivalent`` (the
    default) a write of another served version is converted and sent to the webhook too."""
    def has(field: str, value: str) -> bool:
        return any(v in ("*", value) for v in rule.get(field) or [])
    return has("apiGroups", group) and has("resources", plural) and has("operations", operation)


def denial(obj: dict[str, Any], old: dict[str, Any] | None, plural: str,
           configs: list[dict[str, Any]]) -> tuple[str, list[str]] | None:
    """(webhook name, errors) of the first configured Kueue webhook that denies this write."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if group != GROUP:
        return None
    operation = "UPDATE" if old is not None else "CREATE"
    for config in configs:
        for hook in config.get("webhooks") or []:
            implemented = WEBHOOKS.get(hook.get("name"))
            if not implemented or implemented[0] != plural:
                continue
            if not any(_matches(r, group, plural, operation) for r in hook.get("rules") or []):
                continue
            errors = implemented[1](obj)
            if errors:
                return hook["name"], errors
    return None


def message(name: str, errors: list[str]) -> str:
    """``admission webhook "<name>" denied the request: <aggregate>`` (a k8s ErrorList aggregate)."""
    body = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    return f'admission webhook "{name}" denied the request: {body}'
