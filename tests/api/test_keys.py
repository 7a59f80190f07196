"""The well-known label and annotation keys: upstream's, character for character."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api import keys

# api/v1alpha1/labels.go, annotations.go, pkg/utils/constant.go: a key spelt otherwise
# is a key upstream's controllers and tools never read.
_UPSTREAM = {
    "INTERNAL_PREFIX": "agents.kruise.io/",
    "E2B_PREFIX": "e2b.agents.kruise.io/",
    "LABEL_SANDBOX_POOL": "agents.kruise.io/sandbox-pool",
    "LABEL_SANDBOX_TEMPLATE": "agents.kruise.io/sandbox-template",
    "LABEL_SANDBOX_CLAIMED": "agents.kruise.io/sandbox-claimed",
    "LABEL_CLAIM_NAME": "agents.kruise.io/claim-name",
    "LABEL_TEMPLATE_HASH": "agents.kruise.io/template-hash",
    "LABEL_POD_TEMPLATE_HASH": "pod-template-hash",
    "LABEL_RESERVED_FAILED": "agents.kruise.io/reserved-failed-sandbox",
    "LABEL_SANDBOX_NAME": "agents.kruise.io/sandbox-name",
    "LABEL_ALLOW_INTERNET_ACCESS": "agents.kruise.io/allow-internet-access",
    "LABEL_SANDBOX_ID": "agents.kruise.io/sandbox-id",
    "LABEL_OWNER": "agents.kruise.io/owner",
    "LABEL_CREATED_BY": "agents.kruise.io/created-by",
    "ANN_LOCK": "agents.kruise.io/lock",
    "ANN_OWNER": "agents.kruise.io/owner",
    "ANN_CLAIM_TIMESTAMP": "agents.kruise.io/claim-timestamp",
    "ANN_INIT_RUNTIME_REQUEST": "agents.kruise.io/init-runtime-request",
    "ANN_RUNTIME_ACCESS_TOKEN": "agents.kruise.io/runtime-access-token",
    "ANN_RUNTIME_URL": "agents.kruise.io/runtime-url",
    "ANN_CSI_VOLUME_CONFIG": "e2b.agents.kruise.io/csi-volume-config",
    "ANN_UPDATED_METADATA_IN_CLAIM": "agents.kruise.io/updated-metadata-in-claim",
    "ANN_RESERVE_PAUSED_DURATION": "agents.kruise.io/reserve-paused-sandbox-duration",
    "ANN_SANDBOX_PRIORITY": "agents.kruise.io/sandbox-priority",
    "ANN_CLEANUP_ENABLED": "agents.kruise.io/cleanup-enabled",
    "ANN_CLEANUP": "agents.kruise.io/cleanup",
    "ANN_CLEANUP_RETAIN_ON_FAILURE": "agents.kruise.io/cleanup-retain-on-failure",
    "ANN_RETURN_SANDBOX_IP": "e2b.agents.kruise.io/return-sandbox-ip",
    "OWNER_MANAGER_SCALE_DOWN": "__manager_scale_down",
}


@pytest.mark.parametrize(("name", "key"), sorted(_UPSTREAM.items()))
def test_each_well_known_key_is_spelt_as_upstream_spells_it(name: str, key: str) -> None:
    """Labels, annotations and the owner of a scale-down, as the reference lists them."""
    assert getattr(keys, name) == key


def test_both_internal_prefixes_are_blacklisted_for_user_metadata() -> None:
    """``pkg/utils/annotations/blacklist.go``: neither prefix may come from a user."""
    assert set(keys.BLACKLISTED_PREFIXES) == {"agents.kruise.io/", "e2b.agents.kruise.io/"}
