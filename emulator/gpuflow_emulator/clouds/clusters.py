"""Finding the emulated cluster a cloud API request addresses, by the cloud identity given in the config."""

from __future__ import annotations

from gpuflow_emulator.config import CloudIdentity, ClusterSpec, EmulatorConfig


def find(config: EmulatorConfig, provider: str, name: str, **identity: str) -> tuple[ClusterSpec, CloudIdentity] | None:
    """The cluster called `name` whose cloud identity has `provider` and every field in `identity`."""
    for spec in config.clusters:
        cloud = spec.cloud
        if (
            cloud is not None
            and spec.name == name
            and cloud.provider == provider
            and all(getattr(cloud, key) == value for key, value in identity.items())
        ):
            return spec, cloud
    return None
