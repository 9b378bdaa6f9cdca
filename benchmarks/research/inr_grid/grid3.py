"""Round 3 of the learned-grid prototype (Cool-Chic style) for 3-D stacks: grid2.py plus
--ste-lat-lr (latent lr in the STE phase; 0 = frozen) and --up-r/--up-rz (learned separable
upsampling of every level on the finest latent grid); see README "Round 3". Results ->
results3.jsonl. grid2.py's description follows.

Round 2 of the learned-grid prototype (Cool-Chic style) for 3-D stacks.

Changes against grid_arm.py (same model family; see README "Round 2"):
- rate control: log-lambda is steered every step towards a byte budget (target ratio), the
  overhead (header + MLP + ARM, really coded) re-measured every 250 steps; the last phase
  (quantised + frozen MLP and ARM, STE latents) sees the exact code length;
- fitting domain: GAT (as before) or linear (`--domain lin`, the PSNR's own domain);
- quantisation proxy: uniform noise (as before) or C3-style soft rounding + Kumaraswamy noise
  with annealed temperature (`--quant soft`);
- ARM: configurable causal context (`--ctx 13|21|33`), stable closed-form Laplace bin mass;
- optional real rANS coder for the latents (`--coder rans`, rans.py) with a round-trip check.
Results -> results2.jsonl.
"""
import os
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # one CPU thread in all (torch, numpy BLAS, numba's prange coders)
import argparse, json, math, struct, time
import numpy as np
import torch, torch.nn.functional as F
from common import dataset, code_ints, B

torch.set_num_threads(1)
torch.set_flush_denormal(True)
LN2 = math.log(2.0)


def parse_levels(s):
    return [tuple(int(v) for v in tok.split("x")) for tok in s.split(",")]


def ctx_offsets(kind):
    """Causal neighbours (dz, dy, dx) < (0, 0, 0) in raster (z, y, x) order."""
    if kind == 13:   # 3x3x3 causal
        return [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if (dz, dy, dx) < (0, 0, 0)]
    if kind == 21:   # previous plane 3x3 + current plane causal 5x5
        return ([(-1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] +
                [(0, dy, dx) for dy in (-2, -1, 0) for dx in (-2, -1, 0, 1, 2)
                 if (0, dy, dx) < (0, 0, 0)])
    if kind == 33:   # previous plane 5x5 - corners + z-2 centre + current plane causal 5x5
        return ([(-2, 0, 0)] +
                [(-1, dy, dx) for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2)
                 if abs(dy) + abs(dx) < 4] +
                [(0, dy, dx) for dy in (-2, -1, 0) for dx in (-2, -1, 0, 1, 2)
                 if (0, dy, dx) < (0, 0, 0)])
    raise ValueError(kind)


def causal_ctx(q, offs, pad=2):
    """q (1,C,D,H,W) -> (C*D*H*W, K) causal neighbours (zero outside), same channel."""
    _, C, D, H, W = q.shape
    p = F.pad(q, (pad,) * 6)
    cols = [p[0, :, pad + dz:pad + dz + D, pad + dy:pad + dy + H, pad + dx:pad + dx + W]
            .reshape(-1) for dz, dy, dx in offs]
    return torch.stack(cols, 1)


def laplace_bits(x, mu, logb):
    """-log2 P(x) for integer x under Laplace(mu, b) integrated over [x-1/2, x+1/2]."""
    b = torch.exp(logb.clamp(-5, 6)) + 1e-3
    d = (x - mu).abs()
    inner = 1 - 0.5 * (torch.exp(-(0.5 - d).clamp_min(0) / b) + torch.exp(-(0.5 + d) / b))
    outer = math.log(0.5) - (d - 0.5).clamp_min(0) / b + torch.log(-torch.expm1(-1 / b))
    logp = torch.where(d < 0.5, torch.log(inner.clamp_min(2 ** -24)), outer.clamp_min(-24 * LN2))
    return -logp / LN2


