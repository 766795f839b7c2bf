# AKS with Entra ID + Azure RBAC, Azure CNI overlay with Cilium network policy, workload
# identity, Container Insights, local accounts disabled, encryption at host; a system pool
# (critical add-ons only) and one autoscaled user pool per other blueprint pool.

data "azurerm_client_config" "current" {}

locals {
  user_pools = { for p in var.node_pools : p.name => p }
}

resource "azurerm_resource_group" "this" {
  name     = "${var.name}-rg"
  location = var.location
  tags     = var.tags
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_user_assigned_identity" "cluster" {
  name                = "${var.name}-aks"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = var.tags
}

resource "azurerm_kubernetes_cluster" "this" {
  #checkov:skip=CKV_AZURE_117:Disks use platform-managed keys plus encryption at host; a customer-managed disk encryption set needs a Key Vault the blueprint does not describe
  #checkov:skip=CKV_AZURE_226:Ephemeral OS disks depend on the VM size's cache; pools use managed OS disks with encryption at host instead
  #checkov:skip=CKV_AZURE_115:Private by default (private_cluster_enabled = !public_endpoint); a public API server is opt-in and needs authorized IP ranges (blueprint validation)
  #checkov:skip=CKV_AZURE_6:Authorized IP ranges apply to a public API server only; the default is a private cluster (CKV_AZURE_115)
  name                    = var.name
  location                = azurerm_resource_group.this.location
  resource_group_name     = azurerm_resource_group.this.name
  dns_prefix              = var.name
  kubernetes_version      = var.kubernetes_version
  sku_tier                = "Standard"
  private_cluster_enabled = !var.public_endpoint
  # Routed networks (kubernetes.private_access via networks) resolve the API's name from public DNS.
  private_cluster_public_fqdn_enabled = !var.public_endpoint && var.private_fqdn_in_public_dns
  local_account_disabled              = true
  role_based_access_control_enabled   = true
  oidc_issuer_enabled                 = true
  workload_identity_enabled           = true
  azure_policy_enabled                = true
  automatic_upgrade_channel           = "patch"
  node_os_upgrade_channel             = "NodeImage"
  tags                                = var.tags

  dynamic "api_server_access_profile" {
    for_each = var.public_endpoint ? [1] : []
    content {
      authorized_ip_ranges = var.authorized_networks
    }
  }

  azure_active_directory_role_based_access_control {
    tenant_id              = data.azurerm_client_config.current.tenant_id
    azure_rbac_enabled     = true
    admin_group_object_ids = var.admin_group_object_ids
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.cluster.id]
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    pod_cidr            = var.pod_cidr
    service_cidr        = var.service_cidr
    dns_service_ip      = var.dns_service_ip
    load_balancer_sku   = "standard"
    outbound_type       = "loadBalancer"
  }

  oms_agent {
    log_analytics_workspace_id      = azurerm_log_analytics_workspace.this.id
    msi_auth_for_monitoring_enabled = true
  }

  key_vault_secrets_provider {
    secret_rotation_enabled = true
  }

  default_node_pool {
    name                         = var.system_pool.name
    vm_size                      = var.system_pool.vm_size
    vnet_subnet_id               = azurerm_subnet.nodes.id
    zones                        = var.zones
    auto_scaling_enabled         = true
    min_count                    = var.system_pool.min_count
    max_count                    = var.system_pool.max_count
    node_count                   = var.system_pool.node_count
    max_pods                     = 50
    only_critical_addons_enabled = true
    host_encryption_enabled      = var.encryption_at_host
    os_disk_type                 = "Managed"
    os_disk_size_gb              = var.system_pool.disk_size_gb
    node_labels                  = var.system_pool.labels
    orchestrator_version         = var.kubernetes_version
    temporary_name_for_rotation  = "tmpsystem"
    tags                         = var.tags

    upgrade_settings {
      max_surge = "10%"
    }
  }

  lifecycle {
    ignore_changes = [default_node_pool[0].node_count]
  }

  depends_on = [azurerm_role_assignment.cluster_network]
}

resource "azurerm_kubernetes_cluster_node_pool" "pool" {
  #checkov:skip=CKV_AZURE_226:Ephemeral OS disks depend on the VM size's cache; GPU sizes differ, so pools use managed OS disks with encryption at host
  for_each = local.user_pools

  name                  = each.key
  kubernetes_cluster_id = azurerm_kubernetes_cluster.this.id
  mode                  = "User"
  vm_size               = each.value.vm_size
  vnet_subnet_id        = azurerm_subnet.nodes.id
  zones                 = var.zones
  orchestrator_version  = var.kubernetes_version
  auto_scaling_enabled  = true
  min_count             = each.value.min_count
  max_count             = each.value.max_count
  node_count            = each.value.node_count
  max_pods              = 50
  # GPU driver: AKS installs the NVIDIA driver on GPU sizes ("Install"); the NVIDIA device
  # plugin comes from infra's Kubernetes handoff (build/<env>/kubernetes/), as on every provider.
  gpu_driver              = each.value.gpu_count > 0 ? "Install" : null
  priority                = each.value.spot ? "Spot" : "Regular"
  eviction_policy         = each.value.spot ? "Delete" : null
  spot_max_price          = each.value.spot ? each.value.spot_max_price : null
  host_encryption_enabled = var.encryption_at_host
  os_disk_type            = "Managed"
  os_disk_size_gb         = each.value.disk_size_gb
  node_labels             = each.value.labels
  node_taints             = each.value.taints
  tags                    = var.tags

  # Surge upgrades are not available to spot pools.
  dynamic "upgrade_settings" {
    for_each = each.value.spot ? [] : [1]
    content {
      max_surge = "10%"
    }
  }

  lifecycle {
    ignore_changes = [node_count]
  }
}
