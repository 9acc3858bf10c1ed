"""Pod names a headless Service publishes, and each pod's own loopback address: cluster DNS for local processes.

Kubernetes gives a pod whose `spec.hostname` and `spec.subdomain` are set, and whose subdomain names a headless
Service (clusterIP None) in its namespace that selects it, the A record `HOSTNAME.SUBDOMAIN.NS.svc.cluster.local`
once the Service's endpoints list it: when it is ready, or at once with `publishNotReadyAddresses` (which also keeps
a terminating pod's name until the pod is gone)
(kubernetes.io, "DNS for Services and Pods", "A/AAAA records" and "Pod's hostname and subdomain fields"; the Job
task "Job with Pod-to-Pod Communication" builds on exactly this). Here pods are processes on one machine, so such
a pod gets its own loopback address (all of 127.0.0.0/8 reaches this host) and sees the records through a hosts
file its kubelet rewrites as pods come and go, bound on `/etc/hosts` (process.py); resolv.conf's search list
(`NS.svc.cluster.local svc.cluster.local cluster.local`) is stood in for by listing the shorter forms too.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from gpuflow_emulator.conditions import condition_true
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store

PODS, SERVICES = by_kind("Pod"), by_kind("Service")
CLUSTER_DOMAIN = "cluster.local"
TERMINAL_PHASES = ("Succeeded", "Failed")
_BASE = "# Kubernetes-managed hosts file (gpuflow emulator).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
# Second octet from the emulator's pid, so two emulators on one machine hand out different addresses.
_ADDRESSES = (f"127.{1 + os.getpid() % 254}.{n // 254}.{1 + n % 254}" for n in itertools.count())


def pod_address() -> str:
    """A loopback address no other pod of this emulator has."""
    return next(_ADDRESSES)


@dataclass(frozen=True)
class Record:
    """One published pod name: `hostname.subdomain` in `namespace`, at `address`."""

    namespace: str
    hostname: str
    subdomain: str
    address: str

    def names(self, viewer_namespace: str) -> list[str]:
        """The forms a pod in `viewer_namespace` resolves (its search list makes the short form work there)."""
        fqdn = f"{self.hostname}.{self.subdomain}.{self.namespace}.svc.{CLUSTER_DOMAIN}"
        forms = [fqdn, fqdn.removesuffix(f".{CLUSTER_DOMAIN}"), f"{self.hostname}.{self.subdomain}.{self.namespace}"]
        return [*forms, f"{self.hostname}.{self.subdomain}"] if viewer_namespace == self.namespace else forms


def _published(pod: Obj, service: Obj) -> bool:
    """Whether the pod's name resolves: its endpoint is `ready`, which a Service that publishes not-ready addresses
    makes true even for a terminating pod (kubernetes staging/src/k8s.io/endpointslice/utils.go, podToEndpoint:
    `ready := service.Spec.PublishNotReadyAddresses || (serving && !terminating)`), until the pod is gone."""
    spec, status = pod["spec"], pod.get("status") or {}
    selector = service["spec"].get("selector")
    terminating = "deletionTimestamp" in pod["metadata"]
    ready = service["spec"].get("publishNotReadyAddresses") or (condition_true(pod, "Ready") and not terminating)
    return bool(
        spec.get("hostname")
        and spec.get("subdomain") == service["metadata"]["name"]
        and selector
        and all((pod["metadata"].get("labels") or {}).get(key) == value for key, value in selector.items())
        and status.get("podIP")
        and status.get("phase") not in TERMINAL_PHASES
        and ready
    )


def records(store: Store) -> list[Record]:
    """Every pod name the cluster's headless Services publish now."""
    headless = [s for s in store.list(SERVICES) if s["spec"].get("clusterIP") == "None"]
    found = []
    for service in headless:
        namespace = service["metadata"]["namespace"]
        for pod in store.list(PODS, namespace):
            if _published(pod, service):
                spec = pod["spec"]
                found.append(Record(namespace, spec["hostname"], spec["subdomain"], pod["status"]["podIP"]))
    return found


def hosts_file(own: Record, published: list[Record]) -> str:
    """The /etc/hosts of the pod `own` describes: localhost, its own name (as the kubelet writes it), the records."""
    lines = [f"{own.address}\t{' '.join(own.names(own.namespace))}"]
    lines += [f"{record.address}\t{' '.join(record.names(own.namespace))}" for record in published if record != own]
    return _BASE + "\n".join(lines) + "\n"
