# Model servers read their team's models and nothing else: each bucket of a team's gs:// models
# grants roles/storage.objectViewer to the namespace's model-server Kubernetes service account
# itself (Workload Identity Federation for GKE, no Google service account in between;
# orchestrator/blueprint/storage.py). Pods get tokens from the GKE metadata server.

data "google_project" "this" {}

locals {
  model_bucket_grants = merge([
    for r in var.model_readers : {
      for b in r.buckets : "${r.team}|${b}" => { bucket = b, namespace = r.namespace, service_account = r.service_account }
    }
  ]...)
}

resource "google_storage_bucket_iam_member" "model_reader" {
  for_each = local.model_bucket_grants

  bucket = each.value.bucket
  role   = "roles/storage.objectViewer"
  member = "principal://iam.googleapis.com/projects/${data.google_project.this.number}/locations/global/workloadIdentityPools/${data.google_client_config.current.project}.svc.id.goog/subject/ns/${each.value.namespace}/sa/${each.value.service_account}"
}
