"""The kubeconfig of a GKE cluster, from the Terraform outputs of terraform/modules/gcp_gpu_cluster.

Its user runs ``gke-gcloud-auth-plugin`` through the ``exec`` credential plugin: no token is
ever written to disk. Where Terraform found Application Default Credentials (a key file, the
gcloud ADC file, a Compute Engine machine) the plugin uses them too
(``--use_application_default_credentials``); otherwise it uses gcloud's own sign-in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...blueprint.models import Blueprint
from ..kubeconfig import exec_kubeconfig, require_outputs, require_plugin
from .credentials import CREDENTIALS

PLUGIN = "gke-gcloud-auth-plugin"
# The sources of credentials.CREDENTIALS the plugin reads as Application Default Credentials.
ADC_SOURCES = frozenset({"GOOGLE_APPLICATION_CREDENTIALS", "gcloud ADC file", "Compute Engine metadata server"})


def plugin_args(env: Mapping[str, str]) -> list[str]:
    """``--use_application_default_credentials`` where Terraform's credentials are ADC the plugin reads."""
    found = {src.label for src in CREDENTIALS.usable(env)}
    return ["--use_application_default_credentials"] if found & ADC_SOURCES else []


def gke_kubeconfig(bp: Blueprint, outputs: dict[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    require_outputs(outputs)
    require_plugin(PLUGIN, "GKE needs it to get a token", f"install it (`gcloud components install {PLUGIN}`)")
    args = plugin_args(os.environ if env is None else env)
    return exec_kubeconfig(outputs, "gcloud", PLUGIN, args, provide_cluster_info=True)
