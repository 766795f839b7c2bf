# Model servers read their team's models and nothing else: per team with s3:// models, an IAM
# role trusted by EKS Pod Identity, allowed s3:GetObject on exactly those objects (a URI ending
# in / is a prefix) and s3:ListBucket under their prefixes, associated with the namespace's
# model-server service account (orchestrator/blueprint/storage.py). Pods reach the Pod Identity
# Agent (169.254.170.23:80); the node's IMDS stays closed to them (hop limit 1).

locals {
  model_readers = { for r in var.model_readers : r.team => r }
}

data "aws_iam_policy_document" "model_reader" {
  for_each = local.model_readers

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = [for o in each.value.objects : "arn:${data.aws_partition.current.partition}:s3:::${o}"]
  }

  statement {
    sid       = "ListModelPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [for b in each.value.buckets : "arn:${data.aws_partition.current.partition}:s3:::${b}"]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = each.value.prefixes
    }
  }
}

resource "aws_iam_role" "model_reader" {
  for_each = local.model_readers

  name_prefix        = "${substr(var.name, 0, 20)}-models-"
  description        = "Model servers of team ${each.key} (${each.value.namespace}/${each.value.service_account})"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "model_reader" {
  for_each = local.model_readers

  name_prefix = "read-models-" # a prefix: see cluster_kms in iam.tf
  role        = aws_iam_role.model_reader[each.key].id
  policy      = data.aws_iam_policy_document.model_reader[each.key].json
}
