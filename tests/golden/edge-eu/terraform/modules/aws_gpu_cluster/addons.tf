# EKS managed add-ons. Versions: the default version EKS lists for the cluster's Kubernetes
# version (data.aws_eks_addon_version), resolved at plan time, so an upgrade of the cluster
# version moves the add-ons with it.
# vpc-cni runs in network-policy mode so the rendered NetworkPolicies are enforced; the EBS CSI
# driver gets its own role through Pod Identity (the agent is an add-on too).
# The emulator implements none of this: var.emulated leaves it out of a sandbox apply.

locals {
  addon_settings = {
    "vpc-cni"                = { configuration = jsonencode({ enableNetworkPolicy = "true" }), before_nodes = true }
    "eks-pod-identity-agent" = { configuration = null, before_nodes = true }
    "kube-proxy"             = { configuration = null, before_nodes = true }
    "coredns"                = { configuration = null, before_nodes = false }
    "aws-ebs-csi-driver"     = { configuration = null, before_nodes = false }
  }
  addons = var.emulated ? {} : local.addon_settings
  # Networking add-ons exist before any node joins (so nodes start with network policy on);
  # coredns and the EBS CSI driver need nodes to run on, so they come after the node groups.
  addons_before_nodes = { for k, v in local.addons : k => v if v.before_nodes }
  addons_after_nodes  = { for k, v in local.addons : k => v if !v.before_nodes }
}

data "aws_eks_addon_version" "this" {
  for_each = local.addons

  addon_name         = each.key
  kubernetes_version = aws_eks_cluster.this.version
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = data.aws_eks_addon_version.this[each.key].version
  configuration_values        = each.value.configuration
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = var.tags
}

resource "aws_eks_addon" "this" {
  for_each = local.addons_after_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = data.aws_eks_addon_version.this[each.key].version
  configuration_values        = each.value.configuration
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = var.tags

  depends_on = [aws_eks_pod_identity_association.this, aws_eks_node_group.pool]
}

# Pod Identity: one role per controller, trusted by pods.eks.amazonaws.com only.
data "aws_iam_policy_document" "pod_identity_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  name_prefix           = "${var.name}-ebs-csi-"
  assume_role_policy    = data.aws_iam_policy_document.pod_identity_assume.json
  force_detach_policies = true
  tags                  = var.tags
}

resource "aws_iam_role_policy_attachments_exclusive" "ebs_csi" { # why exclusive: see iam.tf
  role_name   = aws_iam_role.ebs_csi.name
  policy_arns = ["${local.policy_prefix}/service-role/AmazonEBSCSIDriverPolicy"]
}

removed {
  from = aws_iam_role_policy_attachment.ebs_csi
  lifecycle {
    destroy = false
  }
}

locals {
  pod_identities = var.emulated ? {} : merge({
    ebs-csi            = { namespace = "kube-system", service_account = "ebs-csi-controller-sa", role_arn = aws_iam_role.ebs_csi.arn }
    cluster-autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler", role_arn = aws_iam_role.autoscaler.arn }
    }, {
    for team, r in local.model_readers : "models-${team}" => {
      namespace = r.namespace, service_account = r.service_account, role_arn = aws_iam_role.model_reader[team].arn
    }
  })
}

resource "aws_eks_pod_identity_association" "this" {
  for_each = local.pod_identities

  cluster_name    = aws_eks_cluster.this.name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = each.value.role_arn
  tags            = var.tags
}
