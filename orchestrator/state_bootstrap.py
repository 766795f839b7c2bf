"""``infra state bootstrap FILE``: create what the blueprint's state backend needs before the
first ``up`` (docs/state.md).

- ``s3``: the bucket, with versioning, default encryption (SSE-S3) and every public access
  block on; idempotent (an existing bucket is checked, and whatever is missing is set). No
  DynamoDB table: the backend locks with ``use_lockfile``. Uses boto3 (the credential chain of
  the AWS SDK; ``--sandbox``: the embedded emulator); without boto3 it prints the AWS CLI
  commands instead.
- ``gcs`` and ``azurerm``: the exact ``gcloud`` / ``az`` commands to run, printed, not run (they
  cannot be tested offline, so infra does not pretend to run them).
- ``local``: nothing to create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TerraformError

ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}


@dataclass
class Bootstrap:
    backend: str
    target: str  # the bucket or container, in words
    created: bool = False
    done: list[str] = field(default_factory=list)  # what was changed
    ok: list[str] = field(default_factory=list)  # what was already right
    commands: list[str] = field(default_factory=list)  # to run by hand (gcs, azurerm, s3 without boto3)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "target": self.target, "created": self.created, "changed": self.done,
                "unchanged": self.ok, "commands": self.commands, "note": self.note}


def bootstrap(file: Path, sandbox: bool = False, root: Path | None = None) -> Bootstrap:
    """Create (s3) or describe (gcs, azurerm) the state storage of ``file``'s backend."""
    from .stages.commands import open_environment

    loaded, provider, ws = open_environment(file, sandbox, root)
    bp = loaded.model
    if provider.terraform_module is None:
        return Bootstrap("none", "-", note=f"provider {provider.name} keeps no Terraform state: nothing to create")
    kind, settings = provider.backend(bp)
    if kind == "s3":
        endpoint = None
        if sandbox:
            from .sandbox import Sandbox

            endpoint = Sandbox.start(ws.state_dir).endpoint
        return _s3(settings["bucket"], bp.region or "us-east-1", endpoint)
    if kind == "gcs":
        return _gcs(settings["bucket"], bp.region or "US")
    if kind == "azurerm":
        return _azurerm(settings["storage_account_name"], settings["container_name"], bp.region or "<location>")
    return Bootstrap("local", str(ws.state_file), note=f"nothing to create: state lives in {ws.state_file}")


def _s3(bucket: str, region: str, endpoint: str | None) -> Bootstrap:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return _s3_commands(bucket, region)
    kw: dict[str, Any] = {"region_name": region}
    if endpoint:
        kw.update(endpoint_url=endpoint, aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    s3 = boto3.client("s3", **kw)
    result = Bootstrap("s3", f"s3://{bucket}" + (" (sandbox)" if endpoint else ""))
    try:
        _s3_apply(s3, bucket, region, result, ClientError)
    except (ClientError, BotoCoreError) as exc:
        raise TerraformError(f"state bootstrap: s3://{bucket}: {exc}",
                             hint="check the AWS credentials and that the bucket name is yours "
                                  "(S3 bucket names are global)") from exc
    return result


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _s3_apply(s3: Any, bucket: str, region: str, result: Bootstrap, client_error: type[Exception]) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        result.ok.append("bucket exists")
    except client_error as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        args: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**args)
        result.created = True
        result.done.append(f"bucket created in {region}")
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
        result.ok.append("versioning enabled")
    else:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        result.done.append("versioning enabled")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except client_error as exc:
        if _code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    if rules:
        result.ok.append(f"default encryption {rules[0]['ApplyServerSideEncryptionByDefault']['SSEAlgorithm']}")
    else:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=ENCRYPTION)
        result.done.append("default encryption AES256")
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except client_error as exc:
        if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    if all(block.get(k) for k in PUBLIC_ACCESS_BLOCK):
        result.ok.append("public access blocked")
    else:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        result.done.append("public access blocked")


def _s3_commands(bucket: str, region: str) -> Bootstrap:
    location = "" if region == "us-east-1" else f" --create-bucket-configuration LocationConstraint={region}"
    return Bootstrap("s3", f"s3://{bucket}", note="boto3 is not installed: run these with the AWS CLI", commands=[
        f"aws s3api create-bucket --bucket {bucket} --region {region}{location}",
        f"aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled",
        f"aws s3api put-bucket-encryption --bucket {bucket} --server-side-encryption-configuration "
        "'{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":{\"SSEAlgorithm\":\"AES256\"},\"BucketKeyEnabled\":true}]}'",
        f"aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration "
        "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
    ])


def _gcs(bucket: str, location: str) -> Bootstrap:
    return Bootstrap("gcs", f"gs://{bucket}", note="not run by infra: run these with gcloud (signed in, "
                     "GOOGLE_CLOUD_PROJECT set); Google encrypts every object at rest", commands=[
        f"gcloud storage buckets create gs://{bucket} --project=\"$GOOGLE_CLOUD_PROJECT\" --location={location} "
        "--uniform-bucket-level-access --public-access-prevention",
        f"gcloud storage buckets update gs://{bucket} --versioning",
    ])


def _azurerm(account: str, container: str, location: str) -> Bootstrap:
    group = "infra-tfstate"
    return Bootstrap("azurerm", f"{account}/{container}", note=(
        f"not run by infra: run these with az (signed in); the resource group name ({group}) is yours to "
        "choose, the backend does not need it (Entra ID auth, use_azuread_auth); a new role assignment "
        "can take a few minutes to apply"), commands=[
        f"az group create --name {group} --location {location}",
        f"az storage account create --name {account} --resource-group {group} --location {location} "
        "--sku Standard_ZRS --kind StorageV2 --min-tls-version TLS1_2 --allow-blob-public-access false "
        "--allow-shared-key-access false",
        f"az storage account blob-service-properties update --account-name {account} --resource-group {group} "
        "--enable-versioning true",
        "az role assignment create --role \"Storage Blob Data Contributor\" "
        "--assignee \"$(az ad signed-in-user show --query id --output tsv)\" "
        f"--scope \"$(az storage account show --name {account} --resource-group {group} --query id --output tsv)\"",
        f"az storage container create --name {container} --account-name {account} --auth-mode login",
    ])
