"""gdswap for Python: the swap store (`SwapStore`) and DeepSpeed-compatible I/O handles
(`aio_handle` on gdswap's io_uring engine, `gds_handle` on cuFile). Importing needs no CUDA; see
docs/python.md."""

from . import _gdswap
from ._aio import aio_handle, aio_read, aio_write
from ._gds import gds_handle
from ._store import Entry, SwapStore, Ticket

Error = _gdswap.Error
__version__ = _gdswap.__version__


def io_uring_unavailable():
    """Why io_uring cannot be used here (aio_handle and the host backend need it), or None."""
    return _gdswap.io_uring_unavailable()


__all__ = ["SwapStore", "Ticket", "Entry", "Error", "aio_handle", "gds_handle", "aio_read", "aio_write",
           "io_uring_unavailable"]
