"""Label and field selectors, parsed from the query-string syntax clients send.

Label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)` and `k notin (a,b)`.
Field selectors support `path=v`, `path==v` and `path!=v` on any dotted path of the object
(the real API server allows only a few fields per resource; accepting more is harmless here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gpuflow_emulator.errors import bad_request

Predicate = Callable[[Mapping[str, str]], bool]

_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")
_FIELD_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([^,]*?)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c` has two terms)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _label_term(term: str) -> Predicate:
    if match := _SET_TERM.match(term):
        key, op, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ_TERM.match(term):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_TERM.match(term):
        negated, key = match.groups()
        return (lambda labels: key not in labels) if negated else (lambda labels: key in labels)
    raise bad_request(f"unable to parse requirement: {term!r}")


def label_selector(selector: str | None) -> Predicate:
    """A predicate over a label map; an empty selector matches everything."""
    predicates = [_label_term(term) for term in _split_terms(selector or "")]
    return lambda labels: all(predicate(labels) for predicate in predicates)


def match_labels_selector(selector: Mapping[str, Any]) -> Predicate:
    """A predicate for a `LabelSelector` object (`matchLabels` and `matchExpressions`), as Deployments use."""
    terms = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        terms.append(
            {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})"}.get(
                op, key if op == "Exists" else f"!{key}"
            )
        )
    return label_selector(",".join(terms))


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def field_selector(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a whole object, e.g. `involvedObject.name=my-pod,type=Warning`."""
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector or ""):
        match = _FIELD_TERM.match(term)
        if not match:
            raise bad_request(f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value))
    return lambda obj: all((_field_value(obj, path) == value) == equal for path, equal, value in checks)
