#!/usr/bin/env python3
"""Checks that the server crate's layers import one way only.

The layers of server/src, lowest first: http (pure HTTP/1.1), net (byte
streams on the loop's sockets: TCP, or TLS over it), pg (the
PostgreSQL client on the loop: it uses http for the handler's Error, never
the HTTP client or the server), client (the HTTP client on the loop: it
uses http, never the server), engine (the
connection engine on the loop), ws (WebSocket on connections the engine
hands over), api (the app, handlers, responder), serve
(binding, one server, cluster, supervisor). A file may use `crate::` paths
of its own layer and the layers below it, never above. Every `crate::`
path in code (comments and doc comments left out) is checked; `crate::X`
for a name the crate root re-exports counts as the layer X comes from.
Exit status 1 and a line per offence when a path goes up.

Usage: python3 .ci/layers.py [server/src]
"""
import os
import re
import sys

ORDER = ["http", "net", "pg", "client", "engine", "ws", "api", "serve"]


def root_names(src):
    """Names lib.rs re-exports, and the layer each comes from."""
    names = {}
    text = open(os.path.join(src, "lib.rs")).read()
    for m in re.finditer(r"pub use (\w+)::([^;]+);", text):
        layer, rest = m.group(1), m.group(2)
        for name in re.findall(r"\b([A-Z]\w*|\w+)\b", rest.split("::")[-1] if "{" not in rest else rest[rest.index("{"):]):
            names[name] = layer
        names[rest.split("::")[-1].strip("{} ")] = layer
    return names


def code_lines(path):
    for n, line in enumerate(open(path), 1):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        yield n, line.split("//")[0]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "server/src"
    reexports = root_names(src)
    bad = 0
    checked = 0
    for layer in ORDER:
        for dirpath, _, files in os.walk(os.path.join(src, layer)):
            for f in sorted(files):
                if not f.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, f)
                for n, line in code_lines(path):
                    for target in re.findall(r"\bcrate::(\w+)", line):
                        checked += 1
                        to = target if target in ORDER else reexports.get(target)
                        if to is None or to not in ORDER:
                            continue
                        if ORDER.index(to) > ORDER.index(layer):
                            print(f"{path}:{n}: {layer} uses crate::{target} ({to}), a layer above it")
                            bad += 1
    print(f"layers: {checked} crate:: paths checked in {', '.join(ORDER)}; {bad} going up")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
