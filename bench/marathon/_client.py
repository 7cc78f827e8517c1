"""A client loop in its own process: HTTP/1.1 requests through 127.0.0.1:PORT, one connection each,
back to back, until its stdin closes; then prints one JSON line {"ok", "failures", "by_name",
"first_failures"}. Run by the benchmarks so that the client does not share a GIL with the emulator.

    python3 bench/marathon/_client.py PORT [PAUSE_SECONDS]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

import _common  # noqa: F401 (sys.path)
from e2e.harness import request


def main() -> None:
    port = int(sys.argv[1])
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    ok = 0
    failures: list[str] = []
    by_name: Counter[str] = Counter()
    print("ready", flush=True)
    while not stop.is_set():
        try:
            name = request(port, timeout=5.0)
        except (OSError, ValueError) as e:
            failures.append(f"{time.monotonic():.3f} {e!r}")
        else:
            ok += 1
            by_name[name] += 1
        if pause:
            stop.wait(pause)
    print(
        json.dumps(
            {"ok": ok, "failures": len(failures), "by_name": by_name, "first_failures": failures[:10]}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
