"""The harness's modules import each other as top-level modules (they run as scripts from bench/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
