output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_ca" {
  description = "Base64 PEM of the cluster certificate authority."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "oidc_issuer" {
  description = "OIDC issuer URL of the cluster (for IRSA)."
  value       = try(aws_eks_cluster.this.identity[0].oidc[0].issuer, null)
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider (trust principal for IRSA roles)."
  value       = aws_iam_openid_connect_provider.cluster.arn
}

output "node_role_arn" {
  description = "IAM role ARN used by every node group."
  value       = aws_iam_role.node.arn
}

output "node_pools" {
  description = "Node group per pool: its name, instance types, labels and taints (what Kueue flavors match)."
  value = {
    for name, ng in aws_eks_node_group.pool : name => {
      node_group     = ng.node_group_name
      instance_types = ng.instance_types
      labels         = ng.labels
      taints         = local.pools[name].taints
    }
  }
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnet ids (one per zone)."
  value       = aws_subnet.private[*].id
}

output "kms_key_arn" {
  description = "KMS key that encrypts Kubernetes Secrets."
  value       = aws_kms_key.secrets.arn
}

output "autoscaler_role_arn" {
  description = "IAM role the cluster autoscaler assumes through Pod Identity."
  value       = aws_iam_role.autoscaler.arn
}

output "left_out" {
  description = "Resource kinds planned but left out because var.emulated is set (sandbox only); empty against AWS."
  value = var.emulated ? [
    "aws_eks_addon", "aws_eks_access_entry", "aws_eks_access_policy_association", "aws_eks_pod_identity_association",
    "aws_autoscaling_group_tag", "aws_placement_group",
  ] : []
}
