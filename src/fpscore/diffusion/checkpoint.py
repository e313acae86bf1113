"""Resumable training checkpoints: what identifies a training trajectory (``fingerprint``), the
checkpoint itself (model, optimizer, EMA, RNG states and the loop's plain state, written whole or
not at all) and the signals that turn into one (SIGINT / SIGTERM at a step boundary).

A checkpoint is picked up only by a run whose fingerprint matches (settings, method, network,
evaluator, data); any other is ignored, never mixed in.
"""
from __future__ import annotations

import hashlib
import json
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from fpscore.fileio import atomic_outputs


def fingerprint(*parts) -> str:
    """SHA-256 of JSON-able parts and arrays: identifies a training trajectory for resuming."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):  # in blocks of rows: the bytes of the whole, never all in memory
            h.update(str((part.shape, part.dtype)).encode())
            rows = part.reshape(1, -1) if part.ndim == 0 else part
            for start in range(0, len(rows), 256):
                h.update(np.ascontiguousarray(rows[start:start + 256]).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_outputs(path) as (tmp,):
        torch.save(obj, tmp)


def save_checkpoint(path: Path, fp: str, net, opt, ema, batch_gen: torch.Generator, device: torch.device,
                    state: dict) -> None:
    """Write the resumable checkpoint of a training run (``state``: the loop's plain data)."""
    atomic_torch_save({
        "fingerprint": fp, "net": net.state_dict(), "opt": opt.state_dict(),
        "ema": ema.state_dict() if ema is not None else None, "torch_rng": torch.get_rng_state(),
        "batch_rng": batch_gen.get_state(), "numpy_rng": np.random.get_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "state": state}, path)


def load_checkpoint(path: Path, fp: str, net, opt, ema, batch_gen: torch.Generator,
                    device: torch.device) -> dict | None:
    """Restore a run from the checkpoint at ``path`` when its fingerprint is ``fp``: the tensors, the
    optimizer, the EMA and every RNG state are loaded in place and the loop's plain state returned;
    None when there is no checkpoint or it belongs to another trajectory."""
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)  # RNG states must stay on the CPU
    if saved.get("fingerprint") != fp:
        return None
    net.load_state_dict(saved["net"])
    opt.load_state_dict(saved["opt"])
    if ema is not None:
        ema.load_state_dict(saved["ema"])
    torch.set_rng_state(saved["torch_rng"])
    batch_gen.set_state(saved["batch_rng"])
    np.random.set_state(saved["numpy_rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return saved["state"]


class Interrupt:
    """Turns SIGINT / SIGTERM into a flag checked at step boundaries (main thread only)."""

    def __init__(self):
        self.signal = None

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, lambda signum, frame: setattr(self, "signal", signum))
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
