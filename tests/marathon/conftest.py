"""Shared helpers for the Marathon provider tests: fixture payloads and a state built from them.

Marathon's own payloads are the ones the package ships for the emulator and the demo
(``fastlb/emulator/fixtures``, its events under ``events/``), read through importlib.resources;
``tests/data`` holds only what the package does not ship (marathon-lb's test payloads)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
MLB = DATA / "marathon-lb"
MARATHON = Path(str(resources.files("fastlb.emulator").joinpath("fixtures")))


def mlb_payload(name: str) -> bytes:
    return (MLB / f"{name}.json").read_bytes()


def marathon_payload(name: str) -> bytes:
    """A payload by name: an API body (``v2_apps_embed_tasks_host``) or an event (``status_update_event``)."""
    path = MARATHON / f"{name}.json"
    return (path if path.exists() else MARATHON / "events" / f"{name}.json").read_bytes()


def marathon_json(name: str):
    return json.loads(marathon_payload(name))
