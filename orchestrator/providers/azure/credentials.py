"""How the azurerm provider and the azurerm state backend find credentials (azurerm 4.x): the
subscription from ARM_SUBSCRIPTION_ID, and an Azure CLI sign-in, a service principal (secret,
certificate or OIDC) or a managed identity."""

from __future__ import annotations

from ..credentials import Credentials, CredentialSource

_SP = ("ARM_CLIENT_ID", "ARM_TENANT_ID")
_CLI_CACHE = ("msal_token_cache.json", "msal_token_cache.bin", "accessTokens.json")

CREDENTIALS = Credentials(
    required=(("ARM_SUBSCRIPTION_ID",),),
    sources=(
        CredentialSource("az login", binary="az", files=tuple(
            f"{base}/{name}" for base in ("$AZURE_CONFIG_DIR", "~/.azure") for name in _CLI_CACHE)),
        CredentialSource("service principal secret", env=(*_SP, "ARM_CLIENT_SECRET")),
        CredentialSource("service principal certificate", env=(*_SP, "ARM_CLIENT_CERTIFICATE_PATH")),
        CredentialSource("OIDC", env=("ARM_USE_OIDC", *_SP)),
        CredentialSource("managed identity", env=("ARM_USE_MSI",)),
    ),
    summary="no sign-in found (az login; or ARM_CLIENT_ID and ARM_TENANT_ID with ARM_CLIENT_SECRET, "
            "ARM_CLIENT_CERTIFICATE_PATH or ARM_USE_OIDC=true; or ARM_USE_MSI=true)",
    hint="sign in with `az login` (or export a service principal's ARM_* variables) and export "
         "ARM_SUBSCRIPTION_ID; docs/providers.md, \"Credentials\"",
)
