#!/usr/bin/env python3
"""Why does mimamori's hunt report detections that Chainsaw does not?

Every mimamori detection missing from Chainsaw's output (keyed as in
bench/hunt_compare.py: rule, file, EventRecordID) is put in one class, with
the evidence read from the rule, Chainsaw's mapping file and the event itself:

  refused        the rule is among those `chainsaw lint --kind sigma` refuses
  excluded       Chainsaw's mapping excludes the rule by title (`exclusions:`)
  precondition   Chainsaw's mapping requires a provider for the rule's
                 logsource that the event does not have (e.g. Security 1102
                 comes from Microsoft-Windows-Eventlog, not -Security-Auditing)
  unmapped       the rule uses a field Chainsaw's mapping does not list
  escapes        a rule value holds Sigma escapes or inner wildcards (`\\\\`,
                 `\\?`, `\\*`, `a*b`), which Chainsaw's engine reads differently
  typed          a rule's string value ('true') against an EVTX value of
                 another type (a boolean)
  security-4688  a process_creation rule on Security 4688, whose fields
                 (NewProcessName, ...) Chainsaw does not rename to Sysmon's
  other          none of these: look at it (a false positive of mimamori's
                 would land here)

usage: bench/hunt_extras.py --rules DIR --mapping sigma-event-logs-all.yml \\
         --refused LINT.txt CHAINSAW.json MIMAMORI.jsonl
LINT.txt is the output of `chainsaw lint --kind sigma DIR`. Needs PyYAML and
the `evtx` Python package (pip install pyyaml evtx), an analysis tool only.
"""

import argparse
import collections
import json
import os
import re
import sys

import yaml
from evtx import PyEvtxParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hunt_compare as hc  # noqa: E402


def detection_values(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from detection_values(v)
    elif isinstance(x, list):
        for v in x:
            yield from detection_values(v)
    else:
        yield x


def detection_fields(det):
    out = set()
    for k, v in det.items():
        if k == "condition":
            continue
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, dict):
                out |= {x.split("|")[0] for x in item}
    return out


def has_escape_or_inner_wildcard(det):
    for k, v in det.items():
        if k == "condition":
            continue
        for s in detection_values(v):
            if isinstance(s, str) and ("\\\\" in s or "\\?" in s or "\\*" in s
                                       or re.search(r"[^*]\*[^*]", s)):
                return True
    return False


class Events:
    """Events of EVTX files by EventRecordID, each file parsed once."""

    def __init__(self):
        self.files = {}

    def get(self, path, record_id):
        if path not in self.files:
            by_id = {}
            for r in PyEvtxParser(path).records_json():
                d = json.loads(r["data"])
                by_id[int(d["Event"]["System"]["EventRecordID"])] = d
            self.files[path] = by_id
        return self.files[path].get(record_id)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", required=True)
    ap.add_argument("--mapping", required=True)
    ap.add_argument("--refused", required=True, help="output of chainsaw lint --kind sigma")
    ap.add_argument("chainsaw")
    ap.add_argument("mimamori")
    a = ap.parse_args()

    mapping = yaml.safe_load(open(a.mapping, encoding="utf-8"))
    mapped = {f["from"] for g in mapping["groups"] for f in g["fields"]}
    excluded = set(mapping.get("exclusions", []))
    providers = {}
    for p in mapping["extensions"]["preconditions"]:
        (k, v), = p["for"].items()
        f = p["filter"]
        providers[(k, v)] = [x.get("Provider") for x in (f if isinstance(f, list) else [f])]
    refused = {m.group(1) for line in open(a.refused, encoding="utf-8")
               if (m := re.search(r"\[!\] /(.*?): ", line))}
    rules = {}
    for root, _, files in os.walk(a.rules):
        for f in files:
            if f.endswith((".yml", ".yaml")):
                p = os.path.join(root, f)
                for d in yaml.safe_load_all(open(p, encoding="utf-8")):
                    if isinstance(d, dict) and "id" in d:
                        rules[d["id"]] = (os.path.relpath(p, a.rules), d)

    cs, *_ = hc.chainsaw_entries(hc.read_json_values(a.chainsaw), None)
    cs_titles = {(v[0], k[1], k[2]) for k, v in cs.items()}
    events = Events()
    classes = collections.defaultdict(list)
    for h in hc.read_json_values(a.mimamori):
        f, rid = h["source"], h["record_id"]
        key_path = hc.norm_path(f, None)
        if (h["rule_id"], key_path, rid) in cs or (h["rule_title"], key_path, rid) in cs_titles:
            continue
        rel, rule = rules.get(h["rule_id"], (None, None))
        if rule is None:
            classes["other"].append(h)
            continue
        det, ls = rule["detection"], rule.get("logsource", {})
        if rel in refused:
            cls = "refused"
        elif rule.get("title") in excluded:
            cls = "excluded"
        else:
            ev = (events.get(f, rid) or {}).get("Event", {})
            system = ev.get("System", {})
            provider = system.get("Provider", {}).get("#attributes", {}).get("Name")
            eid = system.get("EventID")
            eid = eid.get("#text") if isinstance(eid, dict) else eid
            need = None
            for dim in ("category", "service"):
                if dim in ls and (f"logsource.{dim}", ls[dim]) in providers:
                    need = providers[(f"logsource.{dim}", ls[dim])]
            data = ev.get("EventData") or {}
            typed = isinstance(data, dict) and any(
                isinstance(data.get(m["field"]), bool) for m in h.get("matched", []))
            if need and provider not in need:
                cls = "precondition"
            elif detection_fields(det) - mapped:
                cls = "unmapped"
            elif has_escape_or_inner_wildcard(det):
                cls = "escapes"
            elif typed:
                cls = "typed"
            elif ls.get("category") == "process_creation" and str(eid) == "4688":
                cls = "security-4688"
            else:
                cls = "other"
        classes[cls].append(h)

    total = sum(len(v) for v in classes.values())
    print(f"mimamori detections not in Chainsaw's output: {total}")
    for cls, hits in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        per_rule = collections.Counter(h["rule_title"] for h in hits)
        print(f"{cls:14s} {len(hits):4d} detections, {len(per_rule)} rules")
        for title, n in per_rule.most_common():
            print(f"    {n:4d}  {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
