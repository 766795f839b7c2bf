# Kept out of variables.tf (which the root module copies): the root passes its own `region`.
variable "location" {
  type        = string
  description = "Azure region of every resource (e.g. westeurope)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,39}$", var.location))
    error_message = "location must be an Azure region name such as westeurope."
  }
}
