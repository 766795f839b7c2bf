# Who may log in: EKS access entries (authentication_mode = "API"). Cluster admins get the
# AmazonEKSClusterAdminPolicy; team members get only their team's Kubernetes group, which the
# team's RoleBinding (build/<name>/kubernetes/teams/) binds to the team Role.
# The emulator does not implement access entries: var.emulated leaves them out of a sandbox apply.

locals {
  admin_entries  = var.emulated ? {} : { for arn in var.cluster_admins : arn => arn }
  member_entries = var.emulated ? {} : { for m in var.access_members : m.principal_arn => m.kubernetes_groups }
}

resource "aws_eks_access_entry" "admin" {
  for_each = local.admin_entries

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.key
  type          = "STANDARD"
  tags          = var.tags
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = local.admin_entries

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.admin[each.key].principal_arn
  policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}

resource "aws_eks_access_entry" "member" {
  for_each = local.member_entries

  cluster_name      = aws_eks_cluster.this.name
  principal_arn     = each.key
  kubernetes_groups = each.value
  type              = "STANDARD"
  tags              = var.tags
}
