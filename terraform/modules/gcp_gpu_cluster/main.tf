# Private, regional GKE: VPC-native with Dataplane V2 (network policy enforced), shielded
# nodes, workload identity, Google Groups for RBAC, logging and managed Prometheus, a release
# channel; one node pool per blueprint pool (GPUs with a GKE-installed driver, spot,
# autoscaling from zero).

locals {
  pools = { for p in var.node_pools : p.name => p }
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_12:Dataplane V2 (datapath_provider ADVANCED_DATAPATH) enforces NetworkPolicy itself; the network_policy add-on conflicts with it
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed from Kubernetes in 1.25; infra labels team namespaces for Pod Security admission
  #checkov:skip=CKV_GCP_21:Labels are set (resource_labels); the check looks for the deprecated argument name
  #checkov:skip=CKV_GCP_66:Binary Authorization needs an attestor policy the blueprint does not describe
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC is configured when the teams' groups are Google Groups (security_group); it cannot be on without a domain
  #checkov:skip=CKV_GCP_67:Legacy metadata endpoints are off on every node pool (workload_metadata_config GKE_METADATA); the default pool is removed
  #checkov:skip=CKV_GCP_69:The GKE metadata server is enabled on every node pool; the default pool is removed
  #checkov:skip=CKV_GCP_68:Secure boot is enabled on every node pool; the default pool is removed
  name                        = var.name
  location                    = var.region
  network                     = google_compute_network.this.id
  subnetwork                  = google_compute_subnetwork.nodes.id
  min_master_version          = var.kubernetes_version
  networking_mode             = "VPC_NATIVE"
  datapath_provider           = "ADVANCED_DATAPATH"
  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true
  remove_default_node_pool    = true
  initial_node_count          = 1
  deletion_protection         = var.deletion_protection
  resource_labels             = var.labels

  release_channel {
    channel = var.release_channel
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = !var.public_endpoint
    master_ipv4_cidr_block  = var.master_cidr

    master_global_access_config {
      enabled = false
    }
  }

  # Public endpoint: authorized_networks; private: the declared way in (kubernetes.private_access).
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.public_endpoint ? var.authorized_networks : var.api_access_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "authorized-${cidr_blocks.key}"
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  workload_identity_config {
    workload_pool = "${data.google_client_config.current.project}.svc.id.goog"
  }

  dynamic "authenticator_groups_config" {
    for_each = var.security_group == "" ? [] : [var.security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]

    managed_prometheus {
      enabled = true
    }
  }

  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  lifecycle {
    ignore_changes = [node_config, initial_node_count]
  }
}

resource "google_container_node_pool" "pool" {
  for_each = local.pools

  name               = each.key
  cluster            = google_container_cluster.this.id
  location           = var.region
  node_locations     = length(var.zones) > 0 ? var.zones : null
  initial_node_count = each.value.initial_count

  autoscaling {
    total_min_node_count = each.value.min_count
    total_max_node_count = each.value.max_count
    # ANY: take whichever zone has capacity (GPUs and spot are scarce); BALANCED otherwise.
    location_policy = each.value.spot || each.value.gpu_count > 0 ? "ANY" : "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = each.value.machine_type
    spot            = each.value.spot
    disk_size_gb    = each.value.disk_size_gb
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = each.value.labels
    resource_labels = var.labels
    metadata        = { disable-legacy-endpoints = "true" }

    # GPU driver: GKE installs it (gpu_driver_installation_config) and runs its own device
    # plugin on GPU nodes, so infra's Kubernetes handoff renders none (catalog: device_plugin).
    # MIG: GKE partitions every GPU into gpu_partition_size; each partition is one nvidia.com/gpu
    # on nodes labelled cloud.google.com/gke-gpu-partition-size.
    dynamic "guest_accelerator" {
      for_each = each.value.gpu_count > 0 ? [each.value] : []
      content {
        type               = guest_accelerator.value.accelerator_type
        count              = guest_accelerator.value.gpu_count
        gpu_partition_size = guest_accelerator.value.gpu_partition_size != "" ? guest_accelerator.value.gpu_partition_size : null

        gpu_driver_installation_config {
          gpu_driver_version = "LATEST"
        }
      }
    }

    dynamic "taint" {
      for_each = each.value.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  lifecycle {
    ignore_changes = [initial_node_count]
  }
}
