"""Exponential moving average of a network's weights, with the warm-up of the authors' DDPM baseline
(Song et al.'s score_sde): the weights a training run samples with when learn.train.ema_decay > 0."""
from __future__ import annotations

import copy

import torch


class EMA:
    """Exponential moving average of a network's weights (buffers copied), with an optional warm-up.

    Update k = 0, 1, 2 ... uses decay_k = min(decay, (1 + k) / (10 + k)) with warm-up (the
    authors' DDPM baseline; Song et al.'s score_sde), else decay: ema <- decay_k ema + (1 - decay_k) w.
    """

    def __init__(self, net: torch.nn.Module, decay: float, warmup: bool):
        self.model = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = float(decay), bool(warmup), 0

    def decay_at(self, k: int) -> float:
        return min(self.decay, (1.0 + k) / (10.0 + k)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        d = self.decay_at(self.updates)
        for pe, p in zip(self.model.parameters(), net.parameters()):
            pe.lerp_(p, 1.0 - d)
        for be, b in zip(self.model.buffers(), net.buffers()):
            be.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
