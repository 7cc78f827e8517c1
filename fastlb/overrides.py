"""What an operator sets on a backend by hand through the admin API, its state and its weight: the
controller keeps it and applies it over every merged table, so that it outlives tables. Pure.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastlb import spec

ADMIN_STATES = ("ready", "drain", "maint")
MAX_WEIGHT = 256


class Override(msgspec.Struct, frozen=True):
    """What an operator set on a backend by hand; None: not set."""

    state: str | None = None
    weight: int | None = None


def apply_overrides(table: spec.RouteTable, overrides: dict[str, Override]) -> spec.RouteTable:
    if not overrides:
        return table
    services = []
    for s in table.services:
        backends = []
        for b in s.backends:
            o = overrides.get(b.id)
            if o is not None:
                changes: dict[str, Any] = {}
                if o.state is not None:
                    changes["state"] = o.state
                if o.weight is not None:
                    changes["weight"] = o.weight
                b = msgspec.structs.replace(b, **changes)
            backends.append(b)
        services.append(msgspec.structs.replace(s, backends=tuple(backends)))
    return msgspec.structs.replace(table, services=tuple(services))
