data "google_client_config" "current" {}

# Nodes run as their own service account with the least roles GKE documents, not the
# Compute Engine default account.
resource "google_service_account" "nodes" {
  account_id   = "${substr(var.name, 0, 24)}-nodes"
  display_name = "GKE nodes of ${var.name}"

  depends_on = [google_project_service.this]
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
  ])

  project = data.google_client_config.current.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# Who may reach the cluster besides the project's owners: access.admins get container.admin
# (full Kubernetes access through IAM), teams' members container.clusterViewer (enough to fetch
# credentials; the RoleBindings on their Google Groups decide what they may do). GKE has no
# per-cluster IAM: both roles hold on every cluster of the project.
resource "google_project_iam_member" "cluster_admins" {
  for_each = toset(var.cluster_admins)

  project = data.google_client_config.current.project
  role    = "roles/container.admin"
  member  = each.value
}

resource "google_project_iam_member" "cluster_viewers" {
  for_each = toset(var.cluster_viewers)

  project = data.google_client_config.current.project
  role    = "roles/container.clusterViewer"
  member  = each.value
}
