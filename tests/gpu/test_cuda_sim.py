"""The CUDA kernels on numba's CUDA simulator (CI, no GPU) against the CPU, byte for byte.

The simulator must be switched on before numba is first imported, and this test session has
imported numba long before (setting ``NUMBA_ENABLE_CUDASIM`` later has no effect: checked by
``test_simulator_needs_a_fresh_process``). So one subprocess (``sim_worker.py``) runs every GPU
job of this module, and the CPU references are computed here. Arrays stay tiny: the simulator
is ~1000x slower than native code.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import bigcomp
from bigcomp import CameraModel, decode_chunk, encode_chunk
from bigcomp.format import FLAG_LEVEL_MODEL
from bigcomp.kernels import _coders, _rans, _rice
from bigcomp.kernels._lookup import lookup
from bigcomp.kernels._predict import predict_decode, predict_encode
from bigcomp.noise import quantisation_tables
from bigcomp.predictors import FIXED_INTER, FIXED_INTRA, LS_INTER_WIDE, LS_INTRA, Taps

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
# a plane the CPU codes with the max coder's level model (format version 6; >= 4096 pixels)
LEVEL_CASE = ((64, 72), "uint16", 0.0, "max")
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
    add(("chunk", LEVEL_CASE), "chunk", data=_image(LEVEL_CASE[0], "uint16"), **_kw(0.0, "max"))
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


def test_level_model_is_cpu_only(sim):
    """Where the CPU gives a max chunk the level model (format version 6, flag bit 2), the GPU
    encoder writes the neighbour-context payload (version 3): other bytes, the same data, read
    by every decoder. The GPU decoder reads level-model chunks on the host (the stored v6
    chunks in test_stored_chunks_decode)."""
    x = _image(LEVEL_CASE[0], "uint16")
    cpu = encode_chunk(x, coder="max")
    gpu, got = _ok(sim[("chunk", LEVEL_CASE)])
    assert cpu[4] == 6 and int.from_bytes(cpu[10:12], "little") & FLAG_LEVEL_MODEL
    assert gpu[4] == 3 and not int.from_bytes(gpu[10:12], "little") & FLAG_LEVEL_MODEL
    np.testing.assert_array_equal(decode_chunk(gpu), x)
    np.testing.assert_array_equal(decode_chunk(cpu), x)
    np.testing.assert_array_equal(got, x)


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
