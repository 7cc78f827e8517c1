"""Publish cost: how long DataPlane.publish takes for tables of N tcp services with B backends each.

Each service has its own listener, one loopback address each (127.NET.x.y:PORT). Reports, per size, the
first publish (opens every listener) and the median of --repeat republishes of the same table
(nothing changes: the pure cost of compiling and swapping) and of a table where every backend's
weight changed. Run: python3 bench/publish.py [--sizes 1000,3000,10000] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastlb import spec  # noqa: E402
from fastlb._core import DataPlane  # noqa: E402


def table(n: int, backends: int, net: int, port: int, weight: int = 1) -> spec.RouteTable:
    services = []
    listeners = []
    for i in range(n):
        name = f"app{i}_{10000 + i}"
        bes = tuple(
            spec.Backend(
                id=f"app{i}.task{j}",
                address=f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}:{31000 + j}",
                weight=weight,
            )
            for j in range(backends)
        )
        services.append(spec.Service(name=name, backends=bes))
        listeners.append(spec.Listener(address=f"127.{net}.{i >> 8}.{i & 255}:{port}", service=name))
    return spec.RouteTable(services=tuple(services), listeners=tuple(listeners))


def timed(dp: DataPlane, t: spec.RouteTable) -> float:
    start = time.perf_counter()
    dp.publish(t)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,3000,10000")
    p.add_argument("--backends", type=int, default=5)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--net", type=int, default=77, help="listeners on 127.NET.x.y (one address each)")
    p.add_argument("--port", type=int, default=9077)
    a = p.parse_args()
    import fastlb._core

    print(f"# {fastlb._core.__file__}")
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()} "
        f"python={platform.python_version()}; {' '.join(sys.argv)}"
    )
    print(f"{'services':>8} {'backends':>8} {'first s':>8} {'same s':>8} {'reweigh s':>9}")
    for n in (int(x) for x in a.sizes.split(",")):
        t1 = table(n, a.backends, a.net, a.port)
        t2 = table(n, a.backends, a.net, a.port, weight=2)
        dp = DataPlane(a.workers)
        dp.start()
        try:
            first = timed(dp, t1)
            same = statistics.median(timed(dp, t1) for _ in range(a.repeat))
            rew = statistics.median(timed(dp, t2 if k % 2 == 0 else t1) for k in range(a.repeat))
        finally:
            dp.stop()
        print(f"{n:>8} {n * a.backends:>8} {first:>8.3f} {same:>8.3f} {rew:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
