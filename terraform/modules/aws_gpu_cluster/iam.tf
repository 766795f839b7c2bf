# IAM roles for the control plane and the nodes, and the KMS key that encrypts Secrets.
# Policy ARNs are built from the partition so the module works in aws-cn and aws-us-gov too.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  policy_prefix = "arn:${data.aws_partition.current.partition}:iam::aws:policy"
  node_policies = {
    worker = "${local.policy_prefix}/AmazonEKSWorkerNodePolicy"
    cni    = "${local.policy_prefix}/AmazonEKS_CNI_Policy"
    ecr    = "${local.policy_prefix}/AmazonEC2ContainerRegistryReadOnly"
  }
}

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name_prefix           = "${var.name}-cluster-"
  assume_role_policy    = data.aws_iam_policy_document.cluster_assume.json
  force_detach_policies = true # the exclusive attachment below leaves its policies attached when destroyed
  tags                  = var.tags
}

# Managed policies are attached by one exclusive resource per role, never by one
# aws_iam_role_policy_attachment per policy: the node groups are create_before_destroy, which
# Terraform forces onto everything they depend on, and a create-before-destroy replacement of a
# per-policy attachment (after an interrupted apply left it tainted) attaches the policy again and
# then detaches it, leaving the role without it while the state says attached. This resource's
# create attaches what is missing and its destroy detaches nothing.
resource "aws_iam_role_policy_attachments_exclusive" "cluster" {
  role_name   = aws_iam_role.cluster.name
  policy_arns = ["${local.policy_prefix}/AmazonEKSClusterPolicy"]
}

removed {
  from = aws_iam_role_policy_attachment.cluster
  lifecycle {
    destroy = false # the exclusive resource above owns the attachment now
  }
}

data "aws_iam_policy_document" "cluster_kms" {
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:ListGrants", "kms:CreateGrant"]
    resources = [aws_kms_key.secrets.arn]
  }
}

resource "aws_iam_role_policy" "cluster_kms" {
  # A prefix, not a fixed name: a create-before-destroy replacement then deletes the old policy,
  # not the new one of the same name.
  name_prefix = "secrets-encryption-"
  role        = aws_iam_role.cluster.id
  policy      = data.aws_iam_policy_document.cluster_kms.json
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix           = "${var.name}-node-"
  assume_role_policy    = data.aws_iam_policy_document.node_assume.json
  force_detach_policies = true
  tags                  = var.tags
}

resource "aws_iam_role_policy_attachments_exclusive" "node" {
  role_name   = aws_iam_role.node.name
  policy_arns = sort(values(local.node_policies))
}

removed {
  from = aws_iam_role_policy_attachment.node
  lifecycle {
    destroy = false
  }
}

# The account administers the key; the cluster role's use of it is granted by its own policy.
data "aws_iam_policy_document" "secrets_key" {
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" is this key only; the account root administers it (AWS default key policy)
  #checkov:skip=CKV_AWS_356:A key policy's resource "*" is this key only
  #checkov:skip=CKV_AWS_109:The account root must keep kms:PutKeyPolicy or the key becomes unmanageable
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "secrets" {
  description             = "Encrypts Kubernetes Secrets of EKS cluster ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.secrets_key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-eks-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

# IAM OIDC provider for IRSA: pods assume IAM roles through their service account instead of
# the node role (with IMDS hop limit 1, pods cannot reach the node role at all).
resource "aws_iam_openid_connect_provider" "cluster" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
  tags           = var.tags
}

# KMS key for the CloudWatch log groups (control plane and flow logs): the key policy lets the
# account administer it and CloudWatch Logs of this region use it for this account's groups only.
data "aws_region" "current" {}

data "aws_iam_policy_document" "logs_key" {
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" is this key only; the account root administers it (AWS default key policy)
  #checkov:skip=CKV_AWS_356:A key policy's resource "*" is this key only
  #checkov:skip=CKV_AWS_109:The account root must keep kms:PutKeyPolicy or the key becomes unmanageable
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsUse"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "logs" {
  description             = "Encrypts the CloudWatch log groups of ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.logs_key.json
  tags                    = var.tags
}
