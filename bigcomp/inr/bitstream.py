"""Weight layout, quantisation of per-tile residuals and their entropy-coded packs (numpy only).

Network (``depth`` sine layers of ``width``, then a linear output)::

    h = sin(w0 · (x W0 + b0))          x: (n, D) coordinates in [-1, 1]
    h = sin(h Wi + bi)                 i = 1 .. depth-1  (w0 folded into the weights)
    y = h Wout + bout                  (n, 1), then value = mean + scale · y

A tile's parameters are the flat float32 vector of the tensors in :func:`layer_shapes` order,
each C-ordered. Stored: the shared vector ``s`` (float32) and per modelled tile the residual
``r = p − s`` quantised per tensor: ``q = clip(round(r / step), −qmax, qmax)`` with
``qmax = 2**(bits−1) − 1`` and ``step = 2**((code − 192) / 8)`` (``code``: one byte per tensor
and tile). Dequantised weights are ``s + q·step`` in float32, exactly as :func:`dequantise` does.
The encoder gives the first layer's weight and bias ``FIRST_EXTRA_BITS`` (2) more bits (a 4×
finer step, ``qmax = 2**(bits+1) − 1``): the first layer is multiplied by w0 = 30, so its
quantisation error costs most (at 500×: +1.6 / +3.1 / +0.1 dB on the three benchmark sets for
≈ 1.5 % more bytes, docs/inr.md). The decoder never clips, so this needs no format change.

Packs: consecutive modelled tiles (``pack_tiles`` of them, the last pack shorter) are coded
together so the entropy coder's tables are shared::

    u8   code[k, L]      step codes of the pack's k tiles (L tensors each)
    ...  encode_max(zigzag(q[k, P]).ravel(), row_length=P)

so a symbol's north neighbour is the same weight of the previous tile. ``packs`` holds the byte
offsets of the packs in the ``residuals`` array (``npacks + 1`` entries).

Per-tile widths (store format 3): tile ``i`` has its own width ``w_i`` (``P(w_i)`` parameters,
the same depth). A pack then holds the codes ``(k, L)`` and the concatenation of the tiles'
level vectors (:func:`encode_pack_var`; row length = ``P`` of the store's largest width, which
only shapes the coder's contexts). A tile's origin is the leading ``w_i`` units of the
width-``W`` origin (:func:`narrow`) when the origin is stored, or the seeded initialisation of
width ``w_i`` when it is regenerated. :func:`widen` is the inverse of :func:`narrow` (the
encoder trains tiles of different widths as one batch, each zero-padded to the widest).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CorruptChunkError
from ..kernels._coders import decode_max, encode_max, unzigzag, zigzag

__all__ = ["FIRST_EXTRA_BITS", "decode_pack", "decode_pack_var", "dequantise", "encode_pack",
           "encode_pack_var", "extra_bits", "layer_shapes", "level_limits", "narrow",
           "nparams", "quantise", "step_codes", "widen"]

CODE_BIAS = 192


def layer_shapes(dims: int, width: int, depth: int = 2) -> list[tuple[int, ...]]:
    """Shapes of the network's tensors (weights ``(in, out)`` then biases), in storage order.

    Examples
    --------
    >>> layer_shapes(3, 16)
    [(3, 16), (16,), (16, 16), (16,), (16, 1), (1,)]
    """
    shapes: list[tuple[int, ...]] = [(dims, width), (width,)]
    for _ in range(depth - 1):
        shapes += [(width, width), (width,)]
    shapes += [(width, 1), (1,)]
    return shapes


def nparams(dims: int, width: int, depth: int = 2) -> int:
    """Number of parameters of one tile's network."""
    return sum(math.prod(s) for s in layer_shapes(dims, width, depth))


def _bounds(shapes: list[tuple[int, ...]]) -> np.ndarray:
    return np.cumsum([0] + [math.prod(s) for s in shapes])


def steps_from_codes(codes: np.ndarray) -> np.ndarray:
    """Quantisation steps (float32) of step codes."""
    return np.exp2((codes.astype(np.float64) - CODE_BIAS) / 8.0).astype(np.float32)


FIRST_EXTRA_BITS = 2  # the first layer (weights, bias) gets this many bits more (encoder only)


def extra_bits(nlayers: int) -> np.ndarray:
    """Extra bits per tensor: ``FIRST_EXTRA_BITS`` for the first layer's weight and bias.

    An encoder choice only (the decoder multiplies levels by steps and never clips).
    """
    e = np.zeros(nlayers, np.int64)
    e[:min(2, nlayers)] = FIRST_EXTRA_BITS
    return e


def level_limits(nlayers: int, bits: int) -> np.ndarray:
    """Largest level magnitude of each tensor: ``2**(bits − 1 + extra) − 1``."""
    return 2 ** (bits - 1 + extra_bits(nlayers)) - 1


def step_codes(maxabs: np.ndarray, bits: int) -> np.ndarray:
    """Smallest codes whose step covers ``maxabs`` with ``2**(bits-1) - 1`` levels (uint8).

    ``maxabs`` is ``(k, L)``: tensor ``j`` gets ``extra_bits(L)[j]`` more bits.
    """
    maxabs = np.asarray(maxabs, np.float64)
    qmax = 2 ** (bits - 1) - 1
    extra = extra_bits(maxabs.shape[-1]) if maxabs.ndim else 0
    with np.errstate(divide="ignore"):
        c = np.ceil(8.0 * (np.log2(maxabs / qmax) - extra)) + CODE_BIAS
    c = np.where(np.asarray(maxabs) > 0, c, 0)
    return np.clip(c, 0, 255).astype(np.uint8)


