variable "region" {
  type        = string
  description = "Azure region of the environment (e.g. westeurope)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,39}$", var.region))
    error_message = "region must be an Azure region name such as westeurope."
  }
}
