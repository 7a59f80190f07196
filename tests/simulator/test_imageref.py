"""Image references as the kubelet parses them (distribution/reference's ParseNormalizedNamed)."""

from __future__ import annotations

import pytest

from simulator.imageref import image_name_problem, invalid_image_message


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "python:3.12",
        "docker.io/library/python:3.12",
        "index.docker.io/busybox",
        "registry.example.com/sandbox:V1",  # a tag may have capitals
        "Registry.Example.com/sandbox:v1",  # so may a registry
        "localhost:5000/team/app@sha256:" + "a" * 64,
        "a" * 237,  # docker.io/library/ and it: 255 characters
    ],
)
def test_references_the_kubelet_parses_have_no_problem(image: str) -> None:
    assert image_name_problem(image) is None
    assert invalid_image_message(image) is None


def test_the_name_limit_counts_the_default_registry_the_kubelet_adds() -> None:
    """``ParseNormalizedNamed`` checks the length of ``docker.io/library/<name>``."""
    assert image_name_problem("a" * 238) == "repository name must not be more than 255 characters"


def test_the_message_is_the_kubelets_own() -> None:
    """``EnsureImageExists`` wraps ``applyDefaultImageTag``'s error."""
    assert invalid_image_message("bad image") == (
        'Failed to apply default image tag "bad image": '
        'couldn\'t parse image reference "bad image": invalid reference format'
    )
