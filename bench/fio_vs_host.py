#!/usr/bin/env python3
"""Helper of bench/fio-vs-host.sh (Python 3 standard library only).

Subcommands:
  bytes SIZE                 print SIZE in bytes (gdswap's size rules: K/M/G/T = 1024^n,
                             KB/MB/GB/TB = 1000^n, bare number = bytes)
  show TOOL FILE OP          one progress line from a raw fio or gdswap JSON result
  report                     read OUT/raw/, write OUT/results.json and OUT/README.md, print
                             the summary; settings come from FVH_* environment variables

Exit status: 0 success, 1 error (one line on stderr), 2 bad usage.
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys

GIB = float(1 << 30)
SCHEMA = "gdswap.fio-vs-host.v1"
OPS = ("read", "write")


class Fail(Exception):
    pass


# ---------------------------------------------------------------------------- sizes

def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not m:
        raise Fail(f"'{text}' is not a size (e.g. 1G, 128M, 1073741824)")
    mult = {
        "": 1, "b": 1,
        "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
        "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
        "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    }.get(m.group(2).lower())
    if mult is None:
        raise Fail(f"'{text}' has an unknown size suffix (use K/M/G/T, KiB.., KB..)")
    return int(m.group(1)) * mult


# ---------------------------------------------------------------------------- raw results

def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Fail(f"cannot read {path}: {e.strerror}")
    # fio may print notes before the JSON document when it writes to stdout.
    start = text.find("{")
    if start < 0:
        raise Fail(f"{path} holds no JSON")
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError as e:
        raise Fail(f"{path} is not valid JSON: {e}")


def fio_figures(path, op):
    """The measured job of a fio run (the job named 'measured', else the last one)."""
    doc = load_json(path)
    jobs = doc.get("jobs") or []
    if not jobs:
        raise Fail(f"{path}: fio reported no jobs")
    job = next((j for j in jobs if j.get("jobname") == "measured"), jobs[-1])
    if job.get("error"):
        raise Fail(f"{path}: fio job '{job.get('jobname')}' failed with error {job['error']}")
    side = job[op]
    io_bytes = int(side["io_bytes"])
    runtime_ms = float(job["job_runtime"])
    cpu_s = (float(job["usr_cpu"]) + float(job["sys_cpu"])) / 100.0 * runtime_ms / 1000.0
    gib = io_bytes / GIB
    # Total latency (submission to completion, fio's `lat`, which `--lat_percentiles=1` gives
    # percentiles for), the same span gdswap measures per request.
    lat = side.get("lat_ns", {}).get("percentile", {})
    return {
        "tool": "fio",
        "fio_version": doc.get("fio version", "unknown"),
        "jobname": job.get("jobname"),
        "bw_bytes": int(side["bw_bytes"]),
        "bandwidth_gibps": int(side["bw_bytes"]) / GIB,
        "io_bytes": io_bytes,
        "runtime_ms": int(side["runtime"]),
        "job_runtime_ms": runtime_ms,
        "usr_cpu_pct": float(job["usr_cpu"]),
        "sys_cpu_pct": float(job["sys_cpu"]),
        "cpu_s": cpu_s,
        "cpu_s_per_gib": cpu_s / gib if gib > 0 else None,
        "iops": float(side.get("iops", 0.0)),
        "lat_p50_us": lat.get("50.000000", 0) / 1000.0 if lat else None,
        "lat_p99_us": lat.get("99.000000", 0) / 1000.0 if lat else None,
        "mem": (doc.get("global options") or {}).get("mem", "malloc (default)"),
    }


def gdswap_figures(path):
    doc = load_json(path)
    if isinstance(doc, list):
        doc = doc[0]
    if not str(doc.get("schema", "")).startswith("gdswap.run."):
        raise Fail(f"{path}: not a gdswap run report (schema {doc.get('schema')!r})")
    s = doc["summary"]
    return {
        "tool": "gdswap",
        "bandwidth_gibps": float(s["bandwidth_gibps"]),
        "e2e_bandwidth_gibps": float(s["e2e_bandwidth_gibps"]),
        "bytes": int(s["bytes"]),
        "task_time_s": float(s["task_time_s"]),
        "cpu_user_s": float(s["cpu_user_s"]),
        "cpu_system_s": float(s["cpu_system_s"]),
        "cpu_s": float(s["cpu_user_s"]) + float(s["cpu_system_s"]),
        "cpu_s_per_gib": float(s["cpu_s_per_gib"]),
        "iops": float(s["iops"]),
        "latency_p50_us": float(s["latency"]["p50_us"]),
        "latency_p99_us": float(s["latency"]["p99_us"]),
        "sync_time_s": float(s["sync_time_s"]),
        "backend_mode": doc.get("backend_mode"),
        "buffer_pages": doc.get("buffer_pages"),
        "huge_pages_obtained": doc.get("huge_pages_obtained"),
        "warnings": [w.get("message", str(w)) if isinstance(w, dict) else str(w)
                     for w in doc.get("warnings", [])],
        "environment": doc.get("environment", {}),
    }


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def spread(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# ---------------------------------------------------------------------------- machine

def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def machine(data_path, gd_env):
    cpuinfo = read("/proc/cpuinfo")
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines()
                  if l.startswith("model name")), "unknown")
    flags = next((l.split(":", 1)[1].split() for l in cpuinfo.splitlines()
                  if l.startswith("flags")), [])
    mem_kb = next((int(l.split()[1]) for l in read("/proc/meminfo").splitlines()
                   if l.startswith("MemTotal:")), 0)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    fs = dict(gd_env.get("filesystem") or {})
    # Cross-check gdswap's view of the filesystem with findmnt, where available.
    try:
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,TARGET", "-T", data_path],
                             capture_output=True, text=True, timeout=10)
        parts = out.stdout.split()
        if out.returncode == 0 and len(parts) >= 3:
            fs.setdefault("fs_type", parts[0])
            fs.setdefault("mount_source", parts[1])
            fs.setdefault("mount_point", parts[2])
    except (OSError, subprocess.SubprocessError):
        pass
    sched = ""
    src = fs.get("mount_source", "")
    if src.startswith("/dev/"):
        name = os.path.basename(os.path.realpath(src))
        for q in (f"/sys/class/block/{name}/queue/scheduler",
                  f"/sys/class/block/{name}/../queue/scheduler"):
            s = read(q).strip()
            if s:
                sched = s
                break
    thp = read("/sys/kernel/mm/transparent_hugepage/enabled").strip()
    return {
        "hostname": platform.node(),
        "cpu_model": model,
        "logical_cpus": os.cpu_count() or 0,
        "usable_cpus": usable,
        "virtualized": "hypervisor" in flags,
        "memory_bytes": mem_kb * 1024,
        "kernel": platform.release(),
        "os": os_name(),
        "data_path": data_path,
        "filesystem": fs,
        "io_scheduler": sched,
        "thp_enabled": thp,
    }


def os_name():
    for line in read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


# ---------------------------------------------------------------------------- report

def env(name, default=None):
    v = os.environ.get(name)
    if v is None:
        if default is None:
            raise Fail(f"{name} is not set (run this through bench/fio-vs-host.sh)")
        return default
    return v


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}"


def fmt_bytes(n):
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n / GIB:.1f} GiB" if n >= (1 << 30) else f"{n} B"


def verdict_of(summary):
    bw = summary["bandwidth_ratio"]["median"]
    cpu = summary["cpu_s_per_gib_ratio"]["median"]
    bw_ok = bw is not None and bw >= 1.0
    cpu_ok = cpu is not None and cpu <= 1.0
    return bw_ok, cpu_ok


def report():
    out = env("FVH_OUT")
    raw = os.path.join(out, "raw")
    runs_path = os.path.join(raw, "runs.tsv")
    runs = []
    for line in read(runs_path).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pair, op, tool, position, jfile, cmd = line.split("\t", 5)
        runs.append({"pair": int(pair), "op": op, "tool": tool, "position": int(position),
                     "json": jfile, "command": cmd})
    if not runs:
        raise Fail(f"{runs_path} lists no runs")

    pairs = {}
    for r in runs:
        path = os.path.join(raw, r["json"])
        figs = fio_figures(path, r["op"]) if r["tool"] == "fio" else gdswap_figures(path)
        figs["position"] = r["position"]
        figs["raw"] = f"raw/{r['json']}"
        figs["command"] = r["command"]
        pairs.setdefault(r["pair"], {}).setdefault(r["op"], {})[r["tool"]] = figs

    pair_rows = []
    for p in sorted(pairs):
        row = {"pair": p}
        for op in OPS:
            d = pairs[p].get(op)
            if not d or "fio" not in d or "gdswap" not in d:
                raise Fail(f"pair {p} {op}: a fio or gdswap result is missing")
            f, g = d["fio"], d["gdswap"]
            row[op] = {
                "first": "fio" if f["position"] < g["position"] else "gdswap",
                "fio": f,
                "gdswap": g,
                "bandwidth_ratio": ratio(g["bandwidth_gibps"], f["bandwidth_gibps"]),
                "cpu_s_per_gib_ratio": ratio(g["cpu_s_per_gib"], f["cpu_s_per_gib"]),
            }
        pair_rows.append(row)

    summary = {}
    for op in OPS:
        rows = [r[op] for r in pair_rows]
        summary[op] = {
            "bandwidth_ratio": spread([r["bandwidth_ratio"] for r in rows]),
            "cpu_s_per_gib_ratio": spread([r["cpu_s_per_gib_ratio"] for r in rows]),
            "fio_gibps": spread([r["fio"]["bandwidth_gibps"] for r in rows]),
            "gdswap_gibps": spread([r["gdswap"]["bandwidth_gibps"] for r in rows]),
            "fio_cpu_s_per_gib": spread([r["fio"]["cpu_s_per_gib"] for r in rows]),
            "gdswap_cpu_s_per_gib": spread([r["gdswap"]["cpu_s_per_gib"] for r in rows]),
        }
        bw_ok, cpu_ok = verdict_of(summary[op])
        summary[op]["bandwidth_goal_met"] = bw_ok
        summary[op]["cpu_goal_met"] = cpu_ok
    overall = all(summary[op]["bandwidth_goal_met"] and summary[op]["cpu_goal_met"] for op in OPS)

    first_gd = pair_rows[0]["read"]["gdswap"]
    gd_env = first_gd["environment"]
    data_file = env("FVH_DATA_FILE")
    mach = machine(data_file, gd_env)
    buffer_pages = sorted({r[op]["gdswap"]["buffer_pages"] or "n/a" for r in pair_rows for op in OPS})
    fio_mem = sorted({r[op]["fio"]["mem"] for r in pair_rows for op in OPS})
    warnings = [f"pair {r['pair']} {op}: {w}" for r in pair_rows for op in OPS
                for w in r[op]["gdswap"]["warnings"]]

    hp = {
        "state": env("FVH_HUGE_STATE"),
        "note": env("FVH_HUGE_NOTE", ""),
        "nr_hugepages_before": env("FVH_HUGE_ORIG", ""),
        "nr_hugepages_during": env("FVH_HUGE_SET", ""),
        "free_pages_during": env("FVH_HUGE_FREE", ""),
        "pages_needed": env("FVH_HUGE_NEED", ""),
        "hugepage_size_kb": env("FVH_HUGE_KB", ""),
        "fio_iomem": fio_mem,
        "gdswap_buffer_pages": buffer_pages,
    }
    params = {
        "size_bytes": int(env("FVH_SIZE_BYTES")),
        "block_size_bytes": 1 << 20,
        "queue_depth": 8,
        "threads": 1,
        "warmup_loops": 1,
        "measured_loops": 3,
        "pairs": int(env("FVH_PAIRS")),
        "data_file": data_file,
        "drop_caches": env("FVH_DROP_CACHES"),
        "root": env("FVH_ROOT") == "1",
        "fio_extra": env("FVH_FIO_EXTRA", ""),
    }
    result = {
        "schema": SCHEMA,
        "date_utc": env("FVH_DATE"),
        "started_at": env("FVH_STARTED"),
        "finished_at": env("FVH_FINISHED"),
        "goal": {"bandwidth_ratio_median_min": 1.0, "cpu_s_per_gib_ratio_median_max": 1.0},
        "verdict": "PASS" if overall else "FAIL",
        "params": params,
        "machine": mach,
        "fio_version": env("FVH_FIO_VERSION"),
        "gdswap": {
            "binary": env("FVH_GDSWAP"),
            "version": gd_env.get("gdswap_version", "unknown"),
            "git_commit": gd_env.get("git_commit", "unknown"),
            "version_line": env("FVH_GDSWAP_VERSION", ""),
        },
        "huge_pages": hp,
        "setup_command": env("FVH_SETUP_CMD", ""),
        "summary": summary,
        "pairs": pair_rows,
        "gdswap_warnings": warnings,
    }
    # JSON has no infinity; ratios that could not be formed are null already.
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme(result))
    print_summary(result)


def readme(r):
    p, m, hp, s = r["params"], r["machine"], r["huge_pages"], r["summary"]
    fs = m["filesystem"]
    gd = r["gdswap"]
    L = []
    a = L.append
    a(f"# fio `io_uring` vs gdswap `host`: sequential 1 MiB, QD 8, 1 thread, {fmt_bytes(p['size_bytes'])}")
    a("")
    a(f"- Date (UTC): **{r['date_utc']}** (run {r['started_at']} to {r['finished_at']})")
    a(f"- Verdict: **{r['verdict']}** (goal: median bandwidth ratio gdswap/fio >= 1.0 and "
      "median CPU-s/GiB ratio gdswap/fio <= 1.0, for both reads and writes)")
    a(f"- {p['pairs']} pairs per direction, alternating which tool runs first; "
      f"each run: 1 warm-up loop + 3 measured loops over the {fmt_bytes(p['size_bytes'])} file")
    if p["size_bytes"] != 1 << 30 or p["pairs"] < 5:
        a(f"- **Note:** this is not the goal's configuration (1 GiB, at least 5 pairs); "
          "treat it as a smoke test, not as the benchmark result.")
    a("")
    a("## Machine")
    a("")
    a("| | |")
    a("|---|---|")
    a(f"| Host | `{m['hostname']}` |")
    a(f"| CPU | {m['cpu_model']} ({m['logical_cpus']} logical CPUs, {m['usable_cpus']} usable"
      f"{', virtual machine' if m['virtualized'] else ''}) |")
    a(f"| Memory | {m['memory_bytes'] / GIB:.1f} GiB |")
    a(f"| OS / kernel | {m['os']} / {m['kernel']} |")
    a(f"| Data file | `{p['data_file']}` |")
    a(f"| Filesystem | {fs.get('fs_type', '?')} on `{fs.get('mount_source', '?')}` mounted at "
      f"`{fs.get('mount_point', '?')}` ({fs.get('mount_options', '')}) |")
    a(f"| Device | {fs.get('device', '?')}; I/O scheduler: {m['io_scheduler'] or 'n/a'} |")
    a(f"| fio | {r['fio_version']} |")
    a(f"| gdswap | {gd['version']}, git commit `{gd['git_commit']}` (`{gd['binary']}`) |")
    a(f"| Huge pages | {hp['state']}: {hp['note']} |")
    a(f"| fio buffers (`--iomem`) | {', '.join(hp['fio_iomem'])} |")
    a(f"| gdswap buffers (as obtained) | {', '.join(hp['gdswap_buffer_pages'])} |")
    a(f"| Transparent huge pages | `{m['thp_enabled']}` |")
    a(f"| Page cache dropped before each run | {p['drop_caches']} |")
    a("")
    a("## Summary")
    a("")
    a("Ratios are gdswap / fio, one per pair; bandwidth in GiB/s (2^30 bytes/s); "
      "CPU-s/GiB is user + system CPU seconds per GiB moved in the measured loops.")
    a("")
    a("| Direction | Metric | Median | Min | Max | Goal | Result |")
    a("|---|---|---:|---:|---:|---|---|")
    for op in OPS:
        so = s[op]
        for key, label, goal, ok in (
            ("bandwidth_ratio", "bandwidth ratio", ">= 1.0", so["bandwidth_goal_met"]),
            ("cpu_s_per_gib_ratio", "CPU-s/GiB ratio", "<= 1.0", so["cpu_goal_met"]),
        ):
            v = so[key]
            a(f"| {op} | {label} | {fmt(v['median'])} | {fmt(v['min'])} | {fmt(v['max'])} "
              f"| {goal} | {'PASS' if ok else 'FAIL'} |")
    a("")
    a("| Direction | fio GiB/s (median) | gdswap GiB/s (median) | fio CPU-s/GiB (median) "
      "| gdswap CPU-s/GiB (median) |")
    a("|---|---:|---:|---:|---:|")
    for op in OPS:
        so = s[op]
        a(f"| {op} | {fmt(so['fio_gibps']['median'])} | {fmt(so['gdswap_gibps']['median'])} "
          f"| {fmt(so['fio_cpu_s_per_gib']['median'], 4)} "
          f"| {fmt(so['gdswap_cpu_s_per_gib']['median'], 4)} |")
    a("")
    a("## Pairs")
    for row in r["pairs"]:
        a("")
        a(f"### Pair {row['pair']} ({row['read']['first']} first)")
        a("")
        a("| Direction | fio GiB/s | gdswap GiB/s | BW ratio | fio CPU-s/GiB | gdswap CPU-s/GiB "
          "| CPU ratio | fio CPU usr/sys % | gdswap buffers |")
        a("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for op in OPS:
            d = row[op]
            f, g = d["fio"], d["gdswap"]
            a(f"| {op} | {fmt(f['bandwidth_gibps'])} | {fmt(g['bandwidth_gibps'])} "
              f"| {fmt(d['bandwidth_ratio'])} | {fmt(f['cpu_s_per_gib'], 4)} "
              f"| {fmt(g['cpu_s_per_gib'], 4)} | {fmt(d['cpu_s_per_gib_ratio'])} "
              f"| {f['usr_cpu_pct']:.1f} / {f['sys_cpu_pct']:.1f} | {g['buffer_pages']} |")
    if r["gdswap_warnings"]:
        a("")
        a("gdswap warnings:")
        a("")
        for w in r["gdswap_warnings"]:
            a(f"- {w}")
    a("")
    a("## Method")
    a("")
    a("- fio: `--ioengine=io_uring --direct=1 --bs=1M --iodepth=8 --numjobs=1`, one job "
      "`warmup` (`--loops=1`) then, after `--stonewall`, one job `measured` (`--loops=3`); "
      "figures from the `measured` job: bandwidth = `bw_bytes`, CPU seconds = "
      "(`usr_cpu` + `sys_cpu`) / 100 x `job_runtime` / 1000, divided by `io_bytes` in GiB.")
    a("- gdswap: `gdswap run --backend host --block-size 1M --queue-depth 8 --threads 1 "
      "--loops 3 --warmup 1 --huge-pages auto`; figures `summary.bandwidth_gibps` (bytes / time "
      "inside transfers; the final fdatasync of writes is not counted) and "
      "`summary.cpu_s_per_gib` (process user + system CPU time of the measured loops).")
    a("- Both use O_DIRECT on the same file, the same number of bytes per run, and run one after "
      "the other (never concurrently); within each pair the read comparison runs first, then "
      "the write comparison, in the same order.")
    a("- Neither figure counts process start-up, buffer allocation or the warm-up loop. fio times "
      "whole loops in milliseconds (its per-loop file reopen included); gdswap's end-to-end "
      "bandwidth (loop barriers included) is in `results.json` as `e2e_bandwidth_gibps`.")
    a("")
    a("Reproduce (as root, so huge pages can be reserved and caches dropped):")
    a("")
    a("```sh")
    a(f"sudo SIZE={fmt_bytes(p['size_bytes']).replace(' GiB', 'G').replace(' MiB', 'M')} "
      f"PAIRS={p['pairs']} bench/fio-vs-host.sh")
    a("```")
    a("")
    a("Exact commands of this run (the data file was created first with):")
    a("")
    a("```sh")
    a(r["setup_command"])
    a("```")
    for row in r["pairs"]:
        a("")
        a(f"<details><summary>Pair {row['pair']}</summary>")
        a("")
        a("```sh")
        cmds = []
        for op in OPS:
            for tool in ("fio", "gdswap"):
                cmds.append((row[op][tool]["position"], row[op][tool]["command"]))
        for _, c in sorted(cmds):
            a(c)
        a("```")
        a("")
        a("</details>")
    a("")
    a("Files: `results.json` (every figure above, plus latencies), `raw/` (fio and gdswap JSON "
      "output, logs of each command, `runs.tsv`).")
    a("")
    return "\n".join(L)


def print_summary(r):
    s = r["summary"]
    for op in OPS:
        so = s[op]
        bw, cpu = so["bandwidth_ratio"], so["cpu_s_per_gib_ratio"]
        print(f"{op:5}: bandwidth ratio median {fmt(bw['median'])} (min {fmt(bw['min'])}, max "
              f"{fmt(bw['max'])}) {'PASS' if so['bandwidth_goal_met'] else 'FAIL'}; "
              f"CPU-s/GiB ratio median {fmt(cpu['median'])} (min {fmt(cpu['min'])}, max "
              f"{fmt(cpu['max'])}) {'PASS' if so['cpu_goal_met'] else 'FAIL'}")
    print(f"verdict: {r['verdict']}")


def show(tool, path, op):
    f = fio_figures(path, op) if tool == "fio" else gdswap_figures(path)
    extra = f", buffers: {f['buffer_pages']}" if tool == "gdswap" else ""
    print(f"{f['bandwidth_gibps']:.3f} GiB/s, {fmt(f['cpu_s_per_gib'], 4)} CPU-s/GiB{extra}")


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "bytes":
            print(parse_size(argv[1]))
        elif len(argv) == 4 and argv[0] == "show" and argv[1] in ("fio", "gdswap") \
                and argv[3] in OPS:
            show(argv[1], argv[2], argv[3])
        elif len(argv) == 1 and argv[0] == "report":
            report()
        else:
            sys.stderr.write(__doc__)
            return 2
    except Fail as e:
        print(f"fio_vs_host.py: error: {e}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError) as e:
        print(f"fio_vs_host.py: error: unexpected result layout ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
