"""Job controller (batch/v1): runs pods of the template until `completions` succeed or `backoffLimit` is passed.

What it follows (kubernetes.io, "Jobs"; kubernetes/kubernetes `pkg/controller/job/job_controller.go`):
- `completionMode: Indexed` gives each of `completions` indexes its own pods: named `JOB-INDEX-xxxxx`, labelled
  and annotated `batch.kubernetes.io/job-completion-index`, with `JOB_COMPLETION_INDEX` in every container's env
  (from that annotation) and `spec.hostname` `JOB-INDEX`, so with a headless Service named as the template's
  `subdomain` each pod is `JOB-INDEX.SUBDOMAIN` (dns.py). `NonIndexed` runs interchangeable pods.
- At most `parallelism` pods are active. A failed pod counts against `backoffLimit`; its index is retried after
  the controller's back-off (10 s, doubled per failure, at most 6 min). One failure more than the limit fails the
  Job: `FailureTarget` then `Failed`, reason `BackoffLimitExceeded`, "Job has reached the specified backoff limit",
  and its active pods are deleted. Every index succeeded: `SuccessCriteriaMet` then `Complete`, reason
  `CompletionsReached`, "Reached expected number of succeeded pods".
- Pods are owned by the Job; deleting it with propagation Background or Foreground deletes them (api.py).
Left out: `restartPolicy: OnFailure` restarts counted against the limit, `podFailurePolicy`, `successPolicy`,
`backoffLimitPerIndex`, `activeDeadlineSeconds`, `suspend`, `ttlSecondsAfterFinished`, pod finalizers.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from gpuflow_emulator.admission import admit
from gpuflow_emulator.conditions import condition_true, set_condition
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj, Store
from gpuflow_emulator.timeutil import now_iso

JOBS, PODS = by_kind("Job"), by_kind("Pod")
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
TERMINAL_PHASES = ("Succeeded", "Failed")
BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 10.0, 360.0
FAILED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
COMPLETE = ("CompletionsReached", "Reached expected number of succeeded pods")


def index_of(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(value) if value is not None else None


def compressed(indexes: set[int]) -> str:
    """`status.completedIndexes` as the API writes it: ascending, runs as `a-b` (`0-2,5`)."""
    runs: list[list[int]] = []
    for index in sorted(indexes):
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


class JobController:
    def __init__(self, store: Store, delete_pod: Callable[[str, str], object]) -> None:
        self._store = store
        self._delete_pod = delete_pod
        # Pods that ended, per Job uid: counted once even after the Pod objects go (the real controller's
        # `uncountedTerminatedPods` and finalizers serve this).
        self._failed: dict[str, set[str]] = {}
        self._succeeded: dict[str, dict[str, int | None]] = {}
        self._retry_at: dict[str, float] = {}

    def sync(self) -> None:
        jobs = self._store.list(JOBS)
        owners = {job["metadata"]["uid"] for job in jobs}
        for pod in self._store.list(PODS):
            refs = pod["metadata"].get("ownerReferences") or []
            if (
                any(r["kind"] == "Job" and r["uid"] not in owners for r in refs)
                and "deletionTimestamp" not in pod["metadata"]
            ):
                self._delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])  # Background propagation
        for memory in (self._failed, self._succeeded, self._retry_at):
            for uid in set(memory) - owners:
                del memory[uid]
        for job in jobs:
            self._sync_one(job)

    def _owned(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        return self._store.list(
            PODS,
            job["metadata"]["namespace"],
            lambda p: any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or []),
        )

    def _sync_one(self, job: Obj) -> None:
        uid, spec = job["metadata"]["uid"], job["spec"]
        pods = self._owned(job)
        failed, succeeded = self._failed.setdefault(uid, set()), self._succeeded.setdefault(uid, {})
        for pod in pods:
            phase = pod["status"].get("phase")
            if phase == "Failed" and pod["metadata"]["uid"] not in failed:
                failed.add(pod["metadata"]["uid"])
                self._retry_at[uid] = time.monotonic() + min(
                    BACKOFF_SECONDS * 2 ** (len(failed) - 1), MAX_BACKOFF_SECONDS
                )
            elif phase == "Succeeded":
                succeeded[pod["metadata"]["uid"]] = index_of(pod)
        active = [p for p in pods if p["status"].get("phase") not in TERMINAL_PHASES]
        live = [p for p in active if "deletionTimestamp" not in p["metadata"]]
        done = self._done_indexes(job, succeeded)
        if not finished(job):
            if len(failed) > spec.get("backoffLimit", 6):
                self._finish(job, "FailureTarget", "Failed", FAILED)
            elif self._complete(job, done, live):
                self._finish(job, "SuccessCriteriaMet", "Complete", COMPLETE)
            elif time.monotonic() >= self._retry_at.get(uid, 0.0):
                self._start_pods(job, done, live)
        job = self._store.find(JOBS, job["metadata"]["namespace"], job["metadata"]["name"]) or job
        if finished(job):
            for pod in live:
                self._delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._publish_status(job, live, len(failed), len(succeeded), done)

    def _done_indexes(self, job: Obj, succeeded: dict[str, int | None]) -> set[int]:
        if job["spec"].get("completionMode") == "Indexed":
            return {index for index in succeeded.values() if index is not None}
        return set(range(len(succeeded)))

    def _complete(self, job: Obj, done: set[int], live: list[Obj]) -> bool:
        completions = job["spec"].get("completions")
        if completions is None:  # a work queue: one success, and the rest have ended
            return bool(done) and not live
        return len(done) >= int(completions)

    def _start_pods(self, job: Obj, done: set[int], live: list[Obj]) -> None:
        spec = job["spec"]
        completions = spec.get("completions")
        room = spec.get("parallelism", 1) - len(live)
        if spec.get("completionMode") == "Indexed":
            running = {index_of(p) for p in live}
            wanted: list[int | None] = [i for i in range(completions) if i not in done and i not in running]
        else:
            remaining = (completions - len(done) if completions is not None else spec.get("parallelism", 1)) - len(live)
            wanted = [None] * max(0, remaining)
        for index in wanted[: max(0, room)]:
            self._store.create(PODS, job["metadata"]["namespace"], admit(PODS, self._pod(job, index)))

    def _pod(self, job: Obj, index: int | None) -> Obj:
        meta, template = job["metadata"], copy.deepcopy(job["spec"]["template"])
        template_meta, spec = template.get("metadata") or {}, template["spec"]
        labels, annotations = dict(template_meta.get("labels") or {}), dict(template_meta.get("annotations") or {})
        prefix = f"{meta['name']}-"
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            prefix = f"{meta['name']}-{index}-"
            spec["hostname"] = f"{meta['name']}-{index}"
            source = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
            for container in (spec.get("initContainers") or []) + spec["containers"]:
                container["env"] = [*(container.get("env") or []), {"name": INDEX_ENV, "valueFrom": source}]
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"]}
        return {
            "metadata": {
                "generateName": prefix,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }

    def _finish(self, job: Obj, target: str, final: str, why: tuple[str, str]) -> None:
        def apply(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            set_condition(status, target, True, *why)
            set_condition(status, final, True, *why)
            if final == "Complete":
                status["completionTime"] = now_iso()

        self._store.mutate(JOBS, job["metadata"]["namespace"], job["metadata"]["name"], apply)

    def _publish_status(self, job: Obj, live: list[Obj], failed: int, succeeded: int, done: set[int]) -> None:
        counts = {"active": len(live), "failed": failed, "succeeded": succeeded}
        indexed = job["spec"].get("completionMode") == "Indexed"

        def apply(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("startTime", now_iso())
            status["ready"] = sum(1 for pod in live if condition_true(pod, "Ready"))
            status["uncountedTerminatedPods"] = {}
            for field, value in counts.items():  # omitted when zero, as the API's JSON leaves them out
                if value:
                    status[field] = value
                else:
                    status.pop(field, None)
            if indexed and done:
                status["completedIndexes"] = compressed(done)

        self._store.mutate(JOBS, job["metadata"]["namespace"], job["metadata"]["name"], apply)
