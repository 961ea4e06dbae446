#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The results side of bench/run-all.sh.

  report.py table BENCH STDOUT_FILE     a bench's printed table as bench JSON
                                        (for scripts that do not write
                                        BENCH_JSON themselves)
  report.py merge OUT_PREFIX JSON...    OUT_PREFIX.json (every bench),
                                        OUT_PREFIX-*.svg (gnuplot) and
                                        OUT_PREFIX.md (the summary)
  report.py check OUT_PREFIX            the three are there and well formed

A bench JSON (what a script writes to $BENCH_JSON) is one object:
  {"bench": "blk", "title": "...", "unit": "IOPS", "better": "higher",
   "anchor": "what the anchor is", "reps": 7, "load_avg": "0.5 0.4 0.3",
   "xlabel": "iodepth", "plot": "IOPS vs queue depth",
   "rows": [{"series": "poll=off", "x": 32, "ours": 1, "anchor": 2,
             "ratio": 0.5, ...}]}
"ratio" is the median of the paired ratios (ours / anchor of the same
repetition), not ours / anchor of the medians. "anchor" and "ratio" may be
null (a figure with no anchor yet). A bench with "plot" gets an x-y plot
of ours and the anchor per series; every row with a ratio gets a bar.
"""
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

# Plots a reader expects even before the bench exists: an empty one says so.
EXPECTED_PLOTS = {
    "net": ("packet rate vs frame size", "frame size (bytes)", "Mpps"),
    "blk": ("IOPS vs queue depth", "iodepth", "IOPS"),
    "ctl": ("bring-up time vs queues", "queues", "ms"),
}


def num(s):
    """A figure, or None: not a number, or nan (a bench with nothing to
    pair prints nan, e.g. bench-net when every anchor run moved nothing)."""
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


# ---- tables printed by scripts without BENCH_JSON ---------------------------

def table_net(text):
    """bench-net.sh: 'size ring mode ours anchor ratio min-max kicks sleeps
    syscalls 1-way' rows, one per frame size, ring layout and driver mode."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and re.fullmatch(r"\d+", f[0]) and f[1] in ("split", "packed") \
                and num(f[3]) is not None and num(f[4]) is not None:
            row = {"series": "%s %s" % (f[1], f[2]), "x": int(f[0]), "ours": num(f[3]),
                   "anchor": num(f[4]), "ratio": num(f[5])}
            for i, k in ((7, "kicks_per_pkt"), (8, "sleeps_per_pkt"), (9, "syscalls_per_pkt")):
                if len(f) > i and num(f[i]) is not None:
                    row[k] = num(f[i])
            rows.append(row)
    return {"bench": "net", "title": "packet rate, echo through dpdk-testpmd",
            "unit": "Mpps", "better": "higher", "xlabel": "frame size (bytes)",
            "anchor": "DPDK net_virtio_user io loop", "plot": EXPECTED_PLOTS["net"][0],
            "reps": reps_of(text), "rows": rows}


def table_ctl(text):
    """bench-ctl.sh: the per-message table (library vs raw socket, us) and
    the bring-up table (pipelined vs one ack per round trip, us)."""
    rows, section = [], None
    for line in text.splitlines():
        f = line.split()
        if line.startswith("per-message time"):
            section = "msg"
        elif line.startswith("bring-up"):
            section = "up"
        elif section == "msg" and len(f) == 4 and re.fullmatch(r"[A-Z_]+", f[0]) \
                and num(f[1]) is not None:
            rows.append({"series": "message", "x": f[0], "ours": num(f[1]),
                         "anchor": num(f[2]), "ratio": num(f[3].rstrip("x")), "unit": "us"})
        elif section == "up" and len(f) == 5 and re.fullmatch(r"\d+", f[0]):
            piped, serial = num(f[1]), num(f[3])
            rows.append({"series": "bring-up", "x": int(f[0]), "ours": piped / 1000.0,
                         "anchor": serial / 1000.0,
                         "ratio": piped / serial if serial else None, "unit": "ms",
                         "us_per_ring": num(f[2])})
    return {"bench": "ctl", "title": "control plane: per-message cost and bring-up time",
            "unit": "ms", "better": "lower", "xlabel": "queues",
            "anchor": "per message: raw unix-socket request/reply; bring-up: "
                      "the same rings one round trip per ack",
            "plot": EXPECTED_PLOTS["ctl"][0], "reps": reps_of(text), "rows": rows}


def reps_of(text):
    """The repetition count a bench printed ('7 alternating repetitions')."""
    m = re.search(r"(\d+) alternating repetitions", text)
    return int(m.group(1)) if m else None


