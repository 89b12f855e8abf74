"""gdswap.SwapStore: named tensors swapped between memory and files, through gdswap's store."""

from collections import namedtuple

from . import _gdswap
from ._arrays import MISSING, describe

Entry = namedtuple("Entry", "name dtype shape nbytes generation")
Entry.__doc__ = "A tensor in the store: its name, dtype, shape, byte length and generation."

Ticket = _gdswap._Ticket


def _stream(a):
    """The native layer's form: (given, handle); not given: the legacy default stream; given
    None: nothing to wait for."""
    return (False, None) if a.stream is MISSING else (True, a.stream)


class SwapStore:
    """A swap store in directory `path` (created if missing): `data.bin` and `manifest.json`.

    backend: "host" (io_uring), "posix", "bounce" or "gds" (the last two need a GPU);
    budget: bytes of staging memory the store may hold at once (going over is an error, never
    an out-of-memory kill); io_threads: swaps running at once (default: the CPUs, at most 4);
    gpu: the GPU a device backend stages on. `direct=False` for filesystems without O_DIRECT
    (tmpfs). `discard_existing=True` starts over, removing an existing store's two files.

    Every call that may block releases the GIL. Tensors are numpy arrays and torch CPU
    tensors, contiguous; their dtype and shape are recorded and checked on the way back.

    A "gds" store still open at interpreter exit is closed by an atexit handler (swaps in
    flight end, swap-outs are committed), and cuFile with it; its calls after that raise
    gdswap.Error (docs/python.md, "At interpreter exit").
    """

    def __init__(
        self,
        path,
        backend="host",
        budget=1 << 30,
        io_threads=None,
        gpu=0,
        *,
        verify=True,
        direct=True,
        discard_existing=False,
        block_size=1 << 20,
        queue_depth=8,
    ):
        self._core = _gdswap._Store.open(
            str(path),
            backend,
            int(budget),
            io_threads,
            int(gpu),
            bool(verify),
            bool(direct),
            bool(discard_existing),
            int(block_size),
            int(queue_depth),
        )

    open = classmethod(lambda cls, *a, **kw: cls(*a, **kw))

    @property
    def path(self):
        return self._core.path

    @property
    def backend(self):
        return self._core.backend

    @property
    def closed(self):
        return self._core.closed

    def swap_out(self, name, tensor):
        """Starts writing `tensor` as the new version of `name`; returns a Ticket. The bytes are
        copied before this returns, so the tensor may change at once; the version is durable
        (and the one a crash leaves) when the ticket's wait() returns."""
        a = describe(tensor, f"swap_out({name!r})", writable=False, allow_cuda=True)
        if a.cuda:
            return self._core.swap_out_device(
                name, a.address, a.nbytes, a.dtype, a.shape, a.device, *_stream(a)
            )
        return self._core.swap_out(name, a.address, a.nbytes, a.dtype, a.shape)

    def swap_in(self, name, tensor):
        """Starts reading `name` into `tensor`, which must have its recorded dtype and shape;
        returns a Ticket (the bytes are in `tensor` once wait() returns, or done() is True).
        The ticket holds `tensor` until then."""
        a = describe(tensor, f"swap_in({name!r})", writable=True, allow_cuda=True)
        e = self.info(name)
        if (e.dtype, list(e.shape)) != (a.dtype, a.shape):
            raise ValueError(
                f"swap_in({name!r}): stored as {e.dtype} {list(e.shape)}, "
                f"the destination is {a.dtype} {a.shape}"
            )
        if a.cuda:
            return self._core.swap_in_device(
                name, a.obj, a.address, a.nbytes, a.device, *_stream(a)
            )
        return self._core.swap_in(name, a.obj, a.address, a.nbytes)

    def prefetch(self, name):
        """Starts reading `name` into staging memory, so that a later swap_in only copies."""
        self._core.prefetch(name)

    def remove(self, name):
        """Removes `name` (durably before returning)."""
        self._core.remove(name)

    def list(self):
        """The tensors in the store, as Entry tuples."""
        return [Entry(*t) for t in self._core.list()]

    def info(self, name):
        """The Entry of `name`; KeyError if there is none."""
        return Entry(*self._core.info(name))

    def __contains__(self, name):
        try:
            self._core.info(name)
            return True
        except KeyError:
            return False

    def stats(self):
        """Counters since open: staging_now/peak, device_peak, bytes_written/read."""
        return self._core.stats()

    def close(self):
        """Waits for swaps in flight, frees the staging memory, closes the store."""
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"SwapStore({str(self.path)!r}, backend={self.backend!r}, {state})"
