#!/usr/bin/env python3
"""Does mimamori's hunt find every detection that Chainsaw finds?

Reads a Chainsaw `hunt --json` output (one JSON array; `--jsonl` output, one
detection per line, is read too) and the JSON lines of `mimamori hunt` (or the
`hunt` example), and prints how many of Chainsaw's detections mimamori also
reports, then each one it misses.

A Chainsaw detection is expanded to one entry per event record it holds
("individual" detections hold one document, "aggregate" ones several) and
keyed by (rule, EVTX file, EventRecordID). The rule is the Sigma rule id when
Chainsaw gives one (`id`), else its title (`name`), which is then matched
against mimamori's `rule_title`. The same rule matched by several Chainsaw
mapping groups counts once. Files are compared by real path, or by their path
under --root when given (use it when the two tools ran from different
directories or on different copies of the corpus). Timestamps are not part of
the key; detections found with a different timestamp are counted separately.

usage: bench/hunt_compare.py [--root DIR] [--show N] CHAINSAW.json MIMAMORI.jsonl
Exits 0 when nothing is missed, 1 when something is. Python 3 standard
library only; it builds and runs nothing.
"""

import argparse
import collections
import json
import os
import sys


def read_json_values(path):
    """A JSON array's items, or one value per line (JSON lines)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped.startswith("["):
        return json.loads(stripped)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def norm_path(p, root):
    if root:
        try:
            rel = os.path.relpath(os.path.realpath(p), os.path.realpath(root))
            if not rel.startswith(".."):
                return rel
        except ValueError:
            pass
    return os.path.realpath(p) if os.path.exists(p) else os.path.normpath(p)


def record_id_of(data):
    """EventRecordID from a Chainsaw document's `data` (the event as JSON)."""
    if not isinstance(data, dict):
        return None
    event = data.get("Event", data)
    system = event.get("System", {}) if isinstance(event, dict) else {}
    rid = system.get("EventRecordID") if isinstance(system, dict) else None
    if isinstance(rid, dict):  # {"#text": ...} when the element has attributes
        rid = rid.get("#text")
    try:
        return int(rid)
    except (TypeError, ValueError):
        return None


def chainsaw_entries(detections, root):
    """(rule key, file, record id) -> (title, timestamp, level), and counts."""
    entries = {}
    raw = expanded = no_record = 0
    for d in detections:
        raw += 1
        docs = d.get("documents") or ([d["document"]] if d.get("document") else [])
        rule = d.get("id") or d.get("name")
        for doc in docs:
            expanded += 1
            rid = record_id_of(doc.get("data"))
            if rid is None:
                no_record += 1
            key = (rule, norm_path(doc.get("path", ""), root), rid)
            entries.setdefault(key, (d.get("name", ""), d.get("timestamp", ""), d.get("level", "")))
    return entries, raw, expanded, no_record


def mimamori_index(hits, root):
    by_id, by_title, ts = set(), set(), {}
    for h in hits:
        f = norm_path(h.get("source", ""), root)
        rid = h.get("record_id")
        for k in ((h.get("rule_id"), f, rid), (h.get("rule_title"), f, rid)):
            ts.setdefault(k, set()).add(h.get("timestamp"))
        by_id.add((h.get("rule_id"), f, rid))
        by_title.add((h.get("rule_title"), f, rid))
    return by_id, by_title, ts


def same_instant(a, b):
    """Chainsaw writes +00:00 and microseconds; mimamori Z and milliseconds."""
    def norm(t):
        if not t:
            return ""
        t = t.replace("+00:00", "Z").rstrip("Z")
        if "." in t:
            head, frac = t.split(".", 1)
            t = head + "." + frac[:3].ljust(3, "0")
        return t
    return norm(a) == norm(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chainsaw", help="Chainsaw hunt --json (or --jsonl) output")
    ap.add_argument("mimamori", help="mimamori hunt JSON lines output")
    ap.add_argument("--root", help="compare files by their path under this directory")
    ap.add_argument("--show", type=int, default=200, help="list at most N missed (default 200)")
    a = ap.parse_args()

    cs, raw, expanded, no_record = chainsaw_entries(read_json_values(a.chainsaw), a.root)
    mm = read_json_values(a.mimamori)
    by_id, by_title, mm_ts = mimamori_index(mm, a.root)

    missed, other_time = [], 0
    for key, (title, ts, level) in sorted(cs.items(), key=lambda kv: tuple(map(str, kv[0]))):
        rule, f, rid = key
        if key in by_id or (title, f, rid) in by_title:
            seen = mm_ts.get(key) or mm_ts.get((title, f, rid)) or set()
            if not any(same_instant(ts, t) for t in seen):
                other_time += 1
            continue
        missed.append((rule, title, level, f, rid, ts))

    total = len(cs)
    print(f"chainsaw: {raw} detections, {expanded} rule-record hits, {total} distinct (rule, file, record)"
          + (f", {no_record} without an EventRecordID" if no_record else ""))
    print(f"mimamori: {len(mm)} detections")
    print(f"found by mimamori: {total - len(missed)}/{total}"
          + (f" ({other_time} of them with a different timestamp)" if other_time else ""))
    if missed:
        per_rule = collections.Counter((m[0], m[1]) for m in missed)
        print(f"missed: {len(missed)} in {len(per_rule)} rules")
        for (rule, title), n in per_rule.most_common():
            print(f"  {n:5d}  {rule}  {title}")
        print("missed detections (rule id, title, level, file, record, timestamp):")
        for m in missed[: a.show]:
            print("  " + "\t".join(str(x) for x in m))
        if len(missed) > a.show:
            print(f"  … and {len(missed) - a.show} more")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
