"""Named-endpoint locks in the state database: one change to a named endpoint at a time.

Two promotions onto one endpoint at once would each retire every revision but their own, so the later retirement
deletes the revision the front Service was just switched to; a deletion during a promotion races it alike. Whoever
changes an endpoint (``promote``, ``gpu_endpoint_delete``) holds its lock from its first look at the endpoint to its
last change; anyone else waits. A lock names its holder and expires, so one left by a killed task cannot block the
endpoint for ever, and its holder takes it again at once (a new try of the same task).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from gpuflow.state.schema import locked
from gpuflow.state.store import StateStore, aware
from gpuflow.state.tables import endpoint_locks_table as locks


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds an endpoint's lock: a holder key, what it is (for the waiter's log), since when and until when."""

    holder: str
    detail: str
    taken_at: datetime
    expires_at: datetime


class EndpointLocks(StateStore):
    def take(self, endpoint: str, holder: str, detail: str, *, now: datetime, hold: timedelta) -> Holder | None:
        """Take ``endpoint``'s lock for ``holder`` until ``now + hold``, unless someone else holds it unexpired:
        then returns who (None: taken, or taken again by the same holder)."""
        with locked(self.engine) as connection:
            row = connection.execute(select(locks).where(locks.c.endpoint == endpoint)).first()
            if row is not None and row.holder != holder and aware(row.expires_at) > now:
                return Holder(row.holder, row.detail, aware(row.taken_at), aware(row.expires_at))
            connection.execute(delete(locks).where(locks.c.endpoint == endpoint))
            connection.execute(
                insert(locks),
                [
                    {
                        "endpoint": endpoint,
                        "holder": holder,
                        "detail": detail[:500],
                        "taken_at": now,
                        "expires_at": now + hold,
                    }
                ],
            )
        return None

    def release(self, endpoint: str, holder: str) -> bool:
        """Give ``endpoint``'s lock back if ``holder`` holds it; True when it did."""
        with self.engine.begin() as connection:
            gone = connection.execute(
                delete(locks).where(locks.c.endpoint == endpoint, locks.c.holder == holder)
            ).rowcount
        return bool(gone)
