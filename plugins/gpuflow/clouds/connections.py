"""Settings a backend reads from its Airflow connection's extras, beyond what the providers' hooks read.

All optional and cloud-generic: an API endpoint (private endpoints, sovereign clouds, or the local
emulator), a CA bundle to trust for it, and a pre-issued token instead of an interactive login.
"""

from __future__ import annotations

from typing import Any


def extras(connection_id: str) -> dict[str, Any]:
    from airflow.sdk import BaseHook

    return dict(BaseHook.get_connection(connection_id).extra_dejson)
