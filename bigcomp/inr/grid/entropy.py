"""Entropy coding of the integer latent grids of the learned-grid INR (Cool-Chic style).

A tile's latents are a pyramid of integer grids; level ``l`` is an int array ``(C, D, H, W)``
(``D == 1`` for 2-D data) whose values lie in the level's alphabet ``[lo_l, hi_l]`` inside
``[-128, 127]``. Every latent is rANS-coded with a discretised Laplace distribution whose
``(mu, b)`` a tiny autoregressive MLP (ARM) predicts from 13 causal neighbours. Everything that
decides a frequency is integer arithmetic, or IEEE-754 binary64 ``+ - * /`` (never libm
``exp``/``log``), so an encoder and a decoder on different machines agree bit for bit. This
docstring is the format; multi-byte fields are little-endian, ``>>`` is an arithmetic (floor)
shift and ``//`` a floor division.

Context
-------
``CONTEXT`` = the 13 offsets ``(dz, dy, dx) < (0, 0, 0)``, ``dz, dy, dx`` in ``{-1, 0, 1}``, in
lexicographic order ``(-1,-1,-1), (-1,-1,0), ..., (-1,1,1), (0,-1,-1), (0,-1,0), (0,-1,1),
(0,0,-1)``. The context of latent ``q[c, z, y, x]`` of a level is ``q[c, z+dz, y+dy, x+dx]`` per
offset (same level, same channel), 0 outside the grid.

Integer ARM (:class:`IntARM`)
-----------------------------
Layers ``i = 0 .. n-1``: weights ``W_i`` ``(out_i, in_i)`` with int8 values, biases ``b_i``
(int32 values), shifts ``s_i`` in ``0 .. 30``; ``in_0 = 13``, ``out_{n-1} = 2``, every width
``1 .. 64``; per level ``l`` an offset ``lb_l`` (int16, Q8). With ``rnd(a) = (a + 2**(s_i-1)) >>
s_i`` for ``s_i > 0`` (``a`` for ``s_i == 0``) and ``clamp(a) = min(max(a, -2**30), 2**30)``, in
int64::

    h = ctx * 2**8                                     the context in Q8 (ACT_FRAC = 8)
    h = clamp(rnd(max(W_i h + b_i, 0)))                hidden layers i < n-1
    o = clamp(rnd(W_i h + b_i))                        last layer (no ReLU)
    mu16 = min(max((o[0] + 8) >> 4, -2048), 2032)     mu in 1/16 units (MU_FRAC)
    j = min(max((o[1] + lb_l + 16) >> 5, -40), 48)    log b in 1/8 units (LOGB_STEP)

Serialised (:meth:`IntARM.to_bytes`; the reader knows the layer widths and the level count)::

    u8  shift[n]
    i8  W_0, ..., W_{n-1}      each row-major (out, in)
    i32 b_0, ..., b_{n-1}
    i16 lb[L]

Probability model
-----------------
``_exp(x)`` (binary64 only, *not* libm): halve ``x`` (exactly) ``k`` times until ``|x| < 2**-6``;
``s = 1.0``, then for ``i = 10, 9, ..., 1``: ``s = 1.0 + (x * s) / i``; then ``k`` times ``s = s
* s``. For ``j = -40 .. 48`` (table row ``j + 40``): ``b_j = _exp(j / 8)``, ``r_j = _exp(-1.0 /
(16.0 * b_j))`` (the Laplace decay per 1/16). ``p_0 = 1.0``, ``p_{n+1} = p_n * r_j``, replaced
by ``0.0`` when below ``2**-100`` (so no subnormal ever occurs and flush-to-zero modes cannot
change a value); ``E[j, n] = floor(p_n * 2**29)`` for ``n = 0 .. N``, ``N = 16 * 256 + 16 =
4112``, then ``E[j, n] = min(E[j, 0..n])`` (a no-op under IEEE rounding). The Laplace CDF
(times ``2**30``) at ``x = n / 16``: ``C(j, n) = E[j, min(-n, N)]`` for ``n < 0``, ``2**30 -
E[j, min(n, N)]`` for ``n >= 0``.

A latent of alphabet ``[lo, hi]`` (``K = hi - lo + 1`` symbols, ``M = 2**16``) with ``(mu16,
j)`` has the cumulative frequencies ``cum(lo) = 0``, ``cum(hi + 1) = M`` and, for ``lo < k <=
hi``, ``cum(k) = ((C(j, 16 k - 8 - mu16) * (M - K)) >> 30) + k - lo`` (``C`` at the symbol edge
``k - 1/2``; the tails fold into the end symbols); ``freq(k) = cum(k + 1) - cum(k) >= 1``.

Stream
------
Symbols in the order level ``0 .. L-1``, channel, ``z``, ``y``, ``x``. rANS with one 32-bit state,
``L = 2**16``, 16-bit words, 16-bit probabilities. The encoder starts at ``x = L`` and walks the
symbols backwards: ``if x >= freq << 16: emit(x & 0xFFFF); x >>= 16``, then ``x = ((x // freq)
<< 16) + x % freq + cum``. Stream::

    u32 x                 the final encoder state (>= L)
    u16 words[...]        the emitted words in reverse order of emission (decode order)

The decoder, per symbol: ``slot = x & 0xFFFF``, ``k`` in ``[lo, hi]`` with ``cum(k) <= slot <
cum(k + 1)`` (binary search), ``x = freq(k) * (x >> 16) + slot - cum(k)``, ``if x < L: x = (x <<
16) | next word``. At the end ``x == L`` and every word is consumed. A one-symbol alphabet
(``lo == hi``) costs nothing; a pyramid without latents is the 4-byte stream ``x = L``.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import CorruptChunkError, ParameterError, UnsupportedDataError
from ...kernels._numba import jit

__all__ = [
    "ACT_FRAC",
    "CONTEXT",
    "J_MAX",
    "J_MIN",
    "LOGB_STEP",
    "MAX_ALPHABET",
    "MU_FRAC",
    "PROB_BITS",
    "IntARM",
    "arm_params",
    "code_length_bits",
    "decode_latents",
    "encode_latents",
    "quantise_arm",
]

CONTEXT: tuple[tuple[int, int, int], ...] = tuple(
    (dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    if (dz, dy, dx) < (0, 0, 0)
)
ACT_FRAC = 8  # activations in Q8
MU_FRAC = 16  # mu quantised to 1/16
LOGB_STEP = 8  # log b quantised to 1/8
J_MIN, J_MAX = -40, 48  # scale index j: b_j = exp(j / LOGB_STEP)
PROB_BITS = 16
MAX_ALPHABET = 256  # latents in [-128, 127]

_VMIN, _VMAX = -MAX_ALPHABET // 2, MAX_ALPHABET // 2 - 1
_MAX_WIDTH = 64
_M = 1 << PROB_BITS
_RANS_L = 1 << 16
_ONE = 1 << 30  # CDF unit
_LIM = 1 << 30  # activation clamp
_N = 16 * MAX_ALPHABET + 16  # last tail-table column
_MU_SHIFT = ACT_FRAC - 4  # Q8 -> 1/16
_J_SHIFT = ACT_FRAC - 3  # Q8 -> 1/8
_MU_MIN, _MU_MAX = MU_FRAC * _VMIN, MU_FRAC * _VMAX
_I32 = (-(2**31), 2**31 - 1)
_I16 = (-(2**15), 2**15 - 1)
_EXP_TERMS = 10

Buffer = bytes | bytearray | memoryview | np.ndarray


def _corrupt(what: str) -> CorruptChunkError:
    return CorruptChunkError(f"corrupt INR latent stream: {what}")


# ------------------------------------------------------------------------------ the ARM
def _check_dims(layer_dims: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in layer_dims)
    if len(dims) < 2 or dims[0] != len(CONTEXT) or dims[-1] != 2:
        raise ParameterError(
            f"ARM layer dims must run from {len(CONTEXT)} inputs to 2 outputs, got {dims}"
        )
    if not all(1 <= d <= _MAX_WIDTH for d in dims):
        raise ParameterError(f"ARM layer widths must be in 1..{_MAX_WIDTH}, got {dims}")
    return dims


def _readonly(a, ndim: int, name: str, lim: tuple[int, int]) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise ParameterError(f"{name} must be a {ndim}-D integer array")
    a = np.array(a, dtype=np.int64)
    if a.size and (a.min() < lim[0] or a.max() > lim[1]):
        raise ParameterError(f"{name} outside [{lim[0]}, {lim[1]}]")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class IntARM:
    """Fixed-point autoregressive model of the latents (format in the module docstring).

    Parameters
    ----------
    weights : tuple of numpy.ndarray
        Per layer ``(out, in)`` integers in ``[-128, 127]`` (kept as read-only int64).
    biases : tuple of numpy.ndarray
        Per layer ``(out,)`` integers in the int32 range.
    shifts : tuple of int
        Per layer right shift ``0 .. 30``.
    level_logb : numpy.ndarray
        Per level offset of log b, Q8 integers in the int16 range.

    Notes
    -----
    Compare two models with :meth:`to_bytes` (arrays make ``==`` ambiguous).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    shifts: tuple[int, ...]
    level_logb: np.ndarray

    def __post_init__(self) -> None:
        w = tuple(_readonly(a, 2, "ARM weights", (-128, 127)) for a in self.weights)
        b = tuple(_readonly(a, 1, "ARM biases", _I32) for a in self.biases)
        s = tuple(int(v) for v in self.shifts)
        if not len(w) == len(b) == len(s) >= 1:
            raise ParameterError("ARM needs as many weights, biases and shifts, at least one")
        _check_dims([w[0].shape[1], *(a.shape[0] for a in w)])
        for i in range(len(w)):
            if (i and w[i].shape[1] != w[i - 1].shape[0]) or b[i].shape != w[i].shape[:1]:
                raise ParameterError(f"ARM layer {i} has inconsistent shapes")
        if not all(0 <= v <= 30 for v in s):
            raise ParameterError(f"ARM shifts must be in 0..30, got {s}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "biases", b)
        object.__setattr__(self, "shifts", s)
        object.__setattr__(self, "level_logb", _readonly(self.level_logb, 1, "level_logb", _I16))

    @property
    def layer_dims(self) -> tuple[int, ...]:
        """Widths ``(13, hidden..., 2)``."""
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    @property
    def nlevels(self) -> int:
        """Number of levels the model has a log b offset for."""
        return int(self.level_logb.size)

    @functools.cached_property
    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(weights, biases, dims, shifts) as flat int64 arrays for the kernels."""
        return (np.concatenate([w.ravel() for w in self.weights]),
                np.concatenate(self.biases), np.array(self.layer_dims, np.int64),
                np.array(self.shifts, np.int64))

    def to_bytes(self) -> bytes:
        """Serialise (``u8`` shifts, ``i8`` weights, ``<i4`` biases, ``<i2`` level_logb)."""
        return b"".join([
            np.array(self.shifts, np.uint8).tobytes(),
            *(w.astype(np.int8).tobytes() for w in self.weights),
            *(b.astype("<i4").tobytes() for b in self.biases),
            self.level_logb.astype("<i2").tobytes(),
        ])

    @classmethod
    def from_bytes(cls, buf: Buffer, layer_dims: Sequence[int], nlevels: int) -> IntARM:
        """Read a model written by :meth:`to_bytes`.

        Parameters
        ----------
        buf : bytes-like
            Exactly the serialised model.
        layer_dims : sequence of int
            Widths, e.g. ``(13, 12, 12, 2)``.
        nlevels : int
            Number of levels.

        Returns
        -------
        IntARM

        Raises
        ------
        CorruptChunkError
            If ``buf`` has the wrong length or a shift above 30.
        """
        dims = _check_dims(layer_dims)
        n = len(dims) - 1
        data = np.frombuffer(buf, np.uint8)
        nw = sum(a * b for a, b in itertools.pairwise(dims))
        nb = sum(dims[1:])
        size = n + nw + 4 * nb + 2 * int(nlevels)
        if data.size != size:
            raise CorruptChunkError(
                f"INR ARM has {data.size} bytes, expected {size} for layers {dims} and "
                f"{nlevels} levels"
            )
        if (data[:n] > 30).any():
            raise CorruptChunkError("INR ARM shift above 30")
        w = data[n : n + nw].view(np.int8)
        b = np.frombuffer(data[n + nw : n + nw + 4 * nb].tobytes(), "<i4")
        lb = np.frombuffer(data[n + nw + 4 * nb :].tobytes(), "<i2")
        ws, bs, wo, bo = [], [], 0, 0
        for i in range(n):
            ws.append(w[wo : wo + dims[i] * dims[i + 1]].reshape(dims[i + 1], dims[i]))
            bs.append(b[bo : bo + dims[i + 1]])
            wo, bo = wo + dims[i] * dims[i + 1], bo + dims[i + 1]
        return cls(tuple(ws), tuple(bs), tuple(int(s) for s in data[:n]), lb)


def _shift_for(w: np.ndarray, b: np.ndarray, qmax: int, i: int) -> int:
    wmax = float(np.abs(w).max(initial=0.0))
    bmax = float(np.abs(b).max(initial=0.0))
    if wmax > qmax:
        raise ParameterError(f"ARM layer {i}: max|w| = {wmax:.3g} does not fit in {qmax}")
    for s in range(30, 0, -1):  # the bias must fit int32 too: clipping it would cost more
        if wmax * 2.0**s <= qmax and bmax * 2.0 ** (s + ACT_FRAC) <= _I32[1]:
            return s
    return 0


def quantise_arm(
    layers: Sequence[tuple[np.ndarray, np.ndarray]], level_logb: Sequence[float], bits: int = 8
) -> IntARM:
    """Convert a float ARM into its fixed-point form.

    Parameters
    ----------
    layers : sequence of (weight, bias)
        Float weight ``(out, in)`` and bias ``(out,)`` per layer; 13 inputs, the last layer has
        2 outputs (mu, raw log b).
    level_logb : sequence of float
        Per level offset added to the raw log b.
    bits : int, default 8
        Weight bits (2..8).

    Returns
    -------
    IntARM

    Raises
    ------
    ParameterError
        On bad shapes, non-finite values or weights above ``2**(bits-1) - 1``.

    Notes
    -----
    Per layer the shift ``s`` is the largest in ``0..30`` with ``max|w| 2**s <= 2**(bits-1) - 1``
    and ``max|b| 2**(s+8) <= 2**31 - 1``; ``w_int = rint(w 2**s)``, ``b_int = rint(b 2**(s+8))``
    (clipped to int32), ``level_logb_int = rint(level_logb 2**8)`` (clipped to int16).
    """
    if not 2 <= int(bits) <= 8:
        raise ParameterError(f"bits must be in 2..8, got {bits}")
    qmax = 2 ** (int(bits) - 1) - 1
    ws, bs, ss = [], [], []
    for i, (w, b) in enumerate(layers):
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        if w.ndim != 2 or b.shape != w.shape[:1]:
            raise ParameterError(f"ARM layer {i}: weight (out, in) and bias (out,) expected")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ParameterError(f"ARM layer {i} has non-finite values")
        s = _shift_for(w, b, qmax, i)
        ws.append(np.rint(w * 2.0**s).astype(np.int64))
        bs.append(np.clip(np.rint(b * 2.0 ** (s + ACT_FRAC)), *_I32).astype(np.int64))
        ss.append(s)
    lb = np.asarray(level_logb, np.float64).reshape(-1)
    if not np.isfinite(lb).all():
        raise ParameterError("level_logb has non-finite values")
    lb = np.clip(np.rint(lb * 2.0**ACT_FRAC), *_I16).astype(np.int64)
    return IntARM(tuple(ws), tuple(bs), tuple(ss), lb)


def arm_params(arm: IntARM, ctx: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer ARM on a batch of contexts (numpy reference of the kernels).

    Parameters
    ----------
    arm : IntARM
    ctx : numpy.ndarray
        ``(n, 13)`` integer latent values, in :data:`CONTEXT` order.
    level : int
        Level whose log b offset applies.

    Returns
    -------
    mu16, j : numpy.ndarray
        int64 ``(n,)``: mu in 1/16 units and the scale index (module docstring).
    """
    ctx = np.asarray(ctx)
    if ctx.ndim != 2 or ctx.shape[1] != len(CONTEXT) or not np.issubdtype(ctx.dtype, np.integer):
        raise ParameterError(f"ctx must be an (n, {len(CONTEXT)}) integer array")
    h = ctx.astype(np.int64).T << ACT_FRAC
    last = len(arm.weights) - 1
    for i, (w, b, s) in enumerate(zip(arm.weights, arm.biases, arm.shifts, strict=True)):
        a = w @ h + b[:, None]
        if i < last:
            a = np.maximum(a, 0)
        h = np.clip((a + (1 << s >> 1)) >> s, -_LIM, _LIM)
    mu16 = np.clip((h[0] + 8) >> _MU_SHIFT, _MU_MIN, _MU_MAX)
    j = np.clip((h[1] + arm.level_logb[level] + 16) >> _J_SHIFT, J_MIN, J_MAX)
    return mu16, j


# ----------------------------------------------------------------------------- tables
def _exp(x: float) -> float:
    """exp(x) from binary64 ``+ - * /`` only (not libm: the same bits on every IEEE machine)."""
    if not math.isfinite(x) or abs(x) > 700.0:
        raise ValueError("_exp argument out of range")
    k = 0
    while abs(x) >= 2.0**-6:  # exact halvings
        x /= 2.0
        k += 1
    s = 1.0
    for i in range(_EXP_TERMS, 0, -1):  # Taylor series, Horner
        s = 1.0 + x * s / i
    for _ in range(k):
        s = s * s
    return s


@functools.cache
def _tail_table() -> np.ndarray:
    """``E`` (int64, ``(J_MAX - J_MIN + 1, N + 1)``, read-only): ``floor(r_j**n 2**29)``."""
    r = np.array([_exp(-1.0 / (16.0 * _exp(j / LOGB_STEP))) for j in range(J_MIN, J_MAX + 1)])
    e = np.empty((r.size, _N + 1), np.int64)
    p = np.ones_like(r)
    for n in range(_N + 1):  # elementwise IEEE products, the same sequence for every row
        e[:, n] = np.floor(p * 2.0**29)
        p = p * r
        p[p < 2.0**-100] = 0.0  # never a subnormal
    e = np.minimum.accumulate(e, axis=1)
    e.setflags(write=False)
    return e


@functools.cache
def _tail_table32() -> np.ndarray:
    return np.ascontiguousarray(_tail_table().astype(np.int32))


def _cum_freqs(lo: int, hi: int, mu16: int, j: int) -> np.ndarray:
    """``cum(lo .. hi + 1)`` (int64, ``K + 1`` values) of one latent (numpy reference)."""
    e = _tail_table()[j - J_MIN]
    k = np.arange(lo + 1, hi + 1, dtype=np.int64)
    n = 16 * k - 8 - mu16
    c = np.where(n < 0, e[np.minimum(-n, _N)], _ONE - e[np.minimum(np.abs(n), _N)])
    return np.concatenate([[0], ((c * (_M - (hi - lo + 1))) >> 30) + k - lo, [_M]])


# ---------------------------------------------------------------------------- kernels
@jit
def _arm(h, g, w, b, dims, shifts, lb):
    """Integer ARM on the Q8 context in ``h[:13]`` (``h``, ``g``: scratch); returns (mu16, j)."""
    nl = dims.size - 1
    wo = 0
    bo = 0
    for li in range(nl):
        nin = dims[li]
        s = shifts[li]
        half = (np.int64(1) << s) >> 1
        for o in range(dims[li + 1]):
            acc = b[bo + o]
            base = wo + o * nin
            for i in range(nin):
                acc += w[base + i] * h[i]
            if li < nl - 1 and acc < 0:
                acc = 0
            acc = (acc + half) >> s
            g[o] = min(max(acc, -_LIM), _LIM)
        wo += nin * dims[li + 1]
        bo += dims[li + 1]
        h, g = g, h
    mu = min(max((h[0] + 8) >> _MU_SHIFT, _MU_MIN), _MU_MAX)
    j = min(max((h[1] + lb + 16) >> _J_SHIFT, J_MIN), J_MAX)
    return mu, j


@jit
def _arm_batch(ctx, w, b, dims, shifts, lb, mu, jj):
    h = np.empty(_MAX_WIDTH, np.int64)
    g = np.empty(_MAX_WIDTH, np.int64)
    for r in range(ctx.shape[0]):
        for t in range(ctx.shape[1]):
            h[t] = ctx[r, t] << ACT_FRAC
        mu[r], jj[r] = _arm(h, g, w, b, dims, shifts, lb)


@jit
def _cum(e, row, mu16, lo, hi, mk, k):
    """``cum(k)`` of a latent (``row = j - J_MIN``, ``mk = M - K``)."""
    # freq >= 1: C is non-decreasing in n (E is non-increasing, C(j, -1) = E[j, 1] <= E[j, 0] =
    # 2**30 - E[j, 0] = C(j, 0)) with 0 <= C <= 2**30, and n_k grows with k, so with
    # F(k) = (C(j, n_k) * mk) >> 30 in [0, mk] non-decreasing: lo < k < hi: freq(k) =
    # F(k+1) - F(k) + 1 >= 1; freq(lo) = F(lo+1) + 1 >= 1 (K > 1); freq(hi) = M - F(hi) -
    # (hi - lo) >= M - mk - (K - 1) = 1; K == 1: freq(lo) = M.
    if k <= lo:
        return 0
    if k > hi:
        return _M
    n = 16 * k - 8 - mu16
    c = np.int64(e[row, min(-n, _N)]) if n < 0 else _ONE - np.int64(e[row, min(n, _N)])
    return ((c * mk) >> 30) + k - lo


@jit
def _level_model(qp, shape, lo, hi, w, b, dims, shifts, lb, e, deltas, cum, freq, off):
    """cum/freq of every latent of a padded level ``qp`` into ``cum[off:]``, ``freq[off:]``."""
    nc, nd, nh, nw = shape[0], shape[1], shape[2], shape[3]
    h = np.empty(_MAX_WIDTH, np.int64)
    g = np.empty(_MAX_WIDTH, np.int64)
    mk = _M - (hi - lo + 1)
    i = off
    for c in range(nc):
        for z in range(nd):
            for y in range(nh):
                p = ((c * (nd + 1) + z + 1) * (nh + 2) + y + 1) * (nw + 2) + 1
                for _x in range(nw):
                    v = qp[p]
                    if lo == hi:
                        cum[i] = 0
                        freq[i] = _M
                    else:
                        for t in range(deltas.size):
                            h[t] = qp[p + deltas[t]] << ACT_FRAC
                        mu, j = _arm(h, g, w, b, dims, shifts, lb)
                        c0 = _cum(e, j - J_MIN, mu, lo, hi, mk, v)
                        cum[i] = c0
                        freq[i] = _cum(e, j - J_MIN, mu, lo, hi, mk, v + 1) - c0
                    i += 1
                    p += 1


@jit
def _rans_encode(cum, freq, words):
    """Encode backwards; returns (final state, number of words), words in emission order."""
    x = np.int64(_RANS_L)
    k = 0
    for i in range(cum.size - 1, -1, -1):
        f = freq[i]
        if x >= f << 16:
            words[k] = x & 0xFFFF
            k += 1
            x >>= 16
        x = ((x // f) << 16) + x % f + cum[i]
    return x, k


@jit
def _level_decode(qp, shape, lo, hi, w, b, dims, shifts, lb, e, deltas, words, st):
    """Decode one level into the padded ``qp``; ``st = [x, word pointer, error]``."""
    nc, nd, nh, nw = shape[0], shape[1], shape[2], shape[3]
    h = np.empty(_MAX_WIDTH, np.int64)
    g = np.empty(_MAX_WIDTH, np.int64)
    mk = _M - (hi - lo + 1)
    x = st[0]
    ptr = st[1]
    for c in range(nc):
        for z in range(nd):
            for y in range(nh):
                p = ((c * (nd + 1) + z + 1) * (nh + 2) + y + 1) * (nw + 2) + 1
                for _x in range(nw):
                    if lo == hi:  # freq = M: the state does not change
                        qp[p] = lo
                        p += 1
                        continue
                    for t in range(deltas.size):
                        h[t] = qp[p + deltas[t]] << ACT_FRAC
                    mu, j = _arm(h, g, w, b, dims, shifts, lb)
                    slot = x & 0xFFFF
                    a, ca, z2, cz = lo, np.int64(0), hi + 1, np.int64(_M)
                    while z2 - a > 1:  # invariant cum(a) <= slot < cum(z2)
                        m = (a + z2) >> 1
                        cm = _cum(e, j - J_MIN, mu, lo, hi, mk, m)
                        if cm <= slot:
                            a, ca = m, cm
                        else:
                            z2, cz = m, cm
                    x = (cz - ca) * (x >> 16) + slot - ca
                    if x < _RANS_L:
                        if ptr >= words.size:
                            st[2] = 1
                            return
                        x = (x << 16) | np.int64(words[ptr])
                        ptr += 1
                    qp[p] = a
                    p += 1
    st[0] = x
    st[1] = ptr


# ------------------------------------------------------------------------------ tiles
def _check_bounds(bounds, arm: IntARM) -> np.ndarray:
    bd = np.asarray(bounds)
    if bd.ndim != 2 or bd.shape[1] != 2 or (bd.size and not np.issubdtype(bd.dtype, np.integer)):
        raise ParameterError("bounds must be an (L, 2) integer array of [lo, hi] per level")
    bd = bd.astype(np.int64)
    if (bd[:, 0] > bd[:, 1]).any() or (bd < _VMIN).any() or (bd > _VMAX).any():
        raise ParameterError(f"bounds need {_VMIN} <= lo <= hi <= {_VMAX} per level, got {bd}")
    if len(bd) > arm.nlevels:
        raise ParameterError(f"{len(bd)} levels but the ARM has log b offsets for {arm.nlevels}")
    return bd


def _check_levels(levels: Sequence[np.ndarray], bd: np.ndarray) -> list[np.ndarray]:
    if len(levels) != len(bd):
        raise ParameterError(f"{len(levels)} levels but {len(bd)} bounds")
    out = []
    for lv, (q, (lo, hi)) in enumerate(zip(levels, bd, strict=True)):
        q = np.asarray(q)
        if q.ndim != 4:
            raise ParameterError(f"level {lv} must be a (C, d, h, w) array, got shape {q.shape}")
        if q.size and not np.issubdtype(q.dtype, np.integer):
            raise UnsupportedDataError(f"level {lv} has dtype {q.dtype}, latents are integers")
        if q.size and (q.min() < lo or q.max() > hi):
            raise ParameterError(
                f"level {lv} has values in [{q.min()}, {q.max()}] outside its bounds [{lo}, {hi}]"
            )
        out.append(q)
    return out


def _pad(shape: tuple[int, ...], q: np.ndarray | None = None) -> np.ndarray:
    """Flat zero-padded level: 1 plane before in z, 1 row/column around in y and x."""
    c, d, h, w = shape
    qp = np.zeros((c, d + 1, h + 2, w + 2), np.int64)
    if q is not None:
        qp[:, 1:, 1:-1, 1:-1] = q
    return qp.reshape(-1)


def _deltas(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[2] + 2, shape[3] + 2
    return np.array([(dz * h + dy) * w + dx for dz, dy, dx in CONTEXT], np.int64)


def _model(levels, arm: IntARM, bounds) -> tuple[np.ndarray, np.ndarray]:
    """cum and freq (int64) of every latent, in stream order."""
    bd = _check_bounds(bounds, arm)
    levels = _check_levels(levels, bd)
    n = sum(q.size for q in levels)
    cum, freq = np.empty(n, np.int64), np.empty(n, np.int64)
    w, b, dims, shifts = arm._flat
    off = 0
    for lv, q in enumerate(levels):
        shape = np.array(q.shape, np.int64)
        _level_model(_pad(q.shape, q), shape, bd[lv, 0], bd[lv, 1], w, b, dims, shifts,
                     arm.level_logb[lv], _tail_table32(), _deltas(q.shape), cum, freq, off)
        off += q.size
    return cum, freq


def encode_latents(levels: Sequence[np.ndarray], arm: IntARM, bounds: np.ndarray) -> bytes:
    """rANS-code a pyramid of integer latents (format in the module docstring).

    Parameters
    ----------
    levels : sequence of numpy.ndarray
        Level ``l`` an integer array ``(C, d, h, w)`` with values in ``bounds[l]``.
    arm : IntARM
        The model; level ``l`` uses ``arm.level_logb[l]``.
    bounds : numpy.ndarray
        ``(L, 2)`` integers ``[lo, hi]`` per level, ``-128 <= lo <= hi <= 127``.

    Returns
    -------
    bytes
        ``u32`` state then ``u16`` words; 4 bytes when there are no latents.

    Raises
    ------
    ParameterError
        On values outside their bounds, bad bounds or more levels than ``arm`` has.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> arm = quantise_arm([(rng.normal(size=(4, 13)) / 4, np.zeros(4)),
    ...                     (rng.normal(size=(2, 4)) / 4, np.zeros(2))], [0.0])
    >>> q = rng.integers(-3, 4, (2, 1, 8, 8))
    >>> buf = encode_latents([q], arm, [[-3, 3]])
    >>> (decode_latents(buf, [q.shape], arm, [[-3, 3]])[0] == q).all()
    np.True_
    """
    cum, freq = _model(levels, arm, bounds)
    words = np.empty(cum.size, np.uint16)  # at most one word per symbol
    x, k = _rans_encode(cum, freq, words)
    return struct.pack("<I", x) + words[:k][::-1].astype("<u2").tobytes()


def code_length_bits(levels: Sequence[np.ndarray], arm: IntARM, bounds: np.ndarray) -> float:
    """Ideal code length, ``sum(-log2(freq / M))``, of the latents under the integer model.

    Parameters are those of :func:`encode_latents`; the stream is at most a few bytes longer
    than this / 8 (the 4-byte state).
    """
    _, freq = _model(levels, arm, bounds)
    return float(np.sum(PROB_BITS - np.log2(freq.astype(np.float64))))


def decode_latents(
    buf: Buffer, shapes: Sequence[tuple[int, int, int, int]], arm: IntARM, bounds: np.ndarray
) -> list[np.ndarray]:
    """Decode a stream of :func:`encode_latents`.

    Parameters
    ----------
    buf : bytes-like
        The stream.
    shapes : sequence of (C, d, h, w)
        Shape of each level.
    arm : IntARM
        The model used to encode.
    bounds : numpy.ndarray
        ``(L, 2)`` alphabets used to encode.

    Returns
    -------
    list of numpy.ndarray
        ``int16`` arrays (int16 rather than int8 so arithmetic on them does not wrap).

    Raises
    ------
    CorruptChunkError
        If the stream is truncated, too long or fails the final state check.
    ParameterError
        On bad shapes or bounds.
    """
    bd = _check_bounds(bounds, arm)
    shapes = [tuple(int(v) for v in s) for s in shapes]
    if len(shapes) != len(bd) or any(len(s) != 4 or min(s) < 0 for s in shapes):
        raise ParameterError(f"need {len(bd)} (C, d, h, w) shapes, got {shapes}")
    data = np.frombuffer(buf, np.uint8)
    if data.size < 4 or data.size % 2:
        raise _corrupt(f"{data.size} bytes is not a u32 state plus u16 words")
    x = int.from_bytes(data[:4].tobytes(), "little")
    if x < _RANS_L:
        raise _corrupt("initial state below 2**16")
    words = np.frombuffer(data[4:].tobytes(), "<u2").astype(np.uint16)
    st = np.array([x, 0, 0], np.int64)
    w, b, dims, shifts = arm._flat
    out = []
    for lv, shape in enumerate(shapes):
        qp = _pad(shape)
        _level_decode(qp, np.array(shape, np.int64), bd[lv, 0], bd[lv, 1], w, b, dims, shifts,
                      arm.level_logb[lv], _tail_table32(), _deltas(shape), words, st)
        if st[2]:
            raise _corrupt("stream ends before the last latent")
        c, d, h, wd = shape
        out.append(qp.reshape(c, d + 1, h + 2, wd + 2)[:, 1:, 1:-1, 1:-1].astype(np.int16))
    if st[0] != _RANS_L:
        raise _corrupt("final rANS state mismatch")
    if st[1] != words.size:
        raise _corrupt(f"{words.size - st[1]} words left over")
    return out