def table_reconnect(text):
    """bench-reconnect: '| D ms | median | p90 | max | timer | [qemu] |' rows."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+) ms[^|]*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|"
                     r"\s*([\d.]+)\s*\|", line)
        if m:
            ours, timer = float(m.group(2)), float(m.group(5))
            rows.append({"series": "recovery", "x": int(m.group(1)), "ours": ours,
                         "anchor": timer, "ratio": ours / timer if timer else None,
                         "p90": float(m.group(3)), "max": float(m.group(4))})
    return {"bench": "reconnect", "title": "back-end restart to rings running (median)",
            "unit": "ms", "better": "lower", "xlabel": "downtime (ms)",
            "anchor": "QEMU 7.2 reconnect=1 (1 s timer)", "rows": rows}


def table_migrate(text):
    """bench-migrate.sh: section 1's two tables and section 2's."""
    rows, section = [], None
    for line in text.splitlines():
        if line.startswith("== 1. dirty-log"):
            section = "log"
        elif line.startswith("== 1. guest-write"):
            section = "track"
        elif line.startswith("== 2."):
            section = "mig"
        f = line.split()
        if section == "log" and len(f) == 5 and re.fullmatch(r"\d+", f[0]):
            rows.append({"series": "log sync %s rings" % f[0], "x": f[1],
                         "ours": num(f[2]), "anchor": num(f[3]), "ratio": num(f[4]),
                         "unit": "ms/GiB"})
        elif section == "track" and len(f) == 5 and f[0].endswith("%"):
            rows.append({"series": "ram-track run %s" % f[1], "x": f[0],
                         "ours": num(f[2]), "anchor": num(f[3]), "ratio": num(f[4]),
                         "unit": "ms/GiB"})
        elif section == "track" and len(f) == 5 and f[0] == "protect":
            rows.append({"series": "ram-track protect", "x": "all", "ours": num(f[2]),
                         "anchor": num(f[3]), "ratio": num(f[4]), "unit": "ms/GiB"})
        elif section == "mig" and len(f) >= 4 and re.fullmatch(r"\d+[MG]", f[0]):
            rows.append({"series": "migration %s downtime" % f[1], "x": f[0],
                         "ours": num(f[3]), "anchor": None, "ratio": None,
                         "total_ms": num(f[2]), "unit": "ms"})
    return {"bench": "migrate", "title": "dirty log, write tracking, migration downtime",
            "unit": "ms/GiB", "better": "lower", "xlabel": "dirty / size",
            "anchor": "raw bitmap fetch-and-clear (section 1); none yet (section 2)",
            "rows": rows}


def table_postcopy(text):
    """bench-postcopy.sh: the anchor rows (anchor; anchor-tcp, the *-tcp
    cases' own) and one row per case."""
    rows, anchors = [], {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 10 and f[0] in ("anchor", "anchor-tcp"):
            anchors[f[0]] = (num(f[3]), num(f[4]))
        elif len(f) == 10 and re.fullmatch(r"(ours|qsd)-[\w-]+", f[0]) and anchors:
            anchor = anchors.get("anchor-tcp" if f[0].endswith("-tcp") else "anchor",
                                 anchors.get("anchor"))
            g50 = num(f[3].split("/")[0])
            b50 = num(f[4].split("/")[0])
            rows.append({"series": "guest fault p50", "x": f[0], "ours": g50,
                         "anchor": anchor[0], "ratio": num(f[7]), "failed": f[9]})
            rows.append({"series": "back-end fault p50", "x": f[0], "ours": b50,
                         "anchor": anchor[1], "ratio": num(f[8]), "failed": f[9]})
    return {"bench": "postcopy", "title": "postcopy fault service between two VMMs",
            "unit": "us", "better": "lower", "xlabel": "case",
            "anchor": "bare userfaultfd round trip (bench-postcopy-fault)", "rows": rows}


TABLES = {"net": table_net, "ctl": table_ctl, "reconnect": table_reconnect, "migrate": table_migrate,
          "postcopy": table_postcopy}


# ---- plots ------------------------------------------------------------------

def gp_quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gnuplot(script, svg):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    if not os.path.exists(svg):
        raise RuntimeError("gnuplot wrote no %s" % svg)


def svg_head(svg, title):
    return ("set terminal svg size 800,480 dynamic enhanced font 'sans,11'\n"
            "set output %s\nset title %s noenhanced\nset key outside right top noenhanced\n"
            "set grid\n" % (gp_quote(svg), gp_quote(title)))


def plot_empty(svg, title, why):
    gnuplot(svg_head(svg, title) +
            "unset border\nunset tics\nunset key\nunset grid\n"
            "set label 1 %s at graph 0.5, 0.5 center noenhanced\n"
            "plot [0:1][0:1] NaN notitle\n" % gp_quote(why), svg)


def plot_xy(svg, doc, title, xlabel, ylabel):
    rows = [r for r in doc["rows"] if num(r.get("x")) is not None and r.get("ours") is not None]
    if not rows:
        plot_empty(svg, title, "no numeric data from bench %s" % doc["bench"])
        return
    series = []
    for r in rows:
        if r["series"] not in series:
            series.append(r["series"])
    dat = svg[:-4] + ".dat"
    plots = []
    with open(dat, "w") as f:
        block = 0
        for s in series:
            pts = sorted((num(r["x"]), r["ours"], r.get("anchor")) for r in rows
                         if r["series"] == s)
            f.write("# %s\n" % s)
            for x, o, a in pts:
                f.write("%g %g %s\n" % (x, o, "NaN" if a is None else "%g" % a))
            f.write("\n\n")
            plots.append("%s index %d using 1:2 with linespoints lw 2 title %s"
                         % (gp_quote(dat), block, gp_quote("ours " + s)))
            if any(a is not None for _, _, a in pts):
                plots.append("%s index %d using 1:3 with linespoints dt 2 lw 2 title %s"
                             % (gp_quote(dat), block,
                                gp_quote("anchor " + s if len(series) > 1 else "anchor")))
            block += 1
    xs = sorted({num(r["x"]) for r in rows})
    logx = len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 8
    # One x alone (a smoke run): a range around it, not an empty one.
    xrange = "set xrange [%g:%g]\n" % (xs[0] - 1, xs[0] + 1) if len(xs) == 1 else ""
    gnuplot(svg_head(svg, title) + xrange +
            "set xlabel %s\nset ylabel %s\n%s"
            "set xtics (%s)\nset yrange [0:*]\nset offsets graph 0.05, graph 0.05, 0, 0\n"
            "plot %s\n" % (gp_quote(xlabel), gp_quote(ylabel),
                           "set logscale x 2\n" if logx else "",
                           ", ".join("%s %g" % (gp_quote("%g" % x), x) for x in xs),
                           ", ".join(plots)), svg)


def plot_ratios(svg, docs):
    bars = []
    for d in docs:
        for r in d.get("rows", []):
            if r.get("ratio") is not None and r["ratio"] > 0:
                bars.append(("%s %s %s=%s" % (d["bench"], r["series"], d.get("xlabel", "x").split()[0],
                                                r.get("x", "")),
                             r["ratio"], d.get("better", "higher")))
    title = "ours / anchor, median of paired ratios (1 = parity)"
    if not bars:
        plot_empty(svg, title, "no ratios in this run")
        return
    dat = svg[:-4] + ".dat"
    with open(dat, "w") as f:
        for i, (label, ratio, better) in enumerate(bars):
            f.write("%d %g %s %d\n" % (i, ratio, gp_quote(label), 0 if better == "higher" else 1))
    width = max(800, 28 * len(bars) + 200)
    lo = min(min(b[1] for b in bars), 1.0) / 3
    hi = max(max(b[1] for b in bars), 1.0) * 3
    gnuplot(svg_head(svg, title).replace("size 800,480", "size %d,560" % width) +
            "set style fill solid 0.7\nset boxwidth 0.7\nset logscale y 10\n"
            "set xtics rotate by -60 noenhanced font 'sans,9'\nset grid ytics\n"
            "set ylabel 'ratio (log scale)'\nset xrange [-1:%d]\nset yrange [%g:%g]\n"
            "set arrow from -1,1 to %d,1 nohead dt 2 lw 2\n"
            "plot %s using 1:($4 == 0 ? $2 : NaN):xtic(3) with boxes lc rgb '#2a7ab0' "
            "title 'higher is better', "
            "%s using 1:($4 == 1 ? $2 : NaN) with boxes lc rgb '#c0602a' title 'lower is better'\n"
            % (len(bars), lo, hi, len(bars), gp_quote(dat), gp_quote(dat)), svg)


# ---- merge, summary, check ----------------------------------------------------

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%.0f" % v
    return str(v)


def merge(prefix, files):
    meta_file = prefix + ".meta.json"
    meta = json.load(open(meta_file)) if os.path.exists(meta_file) else {}
    docs = []
    for path in files:
        with open(path) as f:
            docs.append(json.load(f))
    out = dict(meta, benches=docs)
    with open(prefix + ".json", "w") as f:
        json.dump(out, f, indent=1)
    base = os.path.basename(prefix)
    by_name = {d["bench"]: d for d in docs}
    plots = []
    for name, (title, xlabel, ylabel) in EXPECTED_PLOTS.items():
        svg = "%s-%s.svg" % (prefix, name)
        d = by_name.get(name)
        if not d or d.get("skipped") or not d.get("rows"):
            why = d.get("skipped") if d and d.get("skipped") else "bench-%s gave no figures" % name
            plot_empty(svg, title, why)
        else:
            plot_xy(svg, d, title, d.get("xlabel", xlabel),
                    d.get("unit", ylabel))
        plots.append((name, title, svg))
    for d in docs:
        if d["bench"] not in EXPECTED_PLOTS and d.get("plot") and d.get("rows"):
            svg = "%s-%s.svg" % (prefix, d["bench"])
            plot_xy(svg, d, d["plot"], d.get("xlabel", "x"), d.get("unit", ""))
            plots.append((d["bench"], d["plot"], svg))
    ratios_svg = prefix + "-ratios.svg"
    plot_ratios(ratios_svg, docs)

    md = ["<!-- SPDX-License-Identifier: BSD-3-Clause -->",
          "# Bench run %s" % meta.get("date", base), ""]
    for k in ("mode", "commit", "build", "machine", "load_avg_start", "load_avg_end"):
        if k in meta:
            md.append("- %s: %s" % (k.replace("_", " "), meta[k]))
    md += ["", "Ratios are ours / anchor: the median of the paired ratios of "
           "alternating repetitions, not a ratio of medians. Figures are never "
           "asserted; see bench/README.md for what each side does.", "",
           "![ratios](%s)" % os.path.basename(ratios_svg), ""]
    for name, title, svg in plots:
        md += ["## %s" % title, "", "![%s](%s)" % (title, os.path.basename(svg)), ""]
    for d in docs:
        md += ["## bench %s: %s" % (d["bench"], d.get("title", "")), ""]
        if d.get("skipped"):
            md += ["Not run: %s" % d["skipped"], ""]
            continue
        md.append("Unit %s (%s is better); anchor: %s; repetitions: %s; load average at "
                  "its start: %s." % ("per row" if any("unit" in r for r in d.get("rows", []))
                                      else d.get("unit", "?"), d.get("better", "higher"),
                                      d.get("anchor", "?"), d.get("reps", "?"),
                                      d.get("load_avg", "?")))
        # Rows that carry their own unit (ctl: us per message, ms per
        # bring-up) say it in a column of their own.
        per_row = any("unit" in r for r in d.get("rows", []))
        md += ["", "| series | %s | ours | anchor | ratio |%s" %
               (d.get("xlabel", "x"), " unit |" if per_row else ""),
               "|---|---:|---:|---:|---:|%s" % ("---|" if per_row else "")]
        for r in d.get("rows", []):
            md.append("| %s | %s | %s | %s | %s |%s" % (
                r["series"], fmt(r.get("x")), fmt(r.get("ours")), fmt(r.get("anchor")),
                fmt(r.get("ratio")), " %s |" % r.get("unit", d.get("unit", "?"))
                if per_row else ""))
        for k, v in sorted(d.get("extra", {}).items()):
            md.append("")
            md.append("%s: %s" % (k, v))
        md.append("")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(md))


def check(prefix):
    with open(prefix + ".json") as f:
        doc = json.load(f)
    assert isinstance(doc.get("benches"), list) and doc["benches"], "no benches in the JSON"
    for d in doc["benches"]:
        assert "bench" in d and ("rows" in d or "skipped" in d), "bench entry %r" % d
        for r in d.get("rows", []):
            assert "series" in r and "ours" in r, "%s: row %r" % (d["bench"], r)
    md = open(prefix + ".md").read()
    svgs = re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", md)
    expected = ["%s-%s.svg" % (os.path.basename(prefix), n) for n in EXPECTED_PLOTS]
    expected.append(os.path.basename(prefix) + "-ratios.svg")
    for e in expected:
        assert e in svgs, "%s.md does not embed %s" % (prefix, e)
    for s in svgs:
        root = ET.parse(os.path.join(os.path.dirname(prefix), s)).getroot()
        assert root.tag.endswith("svg"), "%s: root element %s" % (s, root.tag)
    print("report: %s.json (%d benches), %d SVGs, %s.md: well formed"
          % (prefix, len(doc["benches"]), len(svgs), prefix))


def main(argv):
    if len(argv) == 3 and argv[0] == "table" and argv[1] in TABLES:
        json.dump(TABLES[argv[1]](open(argv[2]).read()), sys.stdout, indent=1)
        print()
    elif len(argv) >= 2 and argv[0] == "merge":
        merge(argv[1], argv[2:])
    elif len(argv) == 2 and argv[0] == "check":
        check(argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
