"""The CUDA kernels on numba's CUDA simulator (CI, no GPU) against the CPU, byte for byte.

The simulator must be switched on before numba is first imported, and this test session has
imported numba long before (setting ``NUMBA_ENABLE_CUDASIM`` later has no effect: checked by
``test_simulator_needs_a_fresh_process``). So one subprocess (``sim_worker.py``) runs every GPU
job of this module, and the CPU references are computed here. Arrays stay tiny: the simulator
is ~1000x slower than native code.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import bigcomp
from bigcomp import CameraModel, decode_chunk, encode_chunk
from bigcomp.format import FLAG_LEVEL_MODEL
from bigcomp.kernels import _coders, _level, _rans, _rice
from bigcomp.kernels._lookup import lookup
from bigcomp.kernels._predict import predict_decode, predict_encode
from bigcomp.noise import quantisation_tables
from bigcomp.predictors import FIXED_INTER, FIXED_INTRA, LS_INTER, LS_INTER_WIDE, LS_INTRA, Taps

WORKER = Path(__file__).with_name("sim_worker.py")
CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
SHAPES = [(300,), (13, 37), (3, 9, 21), (2, 3, 7, 11)]
CODERS = ["fast", "max", "rice"]
# float32 ~1e5 ADU far below this camera's offset: float32's spacing is 0.16 σ there, so the
# encoder moves steps by one and stores about a third of the pixels exactly (format version 5)
STEEP = CameraModel(gain=0.08, offset=1e6, read_noise=0.0)


def _steep_float():
    return (1e5 + np.random.default_rng(5).normal(0, 50, (3, 24, 20))).astype(np.float32)


def _image(shape, dtype, seed=0):
    """Smooth signal + shot noise in camera units, as the codec sees real data."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0) if shape else np.zeros(())
    electrons = rng.poisson(40 + 30 * np.sin(grid / 3.0) ** 2)
    x = electrons * CAMERA.gain + CAMERA.offset + rng.normal(0, 3, shape)
    if np.dtype(dtype).kind == "u":
        return np.clip(np.rint(x), 0, np.iinfo(dtype).max).astype(dtype)
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------ cases
def _chunk_cases():
    cases = [
        (shape, "uint16", q, coder) for shape in SHAPES for q in (0.0, 1.0) for coder in CODERS
    ]
    for coder in CODERS:
        cases += [
            ((3, 9, 21), "uint8", 0.0, coder),
            ((3, 9, 21), "uint8", 1.0, coder),
            ((2, 3, 7, 11), "float32", 1.0, coder),
        ]
    cases.append(((4, 4, 5), "uint16", 2.0, "max"))  # nz = 4 planes per run
    return cases


CHUNK_CASES = _chunk_cases()
LITTLE_SEG = 64  # _rans.SEG_TARGET for the multi-segment max cases (CPU and GPU alike)


def _predictor_cases():
    k = _image((4, 10, 23), "uint16", seed=3)
    # least-squares-like predictors with the widest reach the chooser can pick
    rng = np.random.default_rng(4)
    intra_ls = Taps(LS_INTRA, tuple(int(c) for c in rng.integers(-600, 1200, len(LS_INTRA))), 12)
    inter_ls = Taps(
        LS_INTER_WIDE, tuple(int(c) for c in rng.integers(-300, 500, len(LS_INTER_WIDE))), 12
    )
    return [
        (k, 2, FIXED_INTRA["b3d"], FIXED_INTER["avg6"], 0, 65535),
        (k, 4, FIXED_INTRA["avg4"], FIXED_INTER["avg3d"], 0, 65535),
        (k, 2, intra_ls, inter_ls, 0, 65535),
        (
            k.astype(np.int32) - 300,
            1,
            Taps(((0, 0, -1), (0, -1, 2), (0, -3, 0)), (3, 2, -1), 2),
            FIXED_INTER["previous"],
            -(1 << 29),
            1 << 29,
        ),
    ]


