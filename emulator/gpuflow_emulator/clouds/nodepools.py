"""Cloud-agnostic node-pool lifecycle: create, become ready (nodes join), fail, get preempted, resize, delete.

The wire modules (eks, gke, aks) translate requests into `Pool`s and states back into each cloud's words;
everything that takes time or can fail happens here, once, driven by the scenario. Nodes join and leave
the emulated Kubernetes cluster through the `Emulator` node interface, so a deleted pool's pods fail the
way they do on a real node loss, and a preempted spot node goes the way its cloud takes it (`spot`), then is
replaced when spot capacity (the scenario's traces) allows, where the cloud replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from gpuflow_emulator.clouds import spot
from gpuflow_emulator.clouds.pools import AfterPreemption, CloudFault, Flavor, Operation, Pool, PoolState
from gpuflow_emulator.clouds.scenarios import ASYNC, Decision, Fault, Rule, Scenario
from gpuflow_emulator.clouds.traces import SpotTrace
from gpuflow_emulator.emulator import Emulator
from gpuflow_emulator.errors import ApiError

log = logging.getLogger(__name__)


class NodePools:
    """Every pool of every cloud, and the tasks that move them through their states."""

    def __init__(self, emulator: Emulator, scenario: Scenario) -> None:
        self.emulator = emulator
        self.scenario = scenario
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._flavors: dict[str, Flavor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.operations: dict[str, Operation] = {}
        self._serial = 0
        self._started = time.monotonic()

    def start(self) -> None:
        """Follow the scenario's spot traces (inside the event loop, once)."""
        for rule, trace in self.scenario.spot_traces():
            self._spawn(self._follow(rule, trace))

    def elapsed(self) -> float:
        """Real seconds since the emulator started: where the spot traces stand."""
        return time.monotonic() - self._started

    def register(self, flavor: Flavor) -> None:
        self._flavors[flavor.cloud] = flavor

    def all(self) -> list[Pool]:
        return list(self._pools.values())

    def list(self, cloud: str, cluster: str) -> list[Pool]:
        return [p for (c, k, _), p in self._pools.items() if (c, k) == (cloud, cluster)]

    def get(self, cloud: str, cluster: str, name: str) -> Pool | None:
        return self._pools.get((cloud, cluster, name))

    def track(self, kind: str, pool: Pool) -> Operation:
        """A new operation watching `pool` (a repeated create of an existing pool watches it become ready)."""
        operation = Operation(f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}", kind, pool)
        operation.target_nodes = pool.node_count
        self.operations[operation.id] = operation
        return operation

    def create(self, pool: Pool) -> Operation:
        """Accept the pool or raise CloudFault (a sync fault); what happens next runs in the background."""
        live = [p.target for p in self._pools.values() if p.state in (PoolState.CREATING, PoolState.READY)]
        decision = self.scenario.decide(pool.target, live, self.elapsed())
        flavor = self._flavors[pool.cloud]
        if decision.fault and decision.fault.when != ASYNC:
            error = flavor.failure(pool, decision.fault)
            raise CloudFault(dataclasses.replace(decision.fault, code=error.code), error.message)
        self._serial += 1
        pool.serial = self._serial
        self._pools[(pool.cloud, pool.cluster, pool.name)] = pool
        log.info(
            "%s pool %s/%s accepted (%s x%d)", pool.cloud, pool.cluster, pool.name, pool.instance_type, pool.node_count
        )
        self._spawn(self._provision(pool, flavor, decision.fault, decision))
        return self.track("create", pool)

    async def _provision(self, pool: Pool, flavor: Flavor, fault: Fault | None, decision: Decision) -> None:
        await asyncio.sleep(decision.provisioning_seconds)
        if pool.state is not PoolState.CREATING:
            return
        if fault is not None:
            pool.set_state(PoolState.FAILED, flavor.failure(pool, fault))
            log.info("%s pool %s failed: %s", pool.cloud, pool.name, pool.error)
            return
        if decision.never_ready:
            log.info("%s pool %s: nodes never become ready (scenario)", pool.cloud, pool.name)
            return
        self._add_nodes(pool, flavor, pool.node_count)
        pool.set_state(PoolState.READY)
        self._enforce_traces(pool)
        if decision.preempt_after_seconds is not None:
            self._spawn(self._preempt_after(pool, decision.preempt_after_seconds, decision.preemptions))

    def _add_nodes(self, pool: Pool, flavor: Flavor, count: int) -> None:
        for _ in range(len(pool.nodes), count):
            index = len(pool.node_zones)  # a new machine gets a new name, as the clouds name them
            zone = pool.zones[index % len(pool.zones)]
            self._join(pool, flavor, flavor.node_name(pool, index, zone), zone)

    def _join(self, pool: Pool, flavor: Flavor, name: str, zone: str) -> None:
        labels = {
            "node.kubernetes.io/instance-type": pool.instance_type,
            "topology.kubernetes.io/region": pool.region,
            **flavor.node_labels(pool, zone),
            **pool.labels,
        }
        taints = [*flavor.node_taints(pool), *pool.taints]
        allocatable, devices = pool.allocatable(), {}
        if pool.resource in allocatable and not flavor.ships_device_plugin(pool):
            devices[pool.resource] = allocatable.pop(pool.resource)
        self.emulator.add_node(pool.cluster, name, labels, taints, allocatable, devices)
        pool.nodes.append(name)
        pool.node_zones[name] = zone

    async def _remove_nodes(self, pool: Pool, keep: int, reason: str, message: str) -> None:
        while len(pool.nodes) > keep:
            node = pool.nodes.pop()
            pool.down.discard(node)
            with contextlib.suppress(Exception):
                await self.emulator.remove_node(pool.cluster, node, reason, message)

    # ---- spot preemption ----

    def preempt(self, pool: Pool, chosen: Sequence[str] | None = None) -> Sequence[str]:
        """Preempt every node the spot pool holds now, or the ``chosen`` ones (a test's chosen moment); returns their
        names."""
        nodes = [node for node in pool.nodes if node not in pool.down and (chosen is None or node in chosen)]
        self._take_back(pool, nodes)
        return nodes

    def _take_back(self, pool: Pool, nodes: Sequence[str]) -> None:
        """Start preempting `nodes` of a spot pool; they count as down at once, so no trigger takes one twice."""
        pool.down.update(nodes)
        for node in nodes:
            self._spawn(self._preempt_node(pool, node))

    async def _preempt_after(self, pool: Pool, after: float, rounds: int) -> None:
        """`preempt_after_seconds`: every node of the pool is preempted `after` seconds after it became ready, `rounds`
        times; each round's clock starts when the previous one's replacements have joined."""
        for _ in range(rounds):
            await asyncio.sleep(after)
            nodes = [node for node in pool.nodes if node not in pool.down]
            if pool.state is not PoolState.READY or not nodes:
                return
            pool.down.update(nodes)
            await asyncio.gather(*(self._preempt_node(pool, node) for node in nodes))

    async def _follow(self, rule: Rule | None, trace: SpotTrace) -> None:
        """At every tick of a spot trace, enforce it."""
        while True:
            self._enforce(rule, trace)
            await asyncio.sleep(trace.tick_seconds - self.elapsed() % trace.tick_seconds)

    def _enforce(self, rule: Rule | None, trace: SpotTrace) -> None:
        """Preempt the spot nodes the scope of a trace holds beyond what it allows now."""
        for pool, node in spot.victims(self._spot_pools(rule), -self._room(rule, trace)):
            self._take_back(pool, [node])

    def _enforce_traces(self, pool: Pool) -> None:
        """Nodes joined a pool: the spot traces limiting it may allow fewer than their scope now holds."""
        for rule, trace in self.scenario.spot_traces():
            if self.scenario.in_scope(rule, pool.target):
                self._enforce(rule, trace)

    def _room(self, rule: Rule | None, trace: SpotTrace) -> int:
        """Spot nodes the scope of a trace may take on now; negative: how many it holds too many."""
        return trace.value(self.elapsed()) - sum(pool.held for pool in self._spot_pools(rule))

    def _spot_pools(self, rule: Rule | None) -> Sequence[Pool]:
        """The ready spot pools a trace set by `rule` limits."""
        ready = [pool for pool in self._pools.values() if pool.state is PoolState.READY]
        return [pool for pool in ready if self.scenario.in_scope(rule, pool.target)]

    async def _preempt_node(self, pool: Pool, node: str) -> None:
        """One spot node (already counted down) taken back: its cloud's notice and end, then what its pool does."""
        flavor = self._flavors[pool.cloud]
        interruption = flavor.interruption
        ends_at = datetime.now(UTC) + timedelta(seconds=self.scenario.seconds(interruption.notice_seconds))
        reason, message = flavor.preemption(pool, node, ends_at)
        with contextlib.suppress(ApiError):
            self.emulator.record_node_event(pool.cluster, node, "Warning", reason, message)
        log.info("%s pool %s: spot node %s preempted (%s)", pool.cloud, pool.name, node, interruption.after)
        await spot.interrupt(self.emulator, pool.cluster, node, interruption, self.scenario.seconds)
        if pool.state is not PoolState.READY or node not in pool.nodes:
            return
        if interruption.after is not AfterPreemption.RECREATE:
            pool.nodes.remove(node)
            pool.down.discard(node)
        if interruption.after is AfterPreemption.SHRINK:
            pool.node_count -= 1
            return
        await self._replace(pool, flavor, node if interruption.after is AfterPreemption.RECREATE else None)

    async def _replace(self, pool: Pool, flavor: Flavor, same_name: str | None) -> None:
        """Once spot capacity allows, and after the provisioning delay, a new node joins (or the VM of `same_name` is
        recreated: its old Node and pods go first, as gcp-controller-manager deletes them when it registers)."""
        if not await self._capacity_for_one_more(pool):
            return
        try:
            await asyncio.sleep(self.scenario.decide(pool.target, [], self.elapsed()).provisioning_seconds)
            if pool.state is not PoolState.READY:
                return
            if same_name is None:
                self._add_nodes(pool, flavor, len(pool.nodes) + 1)
            elif same_name in pool.nodes:
                with contextlib.suppress(ApiError):
                    await self.emulator.delete_node(pool.cluster, same_name)
                pool.nodes.remove(same_name)
                pool.down.discard(same_name)
                self._join(pool, flavor, same_name, pool.node_zones[same_name])
            log.info("%s pool %s: preempted spot capacity replaced", pool.cloud, pool.name)
        finally:
            pool.granted -= 1
        self._enforce_traces(pool)

    async def _capacity_for_one_more(self, pool: Pool) -> bool:
        """Wait until every spot trace limiting the pool allows one node more than its scope holds, and take it;
        False if the pool stopped being ready meanwhile."""
        scenario = self.scenario
        limits = [(rule, trace) for rule, trace in scenario.spot_traces() if scenario.in_scope(rule, pool.target)]
        while pool.state is PoolState.READY and (full := [t for rule, t in limits if self._room(rule, t) < 1]):
            await asyncio.sleep(min(trace.tick_seconds for trace in full))
        if pool.state is not PoolState.READY:
            return False
        pool.granted += 1
        return True

    def resize(self, pool: Pool, count: int) -> Operation:
        """Scale a ready pool: extra nodes join after the provisioning delay, surplus nodes go at once."""
        pool.node_count = count
        pool.modified_at = time.time()
        operation = self.track("resize", pool)
        self._spawn(self._resize(pool, count))
        return operation

    async def _resize(self, pool: Pool, count: int) -> None:
        flavor = self._flavors[pool.cloud]
        if count < len(pool.nodes):
            await self._remove_nodes(pool, count, "NodeLost", f"node pool {pool.name} scaled down to {count}")
            return
        await asyncio.sleep(self.scenario.decide(pool.target, [], self.elapsed()).provisioning_seconds)
        if pool.state is PoolState.READY:
            self._add_nodes(pool, flavor, count)

    def relabel(self, pool: Pool, labels: dict[str, str]) -> Operation:
        """Replace the pool's own labels; its nodes change with it, in place (no node is recreated)."""
        removed = [key for key in pool.labels if key not in labels]
        pool.labels = dict(labels)
        pool.modified_at = time.time()
        for node in pool.nodes:
            self.emulator.relabel_node(pool.cluster, node, pool.labels, removed)
        log.info("%s pool %s/%s relabelled: %s", pool.cloud, pool.cluster, pool.name, pool.labels)
        return self.track("update", pool)

    def delete(self, pool: Pool) -> Operation:
        """Start deleting: nodes go at once (their pods fail), the pool itself after the deleting delay."""
        operation = self.track("delete", pool)
        if pool.state is not PoolState.DELETING:
            pool.set_state(PoolState.DELETING, pool.error)
            self._spawn(self._delete(pool))
        return operation

    async def _delete(self, pool: Pool) -> None:
        await self._remove_nodes(pool, 0, "NodeLost", f"node pool {pool.name} was deleted")
        await asyncio.sleep(self.scenario.decide(pool.target, []).deleting_seconds)
        pool.set_state(PoolState.GONE)
        self._pools.pop((pool.cloud, pool.cluster, pool.name), None)
        log.info("%s pool %s/%s deleted", pool.cloud, pool.cluster, pool.name)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
