output "cluster_name" {
  description = "AKS cluster name."
  value       = module.cluster.cluster_name
}

output "resource_group" {
  description = "Resource group of the cluster and its network."
  value       = module.cluster.resource_group
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (the private FQDN for a private cluster)."
  value       = module.cluster.cluster_endpoint
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = module.cluster.cluster_ca
  sensitive   = true
}

output "oidc_issuer" {
  description = "OIDC issuer URL of the cluster (for workload identity federation)."
  value       = module.cluster.oidc_issuer
}

output "tenant_id" {
  description = "Entra ID tenant of the cluster (kubelogin needs it)."
  value       = module.cluster.tenant_id
}

output "kubelet_identity_object_id" {
  description = "Object ID of the kubelet's managed identity (grant it image pulls)."
  value       = module.cluster.kubelet_identity_object_id
}

output "node_pools" {
  description = "Node pool per blueprint pool: its AKS name, VM size, labels and taints."
  value       = module.cluster.node_pools
}

output "vnet_id" {
  description = "Virtual network id."
  value       = module.cluster.vnet_id
}

output "node_subnet_id" {
  description = "Node subnet id."
  value       = module.cluster.node_subnet_id
}
