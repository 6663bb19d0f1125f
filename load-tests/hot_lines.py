#!/usr/bin/env python3
"""Instructions per request by source line of ours, from a callgrind dump.

With fat LTO nearly everything is inlined into a few functions, so
callgrind's own per-function view spreads a request over hundreds of std
and dependency entries. This charges each instruction to the innermost
inlined frame that is our code (server/, loop-core/, bench/): a Vec push
counts on the line of ours that pushed.

Usage: hot_lines.py DUMP BINARY REQUESTS [TOP]
The dump must come from `valgrind --tool=callgrind --dump-instr=yes`
(load-tests/instructions.sh does this when IR_LINES=TOP is set); the binary
needs line tables (the release profile keeps them).
"""
import collections
import os
import subprocess
import sys

OUR_ROOTS = ("server/", "loop-core/", "bench/")


def position(token, last):
    """A callgrind position: absolute, relative (+n / -n) or the same (*)."""
    if token == "*":
        return last
    if token[0] in "+-":
        n = int(token[1:], 0)
        return last + n if token[0] == "+" else last - n
    return int(token, 0)


def costs_by_address(dump, binary_name):
    """Self cost of each instruction address of the binary's own object."""
    objects, current = {}, None
    cost = collections.Counter()
    addr = line = 0
    skip_call_cost = False
    for raw in open(dump):
        raw = raw.rstrip("\n")
        if not raw or raw[0] == "#":
            continue
        if raw.startswith(("ob=", "cob=")):
            spec = raw.split("=", 1)[1]
            key, _, name = spec.partition(" ")
            if name:
                objects[key] = name
            if raw.startswith("ob="):
                current = key
            continue
        if not (raw[0].isdigit() or raw[0] in "+-*"):
            # The cost line after `calls=` is the callee's inclusive cost.
            skip_call_cost = skip_call_cost or raw.startswith("calls=")
            continue
        fields = raw.split()
        addr = position(fields[0], addr)
        if len(fields) > 1:
            line = position(fields[1], line)
        if skip_call_cost:
            skip_call_cost = False
            continue
        if len(fields) > 2 and os.path.basename(objects.get(current, "")) == binary_name:
            cost[addr] += int(fields[2])
    return cost


def our_lines(binary, addresses):
    """address -> `file:line` of the innermost inlined frame in our code."""
    query = "\n".join(hex(a) for a in addresses)
    out = subprocess.run(
        ["addr2line", "-i", "-f", "-C", "-a", "-e", binary],
        input=query, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    frames = collections.defaultdict(list)
    addr, i = None, 0
    while i < len(out):
        if out[i].startswith("0x"):
            addr = int(out[i], 16)
            i += 1
        elif out[i]:
            frames[addr].append((out[i], out[i + 1].split(" (discriminator")[0]))
            i += 2
        else:
            i += 1
    where = {}
    for addr, chain in frames.items():
        for _function, location in chain:
            root = next((r for r in OUR_ROOTS if r in location), None)
            if root:
                where[addr] = location[location.index(root):]
                break
        else:
            where[addr] = "(library) " + (chain[-1][0][:60] if chain else "?")
    return where


def source_text(location):
    path, _, number = location.rpartition(":")
    try:
        return open(path).read().split("\n")[int(number) - 1].strip()[:70]
    except (OSError, ValueError, IndexError):
        return ""


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    dump, binary, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    cost = costs_by_address(dump, os.path.basename(binary))
    where = our_lines(binary, sorted(cost))
    by_line = collections.Counter()
    for addr, n in cost.items():
        by_line[where.get(addr, "?")] += n
    print(f"{sum(cost.values()) / requests:.0f} instructions per request in "
          f"{binary} itself (libc and the kernel apart)")
    for location, n in by_line.most_common(top):
        print(f"{n / requests:7.1f}  {location:42} {source_text(location)}")


if __name__ == "__main__":
    main()
