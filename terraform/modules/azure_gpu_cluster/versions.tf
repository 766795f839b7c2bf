terraform {
  required_version = ">= 1.10.0"

  required_providers {
    # 4.x; the offline schema check (tests/unit/test_provider_schemas.py) ran against 4.55.0.
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.20, < 5.0"
    }
  }
}
