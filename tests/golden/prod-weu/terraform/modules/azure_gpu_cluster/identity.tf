# Who may reach the cluster: Entra ID (no local accounts). Azure RBAC decides cluster-admin
# (access.admins); teams' Entra groups and members get the Cluster User role (to fetch a
# kubeconfig) and Kubernetes RBAC (the RoleBindings infra renders, subjects = group object IDs)
# decides what they can do.

# The cluster's identity manages load balancers and NICs in the node subnet.
resource "azurerm_role_assignment" "cluster_network" {
  scope                = azurerm_subnet.nodes.id
  role_definition_name = "Network Contributor"
  principal_id         = azurerm_user_assigned_identity.cluster.principal_id
}

resource "azurerm_role_assignment" "admins" {
  for_each = toset(var.admin_group_object_ids)

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "creator" {
  count = var.creator_admin ? 1 : 0

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "team_users" {
  for_each = toset(concat(var.team_group_object_ids, var.member_object_ids))

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service Cluster User Role"
  principal_id         = each.value
}
