"""The training loop shared by our method, the DSM baseline and the DDPM baseline.

Split as in Song et al.'s score_sde_pytorch: a ``TrainState`` (everything a checkpoint
holds besides the tensors), an ``EMA`` of the weights with its decay schedule
(``fpscore.diffusion.ema``), resumable checkpoints (``fpscore.diffusion.checkpoint``), and an
injected evaluation function (``fpscore.diffusion.evaluation.Evaluator``: one protocol,
written once, used by the stopping rule here and by the CLI's sample / ssim steps).

Stopping rules: ``target_ssim`` (at each scheduled evaluation, run the evaluator and stop
once its mean SSIM reaches the target), ``budget`` (stop when training time reaches
``budget_seconds``) and ``steps`` (a step count, deterministic: for tests). Every run also
stops at ``time_cap_seconds`` of training; a target not reached by then is reported as not
reached. Evaluations (``EVAL_SCHEDULES``): ``uniform`` every ``eval_every_seconds``, or
``geometric`` at training time 0, 1, 2, 4, 8 ... s with the spacing capped at
``eval_every_seconds`` (resolves the early curve). Training time excludes evaluation and
checkpoint time; both clocks are logged. Training and evaluation seconds are wall time
(``clock="wall"``) or the process's CPU time (``clock="cpu"``: steadier than wall time on a
shared CPU machine, meaningless on a GPU); the summary names the clock.

Adam (a constant learning rate, after an optional linear warm-up) with optional gradient
clipping and EMA; seeded numpy / torch generators. A resumable checkpoint (model, optimizer,
EMA, RNG states, the TrainState) is written every ``checkpoint_every_seconds`` of wall time,
on SIGINT/SIGTERM and on an error at a step boundary, and picked up by a rerun whose
fingerprint matches: every TrainSettings field but those in ``RESUMABLE_KEYS`` (so a new
setting can never let a resume mix settings), the method, the network, the evaluator and
the data.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from fpscore.config import check, schema_default, violation
from fpscore.diffusion.checkpoint import Interrupt, fingerprint, load_checkpoint, save_checkpoint
from fpscore.diffusion.ema import EMA
from fpscore.diffusion.evaluation import Evaluator
from fpscore.names import EVAL_SCHEDULES, STOP_RULES

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
LOG_COLUMNS = ("step", "train_seconds", "eval_seconds", "loss", "ssim")
LOG_EVERY_STEPS = 10
#: TrainSettings fields a resumed run may change (they end a run, they do not change its trajectory).
RESUMABLE_KEYS = ("checkpoint_every_seconds", "time_cap_seconds")


@dataclass(frozen=True)
class TrainSettings:
    """The config section `learn.train` (threads and times aside; defaults: the schema's).

    ema_warmup: EMA decay min(ema_decay, (1 + k) / (10 + k)) at update k (``EMA``);
    lr_warmup_steps: learning rate lr * min(1, (k + 1) / lr_warmup_steps) at update k (``warmup_lr``);
    eval_schedule: uniform | geometric (see the module docstring).
    """

    batch_size: int = schema_default("learn.train.batch_size")
    lr: float = schema_default("learn.train.lr")
    lr_warmup_steps: int = schema_default("learn.train.lr_warmup_steps")
    grad_clip: float = schema_default("learn.train.grad_clip")
    ema_decay: float = schema_default("learn.train.ema_decay")
    seed: int = schema_default("learn.train.seed")
    eval_every_seconds: float = schema_default("learn.train.eval_every_seconds")
    eval_samples: int = schema_default("learn.train.eval_samples")
    checkpoint_every_seconds: float = schema_default("learn.train.checkpoint_every_seconds")
    time_cap_seconds: float = schema_default("learn.train.time_cap_seconds")
    ema_warmup: bool = schema_default("learn.train.ema_warmup")
    eval_schedule: str = schema_default("learn.train.eval_schedule")

    def __post_init__(self):
        check("learn.train", asdict(self))  # "learn.train.batch_size: expected an integer >= 1, got 0"

    def trajectory_dict(self) -> dict:
        """Every setting a checkpoint must match: all fields but RESUMABLE_KEYS."""
        return {k: v for k, v in asdict(self).items() if k not in RESUMABLE_KEYS}


@dataclass(frozen=True)
class StopRule:
    """kind: target_ssim | budget | steps, with its parameter."""

    kind: str
    target_ssim: float | None = None
    budget_seconds: float | None = None
    max_steps: int | None = None

    def __post_init__(self):
        if self.kind not in STOP_RULES:
            raise ValueError(f"stop: expected one of {STOP_RULES}, got {self.kind!r}")
        # the bounds of the experiments' keys (experiments.denoise[].target_ssim, budget[].budget_seconds)
        if self.kind == "target_ssim" and (why := violation("experiments.denoise[].target_ssim", self.target_ssim)):
            raise ValueError(f"target_ssim: {why}")
        if self.kind == "budget" and (why := violation("experiments.budget[].budget_seconds", self.budget_seconds)):
            raise ValueError(f"budget_seconds: {why}")
        if self.kind == "steps" and not (isinstance(self.max_steps, (int, np.integer)) and self.max_steps >= 1):
            raise ValueError(f"max_steps: expected an integer >= 1, got {self.max_steps!r}")


@dataclass
class TrainState:
    """What a checkpoint holds besides tensors and RNG states; plain data (JSON-able)."""

    step: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    log: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    best_ssim: float = math.nan
    reached_at: float | None = None
    resumed_from_step: int = 0
    next_eval_seconds: float | None = None  # scheduled training time of the next evaluation


@dataclass
class TrainResult:
    """net: the weights to sample with (EMA when enabled); log: rows of LOG_COLUMNS; summary: JSON-able;
    optimizer_state: the final Adam state dict."""

    net: torch.nn.Module
    log: list[dict]
    summary: dict
    evaluations: list[dict] = field(default_factory=list)
    optimizer_state: dict = field(default_factory=dict)


def next_eval_time(schedule: str, every: float, scheduled: float | None) -> float:
    """The training time of the evaluation after the one scheduled at `scheduled` (None: the first).

    uniform: every, 2 every, ...; geometric: 0, min(1, every), then doubling with the gap capped at every.
    """
    if schedule == "uniform":
        return every if scheduled is None else scheduled + every
    if schedule == "geometric":
        if scheduled is None:
            return 0.0
        return min(1.0, every) if scheduled == 0 else scheduled + min(scheduled, every)
    raise ValueError(f"train.eval_schedule: expected one of {EVAL_SCHEDULES}, got {schedule!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warmup_lr(lr: float, warmup_steps: int, step: int) -> float:
    """The learning rate of update ``step`` (0-based) under a linear warm-up of ``warmup_steps`` (0: none)."""
    return lr if warmup_steps <= 0 else lr * min(1.0, (step + 1) / warmup_steps)


def default_evaluator(settings: TrainSettings) -> Evaluator:
    """Today's evaluation: generate `eval_samples` samples (seed + 1), SSIM of clipped samples to the closest image."""
    return Evaluator("generate", settings.eval_samples, settings.seed + 1, "clip")


def train(method, net: torch.nn.Module, references: np.ndarray, settings: TrainSettings, stop: StopRule,
          checkpoint_path: str | Path | None = None, data_fingerprint: str = "", progress: bool = True,
          callback: Callable[[int, TrainState], None] | None = None, clock: str = "wall",
          evaluator: Evaluator | None = None) -> TrainResult:
    """Train `net` with `method` (OursMethod / DSMMethod / DDPMMethod) until the stop rule or the time cap.

    references: the training images N x C x H x W in [0, 1] (what the evaluator scores against).
    checkpoint_path: where the resumable checkpoint lives (None: no checkpoints).
    data_fingerprint: identifies the training data; a checkpoint with another one is ignored.
    callback(step, state) runs after every step (tests use it to interrupt a run).
    clock: wall | cpu, the clock of the training and evaluation seconds (see the module docstring).
    evaluator: evaluator(method, model, references) -> dict with "ssim" (default: ``default_evaluator``).
    """
    references = np.asarray(references, dtype=np.float32)
    device = next(net.parameters()).device
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {tuple(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and device.type != "cpu":
        raise ValueError(f"clock cpu: the process's CPU time does not measure training on {device}; use wall")
    if hasattr(method, "check_batch"):
        method.check_batch(settings.batch_size)
    evaluator = evaluator if evaluator is not None else default_evaluator(settings)
    if hasattr(evaluator, "check"):
        evaluator.check(method)
    now = CLOCKS[clock]
    fp = fingerprint(method.describe(), net.config.as_dict(), settings.trajectory_dict(),
                     evaluator.describe() if hasattr(evaluator, "describe") else repr(evaluator), data_fingerprint)

    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    batch_gen = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    ema = EMA(net, settings.ema_decay, settings.ema_warmup) if settings.ema_decay > 0 else None
    st = TrainState()
    evaluating = stop.kind != "steps"
    if evaluating:
        st.next_eval_seconds = next_eval_time(settings.eval_schedule, settings.eval_every_seconds, None)

    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if ckpt is not None and ckpt.exists():
        saved = load_checkpoint(ckpt, fp, net, opt, ema, batch_gen, device)
        if saved is not None:
            st = TrainState(**saved)
            st.resumed_from_step = st.step
            tqdm.write(f"resuming from checkpoint {ckpt} at step {st.step} "
                       f"({st.train_seconds:.1f} training seconds)")
        else:
            tqdm.write(f"ignoring checkpoint {ckpt}: it belongs to other training settings or data")

    def save():
        if ckpt is not None:
            save_checkpoint(ckpt, fp, net, opt, ema, batch_gen, device, asdict(st))

    def flush_row(ssim=math.nan):
        loss = st.loss_sum / st.loss_count if st.loss_count else math.nan
        st.log.append({"step": st.step, "train_seconds": st.train_seconds, "eval_seconds": st.eval_seconds,
                       "loss": loss, "ssim": ssim})
        st.loss_sum, st.loss_count = 0.0, 0

    def evaluate() -> float:
        t0 = now()
        info = evaluator(method, ema.model if ema is not None else net, references)
        value = float(info["ssim"])
        st.eval_seconds += now() - t0
        st.evaluations.append({"step": st.step, "train_seconds": st.train_seconds,
                               **{k: v for k, v in info.items() if k != "ssim"}, "ssim": value})
        st.best_ssim = value if math.isnan(st.best_ssim) else max(st.best_ssim, value)
        flush_row(value)
        if stop.kind == "target_ssim" and st.reached_at is None and value >= stop.target_ssim:
            st.reached_at = st.train_seconds
        return value

    def evaluate_if_due() -> bool:
        if not evaluating or st.train_seconds < st.next_eval_seconds:
            return False
        evaluate()
        while st.next_eval_seconds <= st.train_seconds:  # one evaluation however many slots a step crossed
            st.next_eval_seconds = next_eval_time(settings.eval_schedule, settings.eval_every_seconds,
                                                  st.next_eval_seconds)
        return True

    limit = settings.time_cap_seconds
    if stop.kind == "budget":
        limit = min(limit, stop.budget_seconds)

    def stopped_by() -> str | None:
        if stop.kind == "target_ssim" and st.reached_at is not None:
            return "target"
        if stop.kind == "steps" and st.step >= stop.max_steps:
            return "steps"
        if stop.kind == "budget" and st.train_seconds >= stop.budget_seconds:
            return "budget"
        if st.train_seconds >= settings.time_cap_seconds:
            return "time_cap"
        return None

    def train_step() -> float:
        _sync(device)
        t0 = now()
        loss = method.loss(net, settings.batch_size, batch_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.lr_warmup_steps:
            for group in opt.param_groups:
                group["lr"] = warmup_lr(settings.lr, settings.lr_warmup_steps, st.step)
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
        opt.step()
        if ema is not None:
            ema.update(net)
        _sync(device)
        dt = now() - t0
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {st.step + 1}; "
                                     "lower train.lr or enable train.grad_clip")
        st.train_seconds += dt
        st.step += 1
        st.loss_sum += loss_value
        st.loss_count += 1
        return loss_value

    net.train()
    interrupt = Interrupt()
    last_ckpt = time.perf_counter()
    bar = tqdm(total=round(limit, 1), unit="s", desc=f"train {method.name}", disable=not progress,
               initial=round(min(st.train_seconds, limit), 1), bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
               "[{elapsed}<{remaining}{postfix}]")
    with interrupt.installed():
        try:
            evaluate_if_due()  # the geometric schedule's evaluation at training time 0
            while (reason := stopped_by()) is None:
                loss_value = train_step()
                bar.update(round(min(st.train_seconds, limit) - bar.n, 3))
                if not evaluate_if_due() and st.loss_count >= LOG_EVERY_STEPS:
                    flush_row()
                bar.set_postfix(step=st.step, loss=f"{loss_value:.4g}", ssim=f"{st.best_ssim:.3f}", refresh=False)
                if callback is not None:
                    callback(st.step, st)
                if interrupt.signal is not None:
                    raise KeyboardInterrupt(f"signal {interrupt.signal}")
                if ckpt is not None and time.perf_counter() - last_ckpt >= settings.checkpoint_every_seconds:
                    save()
                    last_ckpt = time.perf_counter()
        except BaseException:
            # Every path into here is a step boundary or a failed step whose parameters were not
            # updated (loss / backward errors): the state is consistent, so keep it for a rerun.
            save()
            bar.close()
            raise
    bar.close()
    if not st.evaluations or st.evaluations[-1]["step"] != st.step:
        evaluate()  # the state the run ends in is always measured
    elif st.loss_count:
        flush_row()
    final = st.evaluations[-1]
    summary = {
        "method": method.name, "stop": stop.kind, "stopped_by": reason, "target_ssim": stop.target_ssim,
        "budget_seconds": stop.budget_seconds, "max_steps": stop.max_steps,
        "time_cap_seconds": settings.time_cap_seconds,
        "reached": (st.reached_at is not None) if stop.kind == "target_ssim" else None,
        "time_to_target_seconds": st.reached_at, "steps": st.step, "train_seconds": st.train_seconds,
        "eval_seconds": st.eval_seconds, "evaluations": len(st.evaluations), "final_ssim": final["ssim"],
        "best_ssim": st.best_ssim, "eval_sampler": final["sampler"], "eval_samples": settings.eval_samples,
        "eval_protocol": final.get("protocol"), "ssim_mode": final.get("ssim_mode"),
        "noise_std": final.get("noise_std"),
        "resumed_from_step": st.resumed_from_step, "settings": asdict(settings), "device": str(device),
        "threads": torch.get_num_threads(), "clock": clock,
    }
    return TrainResult(net=ema.model if ema is not None else net, log=st.log, summary=summary,
                       evaluations=st.evaluations, optimizer_state=opt.state_dict())
