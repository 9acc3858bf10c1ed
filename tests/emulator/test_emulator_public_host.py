"""An emulator that listens on every address but is reached by a service name (as in docker-compose.yaml)
hands out that name in every URL and certificate, so clients in other containers can follow them."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from cryptography import x509
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import DEFAULT_CONFIG, EmulatorProcess, free_port

PUBLIC = "gpuflow-emulator"
CLUSTERS = {"gpuflow-use1", "gpuflow-eastus"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    clusters = [c for c in yaml.safe_load(DEFAULT_CONFIG.read_text())["clusters"] if c["name"] in CLUSTERS]
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port()}
    with EmulatorProcess.start(
        tmp_path_factory.mktemp("public-host"),
        extra={"clusters": clusters, "clouds": clouds},
        serve_args=("--host", "0.0.0.0", "--public-host", PUBLIC),
    ) as running:
        yield running


def local(url: str) -> str:
    """The same URL through the loopback address (the public name only resolves inside the compose network)."""
    return url.replace(f"//{PUBLIC}:", "//127.0.0.1:")


def test_cloud_api_urls_name_the_public_host(emulator: EmulatorProcess) -> None:
    urls = emulator.clouds()
    assert {urlparse(urls[cloud]).hostname for cloud in ("aws", "gcp", "azure")} == {PUBLIC}


def test_kubeconfigs_and_cluster_endpoints_name_the_public_host(emulator: EmulatorProcess) -> None:
    for cluster in CLUSTERS:
        kubeconfig = yaml.safe_load(emulator.kubeconfig(cluster).read_text())
        assert urlparse(kubeconfig["clusters"][0]["cluster"]["server"]).hostname == PUBLIC
    described = clients.eks(local(emulator.clouds()["aws"]), "us-east-1", 1).describe_cluster(name="gpuflow-use1")
    assert described["cluster"]["endpoint"] == f"http://{PUBLIC}:{urlparse(emulator.url).port}/clusters/gpuflow-use1"


def test_azure_certificate_is_valid_for_the_public_host(emulator: EmulatorProcess) -> None:
    port = urlparse(emulator.clouds()["azure"]).port
    assert port
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert PUBLIC in names.value.get_values_for_type(x509.DNSName)
    assert Path(emulator.clouds()["azure_ca"]).is_file()
