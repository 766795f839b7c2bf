"""An example Pulumi program that consumes an infra environment's outputs (docs/pulumi.md).

It reads the outputs the last `infra up` of an environment left (here the sandbox example's), then
uses them as inputs: a Kubernetes provider configured with the environment's kubeconfig (a secret)
and a ConfigMap in the cluster that records its endpoint, VPC and node pools. The resources are
declared with the core SDK's generic classes so that the program needs nothing but `pulumi`; with
the `pulumi_kubernetes` package the same is `k8s.Provider(...)` and `k8s.core.v1.ConfigMap(...)`.
tests/unit/test_pulumi_bridge.py runs it under Pulumi's mocks.
"""

from pathlib import Path

import pulumi

from orchestrator.pulumi_bridge import environment

HERE = Path(__file__).resolve().parent
config = pulumi.Config()
target = config.get("blueprint") or "../sandbox.yaml"
if target.endswith((".yaml", ".yml")):
    target = str(HERE / target)  # relative to this folder, wherever the program is started from
env = environment(target, root=config.get("root") or None, sandbox=config.get_bool("sandbox") is not False)

cluster = pulumi.ProviderResource("kubernetes", f"{env.name}-cluster", {"kubeconfig": env.kubeconfig})
pulumi.CustomResource(
    "kubernetes:core/v1:ConfigMap",
    "infra-outputs",
    {
        "metadata": {"name": "infra-outputs", "namespace": "default"},
        "data": {
            "clusterEndpoint": env.cluster_endpoint,
            "vpcId": env.vpc_id,
            "nodePools": env.node_pools.apply(lambda pools: ",".join(sorted(pools))),
        },
    },
    opts=pulumi.ResourceOptions(provider=cluster),
)

pulumi.export("cluster_endpoint", env.cluster_endpoint)
pulumi.export("vpc_id", env.vpc_id)
pulumi.export("node_pools", env.node_pools)
pulumi.export("kubeconfig", env.kubeconfig)
