output "cluster_name" {
  description = "EKS cluster name."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.cluster.cluster_endpoint
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = module.cluster.cluster_ca
}

output "oidc_issuer" {
  description = "OIDC issuer URL of the cluster (for IRSA)."
  value       = module.cluster.oidc_issuer
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider (trust principal for IRSA roles)."
  value       = module.cluster.oidc_provider_arn
}

output "node_role_arn" {
  description = "IAM role ARN used by every node group."
  value       = module.cluster.node_role_arn
}

output "node_pools" {
  description = "Node group per pool: its name, instance types, labels and taints."
  value       = module.cluster.node_pools
}

output "vpc_id" {
  description = "VPC id."
  value       = module.cluster.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnet ids (one per zone)."
  value       = module.cluster.private_subnet_ids
}

output "kms_key_arn" {
  description = "KMS key that encrypts Kubernetes Secrets."
  value       = module.cluster.kms_key_arn
}

output "autoscaler_role_arn" {
  description = "IAM role the cluster autoscaler assumes through Pod Identity."
  value       = module.cluster.autoscaler_role_arn
}

output "left_out" {
  description = "Resource kinds planned but left out of a sandbox apply (the emulator lacks them); empty against AWS."
  value       = module.cluster.left_out
}
