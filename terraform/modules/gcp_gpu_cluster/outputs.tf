output "cluster_name" {
  description = "GKE cluster name."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "Region of the (regional) cluster."
  value       = google_container_cluster.this.location
}

output "project" {
  description = "Project of the cluster (gke-gcloud-auth-plugin and workload identity need it)."
  value       = data.google_client_config.current.project
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (the private endpoint when public_endpoint is false)."
  value       = "https://${var.public_endpoint ? google_container_cluster.this.endpoint : google_container_cluster.this.private_cluster_config[0].private_endpoint}"
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "workload_pool" {
  description = "Workload identity pool (PROJECT.svc.id.goog)."
  value       = "${data.google_client_config.current.project}.svc.id.goog"
}

output "node_service_account" {
  description = "Service account every node pool runs as."
  value       = google_service_account.nodes.email
}

output "node_pools" {
  description = "Node pool per blueprint pool: machine type, accelerator, labels and taints."
  value       = { for p in var.node_pools : p.name => { machine_type = p.machine_type, accelerator = p.accelerator_type, labels = p.labels, taints = p.taints } }
}

output "network" {
  description = "VPC network id."
  value       = google_compute_network.this.id
}

output "subnetwork" {
  description = "Node subnet id."
  value       = google_compute_subnetwork.nodes.id
}
