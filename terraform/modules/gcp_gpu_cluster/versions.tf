terraform {
  required_version = ">= 1.10.0"

  required_providers {
    # 6.x from 6.20; the offline schema check (tests/unit/test_provider_schemas.py) ran against
    # 6.20.0 and 6.50.0.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.20, < 7.0"
    }
  }
}
