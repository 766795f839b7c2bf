# Cluster Autoscaler (manifests in build/<name>/kubernetes/cluster/cluster-autoscaler.yaml).
# It finds node groups by the two discovery tags and, for a pool at zero nodes, predicts the
# node from the node-template tags (labels, taints, GPU count). Tags on aws_eks_node_group do
# not reach its Auto Scaling group, so they are set on the group itself (and, for reference, on
# the node group too). The emulator creates no Auto Scaling group for a node group:
# var.emulated leaves the group tags out of a sandbox apply.

locals {
  autoscaler_pool_tags = {
    for name, p in local.pools : name => merge(
      {
        "k8s.io/cluster-autoscaler/enabled"     = "true"
        "k8s.io/cluster-autoscaler/${var.name}" = "owned"
      },
      { for k, v in p.labels : "k8s.io/cluster-autoscaler/node-template/label/${k}" => v },
      { for t in p.taints : "k8s.io/cluster-autoscaler/node-template/taint/${t.key}" => "${t.value}:${local.taint_effects[t.effect]}" },
      p.gpu_count > 0 ? { "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu" = tostring(p.gpu_count) } : {},
    )
  }
  autoscaler_tags = merge([
    for name, tags in local.autoscaler_pool_tags : { for k, v in tags : "${name}|${k}" => v }
  ]...)
  taint_effects = { NO_SCHEDULE = "NoSchedule", NO_EXECUTE = "NoExecute", PREFER_NO_SCHEDULE = "PreferNoSchedule" }
}

resource "aws_autoscaling_group_tag" "pool" {
  for_each = var.emulated ? {} : local.autoscaler_tags

  autoscaling_group_name = aws_eks_node_group.pool[split("|", each.key)[0]].resources[0].autoscaling_groups[0].name

  tag {
    key                 = split("|", each.key)[1]
    value               = each.value
    propagate_at_launch = false
  }
}

# Least privilege: describe anything, but change only Auto Scaling groups tagged as this
# cluster's (the discovery tag above).
data "aws_iam_policy_document" "autoscaler" {
  statement {
    sid = "Describe"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
      "eks:DescribeNodegroup",
    ]
    resources = ["*"] #checkov:skip=CKV_AWS_356:Describe* calls take no resource ARN
  }

  statement {
    sid       = "ScaleOwnGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role" "autoscaler" {
  name_prefix        = "${var.name}-autoscaler-"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "autoscaler" {
  name_prefix = "cluster-autoscaler-" # a prefix: see cluster_kms in iam.tf
  role        = aws_iam_role.autoscaler.id
  policy      = data.aws_iam_policy_document.autoscaler.json
}
