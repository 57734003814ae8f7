#!/usr/bin/env python3
"""Summarises scripts/bench.sh runs: medians per scenario and server, ratios against
netloop, the issue's targets checked, a JSON file with everything and a PNG chart.

    bench_report.py RUNS.jsonl OUT_PREFIX [--rounds N --duration S --warmup S]

Writes OUT_PREFIX.json and OUT_PREFIX.png (with gnuplot) and prints a markdown report.
Only the Python standard library is used.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

# Display order of the servers and scenarios.
SERVERS = ["netloop", "netloop-uring", "netloop-uring-zc", "netloop-pool", "netloop-pool-uring", "tokio-ct", "tokio-mt", "may-minihttp", "monoio",
           "fastwebsockets", "tokio-tungstenite", "uws", "tokio-rustls"]
SCENARIOS = {
    "http": "HTTP plaintext, 64 conns (wrk)",
    "http-pipelined": "HTTP pipelined x16, 64 conns (wrk)",
    "echo-100": "echo 1 KiB, 100 conns",
    "echo-1000": "echo 1 KiB, 1000 conns",
    "framed": "framed RPC 1 KiB, 100 conns",
    "bulk": "framed 256 KiB messages, 8 conns (zero-copy send)",
    "open-loop": "echo 1 KiB at 20k req/s, 100 conns (open loop)",
    "idle-10k": "10,000 idle keep-alive conns",
    "ws-20-100": "WebSocket echo 20 B, 100 conns",
    "ws-1k-100": "WebSocket echo 1 KiB, 100 conns",
    "ws-16k-100": "WebSocket echo 16 KiB, 100 conns",
    "ws-20-500": "WebSocket echo 20 B, 500 conns",
    "ws-1k-500": "WebSocket echo 1 KiB, 500 conns",
    "ws-16k-500": "WebSocket echo 16 KiB, 500 conns",
    "idle-10k-ws": "10,000 idle WebSocket conns",
    "idle-ws-deflate": "10,000 idle WebSocket conns, permessage-deflate without context takeover",
    "idle-ws-deflate-takeover": "1,000 idle WebSocket conns, permessage-deflate with context takeover",
    "bcast-20-100": "WebSocket broadcast 20 B, 100 subscribers, 100 senders a round (req = delivery)",
    "bcast-20-1000": "WebSocket broadcast 20 B, 1,000 subscribers, 1,000 senders a round (req = delivery)",
    "bcast-20-10000": "WebSocket broadcast 20 B, 10,000 subscribers, 100 senders a round (req = delivery)",
    "idle-10k-tls": "10,000 idle HTTPS conns",
    "idle-10k-wss": "10,000 idle wss conns",
}
WS_LOAD = [s for s in SCENARIOS if s.startswith("ws-")]


def is_idle(scenario):
    return scenario.startswith("idle")
LOAD_METRICS = ["rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req", "syscalls_per_req", "cpu_pct", "load_cpu_pct",
                "errors"]
IDLE_METRICS = ["rss_per_conn_kib", "rss_before_kib", "rss_after_kib"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs):
    """{scenario: {server: {metric: median, "rounds": n, metric+"_range": [lo, hi]}}}"""
    out = {}
    for run in runs:
        out.setdefault(run["scenario"], {}).setdefault(run["server"], []).append(run)
    summary = {}
    for scenario, by_server in out.items():
        summary[scenario] = {}
        for server, rows in by_server.items():
            metrics = IDLE_METRICS if is_idle(scenario) else LOAD_METRICS
            s = {"rounds": len(rows)}
            for m in metrics:
                vals = [r.get(m) for r in rows if r.get(m) is not None]
                s[m] = median(vals)
                if vals:
                    s[m + "_range"] = [min(vals), max(vals)]
            summary[scenario][server] = s
    return summary


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(summary):
    """The issue's targets, each with its measured figure and whether it was met."""
    found = []

    def get(scenario, server, metric):
        return summary.get(scenario, {}).get(server, {}).get(metric)

    def check(name, value, limit, higher_is_better):
        if value is None:
            return
        met = value >= limit if higher_is_better else value <= limit
        found.append({"target": name, "value": round(value, 3), "limit": limit, "met": met})

    for peer in ["tokio-ct", "tokio-mt"]:
        check(f"http c=64 req/s netloop / {peer} >= 1.10",
              ratio(get("http", "netloop", "rps"), get("http", peer, "rps")), 1.10, True)
    check("http c=64 req/s netloop / may-minihttp >= 1.3",
          ratio(get("http", "netloop", "rps"), get("http", "may-minihttp", "rps")), 1.3, True)
    for peer in ["tokio-ct", "tokio-mt"]:
        check(f"http pipelined x16 req/s netloop / {peer} >= 1.2",
              ratio(get("http-pipelined", "netloop", "rps"), get("http-pipelined", peer, "rps")), 1.2, True)
    check("echo 1 KiB c=100 CPU us/req netloop / tokio-ct <= 1.0",
          ratio(get("echo-100", "netloop", "cpu_us_per_req"), get("echo-100", "tokio-ct", "cpu_us_per_req")),
          1.0, False)
    check("echo 1 KiB c=100 syscalls/req netloop <= 2.02",
          get("echo-100", "netloop", "syscalls_per_req"), 2.02, False)
    check("framed CPU us/req Pool / Inline <= 1.25",
          ratio(get("framed", "netloop-pool", "cpu_us_per_req"), get("framed", "netloop", "cpu_us_per_req")),
          1.25, False)
    check("10k idle conns RSS KiB per conn (netloop) <= 2.0",
          get("idle-10k", "netloop", "rss_per_conn_kib"), 2.0, False)
    # WebSocket (the WebSocket server issue).
    for scenario in WS_LOAD:
        for peer in ["fastwebsockets", "tokio-tungstenite"]:
            check(f"{scenario} CPU us/msg netloop / {peer} <= 0.9",
                  ratio(get(scenario, "netloop", "cpu_us_per_req"), get(scenario, peer, "cpu_us_per_req")),
                  0.9, False)
    check("ws-1k-100 CPU us/msg netloop <= 3.0", get("ws-1k-100", "netloop", "cpu_us_per_req"), 3.0, False)
    check("ws-1k-100 syscalls/msg netloop (epoll) <= 2.0",
          get("ws-1k-100", "netloop", "syscalls_per_req"), 2.0, False)
    check("ws-1k-100 syscalls/msg netloop-uring <= 0.3",
          get("ws-1k-100", "netloop-uring", "syscalls_per_req"), 0.3, False)
    check("10k idle WebSocket conns RSS KiB per conn (netloop) <= 2.0",
          get("idle-10k-ws", "netloop", "rss_per_conn_kib"), 2.0, False)
    # WebSocket broadcast (the hub issue): per delivery.
    check("bcast-20-100 CPU us/delivery netloop <= 0.6",
          get("bcast-20-100", "netloop", "cpu_us_per_req"), 0.6, False)
    check("bcast-20-100 CPU us/delivery netloop / tokio-tungstenite <= 0.8",
          ratio(get("bcast-20-100", "netloop", "cpu_us_per_req"),
                get("bcast-20-100", "tokio-tungstenite", "cpu_us_per_req")), 0.8, False)
    check("bcast-20-100 syscalls/delivery netloop-uring <= 0.1",
          get("bcast-20-100", "netloop-uring", "syscalls_per_req"), 0.1, False)
    for scenario in ["bcast-20-1000", "bcast-20-10000"]:
        for server in ["netloop", "netloop-uring"]:
            check(f"{scenario} CPU us/delivery {server} / bcast-20-100 <= 1.2",
                  ratio(get(scenario, server, "cpu_us_per_req"), get("bcast-20-100", server, "cpu_us_per_req")),
                  1.2, False)
    return found


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def markdown(summary, found):
    lines = []
    for scenario, title in SCENARIOS.items():
        if scenario not in summary:
            continue
        by_server = summary[scenario]
        base = by_server.get("netloop", {})
        lines.append(f"### {title}")
        lines.append("")
        if is_idle(scenario):
            lines.append("| server | RSS KiB per idle conn | RSS before → after (KiB) | netloop / server |")
            lines.append("|---|---:|---:|---:|")
            for server in SERVERS:
                s = by_server.get(server)
                if not s:
                    continue
                lines.append(f"| {server} | {fmt(s['rss_per_conn_kib'], 2)} | "
                             f"{fmt(s['rss_before_kib'])} → {fmt(s['rss_after_kib'])} | "
                             f"{fmt(ratio(base.get('rss_per_conn_kib'), s['rss_per_conn_kib']), 2)} |")
        else:
            lines.append("| server | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/req | syscalls/req "
                         "| server CPU % | load CPU % | req/s netloop / server | CPU µs netloop / server |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for server in SERVERS:
                s = by_server.get(server)
                if not s:
                    continue
                lines.append(
                    f"| {server} | {fmt(s['rps'])} | {fmt(s['p50_us'])} | {fmt(s['p99_us'])} | "
                    f"{fmt(s['p999_us'])} | {fmt(s['cpu_us_per_req'], 2)} | {fmt(s['syscalls_per_req'], 2)} | "
                    f"{fmt(s['cpu_pct'])} | {fmt(s.get('load_cpu_pct'))} | "
                    f"{fmt(ratio(base.get('rps'), s['rps']), 2)} | "
                    f"{fmt(ratio(base.get('cpu_us_per_req'), s['cpu_us_per_req']), 2)} |")
        lines.append("")
    if found:
        lines.append("### Targets")
        lines.append("")
        lines.append("| target | measured | met |")
        lines.append("|---|---:|---|")
        for t in found:
            lines.append(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def machine():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "rustc": run(["rustc", "-V"]),
        "commit": run(["git", "rev-parse", "--short", "HEAD"]),
        "dirty": bool(dirty),
    }


def chart(summary, png):
    """Panels: req/s relative to netloop, server CPU µs per request, and (if measured)
    RSS per idle connection."""
    scenarios = [s for s in SCENARIOS if s in summary and not is_idle(s)]
    servers = [sv for sv in SERVERS if any(sv in summary[s] for s in scenarios)]
    idle = summary.get("idle-10k", {})
    if not (scenarios and servers) and not idle:
        return False

    def row(label, values):
        return label + " " + " ".join("NaN" if v is None else f"{v:.4f}" for v in values) + "\n"

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        with open(data, "w") as f:
            f.write("scenario " + " ".join(servers) + "\n")
            for s in scenarios:
                base = summary[s].get("netloop", {}).get("rps")
                f.write(row(s, [ratio(summary[s].get(sv, {}).get("rps"), base) for sv in servers]))
            f.write("\n\n")
            f.write("scenario " + " ".join(servers) + "\n")
            for s in scenarios:
                f.write(row(s, [summary[s].get(sv, {}).get("cpu_us_per_req") for sv in servers]))
        idle_data = os.path.join(tmp, "idle")
        with open(idle_data, "w") as f:
            for sv in SERVERS:
                if sv in idle:
                    f.write(f"{sv} {idle[sv]['rss_per_conn_kib']:.3f}\n")
        cols = len(servers) + 1
        panels = (2 if scenarios else 0) + (1 if idle else 0)
        script = f"""
set terminal pngcairo size 1200,{400 * panels + 60} font ",11" noenhanced
set output "{png}"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top vertical
set grid ytics
set yrange [0:*]
set multiplot layout {panels},1 title "netloop vs peers: one server thread on CPU 0, load on CPU 1 (medians)"
"""
        if scenarios:
            script += f"""
set title "requests/s relative to netloop (higher is better)"
plot for [i=2:{cols}] "{data}" index 0 using i:xtic(1) title columnheader(i)
set title "server CPU µs per request (lower is better)"
plot for [i=2:{cols}] "{data}" index 1 using i:xtic(1) title columnheader(i)
"""
        if idle:
            script += f"""
set title "server RSS KiB per idle keep-alive connection, 10,000 connections (lower is better)"
set style histogram rowstacked
set boxwidth 0.5
set key off
plot "{idle_data}" using 2:xtic(1) linecolor rgb "#4477aa"
"""
        script += "unset multiplot\n"
        try:
            subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"gnuplot failed: {getattr(e, 'stderr', e)}", file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs")
    ap.add_argument("out_prefix")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--warmup", type=float)
    args = ap.parse_args()
    with open(args.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        sys.exit("no runs to report")
    summary = summarise(runs)
    found = targets(summary)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                     "server_cpu": 0, "load_cpu": 1},
        "summary": summary,
        "targets": found,
        "runs": runs,
    }
    with open(args.out_prefix + ".json", "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    m = report["machine"]
    print(f"Machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, {m['rustc']}; "
          f"commit {m['commit']}{' (dirty)' if m['dirty'] else ''}; "
          f"{args.rounds} round(s) of {args.duration:g} s after {args.warmup:g} s warm-up.")
    print()
    print(markdown(summary, found))
    png = args.out_prefix + ".png"
    if chart(summary, os.path.abspath(png)):
        print(f"raw results: {args.out_prefix}.json, chart: {png}")
    else:
        print(f"raw results: {args.out_prefix}.json (no chart)")


if __name__ == "__main__":
    main()
