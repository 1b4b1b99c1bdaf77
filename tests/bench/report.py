"""Rows of results, the printed table, RESULTS.md and the gnuplot chart."""

import json
import os
import shutil
import statistics
import subprocess

TOOLS = ("curl", "gcsmount", "rclone")


class Row:
    """One measured quantity: runs per tool (median reported) or a failure reason."""

    def __init__(self, key, label, unit, better, short=None):
        self.key, self.label, self.unit, self.better = key, label, unit, better
        self.short = short or label
        self.runs = {}           # tool -> [values]
        self.errors = {}         # tool -> reason
        self.requests = {}       # tool -> counts of the last run
        self.emu_cpu = {}        # tool -> [seconds]

    def value(self, tool):
        v = self.runs.get(tool)
        return statistics.median(v) if v and tool not in self.errors else None

    def cell(self, tool):
        if tool in self.errors:
            return "failed: " + self.errors[tool]
        v = self.value(tool)
        return fmt(v) if v is not None else "n/a"

    def ratio(self, a, b):
        va, vb = self.value(a), self.value(b)
        if va is None or vb is None or vb == 0:
            return None
        return va / vb

    def speedup(self, other):
        """How many times better gcsmount is than `other` (>1: gcsmount better)."""
        r = self.ratio("gcsmount", other)
        if r is None or r == 0:
            return None
        return r if self.better == "higher" else 1.0 / r

    def to_json(self):
        return {"key": self.key, "label": self.label, "unit": self.unit,
                "better": self.better, "runs": self.runs, "errors": self.errors,
                "median": {t: self.value(t) for t in TOOLS}, "requests": self.requests,
                "emulator_cpu_s": self.emu_cpu}


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    return "%.2g" % v


def fmt_ratio(r):
    return "n/a" if r is None else ("%.3g" % r) + "x"


def header():
    return ["Figure", "unit", "better", "curl", "gcsmount", "rclone", "gcsmount/curl",
            "gcsmount/rclone"]


def table_rows(rows):
    out = []
    for r in rows:
        out.append([r.label, r.unit, r.better, r.cell("curl"), r.cell("gcsmount"),
                    r.cell("rclone"), fmt_ratio(r.ratio("gcsmount", "curl")),
                    fmt_ratio(r.ratio("gcsmount", "rclone"))])
    return out


