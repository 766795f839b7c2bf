# Kept out of variables.tf (which the root module copies): the root passes its own `region`.
variable "region" {
  type        = string
  description = "Google Cloud region of the regional cluster and its subnet (e.g. us-central1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}
