"""The shape of every manifest infra renders, as data (pure): context in, objects out.

One builder per kind of file; each takes the values its caller computed (``tenancy``,
``scheduling``, ``device_plugin``, ``inference``, ``admission``) and returns the objects. What is
fixed is written here as literals; what is computed enters only as data (:func:`data`), never
as text: nothing can break the YAML around a value, and nothing is evaluated (docs/security.md).

These were Jinja templates rendered to YAML text, parsed back and dumped again; built as data
they are dumped once (``templates.dump``), and the bytes are the same (golden files).
"""

from __future__ import annotations

import json
from typing import Any

V1 = "v1"
RBAC_API = "rbac.authorization.k8s.io"
NETPOL_API = "networking.k8s.io/v1"
ADMISSION_API = "admissionregistration.k8s.io/v1"
TCP = "TCP"


def _yaml_float(text: str) -> float | str:
    """A JSON number with a fraction or exponent as YAML 1.1 reads it: a float only with a dot."""
    return float(text) if "." in text else text


def data(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain JSON-shaped data, as the templates' ``| tojson`` gave it: fresh lists and dicts (no
    object shared between two places), tuples as lists, enums and other str/int subclasses as
    their values; a float as YAML 1.1 reads its JSON text (``1e-05`` stays text), and
    ``Infinity``/``NaN`` as text."""
    return json.loads(json.dumps(objs), parse_float=_yaml_float, parse_constant=str)


def _meta(name: Any, namespace: Any = None, **more: Any) -> dict[str, Any]:
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(more)
    return meta


def namespace(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """A team's namespace. The team label is what the team's ClusterQueue selects; Pod Security
    Admission enforces the baseline profile and warns about anything short of restricted."""
    return data([{"apiVersion": V1, "kind": "Namespace",
                  "metadata": {"name": ctx["namespace"], "labels": ctx["labels"]}}])


def priority_classes(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Priority tiers for batch, interactive and inference pods. None is the global default."""
    return data([{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": pc["name"]},
                  "value": pc["value"], "preemptionPolicy": pc["preemption"], "globalDefault": False,
                  "description": pc["description"]} for pc in ctx["classes"]])


