# EKS control plane and one managed node group per node pool.

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes to this fixed name; creating it first lets us own its retention.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = var.tags
}

resource "aws_eks_cluster" "this" {
  #checkov:skip=CKV_AWS_39:The public endpoint is on only when the blueprint asks, limited to authorized_networks (0.0.0.0/0 is rejected)
  name                      = var.name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = var.cluster_log_types

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    security_group_ids      = [aws_security_group.cluster.id]
    endpoint_private_access = true
    endpoint_public_access  = var.public_endpoint
    public_access_cidrs     = var.public_endpoint ? var.authorized_networks : null
  }

  # Explicit, so the team NetworkPolicies can except it; the value EKS would pick by itself.
  kubernetes_network_config {
    service_ipv4_cidr = var.service_cidr
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.secrets.arn
    }
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = var.creator_admin
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = !var.public_endpoint || length(var.authorized_networks) > 0
      error_message = "A public endpoint needs authorized_networks (the provider default would be 0.0.0.0/0)."
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.cluster,
    aws_iam_role_policy_attachments_exclusive.cluster,
    aws_iam_role_policy.cluster_kms,
  ]
}

locals {
  pools = { for p in var.node_pools : p.name => p }
  # Training pools on EFA-capable types get a cluster placement group (low-latency NCCL).
  # The emulator implements no placement groups: var.emulated leaves them out of a sandbox apply.
  placed_pools = { for name, p in local.pools : name => p if p.placement_group && !var.emulated }
  # Which private subnets (by index) each pool launches in: a cluster placement group lives in one
  # Availability Zone, so its pool uses the first private subnet only (spread over the zones,
  # instances outside the group's zone fail to launch); every other pool spans all of them.
  pool_subnet_indexes = {
    for name, p in local.pools : name => contains(keys(local.placed_pools), name) ? [0] : range(length(var.private_subnets))
  }
}

resource "aws_placement_group" "pool" {
  for_each = local.placed_pools

  name     = "${var.name}-${each.key}"
  strategy = "cluster"
  tags     = var.tags
}

resource "aws_launch_template" "pool" {
  for_each = local.pools

  name_prefix            = "${var.name}-${each.key}-"
  description            = "Node pool ${each.key} of ${var.name}"
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.node.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = var.imds_hop_limit
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = each.value.disk_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  dynamic "placement" {
    for_each = contains(keys(local.placed_pools), each.key) ? [1] : []
    content {
      group_name = aws_placement_group.pool[each.key].name
    }
  }

  # Capacity Blocks for ML: the node group's capacity_type is CAPACITY_BLOCK and the launch
  # template targets the reservation.
  dynamic "instance_market_options" {
    for_each = each.value.capacity_reservation_id != null ? [1] : []
    content {
      market_type = "capacity-block"
    }
  }

  dynamic "capacity_reservation_specification" {
    for_each = each.value.capacity_reservation_id != null ? [1] : []
    content {
      capacity_reservation_target {
        capacity_reservation_id = each.value.capacity_reservation_id
      }
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-${each.key}" })
  }

  tags = var.tags
}

resource "aws_eks_node_group" "pool" {
  for_each = local.pools

  cluster_name           = aws_eks_cluster.this.name
  node_group_name_prefix = "${each.key}-"
  node_role_arn          = aws_iam_role.node.arn
  subnet_ids             = [for i in local.pool_subnet_indexes[each.key] : aws_subnet.private[i].id]
  version                = aws_eks_cluster.this.version
  instance_types         = each.value.instance_types
  ami_type               = each.value.ami_type
  capacity_type          = each.value.capacity_type
  labels                 = each.value.labels

  scaling_config {
    min_size     = each.value.min_size
    desired_size = each.value.desired_size
    max_size     = each.value.max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.pool[each.key].id
    version = aws_launch_template.pool[each.key].latest_version
  }

  dynamic "taint" {
    for_each = each.value.taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  tags = merge(var.tags, local.autoscaler_pool_tags[each.key], { Name = "${var.name}-${each.key}" })

  lifecycle {
    # The cluster autoscaler owns desired_size once the pool exists.
    ignore_changes = [scaling_config[0].desired_size]
    # A changed instance type replaces the pool: the new one exists before the old one drains.
    create_before_destroy = true
  }

  # Without these, destroy detaches the node policies first and instances/ENIs leak; nodes
  # join once the networking add-ons exist.
  depends_on = [aws_iam_role_policy_attachments_exclusive.node, aws_eks_addon.before_nodes]
}
