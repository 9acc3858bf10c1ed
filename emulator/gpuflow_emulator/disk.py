"""Whether a pod's images fit the disk of the node it is bound to.

A real node pulls and unpacks every image onto its boot disk (containerd's snapshotter lives there); when the
disk is too small, the pull fails with "no space left on device". The emulator's nodes advertise that disk as
``ephemeral-storage`` capacity (cloud pools: the requested disk size or the cloud's default) and image sizes
come from the config's ``images`` table, so a pool with a small disk fails the pull as the cloud's would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?)?$")
_FACTORS = {"": 1, **{s: 1000 ** (i + 1) for i, s in enumerate("KMGTPE")}}
_FACTORS.update({f"{s}i": 1024 ** (i + 1) for i, s in enumerate("KMGTPE")})


def quantity_bytes(text: str) -> int:
    """A Kubernetes storage quantity ("100Gi", "25G", "1073741824") in bytes."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"not a storage quantity: {text!r}")
    return int(float(match[1]) * _FACTORS[match[2] or ""])


def pull_failure(
    pod: Mapping[str, Any], node: Mapping[str, Any], image_bytes: Callable[[str], int]
) -> tuple[str, str] | None:
    """The first image (in pull order, each pulled once) that overflows the node's disk, and containerd's error.

    None when everything fits, or when the node advertises no ``ephemeral-storage`` (a static test node).
    """
    capacity = node.get("status", {}).get("capacity", {}).get("ephemeral-storage")
    if capacity is None:
        return None
    disk = quantity_bytes(str(capacity))
    spec = pod["spec"]
    used, pulled = 0, set()
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        image = container.get("image", "")
        if image in pulled:
            continue
        pulled.add(image)
        used += image_bytes(image)
        if used > disk:
            return image, _no_space(image, used, disk)
    return None


def _no_space(image: str, needed: int, disk: int) -> str:
    """containerd's words for the failed unpack, as the kubelet passes them on, plus what did not fit.

    The wording of a real pull that filled a node's disk (suxess-it/kubriX issue 1825): 'failed to pull and unpack
    image "IMAGE": failed to extract layer sha256:...: write /var/lib/containerd/io.containerd.snapshotter.v1.
    overlayfs/snapshots/N/fs/...: no space left on device: unknown'.
    """
    return (
        f'failed to pull and unpack image "{image}": failed to extract layer: '
        "write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots: no space left on device: unknown "
        f"(emulator: the pod's images need {needed / 2**30:.1f} GiB, the node's disk holds {disk / 2**30:.1f} GiB)"
    )
