"""Validation against the offline Kubernetes OpenAPI schema that kubernetes-validate ships."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.32.0"


def assert_valid(manifest: dict[str, Any]) -> None:
    """Strict: an unknown field (a typo such as ``nodeselector``) fails as well as a wrong type."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
