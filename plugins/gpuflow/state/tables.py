"""gpuflow's state tables: one ``MetaData`` that ``gpuflow.state.schema`` brings a database up to, and the
stores read and write.

A column added after a table first shipped is nullable, so the migration can add it in place and rows an older
gpuflow wrote read as None.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()
blocks_table = Table(
    "gpuflow_blocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cloud", String(16), nullable=False),
    Column("region", String(64)),
    Column("zone", String(64)),
    Column("instance_type", String(128)),
    Column("capacity_type", String(16)),
    Column("quota_family", String(64)),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("reason", String(2000), nullable=False, default=""),
    Column("recorded_by", String(256), nullable=False, default=""),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


ledger_table = Table(
    "gpuflow_costs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("cloud", String(16), nullable=False),
    Column("region", String(64), nullable=False),
    Column("instance_type", String(128), nullable=False),
    Column("capacity_type", String(16), nullable=False),
    Column("nodes", Integer, nullable=False),
    Column("accelerators", Integer, nullable=False),
    Column("hourly_usd", Float, nullable=False),
    Column("held_from", DateTime(timezone=True), nullable=False),
    Column("held_until", DateTime(timezone=True), nullable=False),
    Column("gpu_hours", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("estimated_usd", Float, nullable=False),
    # Why the pool segment ended: "teardown" for the last one of a run, "preempted: ..." for one lost mid-run,
    # "janitor: ..." for one the janitor closed; while the entry is open, why it is.
    Column("ended_by", String(500)),
    # Which pool (cloud/cluster/name; null on older rows): the janitor closes the open entry of a pool it reclaims.
    Column("pool", String(400)),
    # True while the pool may still be held (the teardown could not confirm it deleted, or kept it for the endpoint):
    # held_until is then only how far the entry counts so far. Null on rows from before: closed.
    Column("is_open", Boolean),
)


runs_table = Table(
    "gpuflow_runs",
    metadata,
    Column("run_key", String(64), primary_key=True),
    # Null when the janitor saw the key on a resource before (or without) any run registering it.
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("known_since", DateTime(timezone=True), nullable=False),
)


# Where each run's training stands (``gpuflow.core.recovery.TrainingState`` as JSON): a recovery from a spot
# preemption spans deferrals, tries and workers, and must survive any of them.
training_table = Table(
    "gpuflow_training",
    metadata,
    Column("run_key", String(64), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# GPU leases (``gpuflow.core.admission``): one row per run that asked, granted in arrival order under the state
# lock, released once the run's pools are confirmed gone.
leases_table = Table(
    "gpuflow_leases",
    metadata,
    Column("run_key", String(64), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("cloud", String(16), nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False, index=True),
    Column("granted_at", DateTime(timezone=True)),
    Column("released_at", DateTime(timezone=True)),
)


# Who is changing a named endpoint (promoting onto it, or deleting it), so two runs never change one at once: a
# second promotion would retire the revision the first just switched to. One row per endpoint while it is held.
endpoint_locks_table = Table(
    "gpuflow_endpoint_locks",
    metadata,
    Column("endpoint", String(63), primary_key=True),
    Column("holder", String(250), nullable=False),  # the run key, or the DAG run that deletes it
    Column("detail", String(500), nullable=False, default=""),  # dag_id/run_id, for the waiter's log
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