def resource_flavor(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One flavor per GPU node pool: its node labels, exactly as the pool's nodes carry them, and
    tolerations for the pool's taints (Kueue adds them to the pods it admits to this flavor)."""
    return data([{"apiVersion": ctx["api_version"], "kind": "ResourceFlavor", "metadata": {"name": ctx["name"]},
                  "spec": {"nodeLabels": ctx["node_labels"], "tolerations": ctx["tolerations"]}}])


def local_queue(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The queue a team's jobs name in their kueue.x-k8s.io/queue-name label."""
    return data([{"apiVersion": ctx["api_version"], "kind": "LocalQueue",
                  "metadata": _meta(ctx["name"], ctx["namespace"]), "spec": {"clusterQueue": ctx["cluster_queue"]}}])


def cluster_queue(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One ClusterQueue per team, in the shared cohort: guaranteed (nominal) quota per flavor, how
    much it may borrow from idle teams, and explicit preemption rules."""
    return data([{
        "apiVersion": ctx["api_version"],
        "kind": "ClusterQueue",
        "metadata": {"name": ctx["name"]},
        "spec": {
            "cohortName": ctx["cohort"],
            "namespaceSelector": {"matchLabels": ctx["namespace_labels"]},
            "queueingStrategy": "BestEffortFIFO",
            "preemption": {"reclaimWithinCohort": "Any", "borrowWithinCohort": {"policy": "Never"},
                           "withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": ctx["covered"], "flavors": ctx["flavors"]}],
        },
    }])


def _netpol(name: str, ns: Any, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": NETPOL_API, "kind": "NetworkPolicy", "metadata": _meta(name, ns), "spec": spec}


def _ports(*ports: tuple[str, Any]) -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": port} for protocol, port in ports]


def team(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Tenancy of one team: quota, default requests, RBAC for its groups, network isolation."""
    ns = ctx["namespace"]
    objs: list[dict[str, Any]] = [
        {"apiVersion": V1, "kind": "ResourceQuota", "metadata": _meta("team-quota", ns),
         "spec": {"hard": ctx["quota"]}},
        {"apiVersion": V1, "kind": "LimitRange", "metadata": _meta("team-defaults", ns),
         "spec": {"limits": [{"type": "Container", "default": ctx["limit_default"],
                              "defaultRequest": ctx["limit_default_request"], "max": ctx["limit_max"]}]}},
        {"apiVersion": f"{RBAC_API}/v1", "kind": "Role", "metadata": _meta(ctx["role"], ns), "rules": ctx["rules"]},
    ]
    if ctx["groups"]:
        objs.append({"apiVersion": f"{RBAC_API}/v1", "kind": "RoleBinding", "metadata": _meta(ctx["role_binding"], ns),
                     "roleRef": {"apiGroup": RBAC_API, "kind": "Role", "name": ctx["role"]},
                     "subjects": [{"kind": "Group", "apiGroup": RBAC_API, "name": g} for g in ctx["groups"]]})
    objs += [
        _netpol("default-deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _netpol("allow-same-namespace", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                             "ingress": [{"from": [{"podSelector": {}}]}],
                                             "egress": [{"to": [{"podSelector": {}}]}]}),
        _netpol("allow-dns", ns, {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": _ports(("UDP", 53), (TCP, 53))}]}),
        # HTTPS to anything outside the cluster network (object stores, package mirrors) through
        # the NAT gateway; other namespaces' pods stay unreachable.
        _netpol("allow-egress-https", ns, {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ctx["cluster_cidrs"]}}],
            "ports": _ports((TCP, 443))}]}),
        # Inference endpoints, reachable from namespaces labelled as gateways (ingress controller).
        _netpol("allow-gateway-to-inference", ns, {
            "podSelector": {"matchLabels": ctx["inference_selector"]}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": ctx["gateway_selector"]}}],
                         "ports": _ports((TCP, ctx["http_port"]), (TCP, ctx["grpc_port"]))}]}),
    ]
    identity = ctx["model_identity"]
    if identity:
        # The identity the team's model servers fetch their models with: Terraform binds it to a
        # cloud identity that reads exactly the team's model objects (EKS Pod Identity, GKE
        # Workload Identity Federation). No API token is mounted: the cloud's agent identifies
        # the pod by it.
        meta = _meta(identity["service_account"], ns)
        if identity["annotations"]:
            meta["annotations"] = identity["annotations"]
        objs.append({"apiVersion": V1, "kind": "ServiceAccount", "metadata": meta,
                     "automountServiceAccountToken": False})
        if identity["endpoints"]:
            # ... and reach the cloud's identity endpoint (link-local, outside allow-egress-https's port).
            objs.append(_netpol("allow-model-identity", ns, {
                "podSelector": {"matchLabels": ctx["inference_selector"]}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": e["cidr"]}}], "ports": _ports((TCP, e["port"]))}
                           for e in identity["endpoints"]]}))
    if ctx["seldon_operator_namespace"]:
        # Seldon Core v2: its operator (cluster-wide, in its own namespace) drives this
        # namespace's SeldonRuntime scheduler over gRPC; the default deny above would cut it off.
        objs.append(_netpol("allow-seldon-operator", ns, {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": ctx["seldon_operator_namespace"]}}}]}]}))
    return data(objs)


def _policy(name: Any, rules: list[dict[str, Any]], validations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules},
                     "validations": validations}}


def _binding(name: Any, selector: Any) -> dict[str, Any]:
    return {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": selector}}}


def _rule(group: str, operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "apiVersions": ["v1"], "operations": operations, "resources": resources}


def admission_policies(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Admission rules for team namespaces (ValidatingAdmissionPolicy, Kubernetes >= 1.30),
    enforced by the API server itself: no webhook to be down."""
    return data([
        # The inference priority class preempts training: only model servers may use it.
        _policy(ctx["inference_policy"],
                [_rule("", ["CREATE", "UPDATE"], ["pods"]), _rule("batch", ["CREATE", "UPDATE"], ["jobs", "cronjobs"])],
                [{"expression": ctx["job_expression"], "message": ctx["job_message"], "reason": "Forbidden"},
                 {"expression": ctx["pod_expression"], "message": ctx["pod_message"], "reason": "Forbidden"}]),
        _binding(ctx["inference_policy"], ctx["team_selector"]),
        # Every team Job names its team's queue: Kueue admits it against the team's quota.
        _policy(ctx["queue_policy"], [_rule("batch", ["CREATE"], ["jobs"])],
                [{"expression": ctx["queue_expression"], "message": ctx["queue_message"], "reason": "Invalid"}]),
        _binding(ctx["queue_policy"], ctx["team_selector"]),
    ])


_NO_ESCALATION = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def device_plugin(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """NVIDIA device plugin: advertises nvidia.com/gpu on GPU nodes only. It must tolerate the GPU
    pools' taints, or the nodes would report 0 allocatable GPUs. Based on
    NVIDIA/k8s-device-plugin deployments/static/nvidia-device-plugin.yml at the pinned version."""
    name = "nvidia-device-plugin"
    selector = {"app.kubernetes.io/name": name}
    host_path = "/var/lib/kubelet/device-plugins"
    return data([{
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(name, "kube-system"),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": ctx["gpu_label"], "operator": "In", "values": ["true"]}]}]}}},
                    "tolerations": ctx["tolerations"],
                    "containers": [{
                        "name": name,
                        "image": ctx["image"],
                        "env": ctx["env"],
                        "securityContext": _NO_ESCALATION,
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "200m", "memory": "256Mi"}},
                        "volumeMounts": [{"name": "device-plugin", "mountPath": host_path}],
                    }],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": host_path, "type": "Directory"}}],
                },
            },
        },
    }])


def _probe(path: Any, period: int, **more: Any) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, **more}


def onnx_model(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """An ONNX model served by Triton (ONNX Runtime backend) over the Open Inference Protocol v2:
    GET /v2/health/ready, GET /v2/models/<name>/ready, POST /v2/models/<name>/infer on port 8000.
    Init containers fetch the model and lay it out as a Triton model repository."""
    server: dict[str, Any] = {
        "name": "server",
        "image": ctx["image"],
        "command": ["tritonserver"],
        "args": ctx["server_args"],
        "ports": [{"name": "http", "containerPort": ctx["http_port"], "protocol": TCP},
                  {"name": "grpc", "containerPort": ctx["grpc_port"], "protocol": TCP},
                  {"name": "metrics", "containerPort": ctx["metrics_port"], "protocol": TCP}],
        "startupProbe": _probe("/v2/health/live", 10, failureThreshold=60),
        "livenessProbe": _probe("/v2/health/live", 15),
        "readinessProbe": _probe(ctx["ready_path"], 5),
        "resources": ctx["resources"],
        "securityContext": _NO_ESCALATION,
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    }
    if ctx["env"]:
        server["env"] = ctx["env"]
    pod: dict[str, Any] = {
        "priorityClassName": ctx["priority_class"],
        "affinity": ctx["affinity"],
        "tolerations": ctx["tolerations"],
        "initContainers": ctx["init_containers"],
        "containers": [server],
        "volumes": ctx["volumes"],
    }
    if ctx["service_account"]:
        pod["serviceAccountName"] = ctx["service_account"]
    name, ns = ctx["name"], ctx["namespace"]
    return data([
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta(name, ns, labels=ctx["labels"], annotations=ctx["annotations"]),
         "spec": {"replicas": ctx["replicas"], "selector": {"matchLabels": ctx["selector"]},
                  "template": {"metadata": {"labels": ctx["pod_labels"]}, "spec": pod}}},
        {"apiVersion": V1, "kind": "Service", "metadata": _meta(name, ns, labels=ctx["labels"]),
         "spec": {"type": "ClusterIP", "selector": ctx["selector"], "ports": [
             {"name": "http", "port": ctx["http_port"], "targetPort": "http", "protocol": TCP},
             {"name": "grpc", "port": ctx["grpc_port"], "targetPort": "grpc", "protocol": TCP}]}},
    ])


def seldon_model(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """A Seldon Core v2 Model: an ONNX model repository folder (holding model.onnx), loaded on a
    server with the onnx capability (Triton). Requests go through seldon-mesh with the header
    "Seldon-Model: <name>"."""
    return data([{"apiVersion": ctx["api_version"], "kind": "Model",
                  "metadata": _meta(ctx["name"], ctx["namespace"], labels=ctx["labels"],
                                    annotations=ctx["annotations"]),
                  "spec": ctx["spec"]}])


def seldon_runtime(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Seldon Core v2's runtime for this namespace (scheduler, envoy, gateways): the team's Models
    and Servers are scheduled by it. Built from the cluster's SeldonConfig, installed with
    Seldon Core v2's operator (docs/kubernetes.md, "Seldon Core v2")."""
    return data([{"apiVersion": ctx["api_version"], "kind": "SeldonRuntime",
                  "metadata": _meta(ctx["name"], ctx["namespace"], labels=ctx["labels"]),
                  "spec": {"seldonConfig": ctx["seldon_config"]}}])


def seldon_server(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """A Triton server for the team's GPU models: Seldon Models carry no resources of their own,
    so GPU requests and tolerations live on the Server that loads them."""
    return data([{"apiVersion": ctx["api_version"], "kind": "Server",
                  "metadata": _meta(ctx["name"], ctx["namespace"], labels=ctx["labels"]),
                  "spec": {"serverConfig": ctx["server_config"], "replicas": ctx["replicas"],
                           "podSpec": {"priorityClassName": ctx["priority_class"], "affinity": ctx["affinity"],
                                       "tolerations": ctx["tolerations"],
                                       "containers": [{"name": "triton", "resources": ctx["resources"]}]}}}])


MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"


def multikueue_manager(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The manager's side of bursting (docs/hybrid.md): a MultiKueueCluster per worker (its
    kubeconfig in a Secret of Kueue's namespace, written by ``infra up``, never rendered), and per
    bursting team a MultiKueueConfig and AdmissionCheck, a ClusterQueue holding the team's burst
    budget in the quota-only ``burst`` flavor, whose every Workload the check dispatches to a
    worker, and the LocalQueue its Jobs move to."""
    api = ctx["api_version"]
    objs: list[dict[str, Any]] = [
        {"apiVersion": api, "kind": "ResourceFlavor", "metadata": {"name": ctx["flavor"]}, "spec": {}}]
    for worker in ctx["workers"]:
        objs.append({"apiVersion": api, "kind": "MultiKueueCluster", "metadata": {"name": worker["name"]},
                     "spec": {"clusterSource": {"kubeConfig": {"locationType": "Secret",
                                                               "location": worker["secret"]}}}})
    for team in ctx["teams"]:
        objs += [
            {"apiVersion": api, "kind": "MultiKueueConfig", "metadata": {"name": team["check"]},
             "spec": {"clusters": team["clusters"]}},
            {"apiVersion": api, "kind": "AdmissionCheck", "metadata": {"name": team["check"]},
             "spec": {"controllerName": MULTIKUEUE_CONTROLLER,
                      "parameters": {"apiGroup": api.split("/")[0], "kind": "MultiKueueConfig",
                                     "name": team["check"]}}},
            {"apiVersion": api, "kind": "ClusterQueue", "metadata": {"name": team["cluster_queue"]},
             "spec": {"namespaceSelector": {"matchLabels": team["namespace_labels"]},
                      "queueingStrategy": "BestEffortFIFO",
                      "resourceGroups": [{"coveredResources": ctx["covered"], "flavors": [
                          {"name": ctx["flavor"], "resources": team["resources"]}]}],
                      "admissionChecksStrategy": {"admissionChecks": [{"name": team["check"]}]}}},
            {"apiVersion": api, "kind": "LocalQueue", "metadata": _meta(team["local_queue"], team["namespace"]),
             "spec": {"clusterQueue": team["cluster_queue"]}},
        ]
    return data(objs)


def multikueue_worker(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """A worker's side of bursting: per manager a ServiceAccount in Kueue's namespace and its
    token Secret (the token controller fills it; ``infra up`` copies it into the manager's
    kubeconfig Secret), allowed exactly what MultiKueue does here: watch Jobs and Workloads
    cluster-wide (its informers list every namespace), create and delete them, read their
    status and write Workload status, in the team namespaces only; and in each team namespace a
    LocalQueue named like the manager's burst queue, feeding the team's own ClusterQueue."""
    rbac = f"{RBAC_API}/v1"
    ns = ctx["namespace"]
    objs: list[dict[str, Any]] = [
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": ctx[f"{which}_role"]},
         "rules": ctx[f"{which}_rules"]} for which in ("watch", "write")
    ]
    for manager in ctx["managers"]:
        account = manager["service_account"]
        subject = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
        objs += [
            {"apiVersion": V1, "kind": "ServiceAccount", "metadata": _meta(account, ns),
             "automountServiceAccountToken": False},
            {"apiVersion": V1, "kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": _meta(manager["token_secret"], ns,
                               annotations={"kubernetes.io/service-account.name": account})},
            {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": account},
             "roleRef": {"apiGroup": RBAC_API, "kind": "ClusterRole", "name": ctx["watch_role"]},
             "subjects": subject},
        ]
        for team_ns in ctx["team_namespaces"]:
            objs.append({"apiVersion": rbac, "kind": "RoleBinding", "metadata": _meta(account, team_ns),
                         "roleRef": {"apiGroup": RBAC_API, "kind": "ClusterRole", "name": ctx["write_role"]},
                         "subjects": subject})
    for queue in ctx["queues"]:
        objs.append({"apiVersion": ctx["api_version"], "kind": "LocalQueue",
                     "metadata": _meta(queue["name"], queue["namespace"]),
                     "spec": {"clusterQueue": queue["cluster_queue"]}})
    return data(objs)