def quantise(residual: np.ndarray, codes: np.ndarray, shapes: list[tuple[int, ...]],
             bits: int) -> np.ndarray:
    """Quantise residuals ``(k, P)`` with per-tensor codes ``(k, L)`` to int32 levels."""
    qmax = level_limits(len(shapes), bits)
    b = _bounds(shapes)
    steps = steps_from_codes(codes)
    q = np.empty(residual.shape, np.int32)
    for j in range(len(shapes)):
        sl = slice(b[j], b[j + 1])
        q[:, sl] = np.clip(np.rint(residual[:, sl] / steps[:, j:j + 1]), -qmax[j], qmax[j])
    return q


def dequantise(shared: np.ndarray, q: np.ndarray, codes: np.ndarray,
               shapes: list[tuple[int, ...]]) -> np.ndarray:
    """float32 weights ``shared + q·step`` of ``k`` tiles, shape ``(k, P)``."""
    b = _bounds(shapes)
    steps = steps_from_codes(codes)
    out = np.empty(q.shape, np.float32)
    s = shared.astype(np.float32)
    for j in range(len(shapes)):
        sl = slice(b[j], b[j + 1])
        out[:, sl] = s[sl] + q[:, sl].astype(np.float32) * steps[:, j:j + 1]
    return out


def encode_pack(q: np.ndarray, codes: np.ndarray) -> bytes:
    """Bytes of one pack: ``codes (k, L)`` then the entropy-coded levels ``q (k, P)``."""
    p = q.shape[1]
    return (np.ascontiguousarray(codes, np.uint8).tobytes()
            + encode_max(np.ascontiguousarray(zigzag(q).astype(np.uint32).ravel()), p))


def decode_pack(buf: bytes | np.ndarray, k: int, nlayers: int, p: int,
                what: str = "pack") -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_pack`: ``(q (k, P) int32, codes (k, L) uint8)``."""
    raw = np.frombuffer(bytes(buf), np.uint8)
    nc = k * nlayers
    if raw.size < nc:
        raise CorruptChunkError(f"INR {what} is truncated ({raw.size} bytes < {nc})")
    codes = raw[:nc].reshape(k, nlayers).copy()
    try:
        z = decode_max(raw[nc:], k * p, p)
    except ValueError as exc:
        raise CorruptChunkError(f"INR {what} is damaged: {exc}") from exc
    return unzigzag(z).astype(np.int32).reshape(k, p), codes


def narrow(flat: np.ndarray, dims: int, width: int, new_width: int, depth: int) -> np.ndarray:
    """The sub-network of the first ``new_width`` units of every sine layer (flat, ``P(new)``).

    Examples
    --------
    >>> narrow(np.arange(nparams(2, 3), dtype=np.float32), 2, 3, 2, 2).size == nparams(2, 2)
    True
    """
    out = []
    o = 0
    shapes = layer_shapes(dims, width, depth)
    for k, shape in enumerate(shapes):
        n = math.prod(shape)
        t = np.asarray(flat[o:o + n]).reshape(shape)
        o += n
        if k == 0:  # (D, W)
            t = t[:, :new_width]
        elif k == len(shapes) - 2:  # output weight (W, 1)
            t = t[:new_width]
        elif k < len(shapes) - 2:  # biases (W,) and hidden weights (W, W)
            t = t[(slice(0, new_width),) * t.ndim]
        out.append(t.ravel())
    return np.concatenate(out)


def widen(flat: np.ndarray, dims: int, width: int, new_width: int, depth: int) -> np.ndarray:
    """Inverse of :func:`narrow`: a width-``width`` network as the first units of a
    ``new_width`` one whose other weights are zero (so the two compute the same function).

    Examples
    --------
    >>> f = np.arange(nparams(2, 2, 3), dtype=np.float32)
    >>> bool((narrow(widen(f, 2, 2, 5, 3), 2, 5, 2, 3) == f).all())
    True
    """
    out = []
    o = 0
    for shape, big in zip(layer_shapes(dims, width, depth),
                          layer_shapes(dims, new_width, depth), strict=True):
        n = math.prod(shape)
        t = np.zeros(big, np.asarray(flat).dtype)
        t[tuple(slice(0, m) for m in shape)] = np.asarray(flat[o:o + n]).reshape(shape)
        o += n
        out.append(t.ravel())
    return np.concatenate(out)


def encode_pack_var(qs: list[np.ndarray], codes: np.ndarray, row_length: int) -> bytes:
    """Bytes of one pack of tiles with different sizes: ``codes (k, L)`` then the
    entropy-coded concatenation of the level vectors ``qs`` (format 3)."""
    z = np.concatenate([zigzag(np.asarray(q).ravel()).astype(np.uint32) for q in qs])
    return (np.ascontiguousarray(codes, np.uint8).tobytes()
            + encode_max(np.ascontiguousarray(z, np.uint32), int(row_length)))


def decode_pack_var(buf: bytes | np.ndarray, sizes: list[int], nlayers: int, row_length: int,
                    what: str = "pack") -> tuple[list[np.ndarray], np.ndarray]:
    """Inverse of :func:`encode_pack_var`: (level vectors, ``codes (k, L)``)."""
    raw = np.frombuffer(bytes(buf), np.uint8)
    k = len(sizes)
    nc = k * nlayers
    if raw.size < nc:
        raise CorruptChunkError(f"INR {what} is truncated ({raw.size} bytes < {nc})")
    codes = raw[:nc].reshape(k, nlayers).copy()
    try:
        z = decode_max(raw[nc:], int(sum(sizes)), int(row_length))
    except ValueError as exc:
        raise CorruptChunkError(f"INR {what} is damaged: {exc}") from exc
    q = unzigzag(z).astype(np.int32)
    bounds = np.cumsum([0, *sizes])
    return [q[bounds[j]:bounds[j + 1]] for j in range(k)], codes
