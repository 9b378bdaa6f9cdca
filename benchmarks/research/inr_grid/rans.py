"""Real entropy coder for the grid latents: rANS (32-bit state, 16-bit words, 16-bit
probabilities) driven by the quantised ARM of grid2.py (causal context -> Laplace mu, b).

Decoding is autoregressive; it is vectorised over wavefronts t = a*z + b*y + x (a, b chosen so
that every causal context offset lies on an earlier wavefront), so the ARM runs ~300-400
times per level on numpy batches instead of once per latent. The encoder walks the same
wavefronts with the same numpy code on the same inputs, so both sides build bit-identical
frequency tables (same machine / numpy build; a portable format would need an integer ARM).

Per level: alphabet [lo, hi] = the level's min/max integer (2 bytes in the header, counted by
grid2.py); each symbol's frequency = floor(P * (M - K)) + 1 with the tails folded into the end
bins, the remainder added to the most probable symbol, M = 2^16.
"""
import math
import numpy as np
import numba

PROB_BITS = 16
M = 1 << PROB_BITS
RANS_L = 1 << 16  # state in [2^16, 2^32)


def wave_weights(offs):
    for a in range(1, 64):
        for b in range(1, a):
            if all(a * dz + b * dy + dx < 0 for dz, dy, dx in offs):
                return a, b
    raise ValueError("no wavefront")


def _mlp(ctx, ws, lb):
    h = ctx
    for i, (w, b) in enumerate(ws):
        h = h @ w.T + b
        if i < len(ws) - 1:
            h = np.maximum(h, 0)
    return h[:, 0], h[:, 1] + lb


def _freqs(mu, logb, lo, hi):
    """(n, K) integer frequencies summing to M for symbols lo..hi."""
    K = hi - lo + 1
    b = np.exp(np.clip(logb, -5, 6)) + 1e-3
    edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5           # K + 1 edges
    d = edges[None, :] - mu[:, None]
    cdf = np.where(d < 0, 0.5 * np.exp(np.minimum(d, 0) / b[:, None]),
                   1 - 0.5 * np.exp(-np.maximum(d, 0) / b[:, None]))
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0                                  # fold tails
    p = np.diff(cdf, axis=1)
    f = np.floor(p * (M - K)).astype(np.int64) + 1
    f[np.arange(len(f)), np.argmax(f, 1)] += M - f.sum(1)
    return f


class _Plan:
    """Wavefront order of a (C, D, H, W) level and gather indices into the padded array."""
    def __init__(self, shape, offs):
        C, D, H, W = shape
        self.pad = pad = max(max(abs(v) for v in o) for o in offs)
        self.pshape = (C, D + 2 * pad, H + 2 * pad, W + 2 * pad)
        a, b = wave_weights(offs)
        c, z, y, x = np.meshgrid(np.arange(C), np.arange(D), np.arange(H), np.arange(W),
                                 indexing="ij")
        t = (a * z + b * y + x).ravel()
        order = np.argsort(t, kind="stable")
        self.bounds = np.searchsorted(t[order], np.arange(t.max() + 2))
        pidx = np.ravel_multi_index((c.ravel(), z.ravel() + pad, y.ravel() + pad,
                                     x.ravel() + pad), self.pshape)
        self.pos = pidx[order]                                   # padded flat index, in order
        strides = np.array([self.pshape[2] * self.pshape[3], self.pshape[3], 1])
        self.delta = np.array([int(np.dot(o, strides)) for o in offs])
        self.order = order                                       # into q.ravel()

    def waves(self):
        for i in range(len(self.bounds) - 1):
            s, e = self.bounds[i], self.bounds[i + 1]
            if e > s:
                yield s, e


