data "google_client_config" "current" {}

# Nodes run as their own service account with the least roles GKE documents, not the
# Compute Engine default account.
resource "google_service_account" "nodes" {
  account_id   = "${substr(var.name, 0, 24)}-nodes"
  display_name = "GKE nodes of ${var.name}"
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
