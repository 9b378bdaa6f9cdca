"""bigcomp.compress / bigcomp.open: layout, region reads, resume, clusters, errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import bigcomp
from bigcomp.datasets import light_sheet
from bigcomp.store import IncompleteStoreError, StoreExistsError
from bigcomp.testing import check_within_bound

xr = pytest.importorskip("xarray")
da = pytest.importorskip("dask.array")

SYN = light_sheet((6, 70, 90), seed=3)
CAM = {"gain": SYN.gain, "offset": SYN.offset, "read_noise": SYN.read_noise}
KW = {"chunks": (4, 32, 32), "progress": False, "scheduler": "synchronous"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_wnl_round_trip_and_readers(tmp_path):
    out = tmp_path / "a.zarr"
    res = bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    assert (res.chunks_written, res.chunks_skipped) == (2 * 3 * 3, 0)
    assert res.ratio > 2
    assert 0.49 < res.error_bound <= 0.5
    back = bigcomp.open(out)
    assert back.dims == ("z", "y", "x")
    assert back.data.chunksize == (4, 32, 32)
    check_within_bound(SYN.data, back.values, bigcomp.CameraModel(**CAM), res.error_bound)
    # plain zarr and xarray read the same store (codecs registered by entry points)
    np.testing.assert_array_equal(zarr.open_array(out / "0", mode="r")[:], back.values)
    # not consolidated (see bigcomp.store.finalize); the pyramid levels' dims differ in size
    levels = [lv["path"] for lv in back.attrs["bigcomp"].get("levels", [])]
    np.testing.assert_array_equal(
        xr.open_zarr(out, consolidated=False, drop_variables=levels)["0"].values, back.values)
    meta = back.attrs["bigcomp"]
    assert meta["complete"]
    assert meta["job"]["camera"] == CAM
    assert meta["camera_source"] == "given"
    assert meta["codec"]["name"] == "bigcomp.wnl"
    assert meta["version"] == bigcomp.__version__
    assert meta["source"]["kind"] == "numpy"
    ome = zarr.open_group(out).attrs["ome"]
    assert ome["version"] == "0.5"
    assert ome["multiscales"][0]["datasets"][0]["path"] == "0"


def test_chunks_identical_to_zarr_codec(tmp_path):
    """The pipeline's own atomic writer produces the bytes zarr's codec would."""
    bigcomp.compress(SYN.data, tmp_path / "a.zarr", q=1.0, camera=CAM, **KW)
    z = zarr.create_array(tmp_path / "z.zarr", shape=SYN.data.shape, chunks=(4, 32, 32),
                          dtype="uint16", compressors=None, fill_value=0,
                          serializer=bigcomp.zarr3.WNL(q=1.0, **CAM))
    z[:] = SYN.data
    assert _files(tmp_path / "a.zarr" / "0" / "c") == _files(tmp_path / "z.zarr" / "c")


def test_region_read_decodes_only_overlapping_chunks(tmp_path, monkeypatch):
    out = tmp_path / "a.zarr"
    bigcomp.compress(SYN.data, out, mode="lossless", **KW)
    arr = bigcomp.open(out)
    calls = []
    real = bigcomp.codecs._base.decode_chunk
    monkeypatch.setattr(bigcomp.codecs._base, "decode_chunk",
                        lambda buf, *a, **k: calls.append(1) or real(buf, *a, **k))
    region = arr.isel(z=slice(0, 3), y=slice(40, 60), x=slice(10, 20)).values
    np.testing.assert_array_equal(region, SYN.data[0:3, 40:60, 10:20])
    assert len(calls) == 1  # one chunk of 18
    calls.clear()
    _ = arr.isel(y=slice(30, 34)).values  # straddles a chunk boundary in y: 2 z x 2 y x 3 x
    assert len(calls) == 12
    assert bigcomp.open(out, chunks=(1, 2, 2)).data.chunksize == (4, 64, 64)


def test_resume_skips_valid_and_rewrites_damaged_chunks(tmp_path):
    out, ref = tmp_path / "a.zarr", tmp_path / "ref.zarr"
    bigcomp.compress(SYN.data, ref, mode="lossless", **KW)
    bigcomp.compress(SYN.data, out, mode="lossless", **KW)
    c = out / "0" / "c"
    chunk = c / "0" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:-7])  # truncated (as a non-atomic write would be)
    (c / "1" / "0" / "0").unlink()  # missing
    (c / "1" / "0" / "0.1234.partial").write_bytes(b"junk")  # left by a killed writer
    meta = (out / "zarr.json").read_text()
    (out / "zarr.json").write_text(meta.replace('"complete": true', '"complete": false'))
    with pytest.raises(IncompleteStoreError, match="resume"):
        bigcomp.open(out)
    res = bigcomp.compress(SYN.data, out, mode="lossless", **KW)
    assert (res.chunks_written, res.chunks_skipped) == (2, 16)
    assert _files(out) == _files(ref)
    res = bigcomp.compress(SYN.data, out, mode="lossless", **KW)  # complete: nothing to do
    assert res.chunks_written == 0


def test_existing_destination_errors(tmp_path):
    out = tmp_path / "a.zarr"
    bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    with pytest.raises(StoreExistsError, match=r"q: 1.0 in the store, 2.0 now.*overwrite"):
        bigcomp.compress(SYN.data, out, q=2.0, camera=CAM, **KW)
    with pytest.raises(StoreExistsError, match="shape"):
        bigcomp.compress(SYN.data[:4], out, q=1.0, camera=CAM, **KW)
    res = bigcomp.compress(SYN.data, out, q=2.0, camera=CAM, overwrite=True, **KW)
    assert res.chunks_written == 18
    other = tmp_path / "plain.zarr"
    zarr.create_array(other, shape=(2,), dtype="uint8")
    with pytest.raises(StoreExistsError, match="not a bigcomp store"):
        bigcomp.compress(SYN.data, other, mode="lossless", **KW)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("x")
    with pytest.raises(StoreExistsError, match="refusing"):
        bigcomp.compress(SYN.data, tmp_path / "keep", mode="lossless", overwrite=True, **KW)
    with pytest.raises(bigcomp.BigcompError, match="not a bigcomp store"):
        bigcomp.open(other)
    with pytest.raises(FileNotFoundError):
        bigcomp.open(tmp_path / "nothing.zarr")


def test_parameter_errors(tmp_path):
    out = tmp_path / "a.zarr"
    with pytest.raises(bigcomp.ParameterError, match="q > 0"):
        bigcomp.compress(SYN.data, out, q=0, camera=CAM, **KW)
    with pytest.raises(bigcomp.ParameterError, match="mode"):
        bigcomp.compress(SYN.data, out, mode="zip", **KW)
    with pytest.raises(bigcomp.ParameterError, match="coder"):
        bigcomp.compress(SYN.data, out, camera=CAM, coder="zip", **KW)
    with pytest.raises(bigcomp.ParameterError, match="unknown camera"):
        bigcomp.compress(SYN.data, out, camera={"gain": 1, "bias": 3}, **KW)
    with pytest.raises(bigcomp.ParameterError, match="chunks"):
        bigcomp.compress(SYN.data, out, camera=CAM, **{**KW, "chunks": (1, 2, 3, 4)})
    with pytest.raises(bigcomp.ParameterError, match="scheduler"):
        bigcomp.compress(SYN.data, out, camera=CAM, **{**KW, "scheduler": "gpu-magic"})
    assert not out.exists()


def test_camera_estimated_stored_and_reused(tmp_path):
    out = tmp_path / "a.zarr"
    data = light_sheet((8, 128, 128), gain=3.0, seed=2).data
    kw = {**KW, "chunks": (4, 128, 128)}
    # no dark region: offset and read noise poorly determined, coded conservatively (issue 18)
    with pytest.warns(bigcomp.PoorFitWarning, match="poorly determined"):
        res = bigcomp.compress(data, out, q=1.0, **kw)
    assert res.camera_source == "estimated"
    assert 2.5 < res.camera.gain < 3.5
    assert bigcomp.compress(data, out, q=1.0, **kw).camera_source == "store"
    again = bigcomp.compress(bigcomp.open(out), tmp_path / "b.zarr", q=2.0, **kw)
    assert again.camera_source == "source"
    assert again.camera == res.camera
    rng = np.random.default_rng(0)  # constant noise on a ramp: not a photon-limited camera
    ramp = np.linspace(200, 3000, 128)[None, None, :] + rng.normal(0, 8, (8, 128, 128))
    with pytest.warns(bigcomp.PoorFitWarning, match="--gain G --offset O --read-noise R"):
        bigcomp.estimate_noise(ramp.astype(np.uint16))


def test_axes_outside_ome(tmp_path):
    line = np.arange(100, dtype=np.uint16)
    bigcomp.compress(line, tmp_path / "a.zarr", mode="lossless", progress=False)
    assert "ome" not in zarr.open_group(tmp_path / "a.zarr").attrs
    np.testing.assert_array_equal(bigcomp.open(tmp_path / "a.zarr").values, line)


def test_distributed_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    data = da.from_array(SYN.data, chunks=(3, 70, 45))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        res = bigcomp.compress(data, tmp_path / "a.zarr", mode="lossless", scheduler=client,
                               chunks=(4, 32, 32), progress=True)
        assert res.chunks_written == 18
        # a Client made current is used by scheduler=None too (resume: nothing left)
        assert bigcomp.compress(data, tmp_path / "a.zarr", mode="lossless", chunks=(4, 32, 32),
                                progress=False).chunks_skipped == 18
    np.testing.assert_array_equal(bigcomp.open(tmp_path / "a.zarr").values, SYN.data)


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np, dask.array as da, bigcomp

    def block(block_id=None):
        if SLOW:
            time.sleep(0.25)
        rng = np.random.default_rng(list(block_id))
        return (rng.poisson(40, (4, 32, 32)) + 100).astype("uint16")

    def source():
        return da.map_blocks(block, chunks=((4,) * 4, (32,) * 2, (32,) * 2), dtype="uint16",
                             meta=np.empty((0, 0, 0), "uint16"), name="slow-source")

    SLOW = True
    if __name__ == "__main__":
        bigcomp.compress(source(), sys.argv[1], mode="lossless", coder="fast",
                         chunks=(4, 32, 32), scheduler="synchronous", progress=False)
""")


def test_kill_and_resume_gives_identical_output(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    out, ref = tmp_path / "killed.zarr", tmp_path / "ref.zarr"
    log = tmp_path / "child.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path,
                                stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        try:  # wait until 4 chunks are written, then kill mid-run
            while time.monotonic() < deadline and proc.poll() is None:
                done = [p for p in (out / "0" / "c").rglob("*")
                        if p.is_file() and not p.name.endswith(".partial")] if out.exists() else []
                if len(done) >= 4:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(IncompleteStoreError):
        bigcomp.open(out)
    sys.path.insert(0, str(tmp_path))
    try:
        import child

        child.SLOW = False
        kw = {"mode": "lossless", "coder": "fast", "chunks": (4, 32, 32), "progress": False}
        res = bigcomp.compress(child.source(), out, **kw)
        assert res.chunks_skipped >= 4
        assert res.chunks_written + res.chunks_skipped == 16
        bigcomp.compress(child.source(), ref, **kw)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("child", None)
    assert _files(out) == _files(ref)
    assert not list(out.rglob("*.partial"))
