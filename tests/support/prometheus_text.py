"""Read samples out of a Prometheus text exposition (what /metrics returns)."""

from __future__ import annotations

import re

import requests

SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match:
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def scrape(metrics_url: str) -> list[tuple[str, dict[str, str], float]]:
    response = requests.get(f"{metrics_url}/metrics", timeout=30)
    response.raise_for_status()
    return parse(response.text)


def value(samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items()))
