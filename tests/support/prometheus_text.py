"""Read samples out of a Prometheus text exposition (what /metrics returns)."""

from __future__ import annotations

import re

import requests

SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Sample = tuple[str, dict[str, str], float]  # (name, labels, value)


def parse(text: str) -> list[Sample]:
    """(name, labels, value) of every sample line; comments and blank lines skipped."""
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match:
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def scrape(metrics_url: str) -> list[Sample]:
    response = requests.get(f"{metrics_url}/metrics", timeout=30)
    response.raise_for_status()
    return parse(response.text)


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        sample_value
        for sample_name, sample_labels, sample_value in samples
        if sample_name == name and all(sample_labels.get(key) == want for key, want in labels.items())
    )
