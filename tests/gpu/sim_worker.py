"""Run bigcomp's CUDA kernels on numba's CUDA simulator, for tests/gpu/test_cuda_sim.py.

``NUMBA_ENABLE_CUDASIM=1`` only works when it is set before numba is first imported, and the
test session imports numba (the CPU kernels) long before: so the simulator runs in this separate
process. Usage: ``python sim_worker.py JOBS.pickle RESULTS.pickle``. ``JOBS`` is a list of
``(name, kwargs)``; the result of each job is its return value or ``("error", type, message)``.
``python sim_worker.py --serve`` answers jobs one at a time on stdin/stdout (:func:`serve`).
The CPU references are computed by the test process itself (its numba kernels are compiled
anyway), so this process only runs GPU code.
"""

from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np


def _host(x):
    from bigcomp.kernels._cuda_common import to_host

    return np.asarray(to_host(x))


def job_scan(values):
    from bigcomp.kernels import _cuda_common as C

    return _host(C.exclusive_scan(C.to_device(values)))


def job_lookup(values, table):
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_lookup as L

    out = C.empty(values.size, table.dtype)
    L.lookup(C.to_device(values), C.to_device(table), out)
    return _host(out)


def job_vst(x, camera, q):
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_lookup as L

    k = C.empty(x.size, np.int32)
    flags = C.zeros(2, np.int64)
    L.vst_forward(C.to_device(x), camera, q, k, flags)
    back = C.empty(x.size, np.float32)
    L.vst_inverse(k, camera, q, back)
    return _host(k), _host(flags), _host(back)


