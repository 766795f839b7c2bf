# A fresh project has the Compute Engine, Kubernetes Engine and IAM APIs off: every other resource
# here would fail with SERVICE_DISABLED. Terraform turns them on first and leaves them on when the
# environment is destroyed (other workloads of the project may use them).

locals {
  project_apis = toset(["compute.googleapis.com", "container.googleapis.com", "iam.googleapis.com"])
}

resource "google_project_service" "this" {
  for_each = local.project_apis

  project            = data.google_client_config.current.project
  service            = each.value
  disable_on_destroy = false
}
