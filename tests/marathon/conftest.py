"""Shared helpers for the Marathon provider tests: fixture payloads and a state built from them."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
MLB = DATA / "marathon-lb"
MARATHON = DATA / "marathon"


def mlb_payload(name: str) -> bytes:
    return (MLB / f"{name}.json").read_bytes()


def marathon_payload(name: str) -> bytes:
    return (MARATHON / f"{name}.json").read_bytes()


def marathon_json(name: str):
    return json.loads(marathon_payload(name))
