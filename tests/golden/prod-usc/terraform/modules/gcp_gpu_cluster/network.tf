resource "google_compute_network" "this" {
  name                    = var.name
  auto_create_subnetworks = false

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "nodes" {
  name                     = "${var.name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes have no external address: Cloud NAT gives them egress (image pulls).
resource "google_compute_router" "this" {
  name    = var.name
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  name                               = var.name
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# The control plane reaches admission webhooks on the nodes (Kueue 9443, metrics-server 4443,
# others 8443/6443) and Kueue's visibility API (8082, an aggregated APIService: unreachable, API
# discovery breaks); GKE's own rules open only 443 and 10250 from it.
resource "google_compute_firewall" "webhooks" {
  name                    = "${var.name}-webhooks"
  network                 = google_compute_network.this.id
  direction               = "INGRESS"
  source_ranges           = [var.master_cidr]
  target_service_accounts = [google_service_account.nodes.email]

  allow {
    protocol = "tcp"
    ports    = ["4443", "6443", "8082", "8443", "9443"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