class ARM(torch.nn.Module):
    def __init__(self, nlev, offs, hidden=12):
        super().__init__()
        self.offs = offs
        k = len(offs)
        self.net = torch.nn.ModuleList([torch.nn.Linear(k, hidden), torch.nn.Linear(hidden, hidden),
                                        torch.nn.Linear(hidden, 2)])
        self.lb = torch.nn.Parameter(torch.zeros(nlev))

    def params(self, ctx, lev, weights=None):
        ws = weights if weights is not None else [(m.weight, m.bias) for m in self.net]
        h = ctx
        for i, (w, b) in enumerate(ws):
            h = F.linear(h, w, b)
            if i < len(ws) - 1:
                h = F.relu(h)
        return h[:, 0], h[:, 1] + self.lb[lev]

    def bits(self, lats, weights=None, per_level=False):
        out = []
        for l, q in enumerate(lats):
            mu, lb = self.params(causal_ctx(q, self.offs), l, weights)
            out.append(laplace_bits(q.reshape(-1), mu, lb).sum())
        return out if per_level else sum(out)


def soft_round(x, alpha):
    m = torch.floor(x) + 0.5
    r = x - m
    return m + torch.tanh(alpha * r) / (2 * math.tanh(alpha / 2))


def kumaraswamy(shape, a):
    """noise in [-1/2, 1/2], mode at 0; a = 1 -> uniform."""
    bb = ((a - 1) * 2 ** a + 1) / a
    u = torch.rand(shape).clamp(1e-6, 1 - 1e-6)
    return (1 - (1 - u) ** (1 / bb)) ** (1 / a) - 0.5


