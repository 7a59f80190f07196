"""Image references as the kubelet reads them: why one cannot be parsed.

The API server takes any non-empty image string without blanks around it (pod
validation checks no more); the kubelet parses it before it pulls
(``applyDefaultImageTag``, with distribution/reference's ``ParseNormalizedNamed``),
and a container whose image it cannot parse waits, reason ``InvalidImageName``,
with the message :func:`invalid_image_message` gives. Nothing is pulled and
nothing is retried until the image changes.
"""

from __future__ import annotations

import re

from pytest_kruise_agents.claiming.extensions import image_reference_name

__all__ = ["INVALID_IMAGE_NAME", "image_name_problem", "invalid_image_message"]

INVALID_IMAGE_NAME = "InvalidImageName"
"""The waiting reason of a container whose image the kubelet cannot parse (``ErrInvalidImageName``)."""

_DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_REPO_PREFIX = "library/"
_MAX_NAME = 255
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")


def _split_domain(image: str) -> tuple[str, str]:
    """distribution/reference's ``splitDockerDomain``: ``(domain, remainder)``."""
    first, sep, rest = image.partition("/")
    if not sep:
        return _DEFAULT_DOMAIN, _OFFICIAL_REPO_PREFIX + image
    if first == _LEGACY_DEFAULT_DOMAIN:
        domain, remainder = _DEFAULT_DOMAIN, rest
    elif first == "localhost" or any(ch in first for ch in ".:") or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = _DEFAULT_DOMAIN, image
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def image_name_problem(image: str) -> str | None:
    """Why ``ParseNormalizedNamed`` refuses ``image``, in its words; ``None`` if it parses.

    Checked in its order: a bare 64-hex identifier, a repository path not in
    lower case (``Busybox`` is ``library/Busybox``), a reference of no valid
    form, a name (the domain added) over 255 characters.
    """
    if _IDENTIFIER.fullmatch(image):
        return f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
    domain, remainder = _split_domain(image)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        return f"invalid reference format: repository name ({remote}) must be lowercase"
    name = image_reference_name(f"{domain}/{remainder}")
    if name is None:
        return "invalid reference format"
    if len(name) > _MAX_NAME:
        return f"repository name must not be more than {_MAX_NAME} characters"
    return None


def invalid_image_message(image: str) -> str | None:
    """The message the kubelet writes beside ``InvalidImageName`` for ``image`` (its
    ``EnsureImageExists``), or ``None`` if the kubelet can parse ``image``."""
    why = image_name_problem(image)
    if why is None:
        return None
    return (
        f'Failed to apply default image tag "{image}": '
        f'couldn\'t parse image reference "{image}": {why}'
    )
