"""The DeepSpeed switch: `gdswap.deepspeed.install()` makes DeepSpeed's
`AsyncIOBuilder().load()` return this module, whose `aio_handle` is gdswap's. Call it before
DeepSpeed builds its swappers (before deepspeed.initialize)."""

from ._aio import aio_handle  # noqa: F401  (what AsyncIOBuilder().load().aio_handle finds)


def deepspeed_memcpy(dst, src):
    """DeepSpeed's module function of the same name."""
    dst.copy_(src)
    return 0


def install():
    """Patches deepspeed.ops.op_builder.AsyncIOBuilder so that load() returns gdswap's module
    (no JIT build, no libaio) and is_compatible() is True. Returns the previous load."""
    import sys

    from deepspeed.ops.op_builder import AsyncIOBuilder

    previous = AsyncIOBuilder.load
    module = sys.modules[__name__]

    def load(self, verbose=True):
        return module

    AsyncIOBuilder.load = load
    AsyncIOBuilder.is_compatible = lambda self, verbose=False: True
    return previous
