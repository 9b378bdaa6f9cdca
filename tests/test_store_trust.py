"""Trust in stores: a store holds one job on one source, only complete stores read as data,
failed writes leave nothing that looks whole, and write failures are bigcomp errors."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import bigcomp
from bigcomp.cli import app
from bigcomp.store import (
    PENDING,
    ChunkWriter,
    IncompleteStoreError,
    SourceReadError,
    StoreExistsError,
    StoreWriteError,
)

xr = pytest.importorskip("xarray")
tifffile = pytest.importorskip("tifffile")

SHAPE, CHUNKS = (6, 64, 64), (2, 32, 32)  # 12 chunks; the fingerprint samples 0, 4, 7 and 11
KW = {"mode": "lossless", "coder": "fast", "chunks": CHUNKS, "progress": False,
      "scheduler": "synchronous",
      "pyramid": False}  # level 0 only: kill_after counts chunk writes (levels: test_pyramid)
CLI = ["--lossless", "--coder", "fast", "--chunks", "2,32,32", "--scheduler", "synchronous",
       "--no-progress"]


def _data(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).poisson(30, SHAPE) + 100).astype(np.uint16)


A, B = _data(1), _data(2)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _tif(path: Path, data: np.ndarray) -> Path:
    tifffile.imwrite(path, data, metadata={"axes": "ZYX"}, photometric="minisblack")
    return path


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


class Killed(Exception):
    """Stands for SIGKILL: stops a run after some chunks (in-process, synchronous)."""


@pytest.fixture
def kill_after(monkeypatch):
    """``kill_after(n)``: the next compress stops after writing ``n`` chunks."""
    real = ChunkWriter.__call__

    def arm(n: int):
        count = [0]

        def write(self, block, idx):
            if count[0] == n:
                raise Killed
            count[0] += 1
            return real(self, block, idx)

        monkeypatch.setattr(ChunkWriter, "__call__", write)
        return lambda: monkeypatch.setattr(ChunkWriter, "__call__", real)

    return arm


def _interrupted(source, out, kill_after, n: int = 5, **kw) -> None:
    disarm = kill_after(n)
    with pytest.raises(Killed):
        bigcomp.compress(source, out, **{**KW, **kw})
    disarm()


# ------------------------------------------------------------------------------ source identity
def test_other_source_refused_complete_store(tmp_path):
    out = tmp_path / "a.zarr"
    bigcomp.compress(A, out, **KW)
    before = _files(out)
    with pytest.raises(StoreExistsError, match=r"other data.*in-memory numpy.*overwrite"):
        bigcomp.compress(B, out, **KW)
    assert _files(out) == before
    res = bigcomp.compress(A, out, **KW)  # the same data: done, nothing to write
    assert (res.chunks_written, res.chunks_skipped) == (0, 12)
    cam = {"gain": 1.5, "offset": 100.0, "read_noise": 1.2}  # ignored when lossless
    assert bigcomp.compress(A, out, camera=cam, **KW).chunks_skipped == 12
    res = bigcomp.compress(B, out, overwrite=True, **KW)
    assert res.chunks_written == 12
    np.testing.assert_array_equal(bigcomp.open(out).values, B)


def test_other_source_refused_interrupted_store_same_source_resumes(tmp_path, kill_after):
    out, ref = tmp_path / "a.zarr", tmp_path / "ref.zarr"
    _interrupted(A, out, kill_after)
    with pytest.raises(StoreExistsError, match="Resuming would mix the two"):
        bigcomp.compress(B, out, **KW)
    res = bigcomp.compress(A, out, **KW)
    assert (res.chunks_written, res.chunks_skipped) == (7, 5)
    bigcomp.compress(A, ref, **KW)
    assert _files(out) == _files(ref)  # byte for byte what an uninterrupted run writes
    meta = bigcomp.open(out).attrs["bigcomp"]
    assert meta["layout"] == 2
    assert meta["source"]["fingerprint"].startswith("blake2b:")
    assert meta["source"]["sampled_chunks"] == [[0, 0, 0], [1, 0, 0], [1, 1, 1], [2, 1, 1]]


def test_touched_or_moved_file_resumes_changed_file_refused(tmp_path, kill_after):
    src, out = _tif(tmp_path / "in.tif", A), tmp_path / "a.zarr"
    _interrupted(src, out, kill_after)
    os.utime(src, (1e9, 1e9))  # touched: another mtime, same content
    moved = tmp_path / "moved.tif"
    os.rename(src, moved)
    res = bigcomp.compress(moved, out, **KW)
    assert (res.chunks_written, res.chunks_skipped) == (7, 5)
    np.testing.assert_array_equal(bigcomp.open(out).values, A)
    _tif(moved, B)  # same path, other content
    with pytest.raises(StoreExistsError, match=r"in\.tif \(6x64x64 uint16, [0-9,]+ bytes, "
                                               r"modified .*moved\.tif"):
        bigcomp.compress(moved, out, **KW)


def test_camera_from_store_only_for_same_source(tmp_path, kill_after):
    cam = {"gain": 1.5, "offset": 100.0, "read_noise": 1.2}
    out = tmp_path / "a.zarr"
    wnl = {"mode": "wnl", "q": 1.0}
    _interrupted(A, out, kill_after, camera=cam, **wnl)
    # without a camera, the store's is reused for the same data and never for other data
    with pytest.raises(StoreExistsError, match="other data"):
        bigcomp.compress(B, out, **{**KW, **wnl})
    res = bigcomp.compress(A, out, **{**KW, **wnl})
    assert res.camera_source == "store"
    assert res.camera.to_dict() == cam


def test_store_without_fingerprint_refused(tmp_path):
    out = tmp_path / "a.zarr"
    bigcomp.compress(A, out, **KW)
    doc = json.loads((out / "zarr.json").read_text())
    meta = doc["attributes"]["bigcomp"]
    meta.update(layout=1, version="0.1.0", source={"kind": "numpy", "path": None})
    (out / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreExistsError, match=r"no fingerprint.*bigcomp 0\.1\.0, store "
                                               r"layout 1.*overwrite"):
        bigcomp.compress(A, out, **KW)
    assert bigcomp.compress(A, out, overwrite=True, **KW).chunks_written == 12


def test_cli_other_source(tmp_path):
    a, b = _tif(tmp_path / "a.tif", A), _tif(tmp_path / "b.tif", B)
    out = tmp_path / "out.zarr"
    assert _cli("compress", a, out, *CLI).exit_code == 0
    res = _cli("compress", b, out, *CLI)
    assert res.exit_code == 1
    assert "other data" in res.output
    assert "--overwrite" in res.output
    assert "Traceback" not in res.output
    np.testing.assert_array_equal(bigcomp.open(out).values, A)
    res = _cli("compress", b, out, *CLI, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "12 chunks written" in res.output
    np.testing.assert_array_equal(bigcomp.open(out).values, B)


# ------------------------------------------------------------------------------ atomic results
def _assert_not_data(out: Path) -> None:
    """zarr and xarray do not read an incomplete store as data; bigcomp.open refuses it."""
    assert (out / "0" / PENDING).is_file()
    assert not (out / "0" / "zarr.json").exists()
    with pytest.raises(KeyError):
        zarr.open_group(out, mode="r")["0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Object at 0 is not recognized ..."
        assert "0" not in xr.open_zarr(out, consolidated=False).data_vars
    with pytest.raises(IncompleteStoreError, match="allow_incomplete"):
        bigcomp.open(out)


def test_failed_compress_is_not_data(tmp_path):
    data = A.astype(np.float32)
    data[0, 40, 5] = np.nan  # chunk (0, 1, 0): not one the fingerprint samples
    out = tmp_path / "a.zarr"
    cam = {"gain": 1.0, "offset": 100.0, "read_noise": 1.0}
    kw = {**KW, "mode": "wnl", "camera": cam}
    with pytest.raises(bigcomp.UnsupportedDataError, match="left incomplete"):
        bigcomp.compress(data, out, **kw)
    _assert_not_data(out)
    part = bigcomp.open(out, allow_incomplete=True)
    assert part.shape == SHAPE
    assert not part.attrs["bigcomp"]["complete"]
    vals = part.values
    assert (vals[0, 32:, :32] == 0).all()  # the failed chunk reads as the fill value
    written = [p for p in (out / "0" / "c").rglob("*") if p.is_file()]
    assert written
    res = _cli("info", out)
    assert res.exit_code == 0, res.output
    assert "NO (interrupted" in res.output
    # a NaN in a sampled chunk is found before anything is written
    data[5, 63, 63] = np.inf
    with pytest.raises(bigcomp.UnsupportedDataError, match=r"chunk \(2, 1, 1\).*NaN"):
        bigcomp.compress(data, tmp_path / "b.zarr", **kw)
    assert not (tmp_path / "b.zarr").exists()


def test_interrupted_store_read_only_with_allow_incomplete(tmp_path, kill_after):
    out = tmp_path / "a.zarr"
    _interrupted(A, out, kill_after, n=3)
    _assert_not_data(out)
    part = bigcomp.open(out, allow_incomplete=True).values
    have = [tuple(int(i) for i in p.relative_to(out / "0" / "c").parts)
            for p in (out / "0" / "c").rglob("*") if p.is_file()]
    assert len(have) == 3
    for idx in np.ndindex(3, 2, 2):
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, CHUNKS, strict=True))
        np.testing.assert_array_equal(part[sl], A[sl] if idx in have else 0)
    bigcomp.compress(A, out, **KW)  # resumed and finished: plain zarr and xarray read it
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["0"][:], A)
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["0"].values, A)


def test_truncated_tiff_creates_no_store(tmp_path):
    src = _tif(tmp_path / "in.tif", A)
    with open(src, "r+b") as f:
        f.truncate(os.path.getsize(src) // 2)
    out = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile: "invalid page offset"
        with pytest.raises(SourceReadError, match=r"in\.tif.*truncated"):
            bigcomp.compress(src, out, **KW)
        assert not out.exists()
        res = _cli("compress", src, out, *CLI)
    assert res.exit_code == 1
    assert "truncated" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def _corrupt_one_chunk(store: Path) -> None:
    chunk = store / "0" / "c" / "1" / "1" / "0"
    blob = bytearray(chunk.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    chunk.write_bytes(bytes(blob))


@pytest.mark.parametrize("name", ["out.tif", "out.zarr"])
def test_decompress_corrupt_chunk_leaves_nothing(tmp_path, name):
    store = tmp_path / "a.zarr"
    bigcomp.compress(A, store, **KW)
    _corrupt_one_chunk(store)
    dest = tmp_path / name
    res = _cli("decompress", store, dest, "--no-progress", "--scheduler", "synchronous")
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr"]  # no dest, no temporary
    # with --overwrite an old output survives a failed decompress
    old = tmp_path / "old.zarr"
    bigcomp.compress(B, old, **KW)
    assert _cli("decompress", old, dest, "--no-progress").exit_code == 0
    before = _files(dest) if dest.is_dir() else dest.read_bytes()
    res = _cli("decompress", store, dest, "--overwrite", "--no-progress")
    assert res.exit_code == 1
    assert (_files(dest) if dest.is_dir() else dest.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.zarr", name, "old.zarr"])
    # and is replaced by a successful one
    assert _cli("decompress", old, dest, "--overwrite", "--no-progress").exit_code == 0


# ------------------------------------------------------------------------------ write errors
def _full_disk_after(monkeypatch, n: int) -> None:
    """``os.fsync`` fails with ENOSPC after ``n`` calls (the file system filled up)."""
    real, calls = os.fsync, [0]

    def fsync(fd):
        calls[0] += 1
        if calls[0] > n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_disk_full_while_compressing_then_resume(tmp_path, monkeypatch):
    out = tmp_path / "a.zarr"
    _full_disk_after(monkeypatch, 4)  # the pending metadata and 3 chunks
    with pytest.raises(StoreWriteError, match=r"no space left.*free some space.*resumes") as e:
        bigcomp.compress(A, out, **KW)
    assert isinstance(e.value, OSError)
    assert e.value.errno == errno.ENOSPC
    assert not list(out.rglob("*.partial"))
    monkeypatch.undo()
    res = bigcomp.compress(A, out, **KW)
    assert (res.chunks_written, res.chunks_skipped) == (9, 3)
    np.testing.assert_array_equal(bigcomp.open(out).values, A)


def test_disk_full_cli_one_line(tmp_path, monkeypatch):
    src = _tif(tmp_path / "in.tif", A)
    _full_disk_after(monkeypatch, 0)  # even the store's skeleton cannot be written
    res = _cli("compress", src, tmp_path / "a.zarr", *CLI)
    assert res.exit_code == 1
    assert "no space left" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "a.zarr").exists()  # no half skeleton: the same command works
    monkeypatch.undo()
    assert _cli("compress", src, tmp_path / "a.zarr", *CLI).exit_code == 0
    _full_disk_after(monkeypatch, 0)
    monkeypatch.setattr("bigcomp.io._write_tiff", _enospc)
    res = _cli("decompress", tmp_path / "a.zarr", tmp_path / "o.tif", "--no-progress")
    assert res.exit_code == 1
    assert "no space left" in res.output
    assert not (tmp_path / "o.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "in.tif"]


def _enospc(arr, tmp, path, scheduler, progress):
    Path(tmp).write_bytes(b"half a tiff")
    raise OSError(errno.ENOSPC, "No space left on device", tmp)
