"""Multiscale pyramid (bigcomp.pyramid): plan, noise model per level, levels in the compress
graph (read once, resumable), OME-Zarr readers, opt-out and multiscale inputs."""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

import bigcomp
from bigcomp import pyramid
from bigcomp.datasets import light_sheet
from bigcomp.errors import ParameterError
from bigcomp.store import FINGERPRINT_BLOCKS, IncompleteStoreError, StoreExistsError
from bigcomp.testing import check_within_bound, stabilised_error

xr = pytest.importorskip("xarray")
da = pytest.importorskip("dask.array")

SYN = light_sheet((6, 70, 90), seed=3)
CAM = {"gain": SYN.gain, "offset": SYN.offset, "read_noise": SYN.read_noise}
KW = {"chunks": (4, 32, 32), "progress": False, "scheduler": "synchronous"}


def reference(a: np.ndarray, factors) -> np.ndarray:
    """The exactly downsampled array, pixel by pixel: the mean of each footprint (the pixels
    there are at an edge), rounded half to even — written independently of bigcomp.pyramid."""
    shape = tuple(-(-s // f) for s, f in zip(a.shape, factors, strict=True))
    out = np.empty(shape)
    for idx in np.ndindex(*shape):
        out[idx] = a[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors,
                                                                     strict=True))].mean()
    if a.dtype.kind == "f":
        return out.astype(a.dtype)
    return np.rint(out).astype(a.dtype)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _coords(spacing: dict, shape) -> dict:
    return {d: xr.Variable(d, s * np.arange(n), {"units": "micrometer"})
            for (d, s), n in zip(spacing.items(), shape, strict=True)}


# ------------------------------------------------------------------------------ plan
def test_plan_yx_until_one_chunk():
    levels = pyramid.plan((6, 70, 90), (4, 32, 32), ("z", "y", "x"))
    assert [lv.path for lv in levels] == ["1", "2"]
    assert [lv.factors for lv in levels] == [(1, 2, 2), (1, 4, 4)]
    assert [lv.shape for lv in levels] == [(6, 35, 45), (6, 18, 23)]
    assert [lv.chunks for lv in levels] == [(4, 32, 32), (4, 18, 23)]
    assert pyramid.plan((6, 30, 30), (4, 32, 32), ("z", "y", "x")) == []  # fits already
    assert pyramid.plan((3, 4, 70, 90), (1, 1, 32, 32), ("t", "c", "y", "x"))[0].factors == (
        1, 1, 2, 2)
    assert pyramid.plan((70, 90, 3), (32, 32, 3), ("a", "b", "c")) == []  # no y and x


def test_plan_z_only_when_near_isotropic():
    shape, chunks, dims = (64, 256, 256), (16, 32, 32), ("z", "y", "x")
    iso = pyramid.plan(shape, chunks, dims, _coords({"z": 0.2, "y": 0.2, "x": 0.2}, shape))
    assert [lv.factors for lv in iso] == [(2, 2, 2), (4, 4, 4), (8, 8, 8)]
    # z step 4x the pixel: z waits until the lateral voxel is within √2 of it
    aniso = pyramid.plan(shape, chunks, dims, _coords({"z": 0.8, "y": 0.2, "x": 0.2}, shape))
    assert [lv.factors for lv in aniso] == [(1, 2, 2), (1, 4, 4), (2, 8, 8)]
    # units are compared: 800 nm is 4x 0.2 µm
    mixed = _coords({"z": 800.0, "y": 0.2, "x": 0.2}, shape)
    mixed["z"].attrs["units"] = "nanometer"
    assert [lv.factors for lv in pyramid.plan(shape, chunks, dims, mixed)] == [
        lv.factors for lv in aniso]
    # unknown spacing (no coordinates, or a unit that is not a length): y and x only
    assert [lv.factors for lv in pyramid.plan(shape, chunks, dims)] == [
        (1, 2, 2), (1, 4, 4), (1, 8, 8)]
    odd = _coords({"z": 0.2, "y": 0.2, "x": 0.2}, shape)
    odd["y"].attrs["units"] = "pixel"
    assert pyramid.plan(shape, chunks, dims, odd)[0].factors == (1, 2, 2)


