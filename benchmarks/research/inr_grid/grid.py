"""Learned multi-resolution feature grid + tiny MLP (Cool-Chic / NGP style) for 3-D stacks.

Latents are integers (step 1) after training; during training uniform noise (then straight-
through rounding) simulates quantisation, and a per-level Laplace model gives a differentiable
rate proxy. Final bytes are an actual serialised blob (header + bigcomp `max`-coded streams),
decoded back from the blob for the reported PSNR.
"""
import argparse, json, math, struct, time, io
import numpy as np
import torch, torch.nn.functional as F
from common import dataset, code_ints, lzma_bytes, B, decode_max

torch.set_num_threads(1)


def parse_levels(s, shape):
    """'4x8x8,8x16x16' or fractions 'f8,f4' (divide z,y,x by the factor; z by min(f, zcap))."""
    out = []
    for tok in s.split(","):
        out.append(tuple(int(v) for v in tok.split("x")))
    return out


class Model(torch.nn.Module):
    def __init__(self, levels, C, hidden, nlayers, act="gelu"):
        super().__init__()
        self.levels = levels
        self.C = C
        self.lat = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(1, C, *l)) for l in levels])
        # per-level log-scale of the Laplace rate model (not stored: the coder is adaptive)
        self.logb = torch.nn.Parameter(torch.zeros(len(levels)))
        dims = [C * len(levels)] + [hidden] * nlayers + [1]
        self.mlp = torch.nn.ModuleList(
            [torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.act = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}[act]
        self.scale = torch.nn.Parameter(torch.ones(len(levels)))  # not used (kept 1)

    def latents(self, mode):
        out = []
        for p in self.lat:
            if mode == "noise":
                out.append(p + (torch.rand_like(p) - 0.5))
            elif mode == "ste":
                out.append(p + (torch.round(p) - p).detach())
            else:
                out.append(p)
        return out

    def rate_bits(self, lats):
        tot = 0.0
        for l, q in enumerate(lats):
            b = torch.exp(self.logb[l]) + 1e-3
            def cdf(x):
                return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / b))
            p = (cdf(q + 0.5) - cdf(q - 0.5)).clamp_min(1e-9)
            tot = tot + (-torch.log2(p)).sum()
        return tot

    def features(self, lats, pts):
        # pts (N,3) in [-1,1] order (z,y,x) -> grid_sample wants (x,y,z)
        g = pts[:, [2, 1, 0]].view(1, -1, 1, 1, 3)
        fs = [F.grid_sample(q, g, mode="bilinear", align_corners=True).view(self.C, -1)
              for q in lats]
        return torch.cat(fs, 0).t()

    def decode(self, feats, weights=None):
        h = feats
        ws = weights if weights is not None else [(m.weight, m.bias) for m in self.mlp]
        for i, (w, b) in enumerate(ws):
            h = F.linear(h, w, b)
            if i < len(ws) - 1:
                h = self.act(h)
        return h[:, 0]


def coords(shape):
    axes = [torch.linspace(-1, 1, n) for n in shape]
    return axes


def quant_mlp(model, bits):
    """Per-tensor uniform quantisation: step = max|w| / (2^(bits-1)-1), step as float16."""
    out, ints, steps = [], [], []
    for m in model.mlp:
        pair = []
        for t in (m.weight, m.bias):
            t = t.detach()
            step = float(np.float16(max(t.abs().max().item(), 1e-8) / (2 ** (bits - 1) - 1)))
            q = torch.round(t / step)
            pair.append(q * step)
            ints.append(q.numpy().astype(np.int64))
            steps.append(step)
        out.append(tuple(pair))
    return out, ints, steps


def full_decode(model, lats, weights, shape, block=1 << 16):
    D, H, W = shape
    z, y, x = coords(shape)
    out = np.empty(shape, np.float32)
    with torch.no_grad():
        for i in range(D):
            zz, yy, xx = torch.meshgrid(z[i:i + 1], y, x, indexing="ij")
            pts = torch.stack([zz, yy, xx], -1).view(-1, 3)
            out[i] = model.decode(model.features(lats, pts), weights).view(H, W).numpy()
    return out


def serialise(shape, cam, mean, std, levels, C, hidden, nlayers, mlp_bits, lat_ints, mlp_ints,
              mlp_steps, split):
    """Actual blob. Header: shape 3×u16, camera 3×f32, mean/std 2×f32, C/hidden/nlayers/
    mlp_bits/nlevels u8, level shapes 3×u16 each, MLP steps f16 each, stream lengths u32."""
    hdr = struct.pack("<3H", *shape)
    hdr += struct.pack("<3f", cam.gain, cam.offset, cam.read_noise)
    hdr += struct.pack("<2f", mean, std)
    hdr += struct.pack("<5B", C, hidden, nlayers, mlp_bits, len(levels))
    for l in levels:
        hdr += struct.pack("<3H", *l)
    hdr += np.array(mlp_steps, np.float16).tobytes()
    streams = []
    if split:  # one stream per level
        for q, l in zip(lat_ints, levels):
            streams.append(code_ints(q, l[2]))
    else:
        streams.append(code_ints(np.concatenate([q.ravel() for q in lat_ints]), levels[-1][2]))
    mflat = np.concatenate([q.ravel() for q in mlp_ints])
    streams.append(code_ints(mflat, max(1, hidden)))
    body = struct.pack(f"<{len(streams)}I", *[len(s) for s in streams]) + b"".join(streams)
    parts = {"header": len(hdr) + 4 * len(streams),
             "grids": sum(len(s) for s in streams[:-1]), "mlp": len(streams[-1])}
    return hdr + body, parts