class Model(torch.nn.Module):
    def __init__(self, levels, C, hidden, nlayers, offs, arm_hidden, syn_k=0, up_r=0, up_rz=1):
        super().__init__()
        self.levels, self.C, self.syn_k = levels, C, syn_k
        # learned upsampling (round 3): every level is trilinearly resampled to the finest
        # latent grid, then filtered there by a learned separable symmetric kernel per level
        # (delta + learned taps, zero-initialised; radius up_rz in z, up_r in y and x)
        self.up_r, self.up_rz = up_r, up_rz
        self.fine = tuple(max(l[i] for l in levels) for i in range(3))
        if up_r:
            self.upk = torch.nn.Parameter(torch.zeros(len(levels), 3, up_r + 1))
        self.lat = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(1, C, *l)) for l in levels])
        dims = [C * len(levels)] + [hidden] * nlayers + [max(syn_k, 1)]
        self.nlin = len(dims) - 1
        mods = [torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        if syn_k:  # 3x3x3 conv on the MLP's k output channels, + channel 0 as a skip
            conv = torch.nn.Conv3d(syn_k, 1, 3)
            torch.nn.init.zeros_(conv.weight); torch.nn.init.zeros_(conv.bias)
            mods.append(conv)
        self.mlp = torch.nn.ModuleList(mods)
        self.arm = ARM(len(levels), offs, arm_hidden)

    def up_kernels(self, upk=None):
        """per level, per axis (z, y, x): 1-D symmetric kernels."""
        k = self.upk if upk is None else upk
        out = []
        for l in range(len(self.levels)):
            ax = []
            for a, r in enumerate((self.up_rz, self.up_r, self.up_r)):
                side = k[l, a, 1:r + 1]
                ax.append(torch.cat([side.flip(0), 1 + k[l, a, :1], side]))
            out.append(ax)
        return out

    def grid(self, lats, upk=None):
        """learned upsampling: (1, C*L, *fine) feature grid."""
        C = self.C
        us = []
        for q, ks in zip(lats, self.up_kernels(upk)):
            u = q if tuple(q.shape[2:]) == self.fine else F.interpolate(
                q, size=self.fine, mode="trilinear", align_corners=True)
            for a, kk in enumerate(ks):
                r = (len(kk) - 1) // 2
                if r == 0:
                    u = u * kk[0]
                    continue
                pad = [0] * 6
                pad[2 * (2 - a)] = pad[2 * (2 - a) + 1] = r        # F.pad order: x, y, z
                shp = [C, 1, 1, 1, 1]; shp[2 + a] = 2 * r + 1
                w = kk.view([1] + shp[1:]).repeat(C, 1, 1, 1, 1)
                u = F.conv3d(F.pad(u, pad, mode="replicate"), w, groups=C)
            us.append(u)
        return torch.cat(us, 1)

    def features(self, lats, pts, upk=None, G=None):
        g = pts[:, [2, 1, 0]].view(1, -1, 1, 1, 3)
        if self.up_r:
            G = self.grid(lats, upk) if G is None else G
            return F.grid_sample(G, g, mode="bilinear", align_corners=True).view(G.shape[1], -1).t()
        fs = [F.grid_sample(q, g, mode="bilinear", align_corners=True).view(self.C, -1)
              for q in lats]
        return torch.cat(fs, 0).t()

    def decode(self, feats, weights=None, all_ch=False):
        h = feats
        ws = weights if weights is not None else [(m.weight, m.bias) for m in self.mlp]
        ws = ws[:self.nlin]
        for i, (w, b) in enumerate(ws):
            h = F.linear(h, w, b)
            if i < len(ws) - 1:
                h = F.gelu(h)
        return h if all_ch else h[:, 0]

    def conv(self, h, weights=None):
        """h (P, k, d+2, h+2, w+2) -> (P, d, h, w)"""
        w, b = weights[self.nlin] if weights is not None else (self.mlp[-1].weight,
                                                                 self.mlp[-1].bias)
        return (F.conv3d(h, w, b) + h[:, :1, 1:-1, 1:-1, 1:-1])[:, 0]


def quant_net(mods, bits):
    """Per-tensor uniform quantisation: step = max|w| / (2^(bits-1)-1), step as float16."""
    out, ints, steps = [], [], []
    for m in mods:
        pair = []
        for t in (m.weight, m.bias):
            t = t.detach()
            step = float(np.float16(max(t.abs().max().item(), 1e-8) / (2 ** (bits - 1) - 1)))
            if step == 0.0:  # all-zero tensor (e.g. a zero-initialised conv): f16 underflow
                step = 1.0
            q = torch.round(t / step)
            pair.append(q * step)
            ints.append(q.numpy().astype(np.int64))
            steps.append(step)
        out.append(tuple(pair))
    return out, ints, steps


def coords(shape):
    return [torch.linspace(-1, 1, n) for n in shape]


def quant_tensor(t, bits):
    t = t.detach()
    step = float(np.float16(max(t.abs().max().item(), 1e-8) / (2 ** (bits - 1) - 1)))
    step = step or 1.0
    q = torch.round(t / step)
    return q * step, q.numpy().astype(np.int64), step


def full_decode(model, lats, weights, shape, upk=None):
    D, H, W = shape
    z, y, x = coords(shape)
    out = np.empty(shape, np.float32)
    k = model.syn_k
    hk = torch.empty(D, H, W, max(k, 1))
    with torch.no_grad():
        G = model.grid(lats, upk) if model.up_r else None
        for i in range(D):
            zz, yy, xx = torch.meshgrid(z[i:i + 1], y, x, indexing="ij")
            pts = torch.stack([zz, yy, xx], -1).view(-1, 3)
            hk[i] = model.decode(model.features(lats, pts, G=G), weights,
                                 all_ch=True).view(H, W, -1)
        if not k:
            return hk[..., 0].numpy()
        h = F.pad(hk.permute(3, 0, 1, 2)[None], (1,) * 6, mode="replicate")
        for i in range(D):
            out[i] = model.conv(h[:, :, i:i + 3], weights)[0, 0].numpy()
    return out


HEADER_FIXED = 6 + 12 + 8 + 7  # shape, camera, mean/std, C/hidden/nlayers/bits/nlev/ctx/domain


def overhead_bytes(model, a):
    """Really coded bytes of everything but the latent streams (header + MLP + ARM)."""
    _, mi, ms = quant_net(model.mlp, a.mlp_bits)
    _, ai, as_ = quant_net(model.arm.net, a.arm_bits)
    mlp = len(code_ints(np.concatenate([q.ravel() for q in mi]), a.hidden))
    arm = len(code_ints(np.concatenate([q.ravel() for q in ai]), 12))
    nlev = len(model.levels)
    hdr = HEADER_FIXED + 6 * nlev + 2 * len(ms) + 2 * len(as_) + nlev + 4 * (nlev + 2) + 2 * nlev
    if model.up_r:  # learned upsampling taps: 8 bit, one f16 step, one stream length
        _, ui, _ = quant_tensor(model.upk, a.mlp_bits)
        mlp += len(code_ints(ui.ravel(), model.up_r + 1))
        hdr += 2 + 4 + 2   # step, stream length, up_r/up_rz
    return hdr, mlp, arm


def run(a):
    t0 = time.time()
    torch.manual_seed(a.seed); np.random.seed(a.seed)
    x, cam = dataset(a.data)
    shape = x.shape
    if a.domain == "gat":
        y = cam.forward(x)
        inv = cam.inverse
    else:
        y = x.astype(np.float64)
        inv = lambda v: v
    mean, std = float(y.mean()), float(y.std())
    yn = torch.from_numpy(((y - mean) / std).astype(np.float32)).view(-1)
    levels = parse_levels(a.levels)
    offs = ctx_offsets(a.ctx)
    model = Model(levels, a.C, a.hidden, a.nlayers, offs, a.arm_hidden, a.syn_k,
                  a.up_r, a.up_rz)
    nvox = yn.numel()
    D, H, W = shape
    budget = x.nbytes / a.target if a.target else None
    groups = [{"params": list(model.lat), "lr": a.lr_lat},
              {"params": list(model.arm.parameters()), "lr": a.lr_arm},
              {"params": list(model.mlp.parameters()), "lr": a.lr}]
    if a.up_r:
        groups.append({"params": [model.upk], "lr": a.lr_up})
    opt = torch.optim.Adam(groups)
    warm = int(a.warmup * a.steps)
    ste_from = int(a.steps * (1 - a.ste_frac))
    cosine = lambda s: min(1.0, (s + 1) / max(warm, 1)) * \
        (0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)) * 0.99 + 0.01)
    # round 3: --ste-lat-lr scales the latents' lr in the STE phase (0 = latents frozen there:
    # the MLP/ARM adapt to the rounded latents and the rate stays where the noise phase left it)
    lat_sched = lambda s: cosine(s) * (a.ste_lat_lr if s >= ste_from else 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [lat_sched] + [cosine] * (len(groups) - 1))
    sz, sy, sx = 2.0 / max(D - 1, 1), 2.0 / max(H - 1, 1), 2.0 / max(W - 1, 1)
    log_lam = math.log(a.lam)
    ov = sum(overhead_bytes(model, a))
    lam_hist = []

    def target_bits():
        return max(8 * (budget - ov - 4 * len(levels)), 1000.0)

    def batch():
        idx = torch.randint(0, nvox, (a.batch,))
        iz, iy, ix = idx // (H * W), (idx // W) % H, idx % W
        return idx, torch.stack([iz * sz - 1, iy * sy - 1, ix * sx - 1], 1).float()

    pd, ph, pw = a.patch
    npatch = max(1, a.batch // (pd * ph * pw))

    def patch_batch():
        """npatch random (pd, ph, pw) patches + 1-voxel margin (coordinates clamped = the
        replicate padding of the full decode); returns target index (P, pd, ph, pw), pts."""
        ax = []
        for n, p in ((D, pd), (H, ph), (W, pw)):
            o = torch.randint(0, n - p + 1, (npatch, 1)) + torch.arange(-1, p + 1)[None]
            ax.append(o.clamp(0, n - 1))
        iz = ax[0][:, :, None, None]; iy = ax[1][:, None, :, None]; ix = ax[2][:, None, None, :]
        zz, yy, xx = torch.broadcast_tensors(iz, iy, ix)
        pts = torch.stack([zz * sz - 1, yy * sy - 1, xx * sx - 1], -1).view(-1, 3).float()
        idx = (zz * (H * W) + yy * W + xx)[:, 1:-1, 1:-1, 1:-1]
        return idx, pts

    def predict(lats, pts, weights=None, upk=None):
        if not a.syn_k:
            return model.decode(model.features(lats, pts, upk), weights)
        h = model.decode(model.features(lats, pts, upk), weights, all_ch=True)
        h = h.view(npatch, pd + 2, ph + 2, pw + 2, -1).permute(0, 4, 1, 2, 3)
        return model.conv(h, weights)

    if a.syn_k:
        batch = patch_batch

    for step in range(a.steps):
        idx, pts = batch()
        frac = step / max(ste_from, 1)
        if step >= ste_from:
            lats = [p + (torch.round(p) - p).detach() for p in model.lat]
            rl = lats
        elif a.quant == "soft":
            alpha = 1 / (a.t0 + (a.t1 - a.t0) * frac)          # temperature t0 -> t1
            ka = 1.0 + (a.ka1 - 1.0) * frac                      # noise: uniform -> peaked
            rl = [soft_round(p, alpha) + kumaraswamy(p.shape, ka) for p in model.lat]
            lats = [soft_round(r, alpha) for r in rl]
        else:
            rl = [p + (torch.rand_like(p) - 0.5) for p in model.lat]
            lats = rl
        pred = predict(lats, pts)
        mse = F.mse_loss(pred, yn[idx])
        rate = model.arm.bits(rl)
        loss = mse + math.exp(log_lam) * rate / nvox
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(); sched.step()
        if budget:
            if step % 250 == 0:
                ov = sum(overhead_bytes(model, a))
            if step >= a.rc_from * a.steps and step % a.rc_every == 0:
                # steer on the rate of the *rounded* latents (what is stored), not the proxy
                if step >= ste_from:
                    hard = rate.item()
                else:
                    with torch.no_grad():
                        hard = model.arm.bits([torch.round(p) for p in model.lat]).item()
                g = a.rc_gain * (a.rc_ste_mult if step >= ste_from else 1.0)
                log_lam += g * a.rc_every * math.log(hard / target_bits())
                log_lam = min(max(log_lam, math.log(a.lam) - 5), math.log(a.lam) + 5)
        if step % 500 == 0 or step == a.steps - 1:
            lam_hist.append(round(math.exp(log_lam), 4))
            with torch.no_grad():
                hard = model.arm.bits([torch.round(p) for p in model.lat]).item()
            print(f"  step {step} mse {mse.item():.3e} rate {rate.item()/8:.0f}B hard {hard/8:.0f}B "
                  f"target {target_bits()/8 if budget else 0:.0f}B lam {math.exp(log_lam):.3g} "
                  f"{time.time()-t0:.0f}s", flush=True)
    # diagnostics: stored-latent rate under the float ARM and under quantised ARMs
    os.makedirs("/tmp/inr_grid_lat", exist_ok=True)
    torch.save(model.state_dict(), f"/tmp/inr_grid_lat/{a.data}_{a.tag}_{a.seed}.pt")
    armq_diag = {}
    with torch.no_grad():
        lr_ = [torch.round(p) for p in model.lat]
        armq_diag["float"] = round(model.arm.bits(lr_).item() / 8)
        save_lb = model.arm.lb.clone()
        for nb in (8, 10, 12):
            model.arm.lb.copy_(torch.round(save_lb * 16) / 16)
            armq_diag[nb] = round(model.arm.bits(lr_, quant_net(model.arm.net, nb)[0]).item() / 8)
        model.arm.lb.copy_(save_lb)
    print("  ARM quantisation, latent bytes:", armq_diag, flush=True)
    # quantise and freeze MLP and ARM; fine-tune latents (STE) on the exact rate
    wq, mints, msteps = quant_net(model.mlp, a.mlp_bits)
    aq, aints, asteps = quant_net(model.arm.net, a.arm_bits)
    upq = quant_tensor(model.upk, a.mlp_bits)[0] if a.up_r else None
    with torch.no_grad():
        model.arm.lb.copy_(torch.round(model.arm.lb * 16) / 16)
    for p in list(model.mlp.parameters()) + list(model.arm.parameters()):
        p.requires_grad_(False)
    if a.up_r:
        model.upk.requires_grad_(False)
    ov_parts = overhead_bytes(model, a)
    ov = sum(ov_parts)
    opt2 = torch.optim.Adam(list(model.lat), lr=a.lr_lat * a.ft_lr)
    for step in range(a.ft_steps):
        idx, pts = batch()
        lats = [p + (torch.round(p) - p).detach() for p in model.lat]
        pred = predict(lats, pts, wq, upq)
        rate = model.arm.bits(lats, aq)
        loss = F.mse_loss(pred, yn[idx]) + math.exp(log_lam) * rate / nvox
        opt2.zero_grad(set_to_none=True); loss.backward(); opt2.step()
        if budget:
            log_lam += a.rc_gain_ft * math.log(rate.item() / target_bits())
    train_s = time.time() - t0
    lam_hist.append(round(math.exp(log_lam), 4))
    lat_ints = [torch.round(p.detach())[0].numpy().astype(np.int64) for p in model.lat]
    lats_q = [torch.from_numpy(q.astype(np.float32))[None] for q in lat_ints]
    with torch.no_grad():
        lbits = [float(b) for b in model.arm.bits(lats_q, aq, per_level=True)]
    est_bytes = [math.ceil(b / 8) + 4 for b in lbits]
    hdr, mlp_b, arm_b = ov_parts
    total_est = hdr + mlp_b + arm_b + sum(est_bytes)
    res = dict(data=a.data, seed=a.seed, levels=a.levels, C=a.C, hidden=a.hidden,
               nlayers=a.nlayers, syn_k=a.syn_k, up_r=a.up_r, up_rz=a.up_rz,
               patch=a.patch if a.syn_k else None, batch=a.batch, ctx=a.ctx, arm_hidden=a.arm_hidden, domain=a.domain,
               quant=a.quant, ste_lat_lr=a.ste_lat_lr, ste_frac=a.ste_frac, lam0=a.lam, lam_final=round(math.exp(log_lam), 4),
               lam_hist=lam_hist, target=a.target, steps=a.steps, ft_steps=a.ft_steps,
               mlp_bits=a.mlp_bits, arm_bits=a.arm_bits, armq_diag=armq_diag,
               parts=dict(header=hdr, mlp=mlp_b, arm=arm_b, latents_est=est_bytes),
               bytes_est=total_est, ratio_est=round(x.nbytes / total_est, 1))
    # real coder
    if a.coder == "rans":
        import rans
        tc = time.time()
        streams = rans.encode_levels(lat_ints, model.arm, aq, offs)
        back = rans.decode_levels(streams, [q.shape for q in lat_ints], model.arm, aq, offs)
        assert all(np.array_equal(p, q) for p, q in zip(back, lat_ints)), "rANS round trip"
        real = rans.stream_bytes(streams)
        total_real = hdr + mlp_b + arm_b + sum(real)
        res.update(latents_real=real, bytes_real=total_real,
                   ratio_real=round(x.nbytes / total_real, 1), coder_s=round(time.time() - tc, 1))
    # decode from the stored integers
    out = full_decode(model, lats_q, wq, shape, upq)
    back = inv(out.astype(np.float64) * std + mean)
    back = np.clip(np.rint(back), 0, 65535).astype(np.uint16)
    p, s = B.metrics(x, back)
    ratio = res.get("ratio_real", res["ratio_est"])
    res.update(psnr=round(p, 3), ssim=round(s, 4), ratio=ratio,
               nonzero=[round(float((q != 0).mean()), 3) for q in lat_ints],
               absmax=[int(np.abs(q).max()) for q in lat_ints],
               train_s=round(train_s, 1), nlat=int(sum(q.size for q in lat_ints)), tag=a.tag)
    print(json.dumps(res), flush=True)
    os.makedirs("/tmp/inr_grid_lat", exist_ok=True)
    np.savez_compressed(f"/tmp/inr_grid_lat/{a.data}_{a.tag}_{a.seed}.npz", *lat_ints)
    with open(a.out, "a") as f:
        f.write(json.dumps(res) + "\n")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="br")
    ap.add_argument("--levels", default="4x8x12,8x16x24,15x32x48,15x64x96")
    ap.add_argument("--C", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=24)
    ap.add_argument("--syn-k", type=int, default=0, help="MLP outputs k channels + 3x3x3 conv")
    ap.add_argument("--patch", type=int, nargs=3, default=[4, 16, 16])
    ap.add_argument("--up-r", type=int, default=0, help="learned upsampling: kernel radius in y, x")
    ap.add_argument("--up-rz", type=int, default=1, help="learned upsampling: kernel radius in z")
    ap.add_argument("--lr-up", type=float, default=1e-2)
    ap.add_argument("--nlayers", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=13)
    ap.add_argument("--arm-hidden", type=int, default=12)
    ap.add_argument("--domain", default="gat", choices=["gat", "lin"])
    ap.add_argument("--quant", default="noise", choices=["noise", "soft"])
    ap.add_argument("--t0", type=float, default=0.3)
    ap.add_argument("--t1", type=float, default=0.1)
    ap.add_argument("--ka1", type=float, default=2.0)
    ap.add_argument("--lam", type=float, default=2.0)
    ap.add_argument("--target", type=float, default=500.0)
    ap.add_argument("--rc-gain", type=float, default=2e-3)
    ap.add_argument("--rc-gain-ft", type=float, default=5e-3)
    ap.add_argument("--rc-from", type=float, default=0.0)
    ap.add_argument("--rc-every", type=int, default=10)
    ap.add_argument("--rc-ste-mult", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--ft-steps", type=int, default=0)
    ap.add_argument("--ft-lr", type=float, default=0.1)
    ap.add_argument("--ste-frac", type=float, default=0.2)
    ap.add_argument("--ste-lat-lr", type=float, default=1.0,
                    help="latent lr multiplier in the STE phase (0: latents frozen)")
    ap.add_argument("--warmup", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--lr-lat", type=float, default=2e-2)
    ap.add_argument("--lr-arm", type=float, default=1e-2)
    ap.add_argument("--mlp-bits", type=int, default=8)
    ap.add_argument("--arm-bits", type=int, default=8)
    ap.add_argument("--coder", default="rans", choices=["est", "rans"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default="results3.jsonl")
    run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
