#!/usr/bin/env python3
"""DeepSpeed's aio_handle against gdswap's (gdswap.aio_handle), in one process on one file,
with DeepSpeed's `ds_io` schedule, and `gdswap run` on the same bytes (issue 13, item 4).

Each handle measurement is one ds_io run (deepspeed/nvme/ds_aio_handle.py, AIOHandle_Engine,
deepspeed 0.19): *pre* removes the file to be written (`_create_files`: once, before the run),
creates the handle (block_size, queue_depth, single_submit=False, overlap_events=True, one
thread) and a page-locked buffer of the I/O size (new_cpu_locked_tensor); *main* does
warm-up + LOOPS times `pread(buffer, file, False, True)` (or `pwrite`) then `wait()`, each loop
timed, every loop on the same file (ds_io's per-loop `os.remove` in `write()` is commented out:
the first write creates the file, the others overwrite it); *post* frees the buffer. Its
figure is the median measured loop's GiB/s. `gdswap run --backend host` (same block size,
queue depth, one thread, file and size; for a write the file is removed first too, its warm-up
loop writes it and the measured loops overwrite it) gives the figure gdswap's handle should
reach (goal: >= 0.97x).

The three run in rounds: each round runs each of them once, in an order that rotates from
round to round, on the same file, O_DIRECT (DeepSpeed always opens O_DIRECT; gdswap does for
aligned requests, which these all are); as root the page cache is dropped before every run.
Reported: the median over the rounds of each one's figure; gdswap/DeepSpeed and handle/run are
ratios of those medians (results.json also has every round's figures and the median of the
per-round handle/run ratios).

Configurations: DeepSpeed's benchmark point (1 GiB, 1 MiB blocks, queue depth 8) and a small
grid (--block-sizes x --queue-depths x --io-sizes), reads and writes.

Usage: python bench/deepspeed-vs-gdswap.py OUT_DIR --data-dir DIR [options]
  (run it with the Python that has torch, deepspeed and a release build of gdswap's wheel
  installed; a debug wheel is refused unless --allow-debug-wheel; DeepSpeed's async_io op
  JIT-builds on first use: ninja, g++ and libaio-dev)
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


def prepare(op, path):
    """Before every run: a write starts from no file (ds_io's pre phase, `_create_files`,
    removes the files it will write; `gdswap run` gets the same), then the page cache is
    dropped (after the removal, so that its sync also flushes the freed blocks)."""
    if op == "write" and os.path.exists(path):
        os.remove(path)
    drop_caches()


def ds_io(make_handle, op, path, io_size, block, qd, loops, warmup):
    """One ds_io run after prepare(): pre (handle, locked buffer), main (warm-up + loops, all
    on the same file: a write's first loop creates it, the others overwrite it, as ds_io's),
    post (free). The measured loops' seconds."""
    import torch

    h = make_handle(block, qd, False, True, 1)
    buf = h.new_cpu_locked_tensor(io_size, torch.empty(0, dtype=torch.uint8))
    if op == "write":
        buf.random_(0, 128)
    times = []
    try:
        for i in range(warmup + loops):
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
    """One `gdswap run` after prepare(): its median loop's GiB/s and the command."""
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
    ap.add_argument("--rounds", "--pairs", dest="rounds", type=int, default=5,
                    help="rounds per point, each running DeepSpeed's handle, gdswap's and "
                         "`gdswap run` once in rotating order (5; --pairs is the old name)")
    ap.add_argument("--loops", type=int, default=3, help="measured loops per run (3)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured loops first (1)")
    ap.add_argument("--main", default="1G,1M,8", help="the benchmark point io,block,qd")
    ap.add_argument("--block-sizes", default="128K,1M,4M")
    ap.add_argument("--queue-depths", default="4,32")
    ap.add_argument("--io-sizes", default="64M,1G")
    ap.add_argument("--ops", default="read,write")
    ap.add_argument("--allow-debug-wheel", action="store_true",
                    help="measure a debug build of gdswap's wheel (ci.sh's): not comparable "
                         "with the release `gdswap run`")
    ap.add_argument("--gdswap", default=None,
                    help="the gdswap binary (default: target/release/gdswap, else on PATH)")
    a = ap.parse_args()
    try:
        main_pt = tuple(size(x) for x in a.main.split(","))
        grid = [(io, b, q) for io in map(size, a.io_sizes.split(","))
                for b in map(size, a.block_sizes.split(",")) for q in map(int, a.queue_depths.split(","))]
        ops = a.ops.split(",")
        assert set(ops) <= {"read", "write"} and a.rounds > 0 and a.loops > 0 and len(main_pt) == 3
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

    debug_wheel = bool(getattr(gdswap._gdswap, "_debug_build", True))
    if debug_wheel and not a.allow_debug_wheel:
        ap.error(f"the gdswap wheel in {gdswap.__file__} is a debug build (or predates "
                 "_debug_build): install a release one (maturin build --release) or pass "
                 "--allow-debug-wheel")

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
            names = ["deepspeed", "gdswap", "run"]
            samples = {n: [] for n in names}
            run_cmd = None
            orders = []
            for rnd in range(a.rounds):
                order = names[rnd % 3:] + names[:rnd % 3]
                orders.append(order)
                for name in order:
                    prepare(op, path)
                    if name == "run":
                        raw = str(out / "raw" / f"gdswap-run-{op}-{human(io)}-{human(block)}-"
                                  f"qd{qd}-round{rnd}.json")
                        gibps, run_cmd = gdswap_run(binary, op, path, io, block, qd, a.loops,
                                                    a.warmup, raw)
                    else:
                        t = ds_io(handles[name], op, path, io, block, qd, a.loops, a.warmup)
                        gibps = io / statistics.median(t) / (1 << 30)
                    samples[name].append(gibps)
            ds_m, gd_m, run_m = (statistics.median(samples[n]) for n in names)
            per_round = [g / r for g, r in zip(samples["gdswap"], samples["run"])]
            r = {"op": op, "io_size": io, "block_size": block, "queue_depth": qd,
                 "deepspeed_gibps": samples["deepspeed"], "gdswap_gibps": samples["gdswap"],
                 "gdswap_run_gibps": samples["run"],
                 "deepspeed_median": ds_m, "gdswap_median": gd_m, "gdswap_run_median": run_m,
                 "gdswap_over_deepspeed": gd_m / ds_m, "handle_over_run": gd_m / run_m,
                 "handle_over_run_per_round": per_round,
                 "handle_over_run_per_round_median": statistics.median(per_round),
                 "round_orders": orders, "gdswap_run_command": run_cmd, "main_point": (io, block, qd) == main_pt}
            results.append(r)
            print(f"{op:5} {human(io):>4} bs {human(block):>4} qd {qd:>3}: deepspeed "
                  f"{ds_m:.3f} GiB/s, gdswap {gd_m:.3f} ({r['gdswap_over_deepspeed']:.2f}x), "
                  f"gdswap run {run_m:.3f} (handle/run {r['handle_over_run']:.2f}, per-round "
                  f"median {r['handle_over_run_per_round_median']:.2f})", flush=True)
    if os.path.exists(path):
        os.remove(path)

    meta = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "deepspeed": deepspeed.__version__, "torch": torch.__version__,
            "gdswap": gdswap.__version__, "gdswap_binary": binary, "python": platform.python_version(),
            "kernel": platform.release(), "data_dir": str(data), "caches_dropped": dropped,
            "gdswap_wheel": "debug" if debug_wheel else "release",
            "rounds": a.rounds, "loops": a.loops, "warmup": a.warmup,
            "schedule": "ds_io: pre (remove the write file once, handle, new_cpu_locked_tensor), main (pread/pwrite async + wait per loop, same file: writes after the first overwrite), post (free)",
            "rounds_order": "each round runs deepspeed, gdswap, gdswap run once, the order rotating by one per round; page cache dropped before each run",
            "ratios": "gdswap/DeepSpeed and handle/run are ratios of the medians over the rounds",
            "handle_args": "block_size, queue_depth, single_submit=False, overlap_events=True, intra_op_parallelism=1"}
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    rows = ["| op | I/O size | block | qd | DeepSpeed GiB/s | gdswap handle GiB/s | gdswap/DeepSpeed | `gdswap run` GiB/s | handle/run |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mark = " **(benchmark point)**" if r["main_point"] else ""
        rows.append(f"| {r['op']}{mark} | {human(r['io_size'])} | {human(r['block_size'])} | "
                    f"{r['queue_depth']} | {r['deepspeed_median']:.3f} | {r['gdswap_median']:.3f} | "
                    f"{r['gdswap_over_deepspeed']:.2f}x | {r['gdswap_run_median']:.3f} | "
                    f"{r['handle_over_run']:.2f} |")
    slower = [r for r in results if r["gdswap_over_deepspeed"] < 1.0]
    below = [r for r in results if r["handle_over_run"] < 0.97]
    text = [f"# DeepSpeed {meta['deepspeed']} aio_handle vs gdswap {meta['gdswap']} aio_handle",
            "", f"{meta['finished_at']}, kernel {meta['kernel']}, torch {meta['torch']}, data in "
            f"{meta['data_dir']}; page cache dropped before each run: {dropped}; gdswap wheel: "
            f"{meta['gdswap_wheel']} build. Medians of {a.rounds} rounds; each round runs "
            "DeepSpeed's handle, gdswap's handle and `gdswap run` once, in an order rotating "
            f"from round to round; each run is {a.warmup} warm-up + {a.loops} measured loops, "
            "its figure the median loop (ds_io's schedule; handle args: "
            + meta["handle_args"] + "). Writes as ds_io does them: the file is removed once "
            "before each run, the warm-up loop creates it and the measured loops overwrite it "
            "(the same for `gdswap run`). gdswap/DeepSpeed and handle/run are ratios of the "
            "medians (results.json: every round's figures, and the median of the per-round "
            "handle/run ratios).", "", *rows, "",
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
