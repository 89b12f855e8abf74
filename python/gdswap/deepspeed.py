"""The DeepSpeed switch: `gdswap.deepspeed.install()` makes DeepSpeed's
`AsyncIOBuilder().load()` return this module, whose `aio_handle` is gdswap's. Call it before
DeepSpeed builds its swappers (before deepspeed.initialize)."""

from ._aio import aio_handle, aio_read, aio_write  # noqa: F401  (AsyncIOBuilder().load()'s)
from ._gds import gds_handle  # noqa: F401  (what GDSBuilder().load().gds_handle finds)


def deepspeed_memcpy(dst, src):
    """DeepSpeed's module function of the same name."""
    dst.copy_(src)
    return 0


def install():
    """Patches deepspeed.ops.op_builder.AsyncIOBuilder (and GDSBuilder, where DeepSpeed has
    it) so that load() returns gdswap's module (no JIT build, no libaio) and is_compatible()
    is True. Returns AsyncIOBuilder's previous load."""
    import sys

    from deepspeed.ops import op_builder

    module = sys.modules[__name__]

    def load(self, verbose=True):
        return module

    previous = op_builder.AsyncIOBuilder.load
    builders = [op_builder.AsyncIOBuilder]
    if getattr(op_builder, "GDSBuilder", None) is not None:
        builders.append(op_builder.GDSBuilder)
    for b in builders:
        b.load = load
        b.is_compatible = lambda self, verbose=False: True
    return previous
