variable "name" {
  type        = string
  description = "Environment name: names the network, the subnet and the GKE cluster."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels applied to the cluster and its nodes (GCP label spelling: lowercase keys and values)."
  default     = {}
}

variable "kubernetes_version" {
  type        = string
  description = "Minimum Kubernetes minor version of the control plane (the release channel upgrades it)."

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.31."
  }
}

variable "release_channel" {
  type        = string
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "public_endpoint" {
  type        = bool
  description = "false: the control plane has only a private endpoint; true: a public one too, limited to authorized_networks."
  default     = false
}

variable "authorized_networks" {
  type        = list(string)
  description = "CIDRs allowed to reach the control plane (master authorized networks)."
  default     = []

  validation {
    condition     = alltrue([for c in var.authorized_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "authorized_networks must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "api_access_cidrs" {
  type        = list(string)
  description = "Networks admitted to the private API endpoint besides the node subnet (kubernetes.private_access): master authorized networks of a private endpoint."
  default     = []

  validation {
    condition     = alltrue([for c in var.api_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "api_access_cidrs must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the node subnet (RFC 1918)."
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range of the subnet for pods (VPC-native)."
}

variable "services_cidr" {
  type        = string
  description = "Secondary range of the subnet for Services."
}

variable "master_cidr" {
  type        = string
  description = "/28 of the control plane's private endpoint."

  validation {
    condition     = can(cidrhost(var.master_cidr, 0)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be a /28 CIDR block."
  }
}

variable "zones" {
  type        = list(string)
  description = "Zones the node pools use (empty: GKE picks the region's zones)."
  default     = []
}

variable "security_group" {
  type        = string
  description = "Google Groups for RBAC: gke-security-groups@<domain>, the group that contains the teams' groups (empty: off)."
  default     = ""
}

variable "cluster_admins" {
  type        = list(string)
  description = "IAM members (user:, group: or serviceAccount: and an email) given roles/container.admin on the project (access.admins)."
  default     = []

  validation {
    condition     = alltrue([for m in var.cluster_admins : can(regex("^(user|group|serviceAccount):[^@\\s]+@[^@\\s]+$", m))])
    error_message = "cluster_admins must be IAM members such as group:ml-admins@example.com."
  }
}

variable "cluster_viewers" {
  type        = list(string)
  description = "IAM members given roles/container.clusterViewer on the project (teams[].members): they may fetch credentials; Kubernetes RBAC on their Google Groups decides the rest."
  default     = []

  validation {
    condition     = alltrue([for m in var.cluster_viewers : can(regex("^(user|group|serviceAccount):[^@\\s]+@[^@\\s]+$", m))])
    error_message = "cluster_viewers must be IAM members such as user:ana@example.com."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Whether Terraform refuses to destroy the cluster."
  default     = true
}

variable "node_pools" {
  type = list(object({
    name               = string
    machine_type       = string
    accelerator_type   = string
    gpu_count          = number
    gpu_partition_size = string
    min_count          = number
    max_count          = number
    initial_count      = number
    spot               = bool
    disk_size_gb       = number
    labels             = map(string)
    taints = list(object({
      key    = string
      value  = string
      effect = string
    }))
  }))
  description = "One node pool per blueprint pool: machine type, GPUs (accelerator type, count, MIG gpu_partition_size or \"\"; GKE installs the driver), autoscaling from min (0 allowed) to max (totals over the zones), initial_count per zone (GKE starts it in every zone), spot, labels and taints (GKE spelling: NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE)."

  validation {
    condition     = alltrue([for p in var.node_pools : can(regex("^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$", p.name)) && p.min_count >= 0 && p.min_count <= p.max_count])
    error_message = "node_pools[].name must be a lowercase name of at most 40 characters; 0 <= min_count <= max_count."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : p.gpu_partition_size == "" || (p.gpu_count > 0 && can(regex("^[1-7]g\\.[0-9]+gb$", p.gpu_partition_size)))])
    error_message = "node_pools[].gpu_partition_size must be \"\" or a MIG partition size such as 1g.10gb, on a pool with GPUs."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : alltrue([for t in p.taints : contains(["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"], t.effect)])])
    error_message = "node_pools[].taints[].effect must be NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE."
  }
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
