#!/usr/bin/env python3
"""L7 side by side: direct vs HAProxy (mode http, http-reuse) vs fastlb (http service), keep-alive.

    python3 bench/l7.py --blocks 5 --duration 10
Reports req/s and wrk's p50/p99 latency per arm. See bench/README.md.
"""

import sys

import run

if __name__ == "__main__":
    sys.exit(run.main("l7"))