def text_table(rows):
    cells = [header()] + table_rows(rows)
    cells = [[c if len(c) <= 48 else c[:45] + "..." for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i < 3 else c.rjust(widths[i])
                               for i, c in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_escape(s):
    return s.replace("|", "\\|")


def md_table(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in body:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(lines)


def fmt_requests(counts):
    """kind N, with the HTTP statuses when there is more than one kind of answer."""
    if not counts:
        return "0"
    out = []
    for kind, (n, statuses) in counts.items():
        s = "%s %d" % (kind, n)
        if len(statuses) > 1:
            s += " (%s)" % " ".join("%s:%d" % kv for kv in sorted(statuses.items()))
        out.append(s)
    return ", ".join(out)


def bound_summary(bound):
    if "error" in bound:
        return "not measured: " + bound["error"]
    f = bound["floor"]
    return "floor %s s, memfs alone %s s (%s), with the floor %s s (%s)" % (
        fmt(f), fmt(bound["memfs"]), fmt_ratio(bound["memfs"] / f), fmt(bound["together"]),
        fmt_ratio(bound["together"] / f))


def bound_section(bound, row4, n):
    """Markdown lines: what figure 4 would be for a FUSE mount that cost nothing itself."""
    lines = ["## Figure 4's bound on this machine", ""]
    if "error" in bound:
        return lines + ["Not measured: %s" % md_escape(bound["error"]), ""]
    f = bound["floor"]
    body = [["the floor: the listing page by page, no filesystem", fmt(f), "1x"],
            ["`ls -l` over memfs (%s names from memory), no server" % "{:,}".format(n),
             fmt(bound["memfs"]), fmt_ratio(bound["memfs"] / f)],
            ["both at once: the least any FUSE mount could take here",
             fmt(bound["together"]), fmt_ratio(bound["together"] / f)]]
    g, c = row4.value("gcsmount"), row4.value("curl")
    if g is not None and c:
        body.append(["gcsmount (figure 4, against figure 4's floor)", fmt(g),
                     fmt_ratio(g / c)])
    return lines + [
        "Measured in turn, median of the runs; the ratios are to the floor measured "
        "alongside. The floor leaves out what `ls -l` costs once the pages are in: the "
        "kernel's FUSE layer making an entry for each name, and ls's own stat, getxattr and "
        "formatting of each. A mount on the same machine cannot leave them out, and with "
        "the emulator they share the CPUs.", "",
        md_table(["measured", "s", "x floor"], body), ""]


def write_markdown(path, meta, rows, chart_name, notes, sections=()):
    lines = ["# gcsmount benchmark results", "",
             "Generated by `make bench` (`tests/bench/bench.py`); do not edit by hand.", ""]
    for k, v in meta:
        lines.append("- **%s**: %s" % (k, v))
    lines += ["", "## Results (median of the runs)", "",
              "Ratios are value/value: for `better = higher` a ratio above 1 means gcsmount "
              "is faster; for `better = lower` a ratio below 1 means gcsmount is faster "
              "(or uses less).", "",
              md_table(header(), table_rows(rows)), ""]
    if chart_name:
        lines += ["![gcsmount relative to curl and rclone](%s)" % chart_name, "",
                  "The chart shows how many times *better* gcsmount is than each other way "
                  "(speed, or inverse time/CPU/memory; log scale; above 1 = gcsmount better).",
                  ""]
    lines += ["## Emulator requests (last run, the benchmark's own polling excluded)", "",
              md_table(["Figure", "curl", "gcsmount", "rclone"],
                       [[r.label] + [fmt_requests(r.requests.get(t)) if t in r.requests
                                     else "n/a" for t in TOOLS]
                        for r in rows if r.requests]), "",
              "## Emulator CPU seconds during the measured window (median)", "",
              "The emulator is one Python process sharing the machine with the tool measured; "
              "when its CPU time approaches the wall time it is the bottleneck.", "",
              md_table(["Figure", "curl", "gcsmount", "rclone"],
                       [[r.label] + [fmt(statistics.median(r.emu_cpu[t])) if r.emu_cpu.get(t)
                                     else "n/a" for t in TOOLS]
                        for r in rows if r.emu_cpu]), "",
              ]
    for sec in sections:
        lines += sec
    lines += ["## How each figure is measured", ""]
    lines += ["- " + n for n in notes]
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_json(path, meta, rows, extra):
    with open(path, "w") as f:
        json.dump({"meta": dict(meta), "rows": [r.to_json() for r in rows], "extra": extra},
                  f, indent=1)


def chart(png_path, rows, workdir):
    """Bar chart of gcsmount's speed-up over curl and rclone; None when not drawn."""
    if not shutil.which("gnuplot"):
        return None
    data = os.path.join(workdir, "chart.dat")
    vals = []
    with open(data, "w") as f:
        for r in rows:
            a, b = r.speedup("curl"), r.speedup("rclone")
            if a is None and b is None:
                continue
            f.write('"%s" %s %s\n' % (r.short.replace('"', "'"),
                                      "?" if a is None else "%.6g" % a,
                                      "?" if b is None else "%.6g" % b))
            vals += [v for v in (a, b) if v]
    if not vals:
        return None
    lo, hi = min(min(vals), 1.0) / 2, max(max(vals), 1.0) * 2
    script = """
set terminal pngcairo size 1300,650 font ",10"
set output '%s'
set title "gcsmount relative to curl (raw HTTP) and rclone mount: times better (log scale, >1 = gcsmount better)"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [%g:%g]
set grid ytics
set xtics rotate by -25 left
set key top left
set rmargin 12
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "black"
plot '%s' using 2:xtic(1) title "vs curl" lc rgb "#4477aa", \\
     '' using 3 title "vs rclone" lc rgb "#ee6677"
""" % (png_path, lo, hi, data)
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0 or not os.path.exists(png_path):
        print("gnuplot failed: " + p.stderr[-500:])
        return None
    return png_path
