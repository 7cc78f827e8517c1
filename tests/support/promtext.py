"""A strict reader of the Prometheus text exposition format (0.0.4), enough to reject what a scraper
would reject: every sample belongs to a family declared by # HELP and # TYPE before it, names and
labels are well formed, values are numbers, no family is declared twice."""

from __future__ import annotations

import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")
TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """{family: [(sample name, labels, value)]}; raises ValueError on the first malformed line."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if not re.fullmatch(NAME, name) or name in helped:
                raise ValueError(f"line {n}: bad or repeated HELP: {line!r}")
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in TYPES or parts[2] in types:
                raise ValueError(f"line {n}: bad or repeated TYPE: {line!r}")
            types[parts[2]] = parts[3]
            families[parts[2]] = []
            continue
        if line.startswith("#") or not line:
            raise ValueError(f"line {n}: unexpected line {line!r}")
        m = SAMPLE.match(line)
        if m is None:
            raise ValueError(f"line {n}: not a sample: {line!r}")
        name, labels_text, value_text = m.groups()
        family = name
        for suffix in ("_sum", "_count", "_bucket"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("summary", "histogram"):
                family = name[: -len(suffix)]
        if family not in types or family not in helped:
            raise ValueError(f"line {n}: sample of an undeclared family: {line!r}")
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels_text or ""))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError(f"line {n}: repeated sample {line!r}")
        seen.add(key)
        value = float(value_text)
        if math.isnan(value) and value_text != "NaN":
            raise ValueError(f"line {n}: bad value")
        families[family].append((name, labels, value))
    return families
