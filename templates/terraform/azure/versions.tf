terraform {
  required_version = ">= 1.10.0"

  required_providers {
    # 4.x from 4.40 (the node pools' gpu_driver); the offline schema check
    # (tests/unit/test_provider_schemas.py) ran against 4.40.0 and 4.55.0.
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.40, < 5.0"
    }
  }
}
