import sys
import threading

import pytest


class Ticker:
    """A second Python thread counting while the main thread is in a call: with a long switch
    interval the main thread never hands over the GIL on its own, so the count moves during the
    call only if the call released the GIL."""

    def __init__(self):
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.count += 1

    def __enter__(self):
        self._old = sys.getswitchinterval()
        self._thread.start()
        while self.count == 0:  # running
            pass
        sys.setswitchinterval(0.5)
        return self

    def __exit__(self, *exc):
        sys.setswitchinterval(self._old)
        self._stop.set()
        self._thread.join()


@pytest.fixture
def ticker():
    return Ticker()
