variable "name" {
  type        = string
  description = "Environment name: names the resource group, the virtual network and the AKS cluster."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to every resource that takes tags."
  default     = {}
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the cluster and its node pools (e.g. 1.31)."

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.31."
  }
}

variable "public_endpoint" {
  type        = bool
  description = "false: private cluster (API server on a private endpoint in the VNet); true: public, limited to authorized_networks."
  default     = false
}

variable "authorized_networks" {
  type        = list(string)
  description = "CIDRs allowed to reach a public API server (authorized IP ranges); unused for a private cluster."
  default     = []

  validation {
    condition     = alltrue([for c in var.authorized_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "authorized_networks must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "private_fqdn_in_public_dns" {
  type        = bool
  description = "Publish the private cluster's FQDN in public DNS (it resolves to the private address), so routed VPN/peered networks resolve it without a link to the private DNS zone (kubernetes.private_access via networks)."
  default     = false
}

variable "vnet_cidr" {
  type        = string
  description = "Address space of the virtual network (RFC 1918)."

  validation {
    condition     = can(cidrhost(var.vnet_cidr, 0))
    error_message = "vnet_cidr must be a CIDR block."
  }
}

variable "node_subnet" {
  type        = string
  description = "Subnet of the nodes (inside vnet_cidr); pods get overlay addresses from pod_cidr."

  validation {
    condition     = can(cidrhost(var.node_subnet, 0))
    error_message = "node_subnet must be a CIDR block."
  }
}

variable "pod_cidr" {
  type        = string
  description = "Azure CNI overlay pod range (outside the VNet)."
}

variable "service_cidr" {
  type        = string
  description = "Kubernetes Service range (outside the VNet and pod_cidr); dns_service_ip lies in it."
}

variable "dns_service_ip" {
  type        = string
  description = "ClusterIP of the cluster DNS service, inside service_cidr."
}

variable "zones" {
  type        = list(string)
  description = "Availability zones the node pools spread over (\"1\", \"2\", \"3\")."

  validation {
    condition     = length(var.zones) >= 1 && alltrue([for z in var.zones : contains(["1", "2", "3"], z)])
    error_message = "zones must be a non-empty list of \"1\", \"2\" and \"3\"."
  }
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID object IDs given cluster-admin (access.admins): the Azure Kubernetes Service RBAC Cluster Admin role for each (a group or a user), and AKS's admin groups."
  default     = []

  validation {
    condition     = alltrue([for g in var.admin_group_object_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", g))])
    error_message = "admin_group_object_ids must be Entra ID object IDs (lowercase GUIDs)."
  }
}

variable "creator_admin" {
  type        = bool
  description = "Whether the identity running Terraform gets the Azure Kubernetes Service RBAC Cluster Admin role."
  default     = false
}

variable "team_group_object_ids" {
  type        = list(string)
  description = "Entra ID group object IDs that teams' RoleBindings name: each may fetch user credentials (Cluster User role); Kubernetes RBAC grants the rest."
  default     = []

  validation {
    condition     = alltrue([for g in var.team_group_object_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", g))])
    error_message = "team_group_object_ids must be Entra ID object IDs (GUIDs)."
  }
}

variable "member_object_ids" {
  type        = list(string)
  description = "Entra ID object IDs of teams' members (teams[].members, users or groups): each may fetch user credentials (Cluster User role); what they may do comes from the RoleBindings of the team groups they belong to."
  default     = []

  validation {
    condition     = alltrue([for m in var.member_object_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", m))])
    error_message = "member_object_ids must be Entra ID object IDs (lowercase GUIDs)."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the Log Analytics workspace that Container Insights writes to."
  default     = 30
}

variable "system_pool" {
  type = object({
    name         = string
    pool         = string
    vm_size      = string
    min_count    = number
    max_count    = number
    node_count   = number
    disk_size_gb = number
    labels       = map(string)
  })
  description = "The system node pool (AKS default pool, critical add-ons only), from the blueprint's non-GPU pool."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,11}$", var.system_pool.name)) && var.system_pool.min_count >= 1 && var.system_pool.min_count <= var.system_pool.max_count
    error_message = "system_pool.name must be 1-12 lowercase letters and digits; 1 <= min_count <= max_count."
  }
}

variable "node_pools" {
  type = list(object({
    name           = string
    pool           = string
    vm_size        = string
    gpu_count      = number
    min_count      = number
    max_count      = number
    node_count     = number
    spot           = bool
    spot_max_price = number
    disk_size_gb   = number
    labels         = map(string)
    taints         = list(string)
  }))
  description = "One user node pool per other blueprint pool: VM size, autoscaler range (min 0 allowed), spot, labels and taints (key=value:Effect)."
  default     = []

  validation {
    condition     = alltrue([for p in var.node_pools : can(regex("^[a-z][a-z0-9]{0,11}$", p.name)) && p.min_count >= 0 && p.min_count <= p.max_count])
    error_message = "node_pools[].name must be 1-12 lowercase letters and digits; 0 <= min_count <= max_count."
  }

  validation {
    condition     = alltrue([for p in var.node_pools : alltrue([for t in p.taints : can(regex("^[^=:]+=[^=:]*:(NoSchedule|NoExecute|PreferNoSchedule)$", t))])])
    error_message = "node_pools[].taints must be written key=value:Effect."
  }
}

variable "encryption_at_host" {
  type        = bool
  description = "Encrypt node VM hosts (temp disks, caches); needs the subscription's Microsoft.Compute/EncryptionAtHost feature registered."
  default     = true
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
