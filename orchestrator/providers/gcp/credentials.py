"""How the google provider and the gcs state backend find credentials (Application Default
Credentials): the project from GOOGLE_CLOUD_PROJECT (or the provider's other project variables),
and a key or token in the environment, the gcloud ADC file, or a Compute Engine machine's
metadata server."""

from __future__ import annotations

from ..credentials import Credentials, CredentialSource

_ADC = "application_default_credentials.json"

CREDENTIALS = Credentials(
    required=(("GOOGLE_CLOUD_PROJECT", "GOOGLE_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),),
    sources=(
        CredentialSource("GOOGLE_APPLICATION_CREDENTIALS", env=("GOOGLE_APPLICATION_CREDENTIALS",)),
        CredentialSource("GOOGLE_CREDENTIALS", env=("GOOGLE_CREDENTIALS",)),
        CredentialSource("GOOGLE_OAUTH_ACCESS_TOKEN", env=("GOOGLE_OAUTH_ACCESS_TOKEN",)),
        CredentialSource("GOOGLE_CLOUD_KEYFILE_JSON", env=("GOOGLE_CLOUD_KEYFILE_JSON",)),
        CredentialSource("gcloud ADC file", files=(f"$CLOUDSDK_CONFIG/{_ADC}", f"~/.config/gcloud/{_ADC}")),
        CredentialSource("Compute Engine metadata server", files=("/sys/class/dmi/id/product_name",),
                         contains="Google"),
    ),
    summary="no credentials found (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CREDENTIALS, "
            f"~/.config/gcloud/{_ADC} or a Compute Engine metadata server)",
    hint="run `gcloud auth application-default login` (or point GOOGLE_APPLICATION_CREDENTIALS at a key) "
         "and export GOOGLE_CLOUD_PROJECT; docs/providers.md, \"Credentials\"",
)
