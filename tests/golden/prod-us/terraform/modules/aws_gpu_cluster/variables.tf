variable "name" {
  type        = string
  description = "Environment name; names the EKS cluster and prefixes every resource."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,38}$."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to every resource that takes tags (also set as provider default_tags by the root module)."
  default     = {}
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes minor version, e.g. \"1.30\"."

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.30."
  }
}

variable "public_endpoint" {
  type        = bool
  description = "Expose the API endpoint publicly (restricted to authorized_networks). The private endpoint is always on."
  default     = false
}

variable "authorized_networks" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public API endpoint; required when public_endpoint is true."
  default     = []

  validation {
    condition     = alltrue([for c in var.authorized_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "authorized_networks must be CIDR blocks and must not contain 0.0.0.0/0."
  }
}

variable "api_access_cidrs" {
  type        = list(string)
  description = "Networks admitted to the private API endpoint on 443 besides the nodes (kubernetes.private_access): the VPC for a runner inside it, or routed VPN/peered networks."
  default     = []

  validation {
    condition     = alltrue([for c in var.api_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "api_access_cidrs must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "VPC CIDR block (RFC 1918)."

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a CIDR block."
  }
}

variable "service_cidr" {
  type        = string
  description = "Kubernetes Service (ClusterIP) range: RFC 1918, /12 to /24, outside vpc_cidr. Fixed at creation."

  validation {
    condition     = can(cidrhost(var.service_cidr, 0)) && can(regex("/(1[2-9]|2[0-4])$", var.service_cidr))
    error_message = "service_cidr must be a CIDR block from /12 to /24."
  }
}

variable "private_subnets" {
  type        = list(string)
  description = "One private subnet CIDR per availability zone (nodes and cluster ENIs live here)."

  validation {
    condition     = length(var.private_subnets) >= 2 && length(var.private_subnets) <= 6
    error_message = "Between 2 and 6 private subnets are supported (EKS needs two zones)."
  }
}

variable "public_subnets" {
  type        = list(string)
  description = "One public subnet CIDR per availability zone (NAT gateways and internet-facing load balancers)."
}

variable "zones" {
  type        = list(string)
  description = "Availability zone names, one per subnet pair, pinned. Empty: the first N available zones of the region."
  default     = []

  validation {
    condition     = length(var.zones) == 0 || length(var.zones) == length(var.private_subnets)
    error_message = "zones must be empty or name one zone per private subnet."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the control-plane and flow-log groups, in days."
  default     = 365
}

variable "flow_logs" {
  type        = bool
  description = "VPC flow logs (all traffic) into an encrypted CloudWatch log group."
  default     = true
}

variable "creator_admin" {
  type        = bool
  description = "Whether the identity that creates the cluster stays cluster admin (bootstrap_cluster_creator_admin_permissions; changing it replaces the cluster)."
  default     = true
}

variable "cluster_admins" {
  type        = list(string)
  description = "IAM principal ARNs given an access entry with AmazonEKSClusterAdminPolicy."
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admins : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:", a))])
    error_message = "cluster_admins must be IAM principal ARNs."
  }
}

variable "access_members" {
  type = list(object({
    principal_arn     = string
    kubernetes_groups = list(string)
  }))
  description = "Team members: IAM principal ARNs and the Kubernetes groups (their teams' groups) their access entry carries. No access policy: the team RoleBindings grant what they may do."
  default     = []
}

variable "emulated" {
  type        = bool
  description = "Sandbox only (set by infra --sandbox): leave out what the emulator does not implement (EKS add-ons, access entries, Pod Identity associations). Never true against real AWS."
  default     = false
}

variable "cluster_log_types" {
  type        = list(string)
  description = "Control-plane log types to enable."
  default     = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  validation {
    condition     = alltrue([for t in var.cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "cluster_log_types must be a subset of api, audit, authenticator, controllerManager, scheduler."
  }
}

variable "node_pools" {
  type = list(object({
    name           = string
    instance_types = list(string)
    ami_type       = string
    capacity_type  = string
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_size_gb   = number
    gpu_count      = number
    labels         = map(string)
    taints = list(object({
      key    = string
      value  = string
      effect = string
    }))
    placement_group         = bool
    capacity_reservation_id = optional(string)
  }))
  description = "One EKS managed node group per entry. Computed from the blueprint's node_pools by infra."

  validation {
    condition     = alltrue([for p in var.node_pools : p.min_size <= p.desired_size && p.desired_size <= p.max_size])
    error_message = "Each node pool needs min_size <= desired_size <= max_size."
  }

  validation {
    condition     = alltrue(flatten([for p in var.node_pools : [for t in p.taints : contains(["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"], t.effect)]]))
    error_message = "Taint effects must be NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE (the EKS API enum)."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : contains(["AL2023_x86_64_STANDARD", "AL2023_x86_64_NVIDIA", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_x86_64_NVIDIA"], p.ami_type)])
    error_message = "ami_type must be an AL2023 or Bottlerocket type (AL2 AMIs reached end of life)."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : contains(["ON_DEMAND", "SPOT", "CAPACITY_BLOCK"], p.capacity_type)])
    error_message = "capacity_type must be ON_DEMAND, SPOT or CAPACITY_BLOCK."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : p.capacity_type != "SPOT" || length(p.instance_types) >= 2])
    error_message = "A SPOT pool needs at least two instance types (one capacity shortage would starve it)."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : (p.capacity_type == "CAPACITY_BLOCK") == (p.capacity_reservation_id != null)])
    error_message = "capacity_reservation_id is required with, and only with, capacity_type CAPACITY_BLOCK."
  }
}

variable "imds_hop_limit" {
  type        = number
  description = "IMDSv2 response hop limit on nodes: 1 keeps pods off the instance role (use IRSA/Pod Identity); 2 lets pods reach IMDS."
  default     = 1
}

variable "model_readers" {
  type = list(object({
    team            = string
    namespace       = string
    service_account = string
    buckets         = list(string)
    objects         = list(string)
    prefixes        = list(string)
  }))
  description = "Per team with models in the cloud's object store: its model servers' service account and the buckets and objects (bucket/key, a trailing * for a prefix) they may read."
  default     = []
}
