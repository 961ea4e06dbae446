#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""scripts/test-digest.py BUILD_DIR

After a failed `meson test`, prints a short digest of each test that did
not pass: its name, result and time, then the lines of its output that say
why (TAP "not ok" and "Bail out!", GLib's **ERROR / assertion lines, lines
with FAILED, "error:" or "no reply", sanitizer reports), last ones first
kept. Long logs scroll the reason off a terminal or a CI page that shows
only the tail; the Makefile runs this last so the reason is what stays
in view. Reads BUILD_DIR/meson-logs/testlog.json (one JSON object per
test run)."""
import json
import re
import sys

KEY = re.compile(r"^(not ok|Bail out!)|\*\*ERROR|\*\*CRITICAL|assertion|FAILED|[Ff]ailed:|"
                 r"[Ee]rror:|went away|"
                 r"no reply|no completion|ERROR: AddressSanitizer|runtime error:|"
                 r"SUMMARY: |killed by signal")
MAX_LINES = 12
MAX_CHARS = 300


def digest(build):
    path = build + "/meson-logs/testlog.json"
    try:
        runs = [json.loads(line) for line in open(path, encoding="utf-8", errors="replace")
                if line.strip()]
    except OSError as e:
        print(f"test-digest: {path}: {e.strerror}")
        return
    bad = [r for r in runs if r.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL")]
    if not bad:
        return
    print(f"==== test digest: {len(bad)} of {len(runs)} tests did not pass "
          f"(whole logs: {path[:-5]}.txt) ====")
    for r in bad:
        out = (r.get("stdout") or "") + "\n" + (r.get("stderr") or "")
        lines = [l for l in out.splitlines() if l.strip()]
        keys = [l for l in lines if KEY.search(l)]
        print(f"-- {r.get('name')}: {r.get('result')} after {r.get('duration', 0):.1f} s"
              + (f", exit {r['returncode']}" if "returncode" in r else ""))
        passed = [l for l in lines if l.startswith("ok ")]
        if passed:
            print("   (last subtest passed: " + passed[-1][:MAX_CHARS] + ")")
        for l in keys[-MAX_LINES:]:
            print("   " + (l if len(l) <= MAX_CHARS else l[:MAX_CHARS] + " ..."))
        # The very end says how it stopped when no line above matched.
        if not keys:
            for l in lines[-3:]:
                print("   " + l[:MAX_CHARS])
    print("==== end of test digest ====")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/test-digest.py BUILD_DIR")
    digest(sys.argv[1])
