#!/usr/bin/env python3
"""DeepSpeed's aio_handle against gdswap's (gdswap.aio_handle), in one process on one file,
with DeepSpeed's `ds_io` schedule, and `gdswap run` on the same bytes (issue 13, item 4).

Each measurement is one ds_io run (deepspeed/nvme/ds_aio_handle.py, deepspeed 0.19): *pre*
creates the handle (block_size, queue_depth, single_submit=False, overlap_events=True, one
thread) and a page-locked buffer of the I/O size (new_cpu_locked_tensor); *main* does LOOPS
times `pread(buffer, file, False, True)` (or `pwrite`) then `wait()`, each loop timed; *post*
frees the buffer. Its figure is the median loop's GiB/s. The handles run in interleaved pairs
(who goes first alternates), on the same file, O_DIRECT (DeepSpeed always opens O_DIRECT;
gdswap does for aligned requests, which these all are); as root the page cache is dropped
before every run. Then `gdswap run --backend host` (same block size, queue depth, one thread,
same file and size) gives the figure gdswap's handle should reach (goal: >= 0.97x).

Configurations: DeepSpeed's benchmark point (1 GiB, 1 MiB blocks, queue depth 8) and a small
grid (--block-sizes x --queue-depths x --io-sizes), reads and writes.

Usage: python bench/deepspeed-vs-gdswap.py OUT_DIR --data-dir DIR [options]
  (run it with the Python that has torch, deepspeed and gdswap installed; DeepSpeed's async_io
  op JIT-builds on first use: ninja, g++ and libaio-dev)
Writes OUT_DIR/README.md (the table) and OUT_DIR/results.json (every sample, the versions).
Exit status: 0 when everything ran, 1 on a failure, 2 on bad usage.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper().rstrip("B").rstrip("I")
    return int(float(s[:-1]) * units[s[-1]]) if s and s[-1] in units else int(s)


def human(n):
    for u, f in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= f and n % f == 0:
            return f"{n // f}{u}"
    return str(n)


def drop_caches():
    if os.geteuid() != 0:
        return False
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    return True


def ds_io(make_handle, op, path, io_size, block, qd, loops, warmup):
    """One ds_io run: pre (handle, locked buffer), main (loops), post (free). Loop seconds."""
    import torch

    h = make_handle(block, qd, False, True, 1)
    buf = h.new_cpu_locked_tensor(io_size, torch.empty(0, dtype=torch.uint8))
    if op == "write":
        buf.random_(0, 128)
    times = []
    try:
        for i in range(warmup + loops):
            if op == "write" and os.path.exists(path):
                os.remove(path)  # as ds_io: no overwrite of an existing file
            t0 = time.perf_counter()
            if op == "read":
                r = h.pread(buf, path, False, True)
            else:
                r = h.pwrite(buf, path, False, True)
            if r == -1:
                raise RuntimeError(f"{op} of {path} refused (-1)")
            n = h.wait()
            dt = time.perf_counter() - t0
            if n != 1:
                raise RuntimeError(f"wait() returned {n}, not 1")
            if i >= warmup:
                times.append(dt)
    finally:
        h.free_cpu_locked_tensor(buf)
    return times


def make_file(path, nbytes):
    if os.path.exists(path) and os.path.getsize(path) == nbytes:
        return
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = nbytes
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())


def gdswap_run(binary, op, path, io_size, block, qd, loops, warmup, raw):
    if op == "write" and os.path.exists(path):
        os.remove(path)
    drop_caches()
    cmd = [binary, "run", "--backend", "host", "--op", op, "--file", path,
           "--size", str(io_size), "--block-size", str(block), "--queue-depth", str(qd),
           "--threads", "1", "--loops", str(loops), "--warmup", str(warmup), "--json", raw]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    with open(raw) as f:
        return json.load(f)["summary"]["loop_gibps_median"], cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="directory for README.md and results.json (created)")
    ap.add_argument("--data-dir", required=True, help="where the data file goes (the NVMe)")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved pairs per point (5)")
    ap.add_argument("--loops", type=int, default=3, help="measured loops per run (3)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured loops first (1)")
    ap.add_argument("--main", default="1G,1M,8", help="the benchmark point io,block,qd")
    ap.add_argument("--block-sizes", default="128K,1M,4M")
    ap.add_argument("--queue-depths", default="4,32")
    ap.add_argument("--io-sizes", default="64M,1G")
    ap.add_argument("--ops", default="read,write")
    ap.add_argument("--gdswap", default=None,
                    help="the gdswap binary (default: target/release/gdswap, else on PATH)")
    a = ap.parse_args()
    try:
        main_pt = tuple(size(x) for x in a.main.split(","))
        grid = [(io, b, q) for io in map(size, a.io_sizes.split(","))
                for b in map(size, a.block_sizes.split(",")) for q in map(int, a.queue_depths.split(","))]
        ops = a.ops.split(",")
        assert set(ops) <= {"read", "write"} and a.pairs > 0 and a.loops > 0 and len(main_pt) == 3
    except (ValueError, KeyError, AssertionError, IndexError) as e:
        ap.error(f"bad option: {e!r}")
    repo = Path(__file__).resolve().parents[1]
    binary = a.gdswap or (str(repo / "target/release/gdswap")
                          if (repo / "target/release/gdswap").exists() else shutil.which("gdswap"))
    if not binary:
        ap.error("no gdswap binary: build it (cargo build --release) or pass --gdswap")

    import torch
    import deepspeed
    from deepspeed.ops.op_builder import AsyncIOBuilder

    import gdswap

    ds_ops = AsyncIOBuilder().load(verbose=False)
    if getattr(ds_ops, "__name__", "").startswith("gdswap"):
        sys.exit("AsyncIOBuilder is patched to gdswap's module: run without gdswap.deepspeed.install()")
    handles = {"deepspeed": ds_ops.aio_handle, "gdswap": gdswap.aio_handle}

    out = Path(a.out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    path = str(data / "deepspeed-vs-gdswap.dat")
    dropped = drop_caches()
    points = [main_pt] + [p for p in grid if p != main_pt]
    results = []
    for io, block, qd in points:
        for op in ops:
            if op == "read":
                make_file(path, io)
            samples = {"deepspeed": [], "gdswap": []}
            for pair in range(a.pairs):
                order = ["deepspeed", "gdswap"] if pair % 2 == 0 else ["gdswap", "deepspeed"]
                for name in order:
                    drop_caches()
                    t = ds_io(handles[name], op, path, io, block, qd, a.loops, a.warmup)
                    samples[name].append(io / statistics.median(t) / (1 << 30))
            raw = str(out / "raw" / f"gdswap-run-{op}-{human(io)}-{human(block)}-qd{qd}.json")
            run_gibps, cmd = gdswap_run(binary, op, path, io, block, qd, a.loops, a.warmup, raw)
            ds_m = statistics.median(samples["deepspeed"])
            gd_m = statistics.median(samples["gdswap"])
            r = {"op": op, "io_size": io, "block_size": block, "queue_depth": qd,
                 "deepspeed_gibps": samples["deepspeed"], "gdswap_gibps": samples["gdswap"],
                 "deepspeed_median": ds_m, "gdswap_median": gd_m,
                 "gdswap_over_deepspeed": gd_m / ds_m, "gdswap_run_gibps": run_gibps,
                 "handle_over_run": gd_m / run_gibps, "gdswap_run_command": cmd,
                 "main_point": (io, block, qd) == main_pt}
            results.append(r)
            print(f"{op:5} {human(io):>4} bs {human(block):>4} qd {qd:>3}: deepspeed "
                  f"{ds_m:.3f} GiB/s, gdswap {gd_m:.3f} ({r['gdswap_over_deepspeed']:.2f}x), "
                  f"gdswap run {run_gibps:.3f} (handle/run {r['handle_over_run']:.2f})", flush=True)
    if os.path.exists(path):
        os.remove(path)

    meta = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "deepspeed": deepspeed.__version__, "torch": torch.__version__,
            "gdswap": gdswap.__version__, "gdswap_binary": binary, "python": platform.python_version(),
            "kernel": platform.release(), "data_dir": str(data), "caches_dropped": dropped,
            "pairs": a.pairs, "loops": a.loops, "warmup": a.warmup,
            "schedule": "ds_io: pre (handle, new_cpu_locked_tensor), main (pread/pwrite async + wait per loop), post (free)",
            "handle_args": "block_size, queue_depth, single_submit=False, overlap_events=True, intra_op_parallelism=1"}
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    rows = ["| op | I/O size | block | qd | DeepSpeed GiB/s | gdswap handle GiB/s | gdswap/DeepSpeed | `gdswap run` GiB/s | handle/run |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mark = " **(benchmark point)**" if r["main_point"] else ""
        rows.append(f"| {r['op']}{mark} | {human(r['io_size'])} | {human(r['block_size'])} | "
                    f"{r['queue_depth']} | {r['deepspeed_median']:.3f} | {r['gdswap_median']:.3f} | "
                    f"{r['gdswap_over_deepspeed']:.2f}x | {r['gdswap_run_gibps']:.3f} | "
                    f"{r['handle_over_run']:.2f} |")
    slower = [r for r in results if r["gdswap_over_deepspeed"] < 1.0]
    below = [r for r in results if r["handle_over_run"] < 0.97]
    text = [f"# DeepSpeed {meta['deepspeed']} aio_handle vs gdswap {meta['gdswap']} aio_handle",
            "", f"{meta['finished_at']}, kernel {meta['kernel']}, torch {meta['torch']}, data in "
            f"{meta['data_dir']}; page cache dropped before each run: {dropped}. Medians of "
            f"{a.pairs} interleaved pairs, each run {a.warmup} warm-up + {a.loops} measured loops "
            "(ds_io's schedule; handle args: " + meta["handle_args"] + ").", "", *rows, "",
            f"Points where gdswap's handle is slower than DeepSpeed's: {len(slower)}; where it is "
            f"below 0.97x of `gdswap run`: {len(below)}.", "",
            f"Command: `{' '.join(sys.argv)}`", ""]
    (out / "README.md").write_text("\n".join(text))
    print(f"wrote {out / 'README.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"deepspeed-vs-gdswap: {e}", file=sys.stderr)
        sys.exit(1)
