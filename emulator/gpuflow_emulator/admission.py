"""What the API server does to an object before storing it: apply defaults, then validate (422 Invalid)."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import uuid
from typing import Any

from gpuflow_emulator import errors
from gpuflow_emulator.resources import Resource
from gpuflow_emulator.selectors import match_labels_selector
from gpuflow_emulator.store import Obj

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _required(field: str, detail: str = "") -> dict[str, str]:
    return errors.cause(field, "FieldValueRequired", f"Required value{': ' + detail if detail else ''}")


def _invalid(field: str, value: Any, detail: str) -> dict[str, str]:
    shown = f'"{value}"' if isinstance(value, str) else value
    return errors.cause(field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


# ---- defaults ----


def _default_container(container: Obj) -> None:
    image = container.get("image", "")
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    if resources.get("limits"):
        resources["requests"] = {**resources["limits"], **(resources.get("requests") or {})}
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe in (container[name] for name in _PROBES if container.get(name)):
        for field, value in (
            ("timeoutSeconds", 1),
            ("periodSeconds", 10),
            ("successThreshold", 1),
            ("failureThreshold", 3),
        ):
            probe.setdefault(field, value)
        if "httpGet" in probe:
            probe["httpGet"].setdefault("scheme", "HTTP")
            probe["httpGet"].setdefault("path", "/")


def _default_pod_spec(spec: Obj) -> None:
    for field, value in (
        ("restartPolicy", "Always"),
        ("terminationGracePeriodSeconds", 30),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("serviceAccountName", "default"),
        ("securityContext", {}),
        ("priority", 0),
    ):
        spec.setdefault(field, value)
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        _default_container(container)


def _default(kind: str, obj: Obj) -> None:
    if kind == "Pod":
        _default_pod_spec(obj.setdefault("spec", {}))
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("maxSurge", "25%")
            strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        obj.setdefault("status", {})
    elif kind == "DaemonSet":
        spec = obj.setdefault("spec", {})
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
            strategy["rollingUpdate"].setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        # Go's JSON keeps these four counts even at zero (no omitempty); clients require them.
        counts = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
        obj.setdefault("status", dict.fromkeys(counts, 0))
    elif kind == "Job":
        _default_job(obj)
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        digest = hashlib.sha256(f"{obj['metadata'].get('namespace')}/{obj['metadata'].get('name')}".encode()).digest()
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("clusterIP", f"10.96.{digest[0]}.{digest[1] or 1}")
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        obj.setdefault("data", {}).update({k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()})


def _default_job(job: Obj) -> None:
    """batch/v1 defaults; the selector and the template's labels name the Job's uid, minted here (the API server
    does both on create, kubernetes/kubernetes pkg/registry/batch/job/strategy.go generateSelector)."""
    meta, spec = job["metadata"], job.setdefault("spec", {})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    _default_pod_spec(template.setdefault("spec", {}))
    if not spec.get("manualSelector"):
        meta["uid"] = str(uuid.uuid4())
        ids = {"batch.kubernetes.io/controller-uid": meta["uid"], "controller-uid": meta["uid"]}
        names = {"batch.kubernetes.io/job-name": meta.get("name", ""), "job-name": meta.get("name", "")}
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **ids, **names}
    job.setdefault("status", {})


# ---- validation ----


def _validate_metadata(resource: Resource, meta: Obj) -> list[dict[str, str]]:
    name = meta.get("name")
    if not name:
        return [] if meta.get("generateName") else [_required("metadata.name", "name or generateName is required")]
    causes = []
    pattern = _DNS_LABEL if resource.kind in ("Namespace", "Service") else _SUBDOMAIN
    if not pattern.match(name) or len(name) > 253:
        causes.append(_invalid("metadata.name", name, _SUBDOMAIN_MESSAGE))
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            causes.append(_invalid("metadata.labels", value, _LABEL_MESSAGE))
        if not _LABEL_NAME.match(key.rsplit("/", 1)[-1]) or len(key.rsplit("/", 1)[-1]) > 63:
            causes.append(_invalid("metadata.labels", key, "name part must consist of alphanumeric characters"))
    return causes


def _validate_pod_spec(spec: Obj, path: str) -> list[dict[str, str]]:
    containers = spec.get("containers") or []
    if not containers:
        return [_required(f"{path}.containers")]
    causes, seen = [], set()
    groups = [("initContainers", spec.get("initContainers") or []), ("containers", containers)]
    for group, items in groups:
        for index, container in enumerate(items):
            field = f"{path}.{group}[{index}]"
            name = container.get("name")
            if not name:
                causes.append(_required(f"{field}.name"))
            elif not _DNS_LABEL.match(name):
                causes.append(
                    _invalid(
                        f"{field}.name",
                        name,
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                    )
                )
            elif name in seen:
                causes.append(errors.cause(f"{field}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not container.get("image"):
                causes.append(_required(f"{field}.image"))
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        causes.append(
            errors.cause(
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("restartPolicy")}"',
            )
        )
    return causes


def _validate_deployment(spec: Obj) -> list[dict[str, str]]:
    causes = _validate_selected_template(spec)
    if spec.get("replicas", 0) < 0:
        causes.append(_invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0"))
    return causes


def _validate_daemonset(spec: Obj) -> list[dict[str, str]]:
    causes = _validate_selected_template(spec)
    policy = spec["template"]["spec"].get("restartPolicy")
    if policy != "Always":
        detail = f'Unsupported value: "{policy}": supported values: "Always"'
        causes.append(errors.cause("spec.template.spec.restartPolicy", "FieldValueNotSupported", detail))
    return causes


def _validate_selected_template(spec: Obj) -> list[dict[str, str]]:
    """A controller's pod template, and a selector that selects the template's own labels."""
    causes = _validate_pod_spec(spec["template"]["spec"], "spec.template.spec")
    selector = spec.get("selector")
    if not selector:
        return [*causes, _required("spec.selector")]
    labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    if not match_labels_selector(selector)(labels):
        causes.append(_invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    return causes


def _validate_job(spec: Obj) -> list[dict[str, str]]:
    causes = _validate_selected_template(spec)
    policy = spec["template"]["spec"].get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        detail = f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"'
        causes.append(errors.cause("spec.template.spec.restartPolicy", "FieldValueNotSupported", detail))
    for field in ("parallelism", "completions", "backoffLimit"):
        if spec.get(field) is not None and spec[field] < 0:
            causes.append(_invalid(f"spec.{field}", spec[field], "must be greater than or equal to 0"))
    if spec.get("completionMode") not in ("NonIndexed", "Indexed"):
        detail = f'Unsupported value: "{spec.get("completionMode")}": supported values: "NonIndexed", "Indexed"'
        causes.append(errors.cause("spec.completionMode", "FieldValueNotSupported", detail))
    elif spec["completionMode"] == "Indexed" and spec.get("completions") is None:
        causes.append(_required("spec.completions", "when completion mode is Indexed"))
    return causes


def _validate_service(spec: Obj) -> list[dict[str, str]]:
    return [
        _invalid(f"spec.ports[{index}].port", port.get("port"), "must be between 1 and 65535, inclusive")
        for index, port in enumerate(spec.get("ports") or [])
        if not isinstance(port.get("port"), int) or not 1 <= port["port"] <= 65535
    ]


def admit(resource: Resource, obj: Obj) -> Obj:
    """The object as stored: defaulted, or a 422 Invalid naming every bad field."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    _default(resource.kind, obj)
    causes = _validate_metadata(resource, meta)
    if resource.kind == "Pod":
        causes += _validate_pod_spec(obj["spec"], "spec")
    elif resource.kind == "Deployment":
        causes += _validate_deployment(obj["spec"])
    elif resource.kind == "DaemonSet":
        causes += _validate_daemonset(obj["spec"])
    elif resource.kind == "Job":
        causes += _validate_job(obj["spec"])
    elif resource.kind == "Service":
        causes += _validate_service(obj["spec"])
    if causes:
        raise errors.invalid(resource.kind, meta.get("name") or meta.get("generateName", ""), causes, resource.group)
    return obj