# ------------------------------------------------------------------------------ noise model
@pytest.mark.parametrize("count", [4, 8, 64])
def test_level_camera_matches_simulated_means(count):
    """The mean of `count` simulated camera pixels, rounded, has the variance of the level's
    camera (the derivation in bigcomp.pyramid)."""
    cam = bigcomp.CameraModel(2.0, 100.0, 1.6)
    lcam = pyramid.level_camera(cam, count, "uint16")
    assert lcam.gain == cam.gain / count and lcam.offset == cam.offset
    rng = np.random.default_rng(0)
    for photons in (0.5, 5.0, 50.0, 2000.0):
        e = rng.poisson(photons, (20000, count)) + rng.normal(0, cam.read_noise, (20000, count))
        pixels = cam.gain * e + cam.offset
        if pixels.mean(axis=1).std() < 0.5:
            # rounding adds 1/12 ADU² only on average below σ ≈ 0.5 ADU; there q·σ < 1 ADU
            # and every integer is its own bin (stored exactly) for q <= 2
            assert pyramid.level_camera(cam, count, "uint16").sigma(
                cam.offset + cam.gain * photons) < 0.6
            continue
        means = np.rint(pixels.mean(axis=1))
        expected = float(lcam.sigma(cam.offset + cam.gain * photons)) ** 2
        assert np.var(means) == pytest.approx(expected, rel=0.05)
    # float32 levels are not rounded: no 1/12 term
    fcam = pyramid.level_camera(cam, count, "float32")
    assert fcam.read_noise == pytest.approx(cam.read_noise * np.sqrt(count))


def test_level_camera_per_pixel_maps():
    from bigcomp.pixelcamera import PixelCamera

    offset = np.arange(16.0).reshape(4, 4) + 100
    pc = pyramid.level_pixel_camera(PixelCamera(offset, np.full((4, 4), 4.0), 2.0), (2, 2), 8,
                                    "uint16")
    np.testing.assert_allclose(pc.offset, [[102.5, 104.5], [110.5, 112.5]])
    np.testing.assert_allclose(pc.variance, 4.0 / 8 + 1 / 12)
    np.testing.assert_allclose(pc.gain, 0.25)


def test_block_sum_and_downsample_reference():
    a = np.random.default_rng(1).integers(0, 4000, (5, 7, 9)).astype("uint16")
    for factors in [(1, 2, 2), (2, 2, 2), (1, 4, 4), (3, 2, 1)]:
        np.testing.assert_array_equal(pyramid.downsample(a, factors), reference(a, factors))


