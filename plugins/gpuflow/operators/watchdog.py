"""``EndpointWatchdogOperator``: keep kept endpoints serving when their cloud shrinks their spot pool.

The rule is ``gpuflow.core.watchdog``; this adapter lists the pools labelled as gpuflow's on every configured
cluster, asks each cloud to scale the ones that lost nodes back, and says what it did. A refusal for capacity or
quota is not a failure of the watch (the pool is asked again next time); a cluster it could not reach is, after
the others were watched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from gpuflow.clouds.base import backend_for
from gpuflow.core.errors import CloudError, ErrorKind, describe
from gpuflow.core.watchdog import repairs
from gpuflow.operators.runtime import clusters
from gpuflow.sweep import MANAGED

NOT_YET = frozenset({ErrorKind.CAPACITY, ErrorKind.QUOTA, ErrorKind.TRANSIENT})


class EndpointWatchdogOperator(BaseOperator):
    """Scale every kept endpoint's pool that holds fewer nodes than it was kept with back to that count; return
    the pools asked for, and those the cloud refused for now."""

    ui_color = "#e3f0fb"

    def execute(self, context: Context) -> dict[str, Any]:
        now = datetime.now(UTC)
        resized: list[str] = []
        refused: dict[str, str] = {}
        failed: dict[str, str] = {}
        watched = list(clusters().by_region.values())
        for cluster in watched:
            backend = backend_for(cluster)
            try:
                pools = backend.list_node_pools(MANAGED)
            except Exception as exc:  # any SDK error: reported with the cluster, the others are still watched
                failed[f"{cluster.cloud}/{cluster.name}"] = describe(exc)
                continue
            for repair in repairs(pools, now):
                where = f"{repair.pool.cloud}/{repair.pool.cluster}/{repair.pool.name}"
                self.log.info("%s", repair.describe())
                try:
                    backend.resize_node_pool(repair.pool, repair.nodes_kept)
                except CloudError as error:  # the cloud's "not now" is asked again at the next watch
                    (refused if error.kind in NOT_YET else failed)[where] = describe(error)
                    continue
                resized.append(where)
        for where, reason in refused.items():
            self.log.warning("%s not scaled back yet (%s): asking again at the next watch", where, reason)
        self.log.info("watched %d cluster(s): %d kept pool(s) scaled back", len(watched), len(resized))
        if failed:
            errors = "; ".join(f"{where}: {error}" for where, error in sorted(failed.items()))
            raise AirflowException(f"the endpoint watchdog failed on {len(failed)} cluster(s) or pool(s): {errors}")
        return {"resized": resized, "refused": refused}
