"""The vLLM endpoint's Secret, Deployment and Service: schema-valid everywhere, probes, volumes, token handling."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.placement import placement
from gpuflow.kube.serving import (
    EndpointSpec,
    ModelDownloader,
    ProbeTiming,
    endpoint_manifests,
    front_service_manifest,
    rclone_downloader,
)
from tests.unit.kube.schema import assert_valid

LABELS = {"gpuflow.io/managed": "true", "gpuflow.io/run": "0123456789abcdef"}
IMAGE = "vllm/vllm-openai:v0.11.0"


def _spec(cloud: str = "gcp", tp: int = 1, model: str = "meta-llama/Llama-3.1-8B-Instruct", **kw: Any) -> EndpointSpec:
    options = VllmOptions(model, "llama", max_model_len=4096, tensor_parallel_size=tp)
    return EndpointSpec("llama-ep", "serving", IMAGE, options, placement(cloud, "pool", "L4", tp, "spot"), LABELS, **kw)


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def _pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    return spec


# Each cloud with TP=1 and TP>1, with and without a token, with and without the init container.
@pytest.mark.parametrize(
    ("cloud", "tp", "token", "model"),
    [
        ("aws", 1, None, "org/model"),
        ("aws", 4, "hf_secret", "s3://bucket/model"),
        ("gcp", 1, "hf_secret", "gs://b/m"),
        ("gcp", 4, None, "org/model"),
        ("azure", 1, None, "az://acct/container/m"),
        ("azure", 4, "hf_secret", "org/model"),
    ],
)
def test_every_manifest_is_schema_valid(cloud: str, tp: int, token: str | None, model: str) -> None:
    for manifest in endpoint_manifests(_spec(cloud, tp, model), token):
        assert_valid(manifest)


def test_objects_come_in_apply_order_with_the_secret_only_when_a_token_is_given() -> None:
    assert [m["kind"] for m in endpoint_manifests(_spec(), "hf_x")] == ["Secret", "Deployment", "Service"]
    assert [m["kind"] for m in endpoint_manifests(_spec())] == ["Deployment", "Service"]


def test_every_object_carries_ownership_and_app_labels() -> None:
    expected = LABELS | {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llama-ep"}
    manifests = endpoint_manifests(_spec(), "hf_x")

    for manifest in manifests:
        assert manifest["metadata"]["labels"] == expected
        assert manifest["metadata"]["namespace"] == "serving"
    deployment = _by_kind(manifests)["Deployment"]["spec"]
    assert deployment["template"]["metadata"]["labels"] == expected
    assert deployment["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": "llama-ep",
    }


def test_token_lives_only_in_the_secret_and_reaches_vllm_by_reference() -> None:
    manifests = _by_kind(endpoint_manifests(_spec(), "hf_secret"))

    assert manifests["Secret"]["stringData"] == {"token": "hf_secret"}
    assert "hf_secret" not in repr(manifests["Deployment"]) + repr(manifests["Service"])
    env = _pod_spec([manifests["Deployment"]])["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llama-ep-hf-token", "key": "token"}}} in env


def test_without_token_no_secret_is_referenced() -> None:
    assert "secretKeyRef" not in repr(endpoint_manifests(_spec()))


def test_deployment_runs_one_pinned_vllm_replica_recreated_not_surged() -> None:
    deployment = _by_kind(endpoint_manifests(_spec()))["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert (container["name"], container["image"]) == ("vllm", IMAGE)
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["args"][:2] == ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "command" not in container
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_a_multi_node_pool_serves_one_replica_per_node_each_with_all_of_its_accelerators() -> None:
    manifests = endpoint_manifests(dataclasses.replace(_spec(tp=2), replicas=3))
    deployment = _by_kind(manifests)["Deployment"]

    assert deployment["spec"]["replicas"] == 3
    assert _pod_spec(manifests)["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert_valid(deployment)


def test_probes_give_model_loading_a_long_startup_budget() -> None:
    container = _pod_spec(endpoint_manifests(_spec()))["containers"][0]

    assert container["startupProbe"] == {
        "httpGet": {"path": "/v1/models", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 180,
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_startup_budget_rounds_up_to_whole_periods() -> None:
    spec = _spec(probes=ProbeTiming(startup_period_s=7, startup_budget_s=60))

    assert _pod_spec(endpoint_manifests(spec))["containers"][0]["startupProbe"]["failureThreshold"] == 9


def test_dev_shm_only_with_tensor_parallelism() -> None:
    single = _pod_spec(endpoint_manifests(_spec(tp=1)))
    multi = _pod_spec(endpoint_manifests(_spec(tp=4)))

    assert [v["name"] for v in single["volumes"]] == ["model-cache"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in multi["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in multi["containers"][0]["volumeMounts"]
    assert "--tensor-parallel-size" in multi["containers"][0]["args"]


def test_model_cache_is_an_empty_dir_or_a_claim() -> None:
    sized = _pod_spec(endpoint_manifests(_spec(cache_size_limit="100Gi")))["volumes"][0]
    claimed = _pod_spec(endpoint_manifests(_spec(cache_claim="model-cache")))["volumes"][0]

    assert sized == {"name": "model-cache", "emptyDir": {"sizeLimit": "100Gi"}}
    assert claimed == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}


def test_hugging_face_model_has_no_init_container() -> None:
    assert "initContainers" not in _pod_spec(endpoint_manifests(_spec()))


def test_uri_model_is_copied_by_an_init_container_and_served_from_the_cache() -> None:
    pod = _pod_spec(endpoint_manifests(_spec(model="s3://bucket/models/llama")))
    (init,) = pod["initContainers"]

    assert init["image"] == "rclone/rclone:1.68.2"
    assert init["command"] == ["rclone", "copy", ":s3:bucket/models/llama", "$(MODEL_DIR)"]
    assert {"name": "MODEL_DIR", "value": "/models/weights"} in init["env"]
    assert init["volumeMounts"] == [{"name": "model-cache", "mountPath": "/models"}]
    assert pod["containers"][0]["args"][:2] == ["--model", "/models/weights"]


@pytest.mark.parametrize(
    ("uri", "command"),
    [
        ("gs://bucket/m", ["rclone", "copy", ":gcs:bucket/m", "$(MODEL_DIR)"]),
        (
            "az://account/container/m",
            ["rclone", "copy", "--azureblob-account", "account", ":azureblob:container/m", "$(MODEL_DIR)"],
        ),
    ],
)
def test_rclone_remote_per_scheme(uri: str, command: list[str]) -> None:
    assert list(rclone_downloader(uri).command) == command


def test_an_s3_download_is_signed_for_the_clusters_region_and_addressed_path_style() -> None:
    """rclone's provider AWS forces BUCKET.ENDPOINT addressing, which a private or emulated endpoint does not
    resolve; the bucket's region (the cluster's) is what S3 needs instead."""
    downloader = rclone_downloader("s3://bucket/m", "us-west-2")
    assert list(downloader.command) == ["rclone", "copy", "--s3-region", "us-west-2", ":s3:bucket/m", "$(MODEL_DIR)"]
    assert "RCLONE_S3_PROVIDER" not in downloader.env
    assert downloader.env["RCLONE_S3_ENV_AUTH"] == "true"


def test_downloader_image_and_command_are_configurable() -> None:
    downloader = ModelDownloader("ghcr.io/example/fetch:2", ("fetch", "$(MODEL_URI)", "$(MODEL_DIR)"), {"X": "1"})
    (init,) = _pod_spec(endpoint_manifests(_spec(model="gs://b/m", downloader=downloader)))["initContainers"]

    assert (init["image"], init["command"]) == ("ghcr.io/example/fetch:2", ["fetch", "$(MODEL_URI)", "$(MODEL_DIR)"])
    assert init["env"][:2] == [{"name": "X", "value": "1"}, {"name": "MODEL_URI", "value": "gs://b/m"}]


def test_service_is_cluster_ip_on_port_8000_named_http() -> None:
    service = _by_kind(endpoint_manifests(_spec()))["Service"]

    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llama-ep"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Llama"}, "name"),
        ({"name": "1llama"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"namespace": "my_ns"}, "namespace"),
        ({"image": ""}, "image"),
        ({"cache_claim": "Claim!"}, "cache_claim"),
        ({"options": VllmOptions("m", "m", tensor_parallel_size=2)}, "tensor_parallel_size"),
        ({"replicas": 0}, "nodes"),
    ],
)
def test_invalid_spec_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as error:
        dataclasses.replace(_spec(), **change)

    assert error.value.field == field


def test_unsupported_uri_scheme_names_the_model_field() -> None:
    with pytest.raises(RequestError) as error:
        rclone_downloader("s3:///no-bucket")

    assert error.value.field == "model"


def test_strict_schema_check_catches_a_misspelt_field() -> None:
    deployment = _by_kind(endpoint_manifests(_spec()))["Deployment"]
    deployment["spec"]["template"]["spec"]["nodeselector"] = {}

    with pytest.raises(Exception, match="nodeselector"):
        assert_valid(deployment)


def test_a_named_endpoints_revision_is_selected_by_its_front_service_through_its_revision_label() -> None:
    spec = _spec(front="chat")
    manifests = _by_kind(endpoint_manifests(spec))
    deployment, service = manifests["Deployment"], manifests["Service"]
    front = front_service_manifest(spec)
    assert_valid(front)
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    revision = {"gpuflow.io/revision": "llama-ep", "app.kubernetes.io/instance": "chat"}
    assert revision.items() <= pods.items()
    assert front["metadata"]["name"] == "chat"
    assert front["spec"]["selector"] == service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert front["spec"]["selector"].items() <= pods.items()
    assert front["metadata"]["labels"] == {**LABELS, "gpuflow.io/endpoint": "chat"}
    assert "gpuflow.io/endpoint" not in service["metadata"]["labels"]  # the teardown stamps it once promoted


def test_a_bad_endpoint_name_is_refused_with_the_field() -> None:
    with pytest.raises(RequestError) as error:
        _spec(front="Chat")
    assert error.value.field == "endpoint_name"