# ------------------------------------------------------------------------------ compress
def test_levels_exist_with_shapes_scales_and_bounds(tmp_path):
    out = tmp_path / "a.zarr"
    res = bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    assert (res.chunks_written, res.pyramid_levels, res.pyramid_chunks_written) == (18, 2, 10)
    assert 0 < res.pyramid_bytes < res.stored_bytes
    group = zarr.open_group(out, mode="r")
    assert sorted(group.array_keys()) == ["0", "1", "2"]
    meta = group.attrs["bigcomp"]
    ms = group.attrs["ome"]["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales == [[1.0, 1.0, 1.0], [1.0, 2.0, 2.0], [1.0, 4.0, 4.0]]
    assert meta["job"]["pyramid"] == [[1, 2, 2], [1, 4, 4]]
    cam = bigcomp.CameraModel(**CAM)
    for k, lv in enumerate(meta["levels"], start=1):
        stored = group[lv["path"]]
        assert stored.shape == tuple(lv["shape"]) and stored.metadata.dimension_names == (
            "z", "y", "x")
        lcam = bigcomp.CameraModel(**lv["camera"])
        assert lcam == pyramid.level_camera(cam, 4**k, "uint16")
        assert stored.serializer.to_dict()["configuration"]["gain"] == lcam.gain
        assert 0.49 < lv["error_bound"] <= 0.5
        exact = reference(SYN.data, lv["factors"])
        back = bigcomp.open(out, level=k)
        assert back.shape == exact.shape and back.dims == ("z", "y", "x")
        assert back.attrs["bigcomp"]["job"]["camera"] == lv["camera"]
        assert back.data.chunksize == tuple(lv["chunks"])
        np.testing.assert_array_equal(back.values, stored[:])
        # within q/2 of the level's own noise σ, against the exactly downsampled source
        check_within_bound(exact, back.values, lcam, lv["error_bound"])
        assert back.bigcomp.compressed_size() < res.pyramid_bytes
    with pytest.raises(ParameterError, match="levels 0 to 2"):
        bigcomp.open(out, level=3)


def test_lossless_levels_are_exact_means_and_coords_follow(tmp_path):
    arr = xr.DataArray(SYN.data, dims=("z", "y", "x"), coords=_coords(
        {"z": 1.0, "y": 0.5, "x": 0.5}, SYN.data.shape), name="img")
    out = tmp_path / "a.zarr"
    res = bigcomp.compress(arr, out, mode="lossless", **KW)
    assert res.pyramid_levels == 2  # z spacing 2x the pixel: level 1 yx, level 2 zyx
    meta = bigcomp.open(out).attrs["bigcomp"]
    assert [lv["factors"] for lv in meta["levels"]] == [[1, 2, 2], [2, 4, 4]]
    for k, lv in enumerate(meta["levels"], start=1):
        back = bigcomp.open(out, level=k)
        assert lv["camera"] is None and lv["error_bound"] == 0
        np.testing.assert_array_equal(back.values, reference(SYN.data, lv["factors"]))
        assert back.name == "img"
    lvl = bigcomp.open(out, level=2)
    np.testing.assert_allclose(lvl.x.values[:3], [0.75, 2.75, 4.75])  # footprint centres
    np.testing.assert_allclose(lvl.z.values, [0.5, 2.5, 4.5])
    assert lvl.x.attrs["units"] == "micrometer"


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_odd_chunks_and_edges_exact(tmp_path, dtype):
    """Odd chunk sizes (blocks merged before summing) and odd edges: exact means."""
    data = (SYN.data // (1 if dtype == "uint16" else 16)).astype(dtype)
    out = tmp_path / "a.zarr"
    bigcomp.compress(data, out, mode="lossless", **{**KW, "chunks": (3, 15, 17)})
    meta = bigcomp.open(out).attrs["bigcomp"]
    assert [lv["shape"] for lv in meta["levels"]] == [[6, 35, 45], [6, 18, 23], [6, 9, 12]]
    for k, lv in enumerate(meta["levels"], start=1):
        np.testing.assert_array_equal(bigcomp.open(out, level=k).values,
                                      reference(data, lv["factors"]))
    assert pyramid.sum_dtype("uint16", 65536) == np.uint32
    assert pyramid.sum_dtype("uint16", 65538) == np.float64
    assert pyramid.sum_dtype("float32", 4) == np.float64


def test_float32_levels_within_bound(tmp_path):
    data = SYN.data.astype("float32") + np.float32(0.25)
    out = tmp_path / "f.zarr"
    bigcomp.compress(data, out, q=2.0, camera=CAM, **KW)
    meta = bigcomp.open(out).attrs["bigcomp"]
    for k, lv in enumerate(meta["levels"], start=1):
        lcam = bigcomp.CameraModel(**lv["camera"])
        assert lcam == pyramid.level_camera(bigcomp.CameraModel(**CAM), 4**k, "float32")
        exact = reference(data, lv["factors"])
        err = stabilised_error(exact, bigcomp.open(out, level=k).values, lcam)
        assert err <= 1.0 + 1e-6


def _counting_source(data: np.ndarray, chunks):
    """A dask array that counts how often each block is read."""
    reads: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def read(block_id=None):
        with lock:
            reads[block_id] += 1
        return data[tuple(slice(b * c, (b + 1) * c) for b, c in zip(block_id, chunks,
                                                                    strict=True))]

    x = da.map_blocks(read, chunks=da.core.normalize_chunks(chunks, data.shape),
                      dtype=data.dtype, meta=np.empty((0,) * data.ndim, data.dtype))
    return x, reads


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_source_read_once(tmp_path, scheduler):
    x, reads = _counting_source(SYN.data, (4, 32, 32))
    res = bigcomp.compress(x, tmp_path / "a.zarr", q=1.0, camera=CAM,
                           **{**KW, "scheduler": scheduler})
    assert res.pyramid_levels == 2
    n = int(np.prod(x.numblocks))
    # every block read once for the data, and the fingerprint's sample once more
    assert len(reads) == n and sum(reads.values()) == n + FINGERPRINT_BLOCKS


class _Stop(Exception):
    pass


def test_resume_interrupted_job_with_levels(tmp_path, monkeypatch):
    ref, out = tmp_path / "ref.zarr", tmp_path / "out.zarr"
    kw = {**KW, "q": 1.0, "camera": CAM, "chunks": (2, 32, 32)}
    bigcomp.compress(SYN.data, ref, **kw)
    real = pyramid.LevelWriter.__call__
    calls = []

    def failing(self, sums, idx):
        calls.append(1)
        if len(calls) == 5:  # some chunks of every level are written, then the run dies
            raise _Stop
        return real(self, sums, idx)

    monkeypatch.setattr(pyramid.LevelWriter, "__call__", failing)
    with pytest.raises(_Stop):
        bigcomp.compress(SYN.data, out, **kw)
    monkeypatch.setattr(pyramid.LevelWriter, "__call__", real)
    # incomplete: no reader sees a level; bigcomp.open(allow_incomplete=True) reads them
    with pytest.raises(IncompleteStoreError):
        bigcomp.open(out, level=1)
    assert not (out / "1" / "zarr.json").exists() and (out / "1" / "zarr.json.incomplete").exists()
    assert bigcomp.open(out, level=1, allow_incomplete=True).shape == (6, 35, 45)
    written = [p for p in (out / "1").rglob("c/*/*/*")] + [p for p in (out / "2").rglob("c/*/*/*")]
    assert written
    written[0].write_bytes(written[0].read_bytes()[:-3])  # a damaged level chunk is redone
    res = bigcomp.compress(SYN.data, out, **kw)
    assert res.pyramid_chunks_written == 15 - len(written) + 1
    assert _files(out) == _files(ref)
    again = bigcomp.compress(SYN.data, out, **kw)
    assert (again.chunks_written, again.pyramid_chunks_written) == (0, 0)


def test_pyramid_false_and_job_mismatch(tmp_path):
    out = tmp_path / "a.zarr"
    res = bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, pyramid=False, **KW)
    assert (res.pyramid_levels, res.pyramid_bytes) == (0, 0)
    group = zarr.open_group(out, mode="r")
    assert sorted(group.array_keys()) == ["0"]
    assert len(group.attrs["ome"]["multiscales"][0]["datasets"]) == 1
    assert "levels" not in group.attrs["bigcomp"]
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["0"].shape,
                                  SYN.data.shape)
    with pytest.raises(StoreExistsError, match="pyramid"):  # another job: with levels
        bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    with pytest.raises(ParameterError, match="no pyramid"):
        bigcomp.compress(SYN.data, tmp_path / "t.zarr", mode="temporal", pyramid=True, **KW)


