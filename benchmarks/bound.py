"""Adversarial campaign against the WNL error bound: random cameras, steps and data, every
dtype x order x coder, checked pixel by pixel in the stabilised domain.

Usage::

    python benchmarks/bound.py [--cases 10000] [--seed 0] [--repeats 2] > bound.md
    python benchmarks/bound.py --seed 0 --replay 17:4:1     # one case, verbose

Prints markdown: a table per dtype x order, the refusal messages, warnings, and each failure
class with its worst case shrunk to a self-contained reproducer. Exits 1 if anything failed.

The promise checked (docs/error-bound.md): for ``q > 0`` every decoded pixel ``x'`` of an
accepted chunk satisfies ``|forward(x') - forward(x)| <= error_bound(q, camera, dtype, order)``
and that bound is at most ``q/2`` (float32 included); ``q = 0`` is
exact. Each case ends in one of:

* **ok** -- decoded within the bound, right shape and dtype;
* **refused** -- ``encode_chunk`` raised a :class:`bigcomp.BigcompError` (an acceptable answer
  for parameters whose arithmetic cannot hold: the messages are tallied);
* **violation** -- decoded outside the bound, or the bound itself above ``q/2`` (+ allowance);
* **other** -- any other exception (from encode, decode or ``error_bound``), or a wrong
  shape/dtype back.

Cases come in groups sharing one camera, ``q`` and dtype (the quantisation tables are built once
per group): every order x coder of the dtype runs on ``--repeats`` random arrays (float32:
twice as many) of up to 4 x 16 x 16 pixels -- 1-D to 4-D, now and then 0-d, empty, F-ordered or
a reversed view -- drawn around the offset, uniformly, constant or smooth, with saturated pixels.
Cameras: gain 1e-3..1e3, read noise 0 or 1e-3..1e3, offset below, inside, on the edge of or
above the data. Steps: mostly 1e-3..100, some 1e-12..1e-3 and 100..1e6, some awkward exact
values, and some right at the edge of the encoder's fixed-point range (``ARITHMETIC_STEPS``).
Failures are grouped into classes (dtype, order, what failed, q band); for the worst case of
each the script shrinks the array (the worst pixel alone, its row, the raster prefix up to it,
one plane) and prints a reproducer. 10 000 cases take about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

import bigcomp
from bigcomp import BigcompError, CameraModel, decode_chunk, encode_chunk, error_bound

DTYPES = ("uint8", "uint16", "float32")
ORDERS = ("qp", "pq")
CODERS = ("fast", "max", "rice")
# float32 reconstructions are rounded to float32 after the inverse transform; the encoder checks
# each one (exactly as the decoder computes it) and stores a pixel exactly where no step lands
# within q/2 (format version 5), so the bound is q/2 with no allowance (docs/error-bound.md;
# it used to be q/2 + 2**-16, which the steep cameras of issue 17 broke by up to 1.96x)
FLOAT32_ALLOWANCE = 0.0
# the tables' own construction check (bigcomp.noise.quantisation_tables) allows this relative
# excess over q/2 for float64 rounding of the transform
TABLE_RTOL = 1e-12
# the encoder's fixed-point range: float32 k = rint(forward(x)/q) and pq's forward(x)/q are
# refused from 2**29 steps on (bigcomp.chunk); the campaign draws some q right at that edge
ARITHMETIC_STEPS = 2**29
# float64 evaluation of forward() on both sides of the difference: a few ulps of |y|
EVAL_ULPS = 16 * np.finfo(np.float64).eps


def combos(dtype: str) -> list[tuple[str, str]]:
    """(order, coder) pairs a dtype supports (``pq`` is integer-only)."""
    orders = ORDERS if dtype != "float32" else ("qp",)
    return [(o, c) for o in orders for c in CODERS]


def max_allowed_bound(q: float, dtype: str) -> float:
    """The largest bound ``error_bound`` may report: q/2, plus the float32 rounding allowance."""
    if q == 0:
        return 0.0
    if dtype == "float32":
        return q / 2 + FLOAT32_ALLOWANCE
    return q / 2 * (1 + TABLE_RTOL)


def stabilised_errors(original, decoded, camera: CameraModel) -> tuple[np.ndarray, float]:
    """Per-pixel ``|forward(decoded) - forward(original)|`` (float64) and the evaluation slack."""
    y = camera.forward(np.asarray(original, dtype=np.float64))
    y2 = camera.forward(np.asarray(decoded, dtype=np.float64))
    scale = max(1.0, float(np.abs(y).max(initial=0.0)), float(np.abs(y2).max(initial=0.0)))
    return np.abs(y2 - y), EVAL_ULPS * scale


# ------------------------------------------------------------------------------------------------
# random cases


@dataclass
class Group:
    """One camera, step and dtype (and the value range the data and offset are drawn from)."""

    index: int
    dtype: str
    q: float
    camera: CameraModel
    lo: float
    hi: float
    where: str  # offset below / inside / above [lo, hi]
    span_kind: str


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))


def draw_group(seed: int, index: int) -> Group:
    """Deterministic group ``index`` of campaign ``seed``."""
    rng = np.random.default_rng([seed, index])
    dtype = DTYPES[index % len(DTYPES)]
    # q: mostly log-uniform over 1e-3..100, some extremes both ways, some lossless
    u = rng.uniform()
    if u < 0.04 and dtype != "float32":
        q = 0.0
    elif u < 0.14:
        q = _log_uniform(rng, 1e-12, 1e-3)
    elif u < 0.18:
        q = _log_uniform(rng, 100.0, 1e6)
    elif u < 0.22:  # awkward values: exact fractions, near-integers of the table arithmetic
        q = float(rng.choice([0.25, 0.5, 1.0, 0.915057, 1 / 3, 2.0, 2**-10]))
    else:
        q = _log_uniform(rng, 1e-3, 100.0)
    gain = _log_uniform(rng, 1e-3, 1e3)
    read_noise = 0.0 if rng.uniform() < 0.3 else _log_uniform(rng, 1e-3, 1e3)
    # value range of the data
    if dtype == "float32":
        span_kind = str(rng.choice(["counts", "signed", "tiny", "huge", "unit", "far",
                                    "extreme"]))
        if span_kind == "far":  # a narrow band far from 0: float32 coarse against the noise
            centre = _log_uniform(rng, 1e2, 1e8) * rng.choice([1.0, -1.0])
            half = abs(centre) * _log_uniform(rng, 1e-6, 1e-1)
            lo, hi = float(np.float32(centre - half)), float(np.float32(centre + half))
        elif span_kind == "extreme":  # up to float32's largest finite value
            a = float(np.finfo(np.float32).max)
            lo, hi = (-a, a) if rng.uniform() < 0.5 else (0.0, a)
        elif span_kind == "counts":
            lo, hi = 0.0, float(rng.choice([255.0, 4095.0, 65535.0]))
        elif span_kind == "signed":
            a = _log_uniform(rng, 1.0, 1e5)
            lo, hi = -a, a
        elif span_kind == "tiny":
            a = _log_uniform(rng, 1e-38, 1e-3)
            lo, hi = (-a, a) if rng.uniform() < 0.5 else (0.0, a)
        elif span_kind == "huge":
            a = _log_uniform(rng, 1e5, 1e9)
            lo, hi = (-a, a) if rng.uniform() < 0.5 else (0.0, a)
        else:
            lo, hi = 0.0, 1.0
    else:
        span_kind = "dtype"
        lo, hi = 0.0, float(np.iinfo(dtype).max)
    width = hi - lo if hi > lo else 1.0
    where = str(rng.choice(["below", "inside", "inside", "above", "edge"]))
    if where == "below":
        offset = lo - width * _log_uniform(rng, 1e-4, 10.0)
    elif where == "above":
        offset = hi + width * _log_uniform(rng, 1e-4, 10.0)
    elif where == "edge":
        offset = float(rng.choice([lo, hi]))
    else:
        offset = float(rng.uniform(lo, hi))
        if dtype != "float32" and rng.uniform() < 0.5:
            offset = float(np.rint(offset))
    # CameraModel refuses offsets beyond ±1e12 ADU (bigcomp.noise.MAX_OFFSET): no camera has them
    offset = float(np.clip(offset, -1e12, 1e12))
    camera = CameraModel(gain=gain, offset=offset, read_noise=read_noise)
    if q > 0 and rng.uniform() < 0.08:
        # the edge of what the encoder serves: |forward(x)| / q just around ARITHMETIC_STEPS
        # (below it the float32 and pq arithmetic must hold, above it a refusal is fine)
        ends = camera.forward(np.array([lo, hi]))
        q = float(np.abs(ends).max() / ARITHMETIC_STEPS * 10 ** rng.uniform(-0.02, 0.3))
    return Group(index, dtype, q, camera, lo, hi, where, span_kind)


def draw_shape(rng) -> tuple[int, ...]:
    """1-D to 4-D shapes of at most 4 x 16 x 16 (1-D: 256) pixels; now and then 0-d or empty."""
    odd = rng.uniform()
    if odd < 0.01:
        return ()
    if odd < 0.02:
        return (*(int(v) for v in rng.choice([0, 1, 3], int(rng.integers(1, 4)))), 0)
    ndim = int(rng.integers(1, 5))
    if ndim == 1:
        return (int(rng.integers(1, 257)),)
    rows, cols = int(rng.integers(1, 17)), int(rng.integers(1, 17))
    if ndim == 2:
        return (rows, cols)
    if ndim == 3:
        return (int(rng.integers(1, 5)), rows, cols)
    return (int(rng.integers(1, 3)), int(rng.integers(1, 3)), rows, cols)


def draw_data(g: Group, rng) -> tuple[np.ndarray, str]:
    """A random array of the group's dtype and a word for how it was made."""
    shape = draw_shape(rng)
    cam = g.camera
    kind = str(rng.choice(["camera", "camera", "uniform", "constant", "smooth", "near_offset"]))
    if kind == "camera":
        photons = rng.exponential(_log_uniform(rng, 0.01, 1e5), shape)
        x = cam.offset + cam.gain * (rng.poisson(np.minimum(photons, 1e15))
                                     + rng.normal(0.0, cam.read_noise + 1e-12, shape))
    elif kind == "uniform":
        x = rng.uniform(g.lo, g.hi, shape)
    elif kind == "constant":
        x = np.full(shape, rng.choice([g.lo, g.hi, rng.uniform(g.lo, g.hi), cam.offset]))
    elif kind == "smooth":
        t = np.linspace(0.0, 1.0, int(np.prod(shape))).reshape(shape)
        a, b = np.sort(rng.uniform(g.lo, g.hi, 2))
        x = a + (b - a) * t + rng.normal(0.0, (b - a) * 0.01 + 1e-30, shape)
    else:  # where the transform is steepest: a few electrons around the offset
        x = cam.offset + cam.gain * rng.normal(0.0, _log_uniform(rng, 0.1, 100.0), shape)
    x = np.array(x, dtype=np.float64)  # (0-d draws come back as scalars)
    if rng.uniform() < 0.35 and x.size:  # saturate / zero some pixels
        flat = x.reshape(-1)  # a view: x is a fresh contiguous array
        idx = rng.integers(0, flat.size, max(1, flat.size // 8))
        flat[idx] = rng.choice([g.lo, g.hi], idx.size)
    if g.dtype == "float32":
        big = float(np.finfo(np.float32).max)
        data = np.clip(x, -big, big).astype(np.float32)
    else:
        top = float(np.iinfo(g.dtype).max)
        data = np.clip(np.rint(np.nan_to_num(x, nan=0.0)), 0.0, top).astype(g.dtype)
    layout = rng.uniform()
    if layout < 0.05 and data.ndim >= 2:  # the same values in another memory layout
        data, kind = np.asfortranarray(data), kind + " F-order"
    elif layout < 0.1 and data.ndim >= 1:
        data, kind = data[..., ::-1].copy()[..., ::-1], kind + " reversed view"
    return data, kind


# ------------------------------------------------------------------------------------------------
# one case


@dataclass
class Outcome:
    status: str  # ok / refused / violation / other
    detail: str = ""  # refusal or exception message, or violation kind
    ratio: float = 0.0  # worst error / bound (violations)
    error: float = 0.0
    bound: float = 0.0
    worst: int = -1  # flat index of the worst pixel
    warnings: list = field(default_factory=list)  # warnings raised meanwhile (message classes)


_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def message_class(exc: BaseException) -> str:
    """Exception type and message with numbers blanked out (to tally like messages)."""
    text = _NUMBER.sub("#", str(exc).splitlines()[0] if str(exc) else "")
    return f"{type(exc).__name__}: {text[:110]}"


def run_case(data: np.ndarray, q: float, camera: CameraModel, order: str, coder: str) -> Outcome:
    """Encode, decode and check one array; warnings raised by bigcomp meanwhile go into
    ``Outcome.warnings`` (the test suite turns them into errors)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _run_case(data, q, camera, order, coder)
    out.warnings = sorted({message_class(w.message) for w in caught})
    return out


def _run_case(data: np.ndarray, q: float, camera: CameraModel, order: str, coder: str
              ) -> Outcome:
    dtype = data.dtype.name
    try:
        buf = encode_chunk(data, q=q, camera=camera, order=order, coder=coder)
    except BigcompError as exc:
        return Outcome("refused", message_class(exc))
    except Exception as exc:  # noqa: BLE001 - any other exception is a finding, tallied
        return Outcome("other", "encode " + message_class(exc))
    try:
        dec = decode_chunk(buf)
    except Exception as exc:  # noqa: BLE001 - so is any error decoding a fresh chunk
        return Outcome("other", "decode " + message_class(exc))
    if not isinstance(dec, np.ndarray) or dec.shape != data.shape or dec.dtype != data.dtype:
        got = (getattr(dec, "shape", None), getattr(dec, "dtype", None))
        return Outcome("other", f"wrong array back: {got} for {(data.shape, data.dtype)}")
    if q == 0:
        bad = np.flatnonzero(dec.reshape(-1) != data.reshape(-1))
        if bad.size:
            return Outcome("violation", "lossless not exact", math.inf, 1.0, 0.0, int(bad[0]))
        return Outcome("ok")
    try:
        bound = float(error_bound(q, camera, dtype, order))
    except Exception as exc:  # noqa: BLE001
        return Outcome("other", "error_bound " + message_class(exc))
    err, slack = stabilised_errors(data, dec, camera)
    worst = int(np.argmax(err)) if err.size else -1
    e = float(err.reshape(-1)[worst]) if err.size else 0.0
    if not bound <= max_allowed_bound(q, dtype):
        return Outcome("violation", "bound above q/2", bound / (q / 2), e, bound, worst)
    if e > bound + slack:
        kind = "over bound" if e <= q / 2 + (FLOAT32_ALLOWANCE if dtype == "float32" else 0) \
            else "over q/2"
        return Outcome("violation", kind, e / bound if bound > 0 else math.inf, e, bound, worst)
    return Outcome("ok", ratio=e / bound if bound > 0 else 0.0, error=e, bound=bound)


# ------------------------------------------------------------------------------------------------
# reproducers


def shrink(data: np.ndarray, q, camera, order, coder, worst: int) -> np.ndarray:
    """The smallest of (worst pixel alone, raster prefix up to it, its row, one plane) that
    still fails the same way (a violation stays a violation, an exception the same exception);
    the whole array if none does."""
    if data.size <= 1:
        return data
    want = run_case(data, q, camera, order, coder)
    flat = data.reshape(-1)
    tries = []
    if worst >= 0:
        cols = data.shape[-1] if data.ndim else 1
        row0 = worst - worst % cols
        tries += [flat[worst : worst + 1], flat[row0 : worst + 1], flat[row0 : row0 + cols],
                  flat[: worst + 1]]
    if data.ndim >= 2:
        tries += list(data.reshape(-1, *data.shape[-2:]))
    for cand in sorted(tries, key=lambda a: a.size):
        cand = np.ascontiguousarray(cand)
        if cand.size >= data.size:
            continue
        got = run_case(cand, q, camera, order, coder)
        if got.status == want.status and (got.status == "violation" or got.detail == want.detail):
            return cand
    return data


def reproducer(data: np.ndarray, q, camera: CameraModel, order, coder) -> str:
    with np.printoptions(threshold=sys.maxsize, floatmode="unique", linewidth=10**9):
        values = np.array2string(data.reshape(-1), separator=",")
    return (
        "import numpy as np, bigcomp; "
        f"cam = bigcomp.CameraModel(gain={camera.gain!r}, offset={camera.offset!r}, "
        f"read_noise={camera.read_noise!r}); "
        f"a = np.array({values}, dtype='{data.dtype.name}').reshape({data.shape}); "
        f"d = bigcomp.decode_chunk(bigcomp.encode_chunk(a, q={q!r}, camera=cam, "
        f"order='{order}', coder='{coder}')); "
        "print(np.abs(cam.forward(d) - cam.forward(a)).max(), "
        f"bigcomp.error_bound({q!r}, cam, '{data.dtype.name}', '{order}'))"
    )


# ------------------------------------------------------------------------------------------------
# campaign


@dataclass
class Tally:
    cases: int = 0
    ok: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)
    violations: int = 0
    other: collections.Counter = field(default_factory=collections.Counter)
    worst: tuple | None = None  # (ratio, group, combo, repeat, outcome)
    worst_ok_ratio: float = 0.0
    warned: collections.Counter = field(default_factory=collections.Counter)


def case_rng(seed: int, group: int, combo: int, repeat: int):
    return np.random.default_rng([seed, group, combo, repeat])


def campaign(cases: int, seed: int, repeats: int = 2, progress: bool = True):
    per_dtype_repeats = {"uint8": repeats, "uint16": repeats, "float32": 2 * repeats}
    tallies: dict[tuple[str, str], Tally] = collections.defaultdict(Tally)
    per_coder: dict[tuple[str, str, str], Tally] = collections.defaultdict(Tally)
    classes: dict[str, list] = {}  # class -> [count, worst ratio, (group, combo, repeat), outcome]
    warn_cases: dict = {}  # (dtype, order, "warn") -> first case that warned
    done, group_index, t0 = 0, 0, time.perf_counter()
    while done < cases:
        g = draw_group(seed, group_index)
        for ci, (order, coder) in enumerate(combos(g.dtype)):
            for r in range(per_dtype_repeats[g.dtype]):
                data, _kind = draw_data(g, case_rng(seed, g.index, ci, r))
                out = run_case(data, g.q, g.camera, order, coder)
                for t in (tallies[g.dtype, order], per_coder[g.dtype, order, coder]):
                    t.cases += 1
                    t.warned.update(out.warnings)
                    if out.status == "ok":
                        t.ok += 1
                        t.worst_ok_ratio = max(t.worst_ok_ratio, out.ratio)
                    elif out.status == "refused":
                        t.refused[out.detail] += 1
                    elif out.status == "other":
                        t.other[out.detail] += 1
                    else:
                        t.violations += 1
                        if t.worst is None or out.ratio > t.worst[0]:
                            t.worst = (out.ratio, g.index, ci, r, out)
                if out.warnings and (g.dtype, order, "warn") not in warn_cases:
                    warn_cases[g.dtype, order, "warn"] = (g.index, ci, r, out.warnings)
                if out.status in ("violation", "other"):
                    key = _failure_class(g, order, out)
                    c = classes.setdefault(key, [0, -1.0, None, None])
                    c[0] += 1
                    if out.ratio > c[1]:
                        c[1:] = [out.ratio, (g.index, ci, r), out]
                done += 1
        group_index += 1
        if progress and group_index % 100 == 0:
            print(f"  ... {done} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return tallies, per_coder, classes, warn_cases, group_index, time.perf_counter() - t0


def _failure_class(g: Group, order, out: Outcome) -> str:
    """dtype, order, what failed and the q band: one line of the failure-class list."""
    if out.status == "other":
        return f"{g.dtype} {order} {out.detail}"
    qband = "q<1e-3" if g.q < 1e-3 else ("q>100" if g.q > 100 else "q in [1e-3,100]")
    return f"{g.dtype} {order} {out.detail}, {qband}"


def _fmt_counter(c: collections.Counter, limit: int = 4) -> str:
    if not c:
        return ""
    items = [f"{n}× `{msg}`" for msg, n in c.most_common(limit)]
    if len(c) > limit:
        items.append(f"+{len(c) - limit} more")
    return "; ".join(items)


def print_report(tallies, per_coder, classes, warn_cases, seed):
    print("| dtype | order | cases | within bound | refused (BigcompError) | violations | "
          "worst error/bound | other exceptions |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for dt in DTYPES:
        for order in ORDERS:
            t = tallies.get((dt, order))
            if t is None:
                continue
            worst = f"{t.worst[0]:.4g}" if t.worst else "-"
            print(f"| {dt} | {order} | {t.cases} | {t.ok} | {sum(t.refused.values())} | "
                  f"{t.violations} | {worst} | {sum(t.other.values())} |")
    print()
    for dt in DTYPES:
        for order in ORDERS:
            t = tallies.get((dt, order))
            if t is None:
                continue
            if t.refused:
                print(f"- {dt}/{order} refused: {_fmt_counter(t.refused)}")
            if t.other:
                print(f"- {dt}/{order} OTHER: {_fmt_counter(t.other, 8)}")
            if t.warned:
                print(f"- {dt}/{order} WARNINGS (cases): {_fmt_counter(t.warned, 8)}")
            if t.ok:
                print(f"- {dt}/{order} worst error/bound among passing cases: "
                      f"{t.worst_ok_ratio:.6f}")
    print("\nPer coder (violations / refused / other):\n")
    for (dt, order, coder), t in sorted(per_coder.items()):
        print(f"- {dt} {order} {coder}: {t.cases} cases, {t.violations} violations, "
              f"{sum(t.refused.values())} refused, {sum(t.other.values())} other")
    for (dt, order, _), (gi, ci, r, msgs) in sorted(warn_cases.items()):
        g = draw_group(seed, gi)
        o, coder = combos(g.dtype)[ci]
        data, _kind = draw_data(g, case_rng(seed, gi, ci, r))
        print(f"\nfirst warning of {dt} {order} ({'; '.join(msgs)}): {coder}, "
              f"`--seed {seed} --replay {gi}:{ci}:{r}`\n\n```python\n"
              + reproducer(data, g.q, g.camera, o, coder) + "\n```")
    if not classes:
        print("\nNo failures.")
        return
    print("\n## Failure classes (worst case of each, shrunk)\n")
    for key, (n, ratio, (gi, ci, r), out) in sorted(classes.items(), key=lambda kv: -kv[1][0]):
        g = draw_group(seed, gi)
        order, coder = combos(g.dtype)[ci]
        data, kind = draw_data(g, case_rng(seed, gi, ci, r))
        small = shrink(data, g.q, g.camera, order, coder, out.worst)
        what = (f"error {out.error:.6g} σ, bound {out.bound:.6g} σ (×{ratio:.4g}; "
                f"q/2 = {g.q / 2:.6g})" if out.status == "violation" else out.detail)
        print(f"### {n}× {key}\n\nworst: {coder}, {what}; data {kind} {data.shape}, offset "
              f"{g.where}; replay: `--seed {seed} --replay {gi}:{ci}:{r}`\n")
        print("```python\n" + reproducer(small, g.q, g.camera, order, coder) + "\n```\n")


def replay(seed: int, spec: str) -> None:
    gi, ci, r = (int(s) for s in spec.split(":"))
    g = draw_group(seed, gi)
    order, coder = combos(g.dtype)[ci]
    data, kind = draw_data(g, case_rng(seed, gi, ci, r))
    out = run_case(data, g.q, g.camera, order, coder)
    print(f"group {g}\norder {order} coder {coder} data {kind} {data.shape}\n{out}")
    if out.status != "ok":
        small = shrink(data, g.q, g.camera, order, coder, out.worst)
        print(reproducer(small, g.q, g.camera, order, coder))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--repeats", type=int, default=2,
                   help="random arrays per group and order x coder (float32: twice as many)")
    p.add_argument("--replay", metavar="GROUP:COMBO:REPEAT", help="run one case verbosely")
    args = p.parse_args(argv)
    if args.replay:
        replay(args.seed, args.replay)
        return 0
    # compile the numba kernels before the clock starts
    for dt in DTYPES:
        for order, coder in combos(dt):
            run_case(np.zeros((2, 3, 4), dt), 1.0, CameraModel(), order, coder)
    tallies, per_coder, classes, warn_cases, groups, seconds = campaign(args.cases, args.seed, args.repeats)
    n = sum(t.cases for t in tallies.values())
    print(f"# bigcomp {bigcomp.__version__} error-bound campaign: seed {args.seed}, {n} cases in "
          f"{groups} groups, {seconds:.0f} s\n")
    print_report(tallies, per_coder, classes, warn_cases, args.seed)
    bad = sum(t.violations + sum(t.other.values()) for t in tallies.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
