"""Why DDPM's set samples leave the image range: a plain DDPM loop (no EMA, no trainer) on the 16 faces of the set
part, with the project's UNet, schedule, lr 5e-4, batch 16, for CPU_SECONDS of one thread; then the learnt epsilon
against the exact epsilon of the 16-face empirical distribution at steps 0..999 (mse; dc_rms: the RMS over images
of the per-image mean of the error) and 8 ancestral samples (the fraction of pixels outside [0, 1], their means).

    python benchmarks/ddpm_probe.py CPU_SECONDS > benchmarks/results/verdict/sets/ddpm_probe.log
"""
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
from verdict_sets import load_set  # noqa: E402
from fpscore.config import schema_default  # noqa: E402
from fpscore.diffusion.ddpm import DDPMSchedule
from fpscore.diffusion.losses import ddpm_loss
from fpscore.diffusion.methods import DDPMMethod
from fpscore.diffusion.unet import UNet, UNetConfig

cap = float(sys.argv[1])
images = load_set("faces", 16, 32)
dd = schema_default("learn.ddpm"); u = schema_default("learn.unet")
schedule = DDPMSchedule(dd["timesteps"], dd["beta_start"], dd["beta_end"])
torch.manual_seed(0)
net = UNet(UNetConfig(in_channels=1, resolution=32, base_channels=u["base_channels"], channel_mults=tuple(u["channel_mults"]),
                      num_res_blocks=u["num_res_blocks"], attn_resolutions=tuple(u["attn_resolutions"]), dropout=0.0,
                      time_embedding="sinusoidal"))
data = torch.as_tensor(2 * images - 1)
opt = torch.optim.Adam(net.parameters(), lr=5e-4)
gen = torch.Generator().manual_seed(0)
flat = data.reshape(16, -1).double()
abar = torch.as_tensor(schedule.alpha_bars)

def exact(x, steps):
    a = abar[steps.long()].reshape(-1, 1)
    f = x.reshape(x.shape[0], -1).double()
    logw = -((f[:, None] - a.sqrt()[:, None] * flat[None]) ** 2).sum(-1) / (2 * (1 - a))
    return ((f - a.sqrt() * (torch.softmax(logw, 1) @ flat)) / (1 - a).sqrt()).reshape(x.shape).float()

def probe(tag):
    g = torch.Generator().manual_seed(1); rows = {}
    with torch.no_grad():
        for s in (0, 100, 300, 500, 700, 900, 999):
            idx = torch.randint(16, (64,), generator=g); e = torch.randn(64, 1, 32, 32, generator=g)
            a = abar[s].float(); x = a.sqrt() * data[idx] + (1 - a).sqrt() * e
            st = torch.full((64,), float(s)); pred = net(x, st); ex = exact(x, st)
            err = pred - ex
            rows[s] = dict(mse=float(err.square().mean()), dc_rms=float(err.mean(dim=(1, 2, 3)).square().mean().sqrt()),
                           loss_vs_noise=float((pred - e).square().mean()))
    res = DDPMMethod(schedule, "ancestral", dd["ddim_steps"]).sample(net, 8, (1, 32, 32), torch.Generator().manual_seed(2))
    out = dict(tag=tag, probe=rows, outside=float(((res.final < 0) | (res.final > 1)).mean()),
               sample_means=[round(float(m), 2) for m in res.final.reshape(8, -1).mean(1)])
    print(json.dumps(out), flush=True)

t0 = time.process_time(); step = 0; nxt = 60
while time.process_time() - t0 < cap:
    loss = ddpm_loss(net, data, schedule, 16, gen)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step(); step += 1
    if time.process_time() - t0 > nxt:
        print(f"step {step} cpu {time.process_time() - t0:.0f} loss {loss.item():.4f}", flush=True); nxt *= 2
probe(f"raw net after {step} steps")
