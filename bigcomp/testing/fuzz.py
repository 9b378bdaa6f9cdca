"""Structure-aware fuzzing of the chunk decoder (issue 17).

:func:`seed_chunks` encodes small valid chunks of every kind the encoder writes (every format
version, mode, order, coder, dtype, 0-4 dimensions, with and without ``pq`` escapes).
:func:`make_case` damages one of them where a decoder is most likely to go wrong -- header fields
(layout in :mod:`bigcomp.format`), predictor taps, lengths, the payload -- and recomputes the
CRC32C so that the damage reaches the decoder; a few cases keep the old checksum and must be
rejected. :func:`fuzz` runs cases in this process and reports the outcomes (:class:`FuzzReport`);
``benchmarks/fuzz.py`` runs them in worker subprocesses (with numba bounds checking if asked),
so that a crash or a hang of one case is caught and reported.

Every case is reproducible from its seed chunks (the same list as the run's: ``tests/test_fuzz.py``
and ``benchmarks/fuzz.py`` add the fixtures of older writers), ``seed`` and ``index``::

    from bigcomp import decode_chunk
    from bigcomp.testing.fuzz import fixture_seeds, make_case, seed_chunks
    seeds = [*seed_chunks(), *fixture_seeds("tests/fixture")]
    case = make_case(seeds, seed=0, index=123)
    decode_chunk(case.chunk)

A decoder may decode a damaged chunk (garbage in, garbage out) or raise a
:class:`~bigcomp.errors.BigcompError`; anything else -- another exception, a crash, a hang, a
decode that allocates far more than the chunk's shape needs -- is a bug.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import resource
import struct
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from crc32c import crc32c

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "BOMB_SHAPES",
    "OVERFLOW_SHAPES",
    "Case",
    "CaseResult",
    "Fields",
    "FuzzReport",
    "Seed",
    "bomb_chunks",
    "build_chunk",
    "fixture_seeds",
    "fuzz",
    "limit_memory",
    "make_case",
    "parse_chunk",
    "run_case",
    "seed_chunks",
    "warm_up",
]

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
MIB = 1 << 20
_ITEMSIZE = {1: 1, 2: 2, 3: 4}  # dtype code -> bytes per pixel
_HEAD = struct.Struct("<4sBBBBBBH")
_TAP = struct.Struct("<bbbBi")
U8 = (0, 1, 2, 3, 4, 7, 8, 15, 16, 29, 30, 31, 32, 33, 63, 64, 127, 128, 254, 255)
U16 = (0, 1, 2, 4095, 4096, 4097, 32767, 32768, 65535)
U32 = (0, 1, 2, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256, 4095, 4096, 4097, 65535,
       65536, 1 << 20, 1 << 24, (1 << 31) - 1, 1 << 31, M32 - 1, M32)
U64 = (*U32, 1 << 32, 1 << 40, 1 << 53, (1 << 63) - 1, 1 << 63, M64)
I32 = (0, 1, -1, 2, -2, 3, 64, -64, 4096, 1 << 16, -(1 << 16), 1 << 24, 1 << 30, -(1 << 30),
       (1 << 31) - 1, -(1 << 31))
F64 = (math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 5e-324, 1e-300, 1e-6, 0.5, 1.0, 2.0, 3.0,
       100.0, 65535.0, 1e6, 1e12, 1e155, 1e300, -1e300, 2.0**29, 2.0**31)
# shapes whose pixel count overflows 64 bits (or int64): 2**64 + 4, + 5, + 20, 2**64 (0 mod
# 2**64), >= 2**63 (negative as int64)
OVERFLOW_SHAPES = (
    (2, 2761311370, 3340214413),
    (7, 1066043567, 2471990109),
    (1423, 10827767, 1197225396),
    (1 << 16, 1 << 16, 1 << 16, 1 << 16),
    (1 << 31, 1 << 31, 4),
    (M32, M32),
    (1 << 31, 1 << 31, 2, 3),
    (M32, M32, M32),
)
# claims of 256 MiB to 64 EiB: a chunk of a few bytes must be rejected, or decode within the
# per-chunk limit (1 GiB by default) and without allocating much more than its output
BOMB_SHAPES = ((1 << 14, 1 << 14), (1 << 15, 1 << 15), (1 << 30,), (4, 1 << 14, 1 << 14),
               (1 << 16, 1 << 16), (M32, M32), (M32,))


# ------------------------------------------------------------------------------- the layout
@dataclass
class Fields:
    """The fields of a chunk (:mod:`bigcomp.format` layout), editable; :func:`build_chunk`
    serialises them with consistent lengths unless a ``*_lie`` field overrides one."""

    version: int
    mode: int
    order: int
    coder: int
    dtype: int
    flags: int  # reserved (0) before format version 5
    shape: list[int]
    run: int
    params: list[float]  # q, gain, offset, read_noise
    shifts: list[int]  # intra, inter
    intra: list[list[int]]  # per tap: dp, dy, dx, pad, coefficient
    inter: list[list[int]]
    payload: bytes
    n_escapes: int
    escapes: bytes
    ndim_lie: int | None = None
    counts_lie: tuple[int, int] | None = None
    payload_length_lie: int | None = None

    def pixels(self) -> int:
        return math.prod(self.shape)

    def claimed_bytes(self) -> int:
        """What the shape and dtype claim the decoded chunk takes."""
        return self.pixels() * _ITEMSIZE.get(self.dtype, 1)

    def escape_size(self) -> int | None:
        """Bytes per stored escape: a value, a version 5 float32 exact pixel (u64 index, f32
        value), or ``None`` where escapes are offsets in the payload (version 4 ``pq``)."""
        if self.version >= 4 and self.order == 1:
            return None
        return 12 if self.version >= 5 and self.dtype == 3 else _ITEMSIZE.get(self.dtype, 1)


def parse_chunk(chunk: bytes) -> Fields:
    """Split a well-formed chunk into its fields (the checksum is dropped, not checked).

    Examples
    --------
    A lossless uint16 3x4 chunk whose ``max`` payload says "every symbol is 7":

    >>> f = Fields(version=1, mode=0, order=0, coder=1, dtype=2, flags=0, shape=[3, 4],
    ...            run=1, params=[0.0] * 4, shifts=[0, 0], intra=[[0, 0, -1, 0, 1]], inter=[],
    ...            payload=b"\\x00\\x07\\x00\\x00\\x00", n_escapes=0, escapes=b"")
    >>> chunk = build_chunk(f)
    >>> len(chunk), parse_chunk(chunk) == f
    (93, True)
    >>> f.shape = [2**32 - 1] * 2  # the same chunk claiming 2**64 pixels
    >>> len(build_chunk(f)), f.claimed_bytes() > 2**64
    (93, True)
    """
    b = bytes(chunk)
    _, version, mode, order, coder, dtype, ndim, flags = _HEAD.unpack_from(b, 0)
    pos = _HEAD.size
    shape = list(struct.unpack_from(f"<{ndim}I", b, pos))
    pos += 4 * ndim
    (run,) = struct.unpack_from("<I", b, pos)
    params = list(struct.unpack_from("<4d", b, pos + 4))
    n_intra, s_intra, n_inter, s_inter = struct.unpack_from("<4B", b, pos + 36)
    pos += 40
    taps = [list(_TAP.unpack_from(b, pos + 8 * i)) for i in range(n_intra + n_inter)]
    pos += 8 * len(taps)
    n_payload, n_escapes = struct.unpack_from("<QQ", b, pos)
    pos += 16
    return Fields(version, mode, order, coder, dtype, flags, shape, run, params,
                  [s_intra, s_inter], taps[:n_intra], taps[n_intra:], b[pos : pos + n_payload],
                  n_escapes, b[pos + n_payload : -4])


def _s8(v: int) -> int:
    return (int(v) + 128) % 256 - 128


def build_chunk(f: Fields, *, crc: bool = True) -> bytes:
    """Serialise ``f`` (every field wrapped into its width); ``crc=False`` leaves the
    checksum zero."""
    shape = [int(s) & M32 for s in f.shape]
    ndim = len(shape) if f.ndim_lie is None else f.ndim_lie
    counts = (len(f.intra), len(f.inter)) if f.counts_lie is None else f.counts_lie
    n_payload = len(f.payload) if f.payload_length_lie is None else f.payload_length_lie
    parts = [
        _HEAD.pack(b"BGCP", f.version & 255, f.mode & 255, f.order & 255, f.coder & 255,
                   f.dtype & 255, ndim & 255, f.flags & 0xFFFF),
        struct.pack(f"<{len(shape)}I", *shape),
        struct.pack("<I4d4B", f.run & M32, *f.params, counts[0] & 255, f.shifts[0] & 255,
                    counts[1] & 255, f.shifts[1] & 255),
        *(_TAP.pack(_s8(dp), _s8(dy), _s8(dx), pad & 255, (c + (1 << 31)) % (1 << 32) - (1 << 31))
          for dp, dy, dx, pad, c in [*f.intra, *f.inter]),
        struct.pack("<QQ", n_payload & M64, f.n_escapes & M64),
        f.payload,
        f.escapes,
    ]
    body = b"".join(parts)
    return body + struct.pack("<I", crc32c(body) if crc else 0)


# -------------------------------------------------------------------------------- seeds
@dataclass(frozen=True)
class Seed:
    """A valid chunk to mutate."""

    name: str
    chunk: bytes

    @property
    def version(self) -> int:
        return self.chunk[4]


_SHAPES = {0: (), 1: (37,), 2: (9, 11), 3: (3, 8, 10), 4: (2, 2, 6, 7)}


def _data(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Camera-like counts (gain 2, offset 100 for uint16; gain 0.5, offset 10 for uint8)."""
    if dtype == "uint8":
        values = 10 + 0.5 * rng.poisson(rng.uniform(5, 300, shape)) + rng.normal(0, 1, shape)
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    values = 100 + 2.0 * rng.poisson(rng.uniform(5, 3000, shape)) + rng.normal(0, 3, shape)
    if dtype == "float32":
        return values.astype(np.float32)
    values = np.clip(np.rint(values), 0, 65535).astype(np.uint16)
    if values.size > 4:  # extremes of the dtype
        values.reshape(-1)[[0, values.size // 2]] = (65535, 0)
    return values


@functools.cache
def seed_chunks() -> tuple[Seed, ...]:
    """Small valid chunks of every kind :func:`bigcomp.encode_chunk` writes.

    Modes lossless/WNL, orders ``qp``/``pq`` (``pq`` with and without escapes, which decide
    between format version 4 and older), coders fast/max/rice, dtypes uint8/uint16/float32
    (float32 only WNL ``qp``, also with exact pixels: version 5), 0-4 dimensions, plus two
    empty chunks. Deterministic (encoding compiles the encoder: 20-60 s in a fresh process).
    """
    from ..chunk import encode_chunk
    from ..noise import CameraModel

    cams = {"uint8": CameraModel(0.5, 10.0, 1.0), "uint16": CameraModel(2.0, 100.0, 1.6),
            "float32": CameraModel(2.0, 100.0, 1.6), "steep": CameraModel(0.08, 1e6, 0.0)}
    kinds = [("lossless", "qp", (0.0,)), ("wnl", "qp", (1.0,)), ("wnl", "pq", (3.0, 8.0)),
             ("wnl", "pq-esc", (0.5, 0.2, 0.05))]
    seeds = []
    for ndim, shape in _SHAPES.items():
        for mode, order, qs in kinds:
            for coder in ("fast", "max", "rice"):
                for dtype in ("uint8", "uint16", "float32"):
                    if dtype == "float32" and (mode, order) != ("wnl", "qp"):
                        continue
                    rng = np.random.default_rng([ndim, len(seeds)])
                    data = _data(dtype, shape, rng)
                    want_escapes = order == "pq-esc"
                    for q in qs:  # q until the chunk has (or has no) escapes, as asked
                        chunk = encode_chunk(data, q=q, camera=cams[dtype], order=order[:2],
                                             coder=coder)
                        has_escapes = order[:2] == "pq" and parse_chunk(chunk).n_escapes > 0
                        if has_escapes == want_escapes:
                            break
                    seeds.append(Seed(f"{mode}-{order}-{coder}-{dtype}-{ndim}d", chunk))
        for coder in ("fast", "max", "rice"):  # float32 coarser than the step: exact pixels
            rng = np.random.default_rng([ndim, len(seeds)])
            data = (1e5 + rng.normal(0, 50, shape)).astype(np.float32)
            chunk = encode_chunk(data, q=0.25, camera=cams["steep"], coder=coder)
            seeds.append(Seed(f"wnl-qp-{coder}-float32-exact-{ndim}d", chunk))
    for coder in ("max", "fast"):
        empty = np.zeros((0, 7), np.uint16)
        seeds.append(Seed(f"lossless-qp-{coder}-uint16-empty", encode_chunk(empty, coder=coder)))
    return tuple(seeds)


def fixture_seeds(folder: str | Path) -> list[Seed]:
    """The checked-in chunks ``*.bgc`` under ``folder`` (older format versions and writers)."""
    root = Path(folder)
    return [Seed(f"fixture:{p.relative_to(root).with_suffix('')}", p.read_bytes())
            for p in sorted(root.rglob("*.bgc"))]


BOMB_SEEDS = ("lossless-qp-max-uint8-2d", "lossless-qp-max-uint16-2d",
              "wnl-pq-esc-max-uint8-2d", "wnl-pq-esc-max-uint16-2d")


def bomb_chunks(seeds: Sequence[Seed] | None = None) -> list[Case]:
    """Small valid-checksum chunks whose header claims 256 MiB or more.

    Per seed of :data:`BOMB_SEEDS` (``max`` coder, lossless and ``pq``, uint8 and uint16) and
    shape of :data:`BOMB_SHAPES`: the 5-byte ``max`` payload that says "every residual is 0"
    whatever the shape (*const*, under 200 bytes: a valid chunk of one value, decoding it only
    takes memory), and the seed's own payload (*own*, a few hundred bytes: far too short for the
    shape, it must be rejected before anything of that size is allocated). They are cases
    ``-1, -2, ...`` (case ``i`` is ``bomb_chunks(seeds)[-1 - i]``).
    """
    out = []
    for seed in seed_chunks() if seeds is None else seeds:
        if seed.name not in BOMB_SEEDS:
            continue
        for shape in BOMB_SHAPES:
            for kind in ("const", "own"):
                f = parse_chunk(seed.chunk)
                if kind == "const":  # symbol of a zero residual: 0, or 1 in pq (0 escapes)
                    f.payload, f.n_escapes = b"\x00" + struct.pack("<I", f.order), 0
                f.shape = list(shape)
                f.run = shape[-3] if len(shape) >= 3 else 1
                name = f"{seed.name}:{'x'.join(map(str, shape))}:{kind}"
                out.append(Case(-1 - len(out), name, seed.version, ("bomb",), True,
                                build_chunk(f)))
    return out


# ----------------------------------------------------------------------------- mutations
def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _m_version(rng, f, ctx):
    f.version = _pick(rng, (0, 1, 2, 3, 4, 5, 127, 255, f.version - 1, f.version + 1))
    return f"version={f.version}"


def _m_enum(name: str, n: int):
    def mutate(rng, f, ctx):
        value = getattr(f, name)
        new = (value + int(rng.integers(1, n))) % n if rng.random() < 0.7 else _pick(rng, U8)
        setattr(f, name, new)
        return f"{name}={new}"
    mutate.__name__ = f"_m_{name}"
    return mutate


def _m_dtype(rng, f, ctx):
    f.dtype = int(rng.integers(1, 4)) if rng.random() < 0.7 else _pick(rng, U8)
    return f"dtype={f.dtype}"


def _m_flags(rng, f, ctx):
    f.flags = f.flags ^ 1 if rng.random() < 0.6 else int(rng.integers(1, 1 << 16))
    return f"flags={f.flags:#x}"


def _m_ndim(rng, f, ctx):
    r = rng.random()
    if r < 0.15:
        f.ndim_lie = _pick(rng, (0, 1, 2, 3, 4, 5, 31, 32, 33, 255))
        return f"ndim_lie={f.ndim_lie}"
    if r < 0.55 and f.shape:
        del f.shape[int(rng.integers(len(f.shape)))]
    elif r < 0.9:
        f.shape.insert(int(rng.integers(len(f.shape) + 1)), _pick(rng, (0, 1, 1, 2, 3, 5)))
    else:
        n = _pick(rng, (0, 5, 31, 32, 33))
        f.shape = (f.shape + [1] * n)[:n]
    return f"shape={f.shape}"


def _m_shape(rng, f, ctx):
    if not f.shape:
        f.shape = [_pick(rng, U32)]
    i = int(rng.integers(len(f.shape)))
    s = f.shape[i]
    f.shape[i] = _pick(rng, (*U32, s + 1, s - 1, 2 * s, s // 2, 0, 0))
    return f"shape={f.shape}"


def _m_shape_special(rng, f, ctx):
    r = rng.random()
    if r < 0.35:
        f.shape = list(_pick(rng, OVERFLOW_SHAPES))
    elif r < 0.55:
        f.shape = list(_pick(rng, BOMB_SHAPES))
    elif r < 0.75:  # same pixels, other geometry
        n = f.pixels()
        d = _pick(rng, [k for k in (1, 2, 3, 4, 5, 7, 8, 16, 32) if n % k == 0])
        f.shape = _pick(rng, ([n], [1, n], [n // d, d], [d, n // d], [d, 1, n // d], [n, 1]))
    else:
        rng.shuffle(f.shape)
    if rng.random() < 0.5:  # keep the run consistent with the planes
        f.run = math.prod(f.shape[:-2]) if len(f.shape) >= 3 else 1
    return f"shape={f.shape}"


def _m_run(rng, f, ctx):
    planes = math.prod(f.shape[:-2]) if len(f.shape) >= 3 else 1
    f.run = _pick(rng, (*U32, planes, planes + 1, planes - 1, 2 * planes, 1, 1, 0))
    return f"run={f.run}"


def _m_param(rng, f, ctx):
    i = int(rng.integers(4))
    r = rng.random()
    if r < 0.6:
        f.params[i] = _pick(rng, F64)
    elif r < 0.9:
        f.params[i] *= 10.0 ** rng.uniform(-4, 4)
    else:
        f.params[i] = -f.params[i]
    return f"{('q', 'gain', 'offset', 'read_noise')[i]}={f.params[i]!r}"


def _random_tap(rng, *, causal: bool) -> list[int]:
    if causal:
        dy = -int(rng.integers(0, 9))
        dx = int(rng.integers(-8, 9)) if dy < 0 else -int(rng.integers(1, 9))
        dp = 0
    else:
        dp, dy, dx = (_pick(rng, (-2, -1, 0, 1, -128, 127, -9, 9, -8, 8, 0)) for _ in range(3))
    return [dp, dy, dx, 0, _pick(rng, I32) if rng.random() < 0.3 else int(rng.integers(-64, 65))]


def _m_taps_count(rng, f, ctx):
    which = "intra" if rng.random() < 0.5 else "inter"
    taps = getattr(f, which)
    if rng.random() < 0.2:
        counts = [len(f.intra), len(f.inter)]
        counts[which == "inter"] = _pick(rng, (0, 1, 2, 3, 4, 8, 37, 255, len(taps) + 1))
        f.counts_lie = tuple(counts)
        return f"tap_counts_lie={f.counts_lie}"
    n = _pick(rng, (0, 0, 1, 2, 3, 4, 8, 16, 37, 64, 255, len(taps) + 1, max(0, len(taps) - 1)))
    causal = rng.random() < 0.8
    taps[:] = (taps + [_random_tap(rng, causal=causal) for _ in range(max(0, n - len(taps)))])[:n]
    return f"{which}_taps={n}"


def _m_shift(rng, f, ctx):
    i = int(rng.integers(2))
    f.shifts[i] = _pick(rng, U8)
    return f"shift[{i}]={f.shifts[i]}"


def _m_tap(rng, f, ctx):
    taps = f.intra + f.inter
    if not taps:
        return _m_taps_count(rng, f, ctx)
    tap = _pick(rng, taps)
    j = int(rng.integers(5))
    if j == 4:
        tap[4] = _pick(rng, I32) if rng.random() < 0.6 else tap[4] + int(rng.integers(-3, 4))
    elif j == 3:
        tap[3] = int(rng.integers(1, 256))
    else:
        tap[j] = _pick(rng, (-128, -9, -8, -2, -1, 0, 1, 2, 8, 9, 127))
    return f"tap[{j}]={tap[j]}"


def _m_lengths(rng, f, ctx):
    r = rng.random()
    if r < 0.3:
        f.payload_length_lie = _pick(rng, (*U64, len(f.payload) + 1, len(f.payload) - 1))
        return f"payload_length_lie={f.payload_length_lie}"
    n = f.pixels()
    f.n_escapes = _pick(rng, (*U64, 0, 1, n, n + 1, n - 1, f.n_escapes + 1, f.n_escapes - 1)) & M64
    size = f.escape_size()  # escapes stored after the payload: keep their length consistent
    if size and rng.random() < 0.7 and f.n_escapes * size <= MIB:
        old = f.escapes[: f.n_escapes * size]
        f.escapes = old + rng.bytes(f.n_escapes * size - len(old))
    return f"n_escapes={f.n_escapes}"


def _m_escape_values(rng, f, ctx):
    if not f.escapes:
        return _m_lengths(rng, f, ctx)
    e = bytearray(f.escapes)
    if f.escape_size() == 12 and len(e) >= 12 and rng.random() < 0.6:  # an exact pixel
        i = 12 * int(rng.integers(len(e) // 12))
        n = f.pixels()
        if rng.random() < 0.6:
            e[i : i + 8] = struct.pack("<Q", _pick(rng, (*U64, n, n - 1, n + 1)) & M64)
        else:
            with np.errstate(over="ignore"):
                e[i + 8 : i + 12] = np.float32(_pick(rng, F64)).astype("<f4").tobytes()
        f.escapes = bytes(e)
        return "exact pixel changed"
    for _ in range(int(rng.integers(1, 4))):
        e[int(rng.integers(len(e)))] = _pick(rng, U8)
    f.escapes = bytes(e)
    return "escape values"


def _p_bits(rng, f, ctx):
    if not f.payload:
        return _p_extend(rng, f, ctx)
    p = bytearray(f.payload)
    k = int(rng.integers(1, 9))
    for _ in range(k):
        i = int(rng.integers(8 * len(p)))
        p[i // 8] ^= 1 << (i % 8)
    f.payload = bytes(p)
    return f"payload {k} bit flips"


def _p_set(rng, f, ctx):
    if len(f.payload) < 4:
        return _p_extend(rng, f, ctx)
    p = bytearray(f.payload)
    near_head = rng.random() < 0.5
    i = int(rng.integers(min(len(p) - 3, 24) if near_head else len(p) - 3))
    r = rng.random()
    if r < 0.4:
        p[i] = _pick(rng, U8)
        what = "u8"
    elif r < 0.6:
        p[i : i + 2] = struct.pack("<H", _pick(rng, U16))
        what = "u16"
    else:
        i -= 0 if near_head else i % 4
        p[i : i + 4] = struct.pack("<I", _pick(rng, U32))
        what = "u32"
    f.payload = bytes(p)
    return f"payload {what} at {i}"


def _p_resize(rng, f, ctx):
    if rng.random() < 0.5 and f.payload:
        k = int(rng.integers(len(f.payload))) if rng.random() < 0.5 else len(f.payload) - int(
            rng.integers(1, min(len(f.payload), 8) + 1))
        f.payload = f.payload[:k]
        return f"payload cut to {k}"
    return _p_extend(rng, f, ctx)


def _p_extend(rng, f, ctx):
    k = _pick(rng, (1, 2, 3, 4, 8, 16, 64, 1024, int(rng.integers(1, 300))))
    fill = _pick(rng, (b"\x00", b"\xff", None))
    extra = rng.bytes(k) if fill is None else fill * k
    f.payload = f.payload + extra if rng.random() < 0.8 else extra + f.payload
    return f"payload +{k} bytes"


def _p_run(rng, f, ctx):
    if not f.payload:
        return _p_extend(rng, f, ctx)
    p = bytearray(f.payload)
    i = int(rng.integers(len(p)))
    k = min(len(p) - i, int(rng.integers(1, 65)))
    fill = _pick(rng, (b"\x00", b"\xff", None))
    p[i : i + k] = rng.bytes(k) if fill is None else fill * k
    f.payload = bytes(p)
    return f"payload run of {k} at {i}"


def _p_splice(rng, f, ctx):
    same = [o for o in ctx if o.coder == f.coder] if rng.random() < 0.7 else ctx
    other = _pick(rng, same or ctx).payload
    r = rng.random()
    if r < 0.4:
        f.payload = other
    else:
        i, j = int(rng.integers(len(f.payload) + 1)), int(rng.integers(len(other) + 1))
        f.payload = f.payload[:i] + other[j:]
    return "payload spliced"


def _p_structure(rng, f, ctx):
    r = rng.random()
    if r < 0.35:  # max: constant payload
        f.payload = b"\x00" + struct.pack("<I", _pick(rng, U32))
        return "payload max constant"
    if r < 0.5:
        f.payload = b""
        return "payload empty"
    if r < 0.7 and len(f.payload) >= 8:  # swap two words
        p = bytearray(f.payload)
        i, j = (4 * int(rng.integers(len(p) // 4)) for _ in range(2))
        p[i : i + 4], p[j : j + 4] = p[j : j + 4], p[i : i + 4]
        f.payload = bytes(p)
        return "payload words swapped"
    half = f.payload[: len(f.payload) // 2]
    f.payload = f.payload * 2 if rng.random() < 0.5 else f.payload + half
    return "payload repeated"


HEADER_MUTATORS = (_m_version, _m_enum("mode", 2), _m_enum("order", 2), _m_enum("coder", 3),
                   _m_dtype, _m_flags, _m_ndim, _m_shape, _m_shape, _m_shape_special,
                   _m_shape_special, _m_run, _m_param, _m_param, _m_taps_count, _m_shift, _m_tap,
                   _m_tap, _m_lengths, _m_escape_values)
PAYLOAD_MUTATORS = (_p_bits, _p_bits, _p_set, _p_set, _p_set, _p_resize, _p_run, _p_splice,
                    _p_structure)
NO_CRC_RATE = 0.08


@dataclass(frozen=True)
class Case:
    """One fuzz input: ``chunk`` is ``seed`` after ``mutations``; ``crc`` says whether its
    checksum was recomputed (if not, the decoder must reject it)."""

    index: int
    seed: str
    version: int  # format version of the seed chunk
    mutations: tuple[str, ...]
    crc: bool
    chunk: bytes


def _by_version(seeds: Sequence[Seed]) -> list[list[Seed]]:
    versions = sorted({s.version for s in seeds})
    return [[s for s in seeds if s.version == v] for v in versions]


def make_case(seeds: Sequence[Seed], seed: int, index: int, *, steps: Iterable[int] | None = None
              ) -> Case:
    """Fuzz input ``index`` of campaign ``seed``: a seed chunk (a format version drawn
    uniformly, then a seed chunk of it) and one to three mutations, each drawn from its own
    generator ``(seed, index, step)``; ``steps`` replays only some of them (to shrink a case)."""
    rng = np.random.default_rng([seed, index])
    group = _pick(rng, _by_version(seeds))
    base = _pick(rng, group)
    n_steps = _pick(rng, (1, 1, 1, 1, 2, 2, 3))
    no_crc = rng.random() < NO_CRC_RATE
    kinds = [rng.random() < 0.5 for _ in range(n_steps)]
    f = parse_chunk(base.chunk)
    ctx = [parse_chunk(seeds[int(i)].chunk) for i in rng.choice(len(seeds), 3)]
    done = []
    for step in range(n_steps) if steps is None else sorted(steps):
        srng = np.random.default_rng([seed, index, step])
        mutator = _pick(srng, HEADER_MUTATORS if kinds[step] else PAYLOAD_MUTATORS)
        done.append(mutator(srng, f, ctx))
    chunk = build_chunk(f)
    if no_crc:  # damage after the checksum: a burst of <= 32 bits, always detectable
        crng = np.random.default_rng([seed, index, 99])
        b = bytearray(chunk)
        i = int(crng.integers(len(b)))
        for j in range(i, min(len(b), i + int(crng.integers(1, 5)))):
            b[j] ^= int(crng.integers(1, 256))
        chunk = bytes(b)
        done.append(f"no CRC: bytes {i}.. changed")
    return Case(index, base.name, base.version, tuple(done), not no_crc, chunk)


# -------------------------------------------------------------------------------- running
# A memory blow-up: a decode allocating more than BLOWUP_RATIO x the size its header claims
# (+ the tables of even a one-pixel chunk: uint16 quantisation and DPCM tables, ~20 MiB), or
# more than the per-chunk limit (bigcomp.limits: the working memory a chunk may take, checked
# from its header before anything is allocated; LIMIT_SLACK for numpy temporaries the estimate
# rounds off).
BLOWUP_RATIO = 64
LIMIT_SLACK = 1.25
_BLOWUP_SLACK = 32 * MIB
OUTCOMES = ("ok", "clean", "other", "hang", "crash")


@dataclass
class CaseResult:
    """What decoding one :class:`Case` did.

    ``outcome``: ``ok`` (decoded), ``clean`` (a :class:`~bigcomp.errors.BigcompError`),
    ``other`` (any other exception), ``hang`` (slower than the limit, compilation not counted,
    or killed by a worker timeout), ``crash`` (the worker process died).
    """

    index: int
    seed: str
    version: int
    mutations: list[str]
    crc: bool
    outcome: str
    error: str = ""  # "Type: message" of the exception, or how the worker died
    where: str = ""  # innermost frame of an unexpected exception
    seconds: float = 0.0
    compile_seconds: float = 0.0
    chunk_bytes: int = 0
    claimed_bytes: int = 0  # the header's shape x itemsize
    decoded_bytes: int = 0
    peak_bytes: int = 0  # traced (tracemalloc) or resident (maxrss) growth while decoding
    blowup: bool = False
    corrupt: bool = False  # the error is a CorruptChunkError

    @property
    def failed(self) -> bool:
        """An unexpected exception, crash, hang or blow-up, or a chunk with a stale checksum
        not rejected as corrupt."""
        return (self.outcome in ("other", "hang", "crash") or self.blowup
                or (not self.crc and not self.corrupt))

    @property
    def signature(self) -> str:
        """The failure's class: outcome, exception type and message with numbers elided."""
        if not self.crc and self.outcome in ("ok", "clean") and not self.corrupt:
            return f"no-CRC chunk not rejected as corrupt ({self.error.split(':')[0] or 'ok'})"
        if self.outcome in ("ok", "clean") and self.blowup:
            return f"memory blow-up ({self.outcome})"
        msg = re.sub(r"-?\b\d[\d_.e+]*", "N", self.error.splitlines()[0] if self.error else "")
        return f"{self.outcome}: {msg[:120]}" + (f" [{self.where}]" if self.where else "")


@functools.cache
def _compile_clock():
    """Seconds numba has spent compiling (a decode that compiles a new specialisation is
    slow once, not hung)."""
    from numba.core import event

    class Clock(event.Listener):
        total = 0.0
        depth = 0
        t0 = 0.0

        def on_start(self, ev):
            if self.depth == 0:
                self.t0 = time.perf_counter()
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1
            if self.depth == 0:
                self.total += time.perf_counter() - self.t0

    clock = Clock()
    event.register("numba:compile", clock)
    return clock


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _claimed(chunk: bytes) -> int:
    try:
        return parse_chunk(chunk).claimed_bytes()
    except (struct.error, ValueError):
        return 0


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""


def run_case(case: Case, *, hang_s: float = 5.0) -> CaseResult:
    """Decode ``case.chunk`` in this process and classify what happened.

    Peak memory is measured by :mod:`tracemalloc` (numpy's allocations; start it first) and
    the growth of the maximum resident set (numba's own allocations).
    """
    from ..chunk import decode_chunk
    from ..errors import BigcompError, CorruptChunkError
    from ..limits import max_chunk_bytes

    clock = _compile_clock()
    compiled, rss = clock.total, _maxrss()
    tracing = tracemalloc.is_tracing()
    if tracing:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    outcome, error, where, decoded, corrupt = "ok", "", "", 0, False
    t0 = time.perf_counter()
    try:
        decoded = int(decode_chunk(case.chunk).nbytes)
    except BigcompError as exc:
        outcome, error = "clean", f"{type(exc).__name__}: {exc}"[:300]
        corrupt = isinstance(exc, CorruptChunkError)
    except Exception as exc:  # noqa: BLE001 - the bugs this looks for
        outcome, error, where = "other", f"{type(exc).__name__}: {exc}"[:300], _where(exc)
    seconds = time.perf_counter() - t0
    compile_seconds = clock.total - compiled
    peak = tracemalloc.get_traced_memory()[1] - base if tracing else 0
    if not compile_seconds:  # compiling grows the resident set too
        peak = max(peak, _maxrss() - rss)
    claimed = _claimed(case.chunk)
    blowup = (peak > LIMIT_SLACK * max_chunk_bytes() + _BLOWUP_SLACK
              or (peak > BLOWUP_RATIO * claimed + _BLOWUP_SLACK and not compile_seconds))
    if seconds - compile_seconds > hang_s:
        error = f"took {seconds - compile_seconds:.1f} s; {outcome}: {error}"
        outcome = "hang"
    return CaseResult(
        case.index, case.seed, case.version, list(case.mutations), case.crc, outcome, error,
        where, round(seconds, 4), round(compile_seconds, 3), len(case.chunk), claimed, decoded,
        peak, blowup, corrupt,
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


@dataclass
class FuzzReport:
    """Results of a fuzz run; :meth:`summary` prints them as markdown."""

    seed: int
    results: list[CaseResult]
    bombs: list[CaseResult] = field(default_factory=list)
    boundscheck: bool = False
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps({**{k: v for k, v in self.__dict__.items()
                              if k not in ("results", "bombs")},
                           "results": [asdict(r) for r in self.results],
                           "bombs": [asdict(r) for r in self.bombs]})

    @classmethod
    def from_json(cls, text: str) -> FuzzReport:
        d = json.loads(text)
        d["results"] = [CaseResult(**r) for r in d["results"]]
        d["bombs"] = [CaseResult(**r) for r in d["bombs"]]
        return cls(**d)

    def counts(self, version: int | None = None) -> Counter:
        """Outcomes (and ``blowup``, ``no_crc``, ``no_crc_accepted``) of one format version."""
        c = Counter()
        for r in self.results:
            if version is None or r.version == version:
                c[r.outcome] += 1
                c["blowup"] += r.blowup
                c["no_crc"] += not r.crc
                c["no_crc_accepted"] += not r.crc and not r.corrupt
                c["inputs"] += 1
        return c

    def failures(self) -> list[CaseResult]:
        return [r for r in [*self.results, *self.bombs] if r.failed]

    def classes(self) -> dict[str, list[CaseResult]]:
        """Failures grouped by :attr:`CaseResult.signature`, most frequent first."""
        groups: dict[str, list[CaseResult]] = {}
        for r in self.failures():
            groups.setdefault(r.signature, []).append(r)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def largest_small_decode(self) -> tuple[int, float]:
        """Largest output (bytes) decoded from a chunk under 1 KiB, and the largest ratio
        decoded bytes / chunk bytes among those."""
        small = [r for r in [*self.results, *self.bombs]
                 if r.chunk_bytes < 1024 and r.decoded_bytes]
        return (max((r.decoded_bytes for r in small), default=0),
                max((r.decoded_bytes / r.chunk_bytes for r in small), default=0.0))

    def table(self) -> str:
        """Markdown table: per format version of the seed chunk, the inputs and outcomes."""
        head = ("| format version | inputs | ok | clean errors | other exceptions | crashes "
                "| hangs | memory blow-ups | no-CRC inputs | no-CRC accepted | largest decoded "
                "| peak memory | max decoded/chunk (< 1 KiB) |")
        rows = [head, "|" + "|".join(["---"] + ["---:"] * (head.count("|") - 2)) + "|"]
        versions = sorted({r.version for r in self.results})
        for v in [*versions, None]:
            rs = [r for r in self.results if v is None or r.version == v]
            c = self.counts(v)
            small = [r.decoded_bytes / r.chunk_bytes for r in rs if r.chunk_bytes < 1024]
            rows.append(
                f"| {v if v is not None else '**all**'} | {c['inputs']} | {c['ok']} | {c['clean']} "
                f"| {c['other']} | {c['crash']} | {c['hang']} | {c['blowup']} | {c['no_crc']} "
                f"| {c['no_crc_accepted']} "
                f"| {_size(max((r.decoded_bytes for r in rs), default=0))} "
                f"| {_size(max((r.peak_bytes for r in rs), default=0))} "
                f"| {max(small, default=0):.0f}x |"
            )
        return "\n".join(rows)

    def summary(self, examples: int = 1) -> str:
        """The table, the bomb check and every failure class with reproducible examples."""
        checks = ", numba bounds checking" if self.boundscheck else ""
        title = f"fuzz seed {self.seed}, {len(self.results)} inputs{checks}, {self.seconds:.0f} s"
        lines = [title, "", self.table(), ""]
        big, ratio = self.largest_small_decode()
        lines.append(f"largest output decoded from a chunk < 1 KiB: {_size(big)} "
                     f"(max ratio {ratio:.0f}x)")
        for b in self.bombs:
            verdict = "FAIL" if b.failed else "ok"
            lines.append(f"- bomb {b.seed} ({b.chunk_bytes} B, claims {_size(b.claimed_bytes)}): "
                         f"{b.outcome}, decoded {_size(b.decoded_bytes)}, peak "
                         f"{_size(b.peak_bytes)} {verdict} {b.error[:90]}")
        classes = self.classes()
        lines += ["", f"{len(classes)} failure classes" + (":" if classes else "")]
        for sig, rs in classes.items():
            versions = sorted({r.version for r in rs})
            lines.append(f"- {len(rs)} x `{sig}` (versions {versions})")
            for r in rs[:examples]:
                lines.append(f"  - case seed={self.seed} index={r.index} ({r.seed}: "
                             f"{'; '.join(r.mutations)}): {r.error[:160]}")
        return "\n".join(lines)


def warm_up(seeds: Sequence[Seed]) -> None:
    """Decode every seed once: compiles the decoders before anything is timed."""
    from ..chunk import decode_chunk

    for s in seeds:
        decode_chunk(s.chunk)


def fuzz(n_cases: int, seed: int = 0, *, seeds: Sequence[Seed] | None = None,
         max_bytes: int = 1 << 16, hang_s: float = 5.0, bombs: bool = True,
         mem_limit: int | None = 2 << 30, on_case: Callable[[Case], None] | None = None
         ) -> FuzzReport:
    """Decode ``n_cases`` mutated chunks in this process and classify the outcomes.

    Parameters
    ----------
    n_cases : int
        Inputs to try (case ``i`` is :func:`make_case` ``(seeds, seed, i)``).
    seed : int
        Campaign seed.
    seeds : sequence of Seed, optional
        Valid chunks to mutate; :func:`seed_chunks` by default.
    max_bytes : int
        Seeds larger than this are left out (large chunks make slow cases).
    hang_s : float
        A case decoding longer than this (numba compilation not counted) is a hang.
    bombs : bool
        Also decode :func:`bomb_chunks`.
    mem_limit : int, optional
        While it runs, this process may map at most this many bytes more than before
        (:func:`limit_memory`; restored at the end).
    on_case : callable, optional
        Called with each case before it is decoded (to know which one crashed the process).

    Returns
    -------
    FuzzReport

    Notes
    -----
    Nothing protects this process from a crash or a real hang: run it in a subprocess with a
    timeout (``tests/test_fuzz.py``), or use ``benchmarks/fuzz.py``, whose worker processes
    report a crash or hang and go on.
    """
    t0 = time.perf_counter()
    seeds = [s for s in (seed_chunks() if seeds is None else seeds) if len(s.chunk) <= max_bytes]
    warm_up(seeds)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    limit = resource.getrlimit(resource.RLIMIT_AS)
    if mem_limit is not None:
        limit_memory(mem_limit)
    report = FuzzReport(seed, [], boundscheck=_boundscheck())
    cases = (make_case(seeds, seed, i) for i in range(n_cases))
    try:
        for case in itertools.chain(bomb_chunks(seeds) if bombs else (), cases):
            if on_case is not None:
                on_case(case)
            result = run_case(case, hang_s=hang_s)
            (report.bombs if case.index < 0 else report.results).append(result)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, limit)
        if started:
            tracemalloc.stop()
    report.seconds = time.perf_counter() - t0
    return report


def _boundscheck() -> bool:
    import numba

    return bool(numba.config.BOUNDSCHECK)


# ------------------------------------------------------------------------ worker processes
def _vm_size() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limit_memory(extra: int) -> None:
    """Let this process map at most ``extra`` bytes more than now (``RLIMIT_AS``): a decode
    that asks for more gets a ``MemoryError`` instead of the machine's memory."""
    vm = _vm_size()
    if vm:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = vm + extra if hard == resource.RLIM_INFINITY else min(hard, vm + extra)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