def run(a):
    t0 = time.time()
    torch.manual_seed(a.seed); np.random.seed(a.seed)
    x, cam = dataset(a.data)
    shape = x.shape
    y = cam.forward(x)
    mean, std = float(y.mean()), float(y.std())
    yn = torch.from_numpy(((y - mean) / std).astype(np.float32)).view(-1)
    levels = parse_levels(a.levels, shape)
    model = Model(levels, a.C, a.hidden, a.nlayers, a.act)
    nvox = yn.numel()
    D, H, W = shape
    opt = torch.optim.Adam([
        {"params": list(model.lat), "lr": a.lr_lat},
        {"params": [model.logb], "lr": 1e-2},
        {"params": list(model.mlp.parameters()), "lr": a.lr}])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)) * 0.99 + 0.01)
    sz, sy, sx = 2.0 / max(D - 1, 1), 2.0 / max(H - 1, 1), 2.0 / max(W - 1, 1)
    ste_from = int(a.steps * (1 - a.ste_frac))
    for step in range(a.steps):
        idx = torch.randint(0, nvox, (a.batch,))
        iz, iy, ix = idx // (H * W), (idx // W) % H, idx % W
        pts = torch.stack([iz * sz - 1, iy * sy - 1, ix * sx - 1], 1).float()
        lats = model.latents("noise" if step < ste_from else "ste")
        pred = model.decode(model.features(lats, pts))
        mse = F.mse_loss(pred, yn[idx])
        rate = model.rate_bits(lats) / nvox if a.lam > 0 else torch.zeros(())
        loss = mse + a.lam * rate
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(); sched.step()
        if step % 500 == 0 or step == a.steps - 1:
            print(f"  step {step} mse {mse.item():.3e} rate {rate.item()*nvox/8:.0f}B "
                  f"{time.time()-t0:.0f}s", flush=True)
    # final: quantise latents, quantise MLP, fine-tune latents (STE) with frozen quantised MLP
    wq, mints, msteps = quant_mlp(model, a.mlp_bits)
    if a.ft_steps:
        for m, (w, b) in zip(model.mlp, wq):
            m.weight.data.copy_(w); m.bias.data.copy_(b)
            m.weight.requires_grad_(False); m.bias.requires_grad_(False)
        opt2 = torch.optim.Adam(list(model.lat), lr=a.lr_lat * 0.1)
        for step in range(a.ft_steps):
            idx = torch.randint(0, nvox, (a.batch,))
            iz, iy, ix = idx // (H * W), (idx // W) % H, idx % W
            pts = torch.stack([iz * sz - 1, iy * sy - 1, ix * sx - 1], 1).float()
            lats = model.latents("ste")
            pred = model.decode(model.features(lats, pts), wq)
            loss = F.mse_loss(pred, yn[idx])
            if a.lam > 0:
                loss = loss + a.lam * model.rate_bits(lats) / nvox
            opt2.zero_grad(set_to_none=True); loss.backward(); opt2.step()
    train_s = time.time() - t0
    lat_ints = [torch.round(p.detach())[0].numpy().astype(np.int64) for p in model.lat]
    blob, parts = serialise(shape, cam, mean, std, levels, a.C, a.hidden, a.nlayers, a.mlp_bits,
                            lat_ints, mints, msteps, a.split)
    # decode from the integers exactly as a decoder would
    lats_q = [torch.from_numpy(q.astype(np.float32))[None] for q in lat_ints]
    out = full_decode(model, lats_q, wq, shape)
    back = cam.inverse(out.astype(np.float64) * std + mean)
    back = np.clip(np.rint(back), 0, 65535).astype(np.uint16)
    p, s = B.metrics(x, back)
    ratio = x.nbytes / len(blob)
    nz = [float((q != 0).mean()) for q in lat_ints]
    lz = len(lzma_bytes(np.concatenate([q.ravel() for q in lat_ints])))
    res = dict(data=a.data, seed=a.seed, levels=a.levels, C=a.C, hidden=a.hidden,
               nlayers=a.nlayers, lam=a.lam, steps=a.steps, psnr=round(p, 3), ssim=round(s, 4),
               ratio=round(ratio, 1), bytes=len(blob), parts=parts, lzma_grids=lz,
               nonzero=[round(v, 3) for v in nz], train_s=round(train_s, 1),
               nlat=int(sum(q.size for q in lat_ints)), tag=a.tag)
    print(json.dumps(res), flush=True)
    import os
    os.makedirs("lat", exist_ok=True)
    np.savez_compressed(f"lat/{a.data}_{a.tag}_{a.seed}.npz", *lat_ints)
    with open("results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ls")
    ap.add_argument("--levels", default="4x8x8,8x16x16,16x32x32,16x64x64")
    ap.add_argument("--C", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=24)
    ap.add_argument("--nlayers", type=int, default=2)
    ap.add_argument("--act", default="gelu")
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--ft-steps", type=int, default=300)
    ap.add_argument("--ste-frac", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--lr-lat", type=float, default=2e-2)
    ap.add_argument("--mlp-bits", type=int, default=8)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
