terraform {
  # 1.10: the S3 backend's use_lockfile (state locking without DynamoDB).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.72"
    }
  }
}
