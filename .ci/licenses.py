#!/usr/bin/env python3
"""Fails when a dependency of the workspace carries no licence compatible with
mimamori's (MIT OR Apache-2.0), as `cargo metadata --locked` reports them.

An SPDX expression passes when it can be satisfied with permissive licences
only: every AND term needs one, an OR needs one alternative. A crate without
a licence expression fails, naming the file it points to, so that a human
reads it and adds the crate to EXCEPTIONS with the reason.
"""
import json
import re
import subprocess
import sys

# Permissive licences that may be combined into an MIT OR Apache-2.0 work.
ALLOWED = {
    "MIT", "MIT-0", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause",
    "BSD-3-Clause", "ISC", "Zlib", "Unicode-3.0", "Unicode-DFS-2016", "CC0-1.0",
    "Unlicense", "0BSD", "BSL-1.0", "CDLA-Permissive-2.0",
}
# Crates whose metadata needs a word of explanation: none today.
EXCEPTIONS = {}


def satisfiable(expr: str) -> bool:
    # Old crates write "MIT/Apache-2.0" for "MIT OR Apache-2.0".
    expr = expr.replace("/", " OR ")
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.+-]+(?: WITH [A-Za-z0-9.+-]+)?", expr)
    pos = 0

    def parse_or():
        nonlocal pos
        ok = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            ok = parse_and() or ok
        return ok

    def parse_and():
        nonlocal pos
        ok = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            ok = parse_atom() and ok
        return ok

    def parse_atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            ok = parse_or()
            pos += 1  # ")"
            return ok
        return tok in ALLOWED

    return parse_or()


def main() -> int:
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"]))
    bad = []
    for p in meta["packages"]:
        if p["source"] is None:  # our own crates
            continue
        lic = p.get("license")
        if p["name"] in EXCEPTIONS:
            continue
        if not lic:
            bad.append(f"{p['name']} {p['version']}: no licence expression (file: {p.get('license_file')})")
        elif not satisfiable(lic):
            bad.append(f"{p['name']} {p['version']}: {lic}")
    if bad:
        print("dependencies whose licence is not known to be compatible with MIT OR Apache-2.0:")
        print("\n".join("  " + b for b in bad))
        return 1
    print(f"licences: all {sum(1 for p in meta['packages'] if p['source'])} dependencies are permissive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
