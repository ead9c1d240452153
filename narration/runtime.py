"""Thread settings for the inference runtimes, applied once per process and per session."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import onnxruntime as ort

_torch_lock = threading.Lock()
_torch_threads: int | None = None


def ort_session(model: str | Path | bytes, threads: int) -> ort.InferenceSession:
    """A CPU onnxruntime session using `threads` intra-op threads (one inter-op: models run one op at a time)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are noise here
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def configure_torch(threads: int) -> None:
    """Set torch's thread pools (process-wide; the inter-op pool can only be set before first use)."""
    global _torch_threads
    import torch

    with _torch_lock:
        if _torch_threads == threads:
            return
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already started by earlier work in this process
            torch.set_num_interop_threads(1)
        _torch_threads = threads
