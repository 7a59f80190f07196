"""Well-known labels, annotations and names of ``agents.kruise.io`` (reference §2)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANN_CLAIM_TIMESTAMP",
    "ANN_CLEANUP",
    "ANN_CLEANUP_ENABLED",
    "ANN_CLEANUP_RETAIN_ON_FAILURE",
    "ANN_CSI_VOLUME_CONFIG",
    "ANN_INIT_RUNTIME_REQUEST",
    "ANN_LOCK",
    "ANN_OWNER",
    "ANN_RESERVE_PAUSED_DURATION",
    "ANN_RETURN_SANDBOX_IP",
    "ANN_RUNTIME_ACCESS_TOKEN",
    "ANN_RUNTIME_URL",
    "ANN_SANDBOX_PRIORITY",
    "ANN_UPDATED_METADATA_IN_CLAIM",
    "API_VERSION",
    "BLACKLISTED_PREFIXES",
    "E2B_PREFIX",
    "GROUP",
    "INTERNAL_PREFIX",
    "LABEL_ALLOW_INTERNET_ACCESS",
    "LABEL_CLAIM_NAME",
    "LABEL_CREATED_BY",
    "LABEL_OWNER",
    "LABEL_POD_TEMPLATE_HASH",
    "LABEL_RESERVED_FAILED",
    "LABEL_SANDBOX_CLAIMED",
    "LABEL_SANDBOX_ID",
    "LABEL_SANDBOX_NAME",
    "LABEL_SANDBOX_POOL",
    "LABEL_SANDBOX_TEMPLATE",
    "LABEL_TEMPLATE_HASH",
    "OWNER_MANAGER_SCALE_DOWN",
    "SANDBOX_FINALIZER",
]

GROUP = "agents.kruise.io"
API_VERSION: Final = "agents.kruise.io/v1alpha1"
INTERNAL_PREFIX = "agents.kruise.io/"
E2B_PREFIX = "e2b.agents.kruise.io/"
BLACKLISTED_PREFIXES = (INTERNAL_PREFIX, E2B_PREFIX)

LABEL_SANDBOX_POOL = "agents.kruise.io/sandbox-pool"
LABEL_SANDBOX_TEMPLATE = "agents.kruise.io/sandbox-template"
LABEL_SANDBOX_CLAIMED = "agents.kruise.io/sandbox-claimed"
LABEL_CLAIM_NAME = "agents.kruise.io/claim-name"
LABEL_TEMPLATE_HASH = "agents.kruise.io/template-hash"
LABEL_RESERVED_FAILED = "agents.kruise.io/reserved-failed-sandbox"
LABEL_SANDBOX_NAME = "agents.kruise.io/sandbox-name"
LABEL_CREATED_BY = "agents.kruise.io/created-by"
"""On a Pod: ``sandbox`` when the Sandbox controller made it (``external`` otherwise)."""
LABEL_POD_TEMPLATE_HASH = "pod-template-hash"
"""On a Pod: the revision (hash) of the sandbox's pod template it was made from."""
LABEL_ALLOW_INTERNET_ACCESS = "agents.kruise.io/allow-internet-access"
LABEL_SANDBOX_ID = "agents.kruise.io/sandbox-id"
LABEL_OWNER = "agents.kruise.io/owner"

ANN_LOCK = "agents.kruise.io/lock"
ANN_OWNER = "agents.kruise.io/owner"
ANN_CLAIM_TIMESTAMP = "agents.kruise.io/claim-timestamp"
ANN_INIT_RUNTIME_REQUEST = "agents.kruise.io/init-runtime-request"
ANN_RUNTIME_ACCESS_TOKEN = "agents.kruise.io/runtime-access-token"
ANN_RUNTIME_URL = "agents.kruise.io/runtime-url"
ANN_CSI_VOLUME_CONFIG = "e2b.agents.kruise.io/csi-volume-config"
ANN_UPDATED_METADATA_IN_CLAIM = "agents.kruise.io/updated-metadata-in-claim"
ANN_RESERVE_PAUSED_DURATION = "agents.kruise.io/reserve-paused-sandbox-duration"
ANN_SANDBOX_PRIORITY = "agents.kruise.io/sandbox-priority"
ANN_RETURN_SANDBOX_IP = "e2b.agents.kruise.io/return-sandbox-ip"
ANN_CLEANUP_ENABLED = "agents.kruise.io/cleanup-enabled"
ANN_CLEANUP = "agents.kruise.io/cleanup"
ANN_CLEANUP_RETAIN_ON_FAILURE = "agents.kruise.io/cleanup-retain-on-failure"

OWNER_MANAGER_SCALE_DOWN = "__manager_scale_down"
SANDBOX_FINALIZER = "agents.kruise.io/sandbox"
