# fio-peer.sh: the fio command of the fio-vs-host comparison, sourced by bench/fio-vs-host.sh
# and bench/fio-vs-fio.sh (its A/A test), so both run exactly the same fio.
#
# fio_cmd RW JSON sets FIO_CMD: fio's io_uring engine, O_DIRECT, 1 MiB blocks, queue depth 8,
# one job, a warm-up loop then 3 measured loops over the file, JSON output to JSON. It reads
# DATA_FILE, SIZE_BYTES (what fio's --size takes), FIO_MEM (buffer options, may be empty)
# and FIO_EXTRA_ARGS (extra options, may be empty) from the sourcing script.

fio_cmd() { # RW JSON
    local rw=$1 json=$2
    FIO_CMD=(fio --output-format=json "--output=$json" --ioengine=io_uring --direct=1 --bs=1M
        --iodepth=8 --lat_percentiles=1 "--rw=$rw" --numjobs=1 "--filename=$DATA_FILE" "--size=$SIZE_BYTES"
        "${FIO_MEM[@]}" "${FIO_EXTRA_ARGS[@]}"
        --name=warmup --loops=1 --name=measured --stonewall --loops=3)
}