def job_predict(k, nz, intra, inter, lo, hi, orient=False):
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_predict as P

    taps, coefs, info, lag = P.predictor_info(intra, inter, orient=orient)
    args = C.to_device(taps), C.to_device(coefs), C.to_device(info)
    res = C.empty(k.size, np.uint32)
    P.predict_encode(C.to_device(k), nz, *args, lo, hi, res)
    back = C.empty(k.shape, k.dtype)
    bad = C.zeros(max(k.shape[0] // nz, 1), np.int64)
    P.predict_decode(res, nz, *args, lag, lo, hi, back, bad)
    return _host(res), _host(back), int(_host(bad).sum())


def job_fast(symbols):
    """GPU encoding of ``symbols``, and GPU decoding of that payload."""
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_fast as F

    enc = F.encode_fast(C.to_device(symbols))
    out = C.empty(symbols.size, np.uint32)
    F.decode_fast(np.frombuffer(enc, np.uint8), symbols.size, out, C.zeros(2, np.int64))
    return enc, _host(out)


def job_rice(symbols, row_length):
    """GPU encoding of ``symbols``, and GPU decoding of that payload."""
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_rice as R

    enc = R.encode_rice(C.to_device(symbols), row_length)
    out = C.empty(symbols.size, np.uint32)
    R.decode_rice(np.frombuffer(enc, np.uint8), symbols.size, out, C.zeros(1, np.int64))
    return enc, _host(out)


def job_max(symbols, row_length, seg_target=None, rows_per_segment=None):
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_max as M
    from bigcomp.kernels import _rans as R

    old = R.SEG_TARGET
    R.SEG_TARGET = old if seg_target is None else seg_target
    try:
        enc = M.encode_max(C.to_device(symbols), row_length, rows_per_segment)
    finally:
        R.SEG_TARGET = old
    out = C.empty(symbols.size, np.uint32)
    M.decode_max(np.frombuffer(enc, np.uint8), symbols.size, row_length, out)
    return enc, _host(out)


def job_chunk(data, **kw):
    """``encode_chunk_gpu(data)`` and ``decode_chunk_gpu`` of those bytes."""
    from bigcomp.gpu import decode_chunk_gpu, encode_chunk_gpu

    buf = encode_chunk_gpu(data, **kw)
    return buf, _host(decode_chunk_gpu(buf))


def _patched(module, patch):
    """A context manager setting ``module``'s attributes ``patch`` (a dict) for its body."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        old = {name: getattr(module, name) for name in patch or {}}
        for name, value in (patch or {}).items():
            setattr(module, name, value)
        try:
            yield
        finally:
            for name, value in old.items():
                setattr(module, name, value)

    return cm()


def job_level_chunk(data, patch=None, **kw):
    """``encode_chunk_gpu(data)`` with ``bigcomp.kernels._level``'s constants ``patch``
    (e.g. a small ``SEG_TARGET``: several segments in a small chunk), and
    ``decode_chunk_gpu`` of those bytes."""
    from bigcomp.gpu import decode_chunk_gpu, encode_chunk_gpu
    from bigcomp.kernels import _level

    with _patched(_level, patch):
        buf = encode_chunk_gpu(data, **kw)
    return buf, _host(decode_chunk_gpu(buf))


def job_level_payload(k, nz, intra, inter, lo, hi, patch=None, **kw):
    """The level-model payload of ``k`` under a given predictor pair (or None); ``kw``:
    ``encode_level_gpu``'s options."""
    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _level
    from bigcomp.kernels._cuda_level import encode_level_gpu

    with _patched(_level, patch):
        return encode_level_gpu(C.to_device(k.reshape(-1)), k.shape, nz, intra, inter, lo, hi,
                                **kw)


def job_encode_chunk(data, **kw):
    from bigcomp.gpu import encode_chunk_gpu

    return encode_chunk_gpu(data, **kw)


def job_decode_chunk(buf, out_like=None):
    from bigcomp.gpu import decode_chunk_gpu
    from bigcomp.kernels import _cuda_common as C

    out = None if out_like is None else C.empty(out_like[0], out_like[1])
    return _host(decode_chunk_gpu(buf, out=out))


def job_corrupt(data, flip, **kw):
    """Decode a GPU-encoded chunk with one bit flipped at byte ``flip``."""
    from bigcomp.gpu import decode_chunk_gpu, encode_chunk_gpu

    buf = bytearray(encode_chunk_gpu(data, **kw))
    buf[flip] ^= 1
    return _host(decode_chunk_gpu(bytes(buf)))


def job_intra_into_previous_plane(data):
    """A chunk whose intra predictor reads the previous plane (valid CRC; no encoder writes
    it): on the GPU that plane belongs to another run, decoded concurrently."""
    import dataclasses

    from bigcomp import encode_chunk
    from bigcomp.format import pack_chunk, unpack_chunk
    from bigcomp.gpu import decode_chunk_gpu
    from bigcomp.predictors import Taps

    header, payload, escapes = unpack_chunk(encode_chunk(data, coder="fast"))
    header = dataclasses.replace(header, intra=Taps(((-1, 0, 0),), (1,), 0))
    return _host(decode_chunk_gpu(pack_chunk(header, bytes(payload), escapes)))


def job_decode_out(data):
    """Lossless chunk decoded straight into a device ``out`` array."""
    from bigcomp.gpu import decode_chunk_gpu, encode_chunk_gpu
    from bigcomp.kernels import _cuda_common as C

    out = C.empty(data.size, data.dtype)
    res = decode_chunk_gpu(encode_chunk_gpu(data), out=out)
    return res is out, _host(out)


def job_sim_patch(threads=16, rounds=100):
    """The simulator's shared arrays under contention (bigcomp's thread-safe replacement).

    Returns (patched, rounds where the racing threads of one block got different arrays,
    whether new shared arrays and ``empty`` temporaries are poisoned)."""
    import threading

    from numba.cuda.simulator import kernelapi

    from bigcomp.kernels import _cuda_common as C

    split = 0
    for _ in range(rounds):
        shared = kernelapi.FakeCUDAShared(0)  # one block's shared memory
        barrier = threading.Barrier(threads)
        got = [None] * threads

        def thread(t, shared=shared, barrier=barrier, got=got):
            barrier.wait()  # arrive together, as a block's threads do
            got[t] = shared.array(64, np.int32)  # one call site for all threads

        pool = [threading.Thread(target=thread, args=(t,)) for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        split += any(g is not got[0] for g in got)
    poison = np.uint8(C.SIM_POISON)
    fresh = kernelapi.FakeCUDAShared(0).array(5, np.int64).view(np.uint8)
    poisoned = bool((fresh == poison).all()) and bool(
        (_host(C.empty(7, np.uint16)).view(np.uint8) == poison).all()
    )
    patched = bool(getattr(kernelapi.FakeCUDAShared.array, "_bigcomp_thread_safe", False))
    return patched, split, poisoned


def job_dispatch(data):
    """The lead's entry points with a device array: the GPU path."""
    from bigcomp.gpu import dispatch_decode, dispatch_encode, gpu_available
    from bigcomp.kernels import _cuda_common as C

    buf = dispatch_encode(C.to_device(data), coder="fast")
    return buf, _host(dispatch_decode(buf, device="gpu")), gpu_available()


def _run(name, kwargs):
    try:
        return globals()[f"job_{name}"](**kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
        return ("error", type(exc).__name__, str(exc))


def serve() -> int:
    """``--serve``: answer jobs one at a time, each a pickled ``(name, kwargs)`` on stdin, with
    its pickled result on stdout (property tests draw their inputs as they go); stray prints
    go to stderr."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    while True:
        try:
            name, kwargs = pickle.load(stdin)
        except EOFError:
            return 0
        pickle.dump(_run(name, kwargs), proto)
        proto.flush()


def main() -> int:
    # must precede the first import of numba (bigcomp imports it)
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    # the simulator polls its threads while holding the GIL: switch often or syncthreads crawls
    sys.setswitchinterval(1e-5)
    from bigcomp.kernels._cuda_common import SIM

    assert SIM, "the CUDA simulator is not active"
    if sys.argv[1:] == ["--serve"]:
        return serve()
    jobs_path, results_path = sys.argv[1], sys.argv[2]
    with open(jobs_path, "rb") as f:
        jobs = pickle.load(f)
    results = []
    for name, kwargs in jobs:
        t0 = time.perf_counter()
        results.append(_run(name, kwargs))
        if os.environ.get("BIGCOMP_SIM_TIMES"):
            print(f"{time.perf_counter() - t0:7.2f}s {name}", file=sys.stderr)
    with open(results_path, "wb") as f:
        pickle.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
