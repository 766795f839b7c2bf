# Model servers read their team's models and nothing else (AKS workload identity): per team with
# models in Azure Blob Storage, a user-assigned managed identity, a federated credential that
# trusts the cluster's OIDC issuer for the namespace's model-server service account, and Storage
# Blob Data Reader on exactly the containers of its models (orchestrator/blueprint/storage.py).
# The storage accounts are found by name in the subscription (the blob URL names no resource
# group). The handoff writes each identity's client ID onto its service account
# (output model_reader_client_ids).

locals {
  model_readers = { for r in var.model_readers : r.team => r }
  model_containers = merge([
    for r in var.model_readers : {
      for b in r.buckets : "${r.team}|${b}" => { team = r.team, account = split("/", b)[0], container = split("/", b)[1] }
    }
  ]...)
  model_accounts = toset([for c in values(local.model_containers) : c.account])
}

data "azurerm_resources" "model_account" {
  for_each = local.model_accounts

  type = "Microsoft.Storage/storageAccounts"
  name = each.value
}

resource "azurerm_user_assigned_identity" "model_reader" {
  for_each = local.model_readers

  name                = "${var.name}-models-${each.key}"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "model_reader" {
  for_each = local.model_readers

  name                = "${each.value.namespace}-${each.value.service_account}"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.model_reader[each.key].id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.this.oidc_issuer_url
  subject             = "system:serviceaccount:${each.value.namespace}:${each.value.service_account}"
}

resource "azurerm_role_assignment" "model_reader" {
  for_each = local.model_containers

  scope                = "${try(data.azurerm_resources.model_account[each.value.account].resources[0].id, "")}/blobServices/default/containers/${each.value.container}"
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.model_reader[each.value.team].principal_id
  principal_type       = "ServicePrincipal"

  lifecycle {
    precondition {
      condition     = length(data.azurerm_resources.model_account[each.value.account].resources) == 1
      error_message = "The model storage account ${each.value.account} (from a model URI) is not in this subscription, or more than one has that name."
    }
  }
}
