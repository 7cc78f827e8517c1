"""A test double of ``fastlb._core.DataPlane`` (contract: fastlb/_core.pyi) for control-plane tests.

It moves no bytes and opens no socket. It keeps what the control plane told it (published tables,
backend state, health, weight) the way the contract says the real one does, counts calls, lets a
test set counters, and can be told to refuse the next publish like a listener that cannot bind.
"""

from __future__ import annotations

from typing import Any

from fastlb import spec


class FakeDataPlane:
    def __init__(self, workers: int = 1, **settings: Any) -> None:
        self._workers = workers
        self.settings = settings
        self._generation = 0
        self.published: list[spec.RouteTable] = []
        self.started = False
        self.stopped = False
        self.accepting = True
        self.closed_all = False
        self.active = 0  # what active_connections() answers; tests set it
        self.refuse_next: OSError | None = None
        self.backends: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any, ...]] = []

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        self.started = True

    def publish(self, table: spec.RouteTable) -> int:
        if self.refuse_next is not None:
            error, self.refuse_next = self.refuse_next, None
            raise error
        # As the real one: health and counters outlive tables by backend id; state and weight come
        # from each new table.
        present = {}
        for s in table.services:
            for b in s.backends:
                must_pass = b.check is not None and b.check.require_pass
                rec = self.backends.get(b.id) or {
                    "state": b.state, "health": "down" if must_pass else "up", "weight": b.weight,
                    "active": 0, "total": 0, "bytes_in": 0, "bytes_out": 0, "connect_errors": 0,
                    "retries": 0, "timeouts": 0, "requests": 0,
                    "responses": dict.fromkeys(("1xx", "2xx", "3xx", "4xx", "5xx", "other"), 0),
                }
                rec.update(service=s.name, address=b.address, state=b.state, weight=b.weight)
                present[b.id] = rec
        self.backends = present
        self.published.append(table)
        self._generation += 1
        return self._generation

    def _set(self, backend_id: str, key: str, value: Any) -> bool:
        self.calls.append((key, backend_id, value))
        rec = self.backends.get(backend_id)
        if rec is None:
            return False
        rec[key] = value
        return True

    def set_backend_state(self, backend_id: str, state: str) -> bool:
        assert state in ("ready", "drain", "maint"), state
        return self._set(backend_id, "state", state)

    def set_backend_health(self, backend_id: str, up: bool) -> bool:
        return self._set(backend_id, "health", "up" if up else "down")

    def backend_health(self, backend_id: str) -> bool | None:
        rec = self.backends.get(backend_id)
        return None if rec is None else rec["health"] == "up"

    def set_backend_weight(self, backend_id: str, weight: int) -> bool:
        assert 0 <= weight <= 256, weight
        return self._set(backend_id, "weight", weight)

    def stats(self) -> dict[str, Any]:
        table = self.published[-1] if self.published else spec.RouteTable()
        services: dict[str, dict[str, Any]] = {}
        for s in table.services:
            agg = dict.fromkeys(
                (
                    "active", "total", "bytes_in", "bytes_out", "connect_errors", "retries", "timeouts", "no_backend",
                    "denied",
                ),
                0,
            )
            http = dict.fromkeys(("requests", "own", "1xx", "2xx", "3xx", "4xx", "5xx", "other"), 0)
            for b in s.backends:
                rec = self.backends[b.id]
                for k in agg:
                    agg[k] += rec.get(k, 0)
                http["requests"] += rec.get("requests", 0)
                for k, n in rec["responses"].items():
                    http[k] += n
            services[s.name] = {**agg, "http": http} if s.mode == "http" else agg
        listeners = {
            x.address: {"active": 0, "total": 0, "refused": 0} for x in table.listeners
        }
        return {
            "generation": self._generation,
            "swaps": len(self.published),
            "active": sum(r["active"] for r in self.backends.values()),
            "total": sum(r["total"] for r in self.backends.values()),
            "listeners": listeners,
            "services": services,
            "backends": {k: dict(v) for k, v in self.backends.items()},
        }

    def stop_accepting(self) -> None:
        self.accepting = False

    def active_connections(self) -> int:
        return self.active

    def close_all(self) -> None:
        self.closed_all = True
        self.active = 0

    def stop(self) -> None:
        self.stopped = True

    def listener_fds(self) -> dict[str, list[int]]:
        return {}
