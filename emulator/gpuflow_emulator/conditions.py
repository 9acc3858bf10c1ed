"""Status conditions as controllers set them: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from typing import Any

from gpuflow_emulator.timeutil import now_iso


def set_condition(status: dict[str, Any], kind: str, value: bool | None, reason: str = "", message: str = "") -> None:
    """Set condition `kind` to True, False or (None) Unknown, as a controller that cannot tell reports it."""
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == kind), None)
    flag = "Unknown" if value is None else "True" if value else "False"
    if current is None:
        current = {"type": kind}
        conditions.append(current)
    if current.get("status") != flag:
        current["lastTransitionTime"] = now_iso()
    current["status"] = flag
    for field, text in (("reason", reason), ("message", message)):
        if text:
            current[field] = text
        else:
            current.pop(field, None)


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == kind and c.get("status") == "True" for c in conditions)