@numba.njit(cache=True)
def _enc(sym, cum_all, freq_all):
    """rANS-encode symbols in reverse; returns 16-bit words in decoder read order."""
    n = sym.shape[0]
    out = np.empty(2 * n + 4, np.uint16)
    k = 0
    x = np.uint64(RANS_L)
    for i in range(n - 1, -1, -1):
        f = np.uint64(freq_all[i]); c = np.uint64(cum_all[i])
        xmax = f << np.uint64(32 - PROB_BITS)
        while x >= xmax:
            out[k] = np.uint16(x & np.uint64(0xFFFF)); k += 1
            x >>= np.uint64(16)
        x = (x // f << np.uint64(PROB_BITS)) + (x % f) + c
    out[k] = np.uint16(x & np.uint64(0xFFFF)); k += 1
    out[k] = np.uint16(x >> np.uint64(16)); k += 1
    return out[:k][::-1].copy()


@numba.njit(cache=True)
def _dec(words, ptr, x, cumtab, n):
    """decode n symbols with per-symbol cumulative tables cumtab (n, K+1)."""
    out = np.empty(n, np.int64)
    mask = np.uint64(M - 1)
    for i in range(n):
        slot = x & mask
        s = 0
        while np.uint64(cumtab[i, s + 1]) <= slot:
            s += 1
        c = np.uint64(cumtab[i, s]); f = np.uint64(cumtab[i, s + 1]) - c
        x = f * (x >> np.uint64(PROB_BITS)) + slot - c
        while x < np.uint64(RANS_L):
            x = (x << np.uint64(16)) | np.uint64(words[ptr]); ptr += 1
        out[i] = s
    return out, ptr, x


def _weights(aq):
    return [(w.detach().double().numpy(), b.detach().double().numpy()) for w, b in aq]


def encode_levels(lat_ints, arm, aq, offs):
    ws = _weights(aq)
    lbs = arm.lb.detach().double().numpy()
    streams = []
    for l, q in enumerate(lat_ints):
        plan = _Plan(q.shape, offs)
        lo, hi = int(q.min()), int(q.max())
        padded = np.zeros(plan.pshape, np.float64)
        padded.ravel()[plan.pos] = q.ravel()[plan.order]
        vals = q.ravel()[plan.order]
        cum_all = np.empty(len(vals), np.int64); freq_all = np.empty(len(vals), np.int64)
        for s, e in plan.waves():
            pos = plan.pos[s:e]
            ctx = padded.ravel()[pos[:, None] + plan.delta[None, :]]
            mu, lb = _mlp(ctx, ws, lbs[l])
            f = _freqs(mu, lb, lo, hi)
            si = vals[s:e] - lo
            cum = np.cumsum(f, 1) - f
            r = np.arange(e - s)
            cum_all[s:e], freq_all[s:e] = cum[r, si], f[r, si]
        words = _enc(vals - lo, cum_all, freq_all)
        assert -128 <= lo and hi <= 127  # stored as 2 x int8 in the header
        streams.append((lo, hi, words.astype("<u2").tobytes()))
    return streams


def decode_levels(streams, shapes, arm, aq, offs):
    ws = _weights(aq)
    lbs = arm.lb.detach().double().numpy()
    out = []
    for l, ((lo, hi, buf), shape) in enumerate(zip(streams, shapes)):
        words = np.frombuffer(buf, "<u2").astype(np.uint16)
        plan = _Plan(shape, offs)
        padded = np.zeros(plan.pshape, np.float64)
        x = (np.uint64(words[0]) << np.uint64(16)) | np.uint64(words[1])
        ptr = 2
        for s, e in plan.waves():
            pos = plan.pos[s:e]
            ctx = padded.ravel()[pos[:, None] + plan.delta[None, :]]
            mu, lb = _mlp(ctx, ws, lbs[l])
            f = _freqs(mu, lb, lo, hi)
            cumtab = np.concatenate([np.zeros((e - s, 1), np.int64), np.cumsum(f, 1)], 1)
            sym, ptr, x = _dec(words, ptr, x, cumtab, e - s)
            padded.ravel()[pos] = sym + lo
        assert ptr == len(words) and x == RANS_L, "rANS stream not consumed exactly"
        q = np.empty(int(np.prod(shape)), np.int64)
        q[plan.order] = padded.ravel()[plan.pos].astype(np.int64)
        out.append(q.reshape(shape))
    return out


def stream_bytes(streams):
    return [len(buf) for _, _, buf in streams]
