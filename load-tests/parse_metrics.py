#!/usr/bin/env python3
"""Parses an OpenMetrics text (a file, or - for stdin) with the official
Python client's parser, which refuses anything the format forbids, and
prints one line per sample: name, labels as k=v joined by commas, value.

Usage: python3 load-tests/parse_metrics.py FILE
Needs prometheus_client (python3 -m pip install --user prometheus_client).
"""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    text = sys.stdin.read() if path == "-" else open(path).read()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print(f"{s.name} {labels} {s.value}")


if __name__ == "__main__":
    main()
