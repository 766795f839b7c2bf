output "cluster_name" {
  description = "GKE cluster name."
  value       = module.cluster.cluster_name
}

output "cluster_location" {
  description = "Region of the (regional) cluster."
  value       = module.cluster.cluster_location
}

output "project" {
  description = "Project of the cluster (gke-gcloud-auth-plugin and workload identity need it)."
  value       = module.cluster.project
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (the private endpoint when public_endpoint is false)."
  value       = module.cluster.cluster_endpoint
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = module.cluster.cluster_ca
}

output "workload_pool" {
  description = "Workload identity pool (PROJECT.svc.id.goog)."
  value       = module.cluster.workload_pool
}

output "node_service_account" {
  description = "Service account every node pool runs as."
  value       = module.cluster.node_service_account
}

output "node_pools" {
  description = "Node pool per blueprint pool: machine type, accelerator, labels and taints."
  value       = module.cluster.node_pools
}

output "network" {
  description = "VPC network id."
  value       = module.cluster.network
}

output "subnetwork" {
  description = "Node subnet id."
  value       = module.cluster.subnetwork
}
