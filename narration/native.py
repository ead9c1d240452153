"""Keep native libraries' banners out of our logs."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

_BANNERS = ("XNNPACK delegate",)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Swallow banners that C++ code writes straight to fd 2 (LiteRT's "Created XNNPACK delegate").

    Anything else written meanwhile is replayed afterwards, so no other output is lost; only used around
    model loading, which is short.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if not any(b in line for b in _BANNERS):
                    print(line, file=sys.stderr)
