#!/usr/bin/env python3
"""L4 side by side: direct vs HAProxy (mode tcp) vs fastlb (tcp service), alternating blocks.

    python3 bench/l4.py --blocks 5 --duration 10            # D, H, F
    python3 bench/l4.py --arms D,H --aa --blocks 5           # with the A/A control H2
See bench/README.md for what is measured and how.
"""

import sys

import run

if __name__ == "__main__":
    sys.exit(run.main("l4"))
