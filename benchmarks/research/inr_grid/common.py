"""Shared helpers: datasets (from benchmarks/inr.py), fitting domain, entropy coding."""
import sys, os, math, lzma, warnings
import numpy as np
import os
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", ".."))  # benchmarks/
sys.path.insert(0, os.path.join(_HERE, "..", "..", ".."))  # the repository
import inr as B  # noqa: E402
from bigcomp.kernels._coders import encode_max, decode_max  # noqa: E402

NAMES = {"ls": "synthetic light-sheet 3D", "tl": "synthetic 2D+t", "br": "brain3d"}

_cache = {}
def dataset(key):
    """(array uint16, CameraModel or None) for key in ls/tl/br; camera estimated for br like
    bigcomp.inr.compress._domain_camera does (photon_transfer on the whole array)."""
    if not _cache:
        for name, a, cam in B.load(os.path.join(_HERE, "..", "..", "..", "..", "shared", "data"), False):
            for k, v in NAMES.items():
                if name.startswith(v):
                    _cache[k] = (a, cam)
    a, cam = _cache[key]
    if cam is None:
        from bigcomp.estimate import photon_transfer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pt = photon_transfer(np.asarray(a))
        cam = pt.camera if not pt.problems else None
        _cache[key] = (a, cam)
    return a, cam

def code_ints(q, row_length):
    """Actual coded bytes of an int array with bigcomp's `max` coder (zig-zag -> uint32)."""
    q = np.asarray(q, np.int64).ravel()
    z = np.where(q >= 0, 2 * q, -2 * q - 1).astype(np.uint32)
    buf = encode_max(np.ascontiguousarray(z), int(row_length))
    back = decode_max(buf, z.size, int(row_length))
    assert np.array_equal(back, z)
    return buf

def lzma_bytes(q):
    q = np.asarray(q, np.int64).ravel()
    dt = np.int8 if np.abs(q).max(initial=0) < 127 else np.int16
    return lzma.compress(q.astype(dt).tobytes(), preset=9 | lzma.PRESET_EXTREME)