def test_store_before_pyramids_resumes_without_levels(tmp_path):
    """A store whose job has no "pyramid" key (written before levels existed) is the job
    without levels."""
    out = tmp_path / "a.zarr"
    bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, pyramid=False, **KW)
    doc = json.loads((out / "zarr.json").read_text())
    del doc["attributes"]["bigcomp"]["job"]["pyramid"]
    (out / "zarr.json").write_text(json.dumps(doc))
    assert bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, pyramid=False,
                            **KW).chunks_written == 0


def _ome_input(path: Path, data: np.ndarray, factors: list, shapes: list) -> None:
    group = zarr.open_group(path, mode="w", zarr_format=3)
    datasets = []
    for k, (f, shape) in enumerate(zip(factors, shapes, strict=True)):
        level = (reference(data, f) if all(float(x).is_integer() for x in f) else data)[
            tuple(slice(0, s) for s in shape)]
        group.create_array(str(k), shape=shape, chunks=(3, 16, 16), dtype=data.dtype,
                           dimension_names=("z", "y", "x"))[:] = level
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0 * f[0], 0.5 * f[1], 0.5 * f[2]]}]})
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": d, "type": "space", "unit": "micrometer"} for d in "zyx"],
        "datasets": datasets}]}


def test_multiscale_input_keeps_its_levels(tmp_path):
    data = light_sheet((6, 67, 83), seed=4).data
    src = tmp_path / "in.zarr"
    # the input's levels: floor shapes (trimmed edges), 2x then 4x in y and x only
    factors = [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
    shapes = [(6, 67, 83), (6, 33, 41), (6, 16, 20)]
    _ome_input(src, data, factors, shapes)
    out = tmp_path / "out.zarr"
    bigcomp.compress(src, out, q=1.0, camera=CAM, **{**KW, "chunks": (4, 16, 16)})
    meta = bigcomp.open(out).attrs["bigcomp"]
    assert [lv["factors"] for lv in meta["levels"]] == [list(f) for f in factors[1:]]
    assert [lv["shape"] for lv in meta["levels"]] == [list(s) for s in shapes[1:]]
    for k, lv in enumerate(meta["levels"], start=1):
        exact = reference(data, lv["factors"])[tuple(slice(0, s) for s in lv["shape"])]
        check_within_bound(exact, bigcomp.open(out, level=k).values,
                                           bigcomp.CameraModel(**lv["camera"]),
                                           lv["error_bound"])
    # levels that are not integer reductions of level 0 are not kept: bigcomp plans its own
    odd = tmp_path / "odd.zarr"
    _ome_input(odd, data, [(1, 1, 1), (1, 1.5, 1.5)], [(6, 67, 83), (6, 45, 55)])
    out2 = tmp_path / "out2.zarr"
    bigcomp.compress(odd, out2, q=1.0, camera=CAM, **{**KW, "chunks": (4, 16, 16)})
    assert [lv["factors"][1] for lv in bigcomp.open(out2).attrs["bigcomp"]["levels"]] == [
        2, 4, 8]


# ------------------------------------------------------------------------------ readers
def test_ome_zarr_reader_sees_every_level(tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    ome_io = pytest.importorskip("ome_zarr.io")
    out = tmp_path / "a.zarr"
    bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    nodes = list(reader.Reader(ome_io.parse_url(str(out)))())
    image = nodes[0]
    assert [tuple(d.shape) for d in image.data] == [(6, 70, 90), (6, 35, 45), (6, 18, 23)]
    np.testing.assert_array_equal(np.asarray(image.data[1]), bigcomp.open(out, level=1).values)


def test_ome_zarr_models_validate(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05.image")
    out = tmp_path / "a.zarr"
    bigcomp.compress(SYN.data, out, q=1.0, camera=CAM, **KW)
    image = models.Image.from_zarr(zarr.open_group(out, mode="r"))
    assert [d.path for d in image.attributes.ome.multiscales[0].datasets] == ["0", "1", "2"]


def test_cli_no_pyramid(tmp_path):
    from typer.testing import CliRunner

    from bigcomp.cli import app

    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, SYN.data)
    args = ["compress", str(src), "--chunks", "4,32,32", "--gain", "2", "--offset", "100",
            "--read-noise", "1.6", "--scheduler", "synchronous", "--no-progress"]
    res = CliRunner().invoke(app, [*args[:2], str(tmp_path / "a.zarr"), *args[2:],
                                   "--no-pyramid"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "a.zarr" / "1").exists() and "pyramid:" not in res.output
    res = CliRunner().invoke(app, [*args[:2], str(tmp_path / "b.zarr"), *args[2:]])
    assert res.exit_code == 0, res.output
    assert "pyramid: 2 levels" in res.output and (tmp_path / "b.zarr" / "2").exists()
