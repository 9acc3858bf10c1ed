"""The GKE kubeconfig's user: an exec plugin minting Google tokens where the connection's credentials allow,
one access token where they cannot travel, none when anonymous. The token endpoint is a local OAuth server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes.config.kube_config import ConfigNode, ExecProvider

from gpuflow.clouds.gcp import GkeBackend
from gpuflow.core.clusters import Cluster

CLUSTER = Cluster(
    name="gpuflow-usc1",
    cloud="gcp",
    region="us-central1",
    connection_id="gpuflow_gcp",
    settings={"project": "p", "location": "us-central1"},
)


class TokenServer(BaseHTTPRequestHandler):
    """Google's OAuth token endpoint for a service account's JWT grant: a new token per request."""

    issued: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        token = f"ya29.local-{len(self.issued) + 1}"
        self.issued.append(token)
        body = json.dumps({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service_account_key(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A service account key whose token_uri is a local OAuth server."""
    TokenServer.issued = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    yield {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "gpuflow@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"http://127.0.0.1:{server.server_port}/token",
    }
    server.shutdown()


def user_for(extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    connection = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_GCP", json.dumps(connection))
    return GkeBackend(CLUSTER)._user()


def test_a_key_file_connection_gets_an_exec_plugin_that_mints_a_token_per_request(
    service_account_key: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(service_account_key))
    user = user_for({"key_path": str(key_path)}, monkeypatch)
    assert "token" not in user  # no secret in the kubeconfig (nor in a trigger's kwargs)
    plugin = ExecProvider(ConfigNode("exec", user["exec"]), cwd=None)

    first, second = plugin.run(), plugin.run()  # what the client does whenever its token has expired

    assert (first["token"], second["token"]) == ("ya29.local-1", "ya29.local-2")
    expires = datetime.strptime(first["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=50) < expires - datetime.now(UTC) < timedelta(minutes=56)


def test_application_default_credentials_are_used_when_the_connection_names_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = user_for({}, monkeypatch)
    assert user["exec"]["args"][-1] == "gpuflow.clouds.gke_token"


def test_an_inline_key_stays_out_of_the_kubeconfig_which_carries_one_token_instead(
    service_account_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = user_for({"keyfile_dict": json.dumps(service_account_key)}, monkeypatch)
    assert user == {"token": "ya29.local-1"}


def test_an_anonymous_endpoint_gets_no_user_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert user_for({"anonymous": True, "api_endpoint": "http://127.0.0.1:1"}, monkeypatch) == {}