# every case with plain and with oriented residuals (chunk format version 3)
PREDICTOR_CASES = [(*case, orient) for orient in (False, True) for case in _predictor_cases()]


def _symbols(n, seed):
    rng = np.random.default_rng(seed)
    s = rng.geometric(0.3, n).astype(np.uint32) - 1
    s[rng.integers(0, n, max(1, n // 50))] = rng.integers(0, 1 << 31, max(1, n // 50))
    return s


CODER_CASES = [
    (_symbols(1000, 1), 25),
    (_symbols(777, 2), 37),
    (np.zeros(64, np.uint32), 8),
    (np.full(40, 7, np.uint32), 8),
    (_symbols(33, 5), 33),
]


def _cpu_max(symbols, rl, seg_target=None):
    old = _rans.SEG_TARGET
    if seg_target is not None:
        _rans.SEG_TARGET = seg_target
    try:
        return _coders.encode_max(symbols, rl)
    finally:
        _rans.SEG_TARGET = old


FIXTURE_CHUNKS = sorted((Path(__file__).parents[1] / "fixture").glob("v*/*/*.bgc"))


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Run all GPU jobs of this module in one simulator process; returns {key: result}.

    The jobs only need raw inputs, so the worker starts at once and the CPU references (whose
    numba kernels compile meanwhile) are computed by the tests while it runs on the other core.
    """
    jobs, keys = [], []

    def add(key, name, **kwargs):
        keys.append(key)
        jobs.append((name, kwargs))

    rng = np.random.default_rng(7)
    for n in (1, 7, 100, 2000):
        add(("scan", n), "scan", values=rng.integers(0, 40, n).astype(np.int64))
    tables = quantisation_tables(CAMERA, 1.0, "uint16")
    values = _image((500,), "uint16")
    add("lookup_bin", "lookup", values=values, table=tables.bin)
    add("lookup_rec", "lookup", values=tables.bin[values].astype(np.uint16), table=tables.rec)
    add("vst", "vst", x=_image((400,), "float32"), camera=CAMERA, q=1.0)
    add("vst_nan", "vst", x=np.array([1.0, np.nan], np.float32), camera=CAMERA, q=1.0)
    for i, (k, nz, intra, inter, lo, hi, orient) in enumerate(PREDICTOR_CASES):
        add(
            ("predict", i),
            "predict",
            k=k,
            nz=nz,
            intra=intra.as_arrays(),
            inter=inter.as_arrays(),
            lo=lo,
            hi=hi,
            orient=orient,
        )
    for i, (s, rl) in enumerate(CODER_CASES):
        add(("fast", i), "fast", symbols=s)
        add(("max", i), "max", symbols=s, row_length=rl)
        add(("max_seg", i), "max", symbols=s, row_length=rl, seg_target=LITTLE_SEG)
        add(("max_rows", i), "max", symbols=s, row_length=rl, rows_per_segment=1)
        add(("rice", i), "rice", symbols=s, row_length=rl)
    for case in CHUNK_CASES:
        shape, dtype, q, coder = case
        add(("chunk", case), "chunk", data=_image(shape, dtype), **_kw(q, coder))
    for path in FIXTURE_CHUNKS:
        add(("file", *path.parts[-3:-1], path.stem), "decode_chunk", buf=path.read_bytes())
    for coder in CODERS:
        add(("steep", coder), "chunk", data=_steep_float(), q=0.25, camera=STEEP, coder=coder)
    x = _image((3, 9, 21), "uint16")
    add("max_small_segments", "encode_chunk", data=x, coder="max", rows_per_segment=2)
    add("pq", "encode_chunk", data=x, q=1.0, camera=CAMERA, order="pq")
    add("corrupt", "corrupt", data=x, flip=60, q=1.0, camera=CAMERA, coder="max")
    add("decode_out", "decode_out", data=x)
    add("dispatch", "dispatch", data=x)
    add("sim_patch", "sim_patch")
    add("intra_dp", "intra_into_previous_plane", data=x)

    tmp = tmp_path_factory.mktemp("sim")
    jobs_path, results_path = tmp / "jobs.pickle", tmp / "results.pickle"
    with open(jobs_path, "wb") as f:
        pickle.dump(jobs, f)
    if os.environ.get("BIGCOMP_SIM_JOBS"):  # keep the jobs to profile the worker alone
        import shutil

        shutil.copy(jobs_path, os.environ["BIGCOMP_SIM_JOBS"])
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(jobs_path), str(results_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = _Results(proc, keys, results_path)
    # meanwhile, on this core: the CPU references (compiling the CPU kernels)
    for case in CHUNK_CASES:
        shape, dtype, q, coder = case
        buf = encode_chunk(_image(shape, dtype), **_kw(q, coder))
        results.cpu[case] = buf, decode_chunk(buf)
    yield results
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class _Results:
    """The worker's results, waited for on first access."""

    def __init__(self, proc, keys, path):
        self._proc, self._keys, self._path, self._data = proc, keys, path, None
        self.cpu = {}

    def __getitem__(self, key):
        if self._data is None:
            _, err = self._proc.communicate(timeout=600)
            assert self._proc.returncode == 0, err[-5000:]
            with open(self._path, "rb") as f:
                self._data = dict(zip(self._keys, pickle.load(f), strict=True))
        return self._data[key]


def _kw(q, coder):
    return {"q": q, "camera": CAMERA if q else None, "coder": coder}


def _ok(result):
    if isinstance(result, tuple) and result and isinstance(result[0], str) and result[0] == "error":
        pytest.fail(f"GPU job raised {result[1]}: {result[2]}")
    return result


# ------------------------------------------------------------------------------------ tests
def test_simulator_needs_a_fresh_process():
    """Setting the variable after numba is imported does not switch the simulator on."""
    code = (
        "import os, numba\n"
        "os.environ['NUMBA_ENABLE_CUDASIM'] = '1'\n"
        "from bigcomp.kernels._cuda_common import SIM\n"
        "print(SIM)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.stdout.strip() == "False", out.stderr[-2000:]


@pytest.mark.parametrize("n", [1, 7, 100, 2000])
def test_scan(sim, n):
    values = np.random.default_rng(7)
    expected = None
    for m in (1, 7, 100, 2000):  # replay the fixture's generator
        v = values.integers(0, 40, m).astype(np.int64)
        if m == n:
            expected = np.concatenate([[0], np.cumsum(v)[:-1]])
            break
    np.testing.assert_array_equal(_ok(sim[("scan", n)]), expected)


def test_lookup(sim):
    tables = quantisation_tables(CAMERA, 1.0, "uint16")
    values = _image((500,), "uint16")
    k = lookup(values, tables.bin, np.uint16, parallel=False)
    np.testing.assert_array_equal(_ok(sim["lookup_bin"]), k)
    np.testing.assert_array_equal(_ok(sim["lookup_rec"]), tables.rec[k])


def test_float_transform(sim):
    x = _image((400,), "float32")
    k, flags, back = _ok(sim["vst"])
    expected = np.rint(CAMERA.forward(x) / 1.0).astype(np.int32)
    np.testing.assert_array_equal(k, expected)
    assert not flags.any()
    np.testing.assert_array_equal(back, CAMERA.inverse(expected * 1.0).astype(np.float32))
    assert _ok(sim["vst_nan"])[1][0] == 1


@pytest.mark.parametrize("i", range(len(PREDICTOR_CASES)))
def test_predict(sim, i):
    k, nz, intra, inter, lo, hi, orient = PREDICTOR_CASES[i]
    res, back, bad = _ok(sim[("predict", i)])
    expected = predict_encode(k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi, orient=orient,
                              parallel=False)
    np.testing.assert_array_equal(res, expected)
    np.testing.assert_array_equal(back, k)
    cpu = predict_decode(
        expected,
        k.shape,
        nz,
        intra.as_arrays(),
        inter.as_arrays(),
        lo,
        hi,
        orient=orient,
        dtype=k.dtype,
        parallel=False,
    )
    np.testing.assert_array_equal(back, cpu)
    assert bad == 0


@pytest.mark.parametrize("i", range(len(CODER_CASES)))
def test_fast_coder(sim, i):
    s, _ = CODER_CASES[i]
    expected = _coders.encode_fast(s)
    enc, dec = _ok(sim[("fast", i)])
    assert enc == expected
    np.testing.assert_array_equal(_coders.decode_fast(enc, s.size), s)
    np.testing.assert_array_equal(dec, s)


@pytest.mark.parametrize("i", range(len(CODER_CASES)))
def test_rice_coder(sim, i):
    s, rl = CODER_CASES[i]
    enc, dec = _ok(sim[("rice", i)])
    assert enc == _rice.encode_rice(s, rl)
    np.testing.assert_array_equal(dec, s)


@pytest.mark.parametrize("i", range(len(CODER_CASES)))
@pytest.mark.parametrize("variant", ["max", "max_seg"])
def test_max_coder(sim, i, variant):
    s, rl = CODER_CASES[i]
    expected = _cpu_max(s, rl, LITTLE_SEG if variant == "max_seg" else None)
    enc, dec = _ok(sim[(variant, i)])
    assert enc == expected
    np.testing.assert_array_equal(dec, s)


@pytest.mark.parametrize("i", range(len(CODER_CASES)))
def test_max_coder_small_segments_decode_on_cpu(sim, i):
    s, rl = CODER_CASES[i]
    enc, dec = _ok(sim[("max_rows", i)])
    np.testing.assert_array_equal(_coders.decode_max(enc, s.size, rl), s)
    np.testing.assert_array_equal(dec, s)


@pytest.mark.parametrize("case", CHUNK_CASES, ids=str)
def test_chunk_identical(sim, case):
    """encode_chunk_gpu(x) == encode_chunk(x) byte for byte; decode_chunk_gpu of those bytes
    (so of encode_chunk(x)) == decode_chunk."""
    _shape, _dtype, _q, _coder = case
    cpu, expected = sim.cpu[case]
    gpu, got = _ok(sim[("chunk", case)])
    assert gpu == cpu
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("coder", CODERS)
def test_float32_exact_pixels_identical(sim, coder):
    """The float32 reconstructions the GPU encoder checks (on the host) give the CPU's bytes,
    exact pixels included, and the GPU decoder puts those pixels back."""
    data = _steep_float()
    cpu = encode_chunk(data, q=0.25, camera=STEEP, coder=coder)
    assert cpu[4] == 5
    gpu, got = _ok(sim[("steep", coder)])
    assert gpu == cpu
    np.testing.assert_array_equal(got, decode_chunk(cpu))
    err = np.abs(STEEP.forward(got.astype(np.float64)) - STEEP.forward(data.astype(np.float64)))
    assert err.max() <= 0.125


@pytest.mark.parametrize("path", FIXTURE_CHUNKS, ids=lambda p: "/".join(p.parts[-3:]))
def test_stored_chunks_decode(sim, path):
    """Every stored chunk of every format version (CPU-written, all modes and coders) decodes
    on the GPU."""
    expected = np.load(path.with_suffix(".out.npy"))
    got = _ok(sim[("file", *path.parts[-3:-1], path.stem)])
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_smaller_segments_decode_on_cpu(sim):
    x = _image((3, 9, 21), "uint16")
    buf = _ok(sim["max_small_segments"])
    assert buf != encode_chunk(x, coder="max")  # 14 segments instead of 1
    np.testing.assert_array_equal(decode_chunk(buf), x)


def test_pq_is_cpu_only(sim):
    err = sim["pq"]
    assert err[:2] == ("error", "ParameterError")
    assert "order='qp'" in err[2]
    assert "encode_chunk" in err[2]


def test_corrupt_chunk_raises(sim):
    assert sim["corrupt"][:2] == ("error", "CorruptChunkError")


def test_intra_tap_into_previous_plane_is_corrupt(sim):
    """Decoding it would race with the thread block decoding the previous run: refused."""
    err = sim["intra_dp"]
    assert err[:2] == ("error", "CorruptChunkError"), err
    assert "predictor tap" in err[2]


def test_decode_into_out(sim):
    x = _image((3, 9, 21), "uint16")
    same, got = _ok(sim["decode_out"])
    assert same
    np.testing.assert_array_equal(got.reshape(x.shape), x)


def test_dispatch(sim):
    x = _image((3, 9, 21), "uint16")
    buf, dec, available = _ok(sim["dispatch"])
    assert buf == encode_chunk(x, coder="fast")
    np.testing.assert_array_equal(dec, x)
    assert available is False  # no CuPy device on the simulator


def test_simulator_shared_arrays_thread_safe(sim):
    """numba-cuda's simulator allocates a block's ``cuda.shared.array`` with an unlocked
    check-then-insert: threads arriving together could each get a private array (lost histogram
    counts, garbage scan partials: intermittent failures under load). bigcomp replaces it with
    a locked one and poisons fresh shared arrays and ``empty`` temporaries, so that a kernel
    reading memory nobody wrote fails every time."""
    patched, split, poisoned = _ok(sim["sim_patch"])
    assert patched
    assert split == 0
    assert poisoned


def test_dispatch_cpu():
    """Host arrays go to the CPU codec (no CUDA needed)."""
    from bigcomp.gpu import dispatch_decode, dispatch_encode

    x = _image((3, 9, 21), "uint16")
    buf = dispatch_encode(x, coder="fast")
    assert buf == encode_chunk(x, coder="fast")
    np.testing.assert_array_equal(dispatch_decode(buf), x)
    with pytest.raises(bigcomp.ParameterError, match="device"):
        dispatch_decode(buf, device="tpu")


def test_gpu_available_is_bool():
    from bigcomp.gpu import gpu_available

    assert isinstance(gpu_available(), bool)


# ------------------------------------------------------------------ level model (version 6)
# Chunks the CPU codes with the max coder's level model (lossless, or one plane at q > 0; at
# least 4096 pixels in rows of at least 32): encode_chunk_gpu gives the same bytes. The fixed
# cases run in a simulator process of their own (`level_sim`: `-k level` does not start the big
# `sim` one), the property tests in a worker serving one job at a time (`sim_server`).
# ``patch`` sets `_level`'s constants on both sides: a small SEG_TARGET makes several segments
# in a small chunk, a small SAMPLE_PIXELS makes the level choice sample a subset of the rows.
def _image8(shape, seed=0):
    """uint8 camera-like data (well inside the range)."""
    return (_image(shape, "uint16", seed) // 2).astype(np.uint8)


def _level_cases():
    rng = np.random.default_rng(11)
    few = {"SEG_TARGET": 512, "SAMPLE_PIXELS": 4096}
    return {
        "plane-u16-q0": (_image((64, 64), "uint16"), 0.0, None),
        "plane-u8-q0": (_image8((64, 64)), 0.0, None),
        "plane-u16-q1": (_image((64, 72), "uint16"), 1.0, None),
        "plane-u8-q1": (_image8((64, 72)), 1.0, None),
        "stack-u16-q0": (_image((2, 48, 48), "uint16"), 0.0, None),
        "stack-u8-odd-rows-q0": (_image8((3, 33, 47)), 0.0, None),
        "runs-q0": (_image((2, 2, 32, 36), "uint16"), 0.0, None),  # nz = 2: two runs
        "odd-rows-width-33-q1": (_image((125, 33), "uint16"), 1.0, None),
        "width-34-stack-q0": (_image((2, 61, 34), "uint16"), 0.0, None),
        "noise-u16-q0": (rng.integers(0, 65536, (64, 64)).astype(np.uint16), 0.0, None),
        "zeros-q0": (np.zeros((64, 64), np.uint16), 0.0, None),  # encode_level -> None
        "segments-plane-q1": (_image((64, 64), "uint16", 1), 1.0, few),
        "segments-stack-q0": (_image((4, 34, 40), "uint16", 3), 0.0, few),
        "segments-odd-stack-q0": (_image8((3, 35, 40), 4), 0.0, {"SEG_TARGET": 300}),
    }


LEVEL_CASES = _level_cases()


def _level_payload_cases():
    """Predictor pairs the chooser rarely picks on small data: wide least-squares taps (int32
    and int64 accumulators: the GPU sums in int64), a shift below 4 with a tap to the
    north-east."""
    k = _image((3, 20, 24), "uint16", seed=6)
    rng = np.random.default_rng(12)

    def ls(taps, lo, hi):
        return Taps(taps, tuple(int(c) for c in rng.integers(lo, hi, len(taps))), 12)

    return {
        "ls-int32": (k, 3, ls(LS_INTRA, -600, 1200), ls(LS_INTER_WIDE, -300, 500)),
        "ls-int64": (k, 3, ls(LS_INTRA, -9000, 20000), ls(LS_INTER_WIDE, -9000, 20000)),
        "shift-2": (k, 1, Taps(((0, 0, -1), (0, -1, 2), (0, -3, 0)), (3, 2, -1), 2),
                    FIXED_INTER["previous"]),
    }


LEVEL_PAYLOAD_CASES = _level_payload_cases()


@contextlib.contextmanager
def _patched_level(patch):
    old = {name: getattr(_level, name) for name in patch or {}}
    for name, value in (patch or {}).items():
        setattr(_level, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(_level, name, value)


def _cpu_level_chunk(data, q, patch):
    with _patched_level(patch):
        return encode_chunk(data, **_kw(q, "max"))


@pytest.fixture(scope="module")
def level_sim(tmp_path_factory):
    """The fixed level-model jobs in one simulator process (while the CPU references are
    computed here)."""
    jobs, keys = [], []
    for name, (data, q, patch) in LEVEL_CASES.items():
        keys.append(("chunk", name))
        jobs.append(("level_chunk", {"data": data, "patch": patch, **_kw(q, "max")}))
    keys.append(("chunk", "rows-per-segment"))
    jobs.append(("level_chunk", {"data": LEVEL_CASES["plane-u16-q0"][0], "coder": "max",
                                 "rows_per_segment": 8}))
    for name, (k, nz, intra, inter) in LEVEL_PAYLOAD_CASES.items():
        keys.append(("payload", name))
        jobs.append(("level_payload", {"k": k, "nz": nz, "intra": intra.as_arrays(),
                                       "inter": inter.as_arrays(), "lo": 0, "hi": 65535}))
    tmp = tmp_path_factory.mktemp("level_sim")
    jobs_path, results_path = tmp / "jobs.pickle", tmp / "results.pickle"
    with open(jobs_path, "wb") as f:
        pickle.dump(jobs, f)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(jobs_path), str(results_path)],
        env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = _Results(proc, keys, results_path)
    for name, (data, q, patch) in LEVEL_CASES.items():
        results.cpu[name] = _cpu_level_chunk(data, q, patch)
    yield results
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class _Server:
    """A simulator worker answering one job at a time (``sim_worker.py --serve``)."""

    def __init__(self, log):
        self._log = log
        self._err = open(log, "wb")  # noqa: SIM115 - the worker's stderr, closed with it
        self._proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--serve"],
            env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )

    def __call__(self, name, **kwargs):
        try:
            pickle.dump((name, kwargs), self._proc.stdin)
            self._proc.stdin.flush()
            return pickle.load(self._proc.stdout)
        except (EOFError, BrokenPipeError):
            pytest.fail(f"simulator worker died: {self._log.read_text()[-5000:]}")

    def close(self):
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._err.close()


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory):
    server = _Server(tmp_path_factory.mktemp("sim_server") / "worker.log")
    yield server
    server.close()


def _is_level(buf):
    """Whether ``buf`` is a level-model chunk (format version 6, or 7 with fractional levels)."""
    return buf[4] >= 6 and bool(int.from_bytes(buf[10:12], "little") & FLAG_LEVEL_MODEL)


@pytest.mark.parametrize("name", list(LEVEL_CASES))
def test_level_model_identical(level_sim, name):
    """Where the CPU writes a level-model max chunk, encode_chunk_gpu writes its very bytes;
    where every symbol is the same (an all-zero plane) both write the neighbour-context
    constant form. decode_chunk_gpu (on the host for these) reads them."""
    data, q, _ = LEVEL_CASES[name]
    cpu = level_sim.cpu[name]
    gpu, got = _ok(level_sim[("chunk", name)])
    assert _is_level(cpu) == (name != "zeros-q0")
    assert gpu == cpu
    np.testing.assert_array_equal(got, decode_chunk(cpu))
    if q == 0:
        np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("name", list(LEVEL_PAYLOAD_CASES))
def test_level_payload_identical(level_sim, name):
    """The payload alone (``encode_level_gpu`` == ``encode_level``) under predictor pairs the
    chooser rarely picks."""
    k, nz, intra, inter = LEVEL_PAYLOAD_CASES[name]
    expected = _level.encode_level(k, nz, intra.as_arrays(), inter.as_arrays(), 0, 65535,
                                   parallel=False)
    assert expected is not None
    assert _ok(level_sim[("payload", name)]) == expected


def test_level_model_rows_per_segment_keeps_neighbour_contexts(level_sim):
    """``rows_per_segment`` asks for the neighbour-context coder's GPU-decodable segments: a
    chunk the CPU gives the level model then keeps that payload (every decoder reads it)."""
    data, _, _ = LEVEL_CASES["plane-u16-q0"]
    buf, got = _ok(level_sim[("chunk", "rows-per-segment")])
    assert buf[4] == 3
    assert not _is_level(buf)
    np.testing.assert_array_equal(decode_chunk(buf), data)
    np.testing.assert_array_equal(got, data)


def _pattern(shape, dtype, pattern, seed, lo=0, hi=None):
    """Test data in ``[lo, hi]`` (default: the dtype's range)."""
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max if hi is None else hi
    if pattern == "image":
        x = _image(shape, "uint16", seed % 1000)
    elif pattern == "small":
        base = int(rng.integers(lo, max(lo + 1, hi - 8)))
        x = base + rng.integers(0, int(rng.integers(1, 9)), shape)
    elif pattern == "full":
        x = rng.integers(lo, hi + 1, shape)
    else:  # flat, or few pixels off a flat plane (spikes: most levels and tokens empty)
        x = np.full(shape, int(rng.choice([lo, lo + 1, hi, int(rng.integers(lo, hi + 1))])))
        if pattern == "spikes":
            x.reshape(-1)[rng.integers(0, x.size, max(1, x.size // 100))] = rng.integers(
                lo, hi + 1)
    return np.clip(x, lo, hi).astype(dtype)


PATTERNS = ["image", "small", "full", "spikes", "flat"]


@st.composite
def _predictor(draw, inter):
    fixed = FIXED_INTER if inter else FIXED_INTRA
    kind = draw(st.sampled_from([*fixed, "ls"]))
    if kind != "ls":
        return fixed[kind]
    offsets = draw(st.sampled_from([LS_INTER, LS_INTER_WIDE] if inter else [LS_INTRA]))
    big = draw(st.sampled_from([600, 30000]))  # int32 or int64 accumulators
    coefs = draw(st.lists(st.integers(-big, 2 * big), min_size=len(offsets),
                          max_size=len(offsets)))
    return Taps(offsets, tuple(coefs), draw(st.integers(0, 14)))


@st.composite
def _payload_inputs(draw):
    planes = draw(st.integers(1, 4))
    nz = draw(st.sampled_from([d for d in range(1, planes + 1) if planes % d == 0]))
    shape = (planes, draw(st.integers(1, 12)), draw(st.integers(1, 40)))
    lo = draw(st.sampled_from([0, 0, 0, 7]))
    hi = draw(st.sampled_from([255, 65535, lo + draw(st.integers(1, 3000))]))
    data = _pattern(shape, "uint8" if hi < 256 else "uint16", draw(st.sampled_from(PATTERNS)),
                    draw(st.integers(0, 2**32 - 1)), lo, hi)
    patch = {}
    if draw(st.booleans()):
        patch["SEG_TARGET"] = draw(st.sampled_from([40, 300]))
    if draw(st.booleans()):
        patch["SAMPLE_PIXELS"] = 256
    options = {}
    if draw(st.booleans()):
        options["max_levels"] = draw(st.sampled_from([1, 2, 32]))
    if draw(st.booleans()):  # fraction bits: hi << f must fit the u16 thresholds
        options["fraction"] = draw(st.integers(0, max(0, min(4, 16 - hi.bit_length()))))
    return data, nz, draw(_predictor(False)), draw(_predictor(True)), lo, hi, patch, options


@settings(max_examples=25, deadline=None)
@given(_payload_inputs())
def test_level_payload_property(sim_server, inputs):
    """``encode_level_gpu`` == ``encode_level`` on small random chunks of any shape (the
    payload: no size limit), predictors, value ranges, segment sizes, numbers of levels and
    fraction bits."""
    k, nz, intra, inter, lo, hi, patch, options = inputs
    with _patched_level(patch):
        expected = _level.encode_level(k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi,
                                       parallel=False, **options)
    got = _ok(sim_server("level_payload", k=k, nz=nz, intra=intra.as_arrays(),
                         inter=inter.as_arrays(), lo=lo, hi=hi, patch=patch, **options))
    assert got == expected


@st.composite
def _chunk_inputs(draw):
    lead = draw(st.sampled_from([(), (), (2,), (3,), (2, 2)]))
    planes = math.prod(lead)
    cols = draw(st.integers(32, 80))
    shape = (*lead, -(-4096 // (planes * cols)) + draw(st.integers(0, 5)), cols)
    dtype = draw(st.sampled_from(["uint8", "uint16"]))
    q = draw(st.sampled_from([0.0, 1.0])) if planes == 1 else 0.0
    data = _pattern(shape, dtype, draw(st.sampled_from(PATTERNS)), draw(st.integers(0, 2**32 - 1)))
    patch = draw(st.sampled_from([None, {"SEG_TARGET": 256}, {"SAMPLE_PIXELS": 4096}]))
    return data, q, patch


@settings(max_examples=5, deadline=None)
@given(_chunk_inputs())
def test_level_model_identical_property(sim_server, inputs):
    """encode_chunk_gpu == encode_chunk on random level-model chunks (>= 4096 pixels: slow on
    the simulator, hence few examples; the payload property above covers the variety)."""
    data, q, patch = inputs
    cpu = _cpu_level_chunk(data, q, patch)
    gpu, got = _ok(sim_server("level_chunk", data=data, patch=patch, **_kw(q, "max")))
    assert gpu == cpu
    np.testing.assert_array_equal(got, decode_chunk(cpu))
