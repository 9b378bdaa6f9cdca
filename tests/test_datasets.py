"""Tests for bigcomp.datasets: determinism, shapes, camera noise model, ground truth."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bigcomp import datasets as ds

SMALL = {
    "light_sheet": (ds.light_sheet, (8, 64, 64), ("z", "y", "x")),
    "smlm": (ds.smlm, (6, 64, 64), ("t", "y", "x")),
    "timelapse_5d": (ds.timelapse_5d, (3, 2, 6, 48, 48), ("t", "c", "z", "y", "x")),
    "diffraction_series": (ds.diffraction_series, (4, 96, 96), ("t", "y", "x")),
}


def _residuals(s: ds.Synthetic, mask: np.ndarray | None = None) -> np.ndarray:
    """(data - truth) / expected std, including rounding noise, on unsaturated pixels."""
    ok = (s.data < np.iinfo(s.data.dtype).max) & (s.variance > 0)
    if mask is not None:
        ok &= mask
    r = (s.data[ok].astype(np.float64) - s.truth[ok]) / np.sqrt(s.variance[ok] + 1 / 12)
    return r


@pytest.mark.parametrize("name", list(SMALL))
def test_deterministic_shapes_dims(name):
    gen, shape, dims = SMALL[name]
    a, b, c = gen(shape, seed=7), gen(shape, seed=7), gen(shape, seed=8)
    assert a.data.shape == a.truth.shape == shape
    assert a.data.dtype == np.uint16
    assert a.truth.dtype == np.float32
    assert a.dims == dims
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.truth, b.truth)
    if a.spots is not None:
        np.testing.assert_array_equal(a.spots, b.spots)
    assert not np.array_equal(a.data, c.data)
    assert not np.array_equal(a.truth, c.truth)


@pytest.mark.parametrize("name", list(SMALL))
def test_noise_matches_camera_model(name):
    gen, shape, _ = SMALL[name]
    s = gen(tuple(2 * n if i >= len(shape) - 2 else n for i, n in enumerate(shape)), seed=1)
    r = _residuals(s)
    assert r.size > 0.9 * s.data.size or name == "diffraction_series"
    assert abs(r.mean()) < 0.02
    assert abs(r.std() - 1) < 0.02


@pytest.mark.parametrize(("gain", "offset", "read_noise", "photons"),
                         [(2.0, 100.0, 1.6, 10.0), (0.5, 300.0, 3.0, 40.0), (1.0, 0.0, 0.0, 5.0)])
def test_flat_field_statistics(gain, offset, read_noise, photons):
    s = ds.simulate_camera(np.full((512, 512), photons), gain=gain, offset=offset,
                           read_noise=read_noise, seed=3)
    x = s.data.astype(np.float64)
    var = gain**2 * (photons + read_noise**2) + 1 / 12
    assert abs(x.mean() - (offset + gain * photons)) < 5 * np.sqrt(var / x.size)
    assert x.var() == pytest.approx(var, rel=0.02)
    np.testing.assert_allclose(s.truth, offset + gain * photons)
    np.testing.assert_allclose(s.photons, photons, rtol=1e-6)


def test_clipping_to_dtype():
    s = ds.simulate_camera(np.array([0.0, 1e6]), gain=2.0, offset=100.0, dtype="uint8")
    assert s.data.dtype == np.uint8
    assert s.data[1] == 255
    assert s.truth[1] == 255


def test_default_shapes_fast():
    for gen, shape, dims in [(ds.light_sheet, (32, 256, 256), ("z", "y", "x")),
                             (ds.smlm, (20, 256, 256), ("t", "y", "x")),
                             (ds.timelapse_5d, (4, 2, 8, 128, 128), tuple("tczyx")),
                             (ds.diffraction_series, (16, 512, 512), ("t", "y", "x"))]:
        t0 = time.perf_counter()
        s = gen()
        assert time.perf_counter() - t0 < 3.0  # typically 0.1-0.3 s
        assert s.data.shape == shape
        assert s.dims == dims
        assert s.data.dtype == np.uint16


def test_light_sheet_content():
    s = ds.light_sheet((16, 128, 128), seed=2)
    ph = s.photons
    assert ph.min() >= 5 - 1e-3  # background 5-20 photons everywhere
    assert np.mean(ph < 25) > 0.6  # mostly dim background
    assert 300 < ph.max() < 2e4  # bright nuclei
    # elongated PSF: structure is strongly correlated between neighbouring planes
    a, b = ph[:-1].ravel() - ph.mean(), ph[1:].ravel() - ph.mean()
    assert np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)) > 0.8
    assert ds.light_sheet((4, 32, 32), dtype="uint8").data.dtype == np.uint8


def test_smlm_spots():
    s = ds.smlm((10, 96, 96), seed=4, background=10.0, psf_sigma=1.3)
    sp = s.spots
    assert sp.ndim == 2
    assert sp.shape[1] == 4
    assert len(sp) > 20
    t, y, x, n = sp.T
    assert np.all(t == np.round(t))
    assert t.min() >= 0
    assert t.max() < 10
    assert np.all((n >= 500) & (n <= 3000))
    # each emitter keeps its position over consecutive frames
    for key in {(yy, xx) for yy, xx in zip(y, x, strict=True)}:
        frames = t[(y == key[0]) & (x == key[1])]
        assert np.all(np.diff(np.sort(frames)) == 1)
    ph = s.photons
    inner = (y > 7) & (y < 88) & (x > 7) & (x < 88)
    for ti, yi, xi, ni in sp[inner]:
        ti, yc, xc = int(ti), round(yi), round(xi)
        win = np.s_[ti, yc - 2:yc + 3, xc - 2:xc + 3]
        # detected in the noisy data: the 5x5 sum holds most of the photons
        got = (s.data[win].astype(float) - s.offset).sum() / s.gain - 25 * 12.0
        assert got > 0.5 * ni
        # exactly integrated in the ground truth for isolated spots
        others = sp[(sp[:, 0] == ti) & (np.hypot(sp[:, 1] - yi, sp[:, 2] - xi) > 0)]
        if len(others) == 0 or np.hypot(others[:, 1] - yi, others[:, 2] - xi).min() > 12:
            w9 = np.s_[ti, yc - 4:yc + 5, xc - 4:xc + 5]
            local_bg = np.median(ph[ti, yc - 6:yc + 7, xc - 6:xc + 7][[0, -1]])
            assert (ph[w9] - local_bg).sum() == pytest.approx(ni, rel=0.03)
    # far from every spot of a frame there is only background (<= 12 photons)
    yy, xx = np.mgrid[:96, :96]
    for ti in range(10):
        f = sp[sp[:, 0] == ti]
        d = np.min(np.hypot(yy[..., None] - f[:, 1], xx[..., None] - f[:, 2]), axis=-1,
                   initial=1e9)
        assert s.photons[ti][d > 8].max() <= 12.0 + 1e-3


def test_timelapse_5d():
    s = ds.timelapse_5d((3, 2, 6, 64, 64), seed=5)
    ph = s.photons
    assert ph[:, 1].max() < 0.5 * ph[:, 0].max()  # second channel dimmer
    assert not np.allclose(ph[0, 0], ph[1, 0] * ph[0, 0].max() / ph[1, 0].max(), rtol=0.05)
    assert ph.min() > 0


def test_diffraction_series():
    s = ds.diffraction_series((6, 128, 128), seed=6)
    assert (s.gain, s.offset, s.read_noise) == (1.0, 0.0, 0.0)
    assert np.sum(s.data == 0) > 0.02 * s.data.size  # beam stop and weak background
    sp = s.spots
    assert len(sp) > 10
    assert np.all(sp[:, 3] >= 1)
    ph = s.photons
    checked = 0
    for ti, yi, xi, ni in sp:
        ti, yc, xc = int(ti), round(yi), round(xi)
        if not (6 <= yc < 122 and 6 <= xc < 122):
            continue
        # static pattern times flux: subtract a frame without reflections nearby
        dist = np.hypot(sp[:, 1] - yi, sp[:, 2] - xi)
        busy = {int(t) for t in sp[dist < 14, 0]}
        free = [t for t in range(6) if t not in busy]
        win = np.s_[yc - 5:yc + 6, xc - 5:xc + 6]
        if free and len(sp[(sp[:, 0] == ti) & (dist < 14)]) == 1 and ph[0][win].min() > 0:
            pos = ph[free[0]] > 0
            flux = np.median(ph[ti][pos] / ph[free[0]][pos])  # exact on most pixels
            got = (ph[ti][win] - flux * ph[free[0]][win]).sum()
            assert got == pytest.approx(ni, rel=0.01, abs=1.0)
            checked += 1
    assert checked >= 5
    assert ds.diffraction_series((2, 32, 32), dtype="uint32").data.dtype == np.uint32


@pytest.mark.parametrize("chunks", [(8, 32, 40), 16])
def test_lazy_light_sheet_matches_chunks(chunks):
    shape = (20, 70, 90)
    arr = ds.lazy_light_sheet(shape, chunks, seed=3, gain=1.5, offset=50.0)
    assert arr.shape == shape
    assert arr.dtype == np.uint16
    full = arr.compute()
    ch = (chunks,) * 3 if isinstance(chunks, int) else chunks
    for bid in np.ndindex(*arr.numblocks):
        sl = tuple(slice(b * c, (b + 1) * c) for b, c in zip(bid, ch, strict=True))
        np.testing.assert_array_equal(
            full[sl], ds.light_sheet_chunk(bid, ch, seed=3, shape=shape, gain=1.5, offset=50.0))
    assert not np.array_equal(full, ds.lazy_light_sheet(shape, chunks, seed=4).compute())


def test_light_sheet_chunk_independent_and_seamless():
    a = ds.light_sheet_chunk((0, 1, 2), (8, 32, 32), seed=9)
    np.testing.assert_array_equal(a, ds.light_sheet_chunk((0, 1, 2), (8, 32, 32), seed=9))
    assert a.shape == (8, 32, 32)
    assert not np.array_equal(a, ds.light_sheet_chunk((0, 1, 1), (8, 32, 32), seed=9))
    # blobs cut by a chunk border continue into the neighbour: on bright pixels the step
    # across a chunk border is no larger than across interior columns (a cut blob
    # would give steps of its full brightness, ~5x larger)
    big = ds.lazy_light_sheet((16, 256, 256), (16, 64, 64), seed=1).compute().astype(float)

    def step(pairs):
        j = [np.abs(big[..., a] - big[..., b])[np.maximum(big[..., a], big[..., b]) > 400]
             for a, b in pairs]
        return np.concatenate(j).mean()

    assert step([(63, 64), (127, 128), (191, 192)]) < 1.5 * step([(31, 32), (95, 96), (159, 160)])


@pytest.mark.parametrize(("call", "match"), [
    (lambda: ds.light_sheet((8, 64)), "3 dimensions"),
    (lambda: ds.light_sheet((0, 8, 8)), ">= 1"),
    (lambda: ds.light_sheet((8, 8, 8), gain=0), "gain"),
    (lambda: ds.light_sheet((8, 8, 8), read_noise=-1), "read_noise"),
    (lambda: ds.light_sheet((8, 8, 8), dtype="float32"), "dtype"),
    (lambda: ds.smlm((2, 8, 8), dtype="int64"), "dtype"),
    (lambda: ds.smlm((2, 8, 8), psf_sigma=0), "psf_sigma"),
    (lambda: ds.timelapse_5d((2, 8, 8)), "5 dimensions"),
    (lambda: ds.diffraction_series((2, 8, 8), dtype="uint8"), "dtype"),
    (lambda: ds.light_sheet_chunk((-1, 0, 0), (4, 4, 4)), "block_id"),
    (lambda: ds.light_sheet_chunk((5, 0, 0), (4, 4, 4), shape=(8, 8, 8)), "outside"),
    (lambda: ds.lazy_light_sheet((8, 8, 8), 4, gain=-2), "gain"),
    (lambda: ds.lazy_light_sheet((8, 8, 8), 4, bogus=1), "unknown"),
    (lambda: ds.simulate_camera(np.array([-1.0])), "photons"),
])
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
