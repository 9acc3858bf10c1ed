"""The EKS kubeconfig's exec plugin: the Kubernetes client runs it and gets a bearer token in EKS's format."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes.config.kube_config import ConfigNode, ExecProvider

from gpuflow.clouds.aws import _kube_config
from gpuflow.core.clusters import Cluster


def test_the_kubernetes_client_runs_the_exec_plugin_and_gets_a_signed_sts_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDWORKER")  # the exec env (the connection's keys) wins
    cluster = Cluster(name="gpuflow-use1", cloud="aws", region="us-east-1", connection_id="gpuflow_aws", settings={})
    keys = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": ""}
    user = _kube_config(cluster, "https://example.invalid", "Q0E=", keys)["users"][0]["user"]

    credential = ExecProvider(ConfigNode("exec", user["exec"]), cwd=None).run()  # what the client does before a request

    token = credential["token"]
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    url = urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.netloc == "sts.us-east-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
