output "cluster_name" {
  description = "AKS cluster name."
  value       = azurerm_kubernetes_cluster.this.name
}

output "resource_group" {
  description = "Resource group of the cluster and its network."
  value       = azurerm_resource_group.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (the private FQDN for a private cluster)."
  value       = "https://${var.public_endpoint ? azurerm_kubernetes_cluster.this.fqdn : azurerm_kubernetes_cluster.this.private_fqdn}:443"
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].cluster_ca_certificate
  sensitive   = true
}

output "oidc_issuer" {
  description = "OIDC issuer URL of the cluster (for workload identity federation)."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "tenant_id" {
  description = "Entra ID tenant of the cluster (kubelogin needs it)."
  value       = data.azurerm_client_config.current.tenant_id
}

output "kubelet_identity_object_id" {
  description = "Object ID of the kubelet's managed identity (grant it image pulls)."
  value       = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
}

output "node_pools" {
  description = "Node pool per blueprint pool: its AKS name, VM size, labels and taints."
  value = merge(
    { (var.system_pool.pool) = { name = var.system_pool.name, vm_size = var.system_pool.vm_size, labels = var.system_pool.labels, taints = [] } },
    { for p in var.node_pools : p.pool => { name = p.name, vm_size = p.vm_size, labels = p.labels, taints = p.taints } },
  )
}

output "vnet_id" {
  description = "Virtual network id."
  value       = azurerm_virtual_network.this.id
}

output "node_subnet_id" {
  description = "Node subnet id."
  value       = azurerm_subnet.nodes.id
}

output "model_reader_client_ids" {
  description = "Client ID of each team's model-reading managed identity (the handoff annotates the team's model-server service account with it)."
  value       = { for team, identity in azurerm_user_assigned_identity.model_reader : team => identity.client_id }
}
