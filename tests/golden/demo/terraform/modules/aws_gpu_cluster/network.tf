# VPC with one private and one public subnet per availability zone, and one NAT gateway per
# zone so that losing a zone does not cut the other zones' egress (image pulls, EKS API).

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first N names are used; network.zones: [names] pins them (docs/blueprint.md)
  state = "available"
}

locals {
  # Explicit zone names are pinned; otherwise the first N available (which may shift over time).
  azs          = length(var.zones) > 0 ? var.zones : slice(data.aws_availability_zones.available.names, 0, length(var.private_subnets))
  cluster_tag  = "kubernetes.io/cluster/${var.name}"
  zone_indexes = range(length(var.private_subnets))
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })
}

# The VPC's default security group is closed (no rules): nothing may fall back on it.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-closed" })
}

# VPC flow logs (all traffic) into an encrypted log group.
resource "aws_cloudwatch_log_group" "flow_logs" {
  count = var.flow_logs ? 1 : 0

  name              = "/aws/vpc/${var.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count = var.flow_logs ? 1 : 0

  name_prefix        = "${var.name}-flow-logs-"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "flow_logs" {
  count = var.flow_logs ? 1 : 0

  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.flow_logs ? 1 : 0

  name_prefix = "flow-logs-" # a prefix: see cluster_kms in iam.tf
  role        = aws_iam_role.flow_logs[0].id
  policy      = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = var.flow_logs ? 1 : 0

  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn
  tags                 = var.tags
}

resource "aws_subnet" "private" {
  count = length(var.private_subnets)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.private_subnets[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name                              = "${var.name}-private-${local.azs[count.index]}"
    "kubernetes.io/role/internal-elb" = "1"
    (local.cluster_tag)               = "owned"
  })
}

resource "aws_subnet" "public" {
  count = length(var.public_subnets)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnets[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name                     = "${var.name}-public-${local.azs[count.index]}"
    "kubernetes.io/role/elb" = "1"
    (local.cluster_tag)      = "owned"
  })

  lifecycle {
    precondition {
      condition     = length(var.public_subnets) == length(var.private_subnets)
      error_message = "public_subnets and private_subnets must have one entry per zone each."
    }
  }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.name })
}

resource "aws_eip" "nat" {
  count = length(var.public_subnets)

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat-${local.azs[count.index]}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count = length(var.public_subnets)

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(var.tags, { Name = "${var.name}-${local.azs[count.index]}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(var.public_subnets)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  count = length(var.private_subnets)

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private-${local.azs[count.index]}" })
}

resource "aws_route" "private_nat" {
  count = length(var.private_subnets)

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[count.index].id
}

resource "aws_route_table_association" "private" {
  count = length(var.private_subnets)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# Security groups: an additional cluster group and a node group. Nodes reach the API on 443;
# the control plane reaches kubelets (10250) and webhooks (443); nodes talk to each other freely.

resource "aws_security_group" "cluster" {
  name_prefix = "${var.name}-cluster-"
  description = "EKS control plane (additional) for ${var.name}"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-cluster" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "node" {
  name_prefix = "${var.name}-node-"
  description = "EKS nodes for ${var.name}"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-node", (local.cluster_tag) = "owned" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group_rule" "cluster_from_nodes" {
  type                     = "ingress"
  security_group_id        = aws_security_group.cluster.id
  source_security_group_id = aws_security_group.node.id
  protocol                 = "tcp"
  from_port                = 443
  to_port                  = 443
  description              = "Nodes to the Kubernetes API"
}

# The declared way in to the private endpoint (kubernetes.private_access): operators, CI and team
# members reach the API from these networks only (EKS answers on the cluster security groups).
resource "aws_security_group_rule" "cluster_from_operators" {
  count = length(var.api_access_cidrs) > 0 ? 1 : 0

  type              = "ingress"
  security_group_id = aws_security_group.cluster.id
  cidr_blocks       = var.api_access_cidrs
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "Operators and CI to the private Kubernetes API (kubernetes.private_access)"
}

# The EKS recommended node rules (terraform-aws-eks node_security_group_enable_recommended_rules):
# the control plane calls kubelets and every admission webhook the handoff installs.
locals {
  control_plane_to_node_ports = {
    "443"   = "Control plane to webhooks and extension API servers on 443"
    "4443"  = "Control plane to metrics-server"
    "6443"  = "Control plane to webhooks listening on 6443 (e.g. prometheus-adapter)"
    "8082"  = "Control plane to the Kueue visibility API (an aggregated APIService)"
    "8443"  = "Control plane to webhooks listening on 8443 (e.g. Karpenter, ingress controllers)"
    "9443"  = "Control plane to webhooks listening on 9443 (Kueue, AWS load balancer controller)"
    "10250" = "Control plane to kubelets (logs, exec, metrics)"
  }
}

resource "aws_security_group_rule" "node_from_cluster" {
  for_each = { for port, why in local.control_plane_to_node_ports : port => why if port != "8082" }

  type                     = "ingress"
  security_group_id        = aws_security_group.node.id
  source_security_group_id = aws_security_group.cluster.id
  protocol                 = "tcp"
  from_port                = tonumber(each.key)
  to_port                  = tonumber(each.key)
  description              = each.value
}

# Kueue's visibility API (8082), created after the other control-plane rules: no more than six
# rules of this group are created at once (seven in parallel made the sandbox's emulator answer one
# of them InvalidPermission.Duplicate in CI: a request it had already applied, sent again).
resource "aws_security_group_rule" "node_from_cluster_visibility" {
  type                     = "ingress"
  security_group_id        = aws_security_group.node.id
  source_security_group_id = aws_security_group.cluster.id
  protocol                 = "tcp"
  from_port                = 8082
  to_port                  = 8082
  description              = local.control_plane_to_node_ports["8082"]

  depends_on = [aws_security_group_rule.node_from_cluster]
}

resource "aws_security_group_rule" "node_to_node" {
  type              = "ingress"
  security_group_id = aws_security_group.node.id
  self              = true
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  description       = "Node to node (pods, NCCL, DNS)"
}

resource "aws_security_group_rule" "node_egress" {
  #checkov:skip=CKV_AWS_382:Nodes pull images and call AWS APIs on many ports through the NAT gateways (EKS default)
  type              = "egress"
  security_group_id = aws_security_group.node.id
  cidr_blocks       = ["0.0.0.0/0"]
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  description       = "Node egress through the NAT gateways"
}

resource "aws_security_group_rule" "cluster_egress" {
  #checkov:skip=CKV_AWS_382:The control plane reaches kubelets and webhooks on many ports (EKS default)
  type              = "egress"
  security_group_id = aws_security_group.cluster.id
  cidr_blocks       = ["0.0.0.0/0"]
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  description       = "Control plane egress"
}
