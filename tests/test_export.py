"""Stores people can view and share (issue 20): the group's metadata and ``about`` note open
without bigcomp; ``bigcomp export`` writes plain OME-Zarr (zstd / blosc, every pyramid level,
all metadata) that readers without bigcomp open; the readers of docs/ecosystem.md."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
import zarr

import bigcomp
from bigcomp.export import export

CAM = {"gain": 1.0, "offset": 100.0, "read_noise": 1.5}
KW = {"progress": False, "scheduler": "synchronous"}

# a Python without bigcomp: its entry points hidden (zarr and numcodecs find no codec) and the
# package unimportable
NO_BIGCOMP = textwrap.dedent('''
    import importlib.metadata as im, sys
    _entry_points = im.entry_points
    def entry_points(**kw):
        eps = _entry_points(**kw)
        if isinstance(eps, dict):
            eps = [e for group in eps.values() for e in group]
        return im.EntryPoints(e for e in eps if not e.value.startswith("bigcomp"))
    im.entry_points = entry_points
    sys.modules["bigcomp"] = None
''')


def without_bigcomp(code: str) -> str:
    """Run ``code`` in a fresh Python that cannot see bigcomp; its stdout."""
    res = subprocess.run([sys.executable, "-c", NO_BIGCOMP + textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _source() -> xr.DataArray:
    data = (np.random.default_rng(7).poisson(60, (2, 6, 70, 90)) + 100).astype("uint16")
    return xr.DataArray(data, dims=("c", "z", "y", "x"), name="embryo", coords={
        "c": ["H2B", "actin"], "z": ("z", 2.0 * np.arange(6), {"units": "µm"}),
        "y": ("y", 0.4 * np.arange(70), {"units": "µm"}),
        "x": ("x", 0.4 * np.arange(90), {"units": "µm"})})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A wnl store with a pyramid (levels 1 and 2), pixel sizes and channel names."""
    out = tmp_path_factory.mktemp("export") / "embryo.zarr"
    bigcomp.compress(_source(), out, q=1.0, camera=CAM, chunks=(1, 4, 32, 32), **KW)
    return out


def test_group_readable_without_bigcomp(store):
    out = json.loads(without_bigcomp(f'''
        import json, zarr
        from zarr.errors import UnknownCodecError
        g = zarr.open_group({str(store)!r}, mode="r")
        attrs = g.attrs.asdict()
        try:
            g["0"]
            error = None
        except UnknownCodecError as exc:
            error = str(exc)
        print(json.dumps({{"keys": sorted(attrs), "about": attrs["about"],
                          "ome": attrs["ome"], "error": error}}))
    '''))
    assert out["keys"] == ["about", "bigcomp", "ome"]
    assert "pip install bigcomp" in out["about"]
    assert "bigcomp export" in out["about"]
    assert out["ome"]["multiscales"][0]["axes"][1] == {"name": "z", "type": "space",
                                                       "unit": "micrometer"}
    assert out["error"] == "Unknown codec: 'bigcomp.wnl'"  # the data need bigcomp
    # plain JSON too
    assert "about" in json.loads((store / "zarr.json").read_text())["attributes"]


def test_export_plain_ome_zarr(store, tmp_path):
    res = export(store, tmp_path / "plain.zarr", **KW)
    meta = bigcomp.open(store).attrs["bigcomp"]
    assert res["levels"] == 1 + len(meta["levels"]) == 3
    g = zarr.open_group(tmp_path / "plain.zarr", mode="r")
    ms = g.attrs["ome"]["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [
        pytest.approx([1.0, 2.0, 0.4, 0.4]), pytest.approx([1.0, 2.0, 0.8, 0.8]),
        pytest.approx([1.0, 2.0, 1.6, 1.6])]
    assert [c["label"] for c in g.attrs["ome"]["omero"]["channels"]] == ["H2B", "actin"]
    assert g.attrs["bigcomp_export"]["mode"] == "wnl"
    assert g["0"].metadata.codecs[-1].to_dict()["name"] == "zstd"
    # every level holds exactly the store's decoded values; no bigcomp needed to read them
    sums = json.loads(without_bigcomp(f'''
        import json, zarr
        g = zarr.open_group({str(tmp_path / "plain.zarr")!r}, mode="r")
        print(json.dumps({{p: [list(g[p].shape), int(g[p][:].astype("int64").sum())]
                          for p in ("0", "1", "2")}}))
    '''))
    for k, p in enumerate(("0", "1", "2")):
        level = bigcomp.open(store, level=k).values
        assert sums[p] == [list(level.shape), int(level.astype("int64").sum())]
    # xarray reads level 0 with its coordinates (levels differ in size: drop them)
    ds = xr.open_zarr(tmp_path / "plain.zarr", drop_variables=["1", "2"])
    assert list(ds.c.values) == ["H2B", "actin"]
    assert ds.x.attrs["units"] == "µm"


def test_export_region_blosc_and_cli(store, tmp_path):
    from typer.testing import CliRunner

    from bigcomp.cli import app

    res = CliRunner().invoke(app, ["export", str(store), str(tmp_path / "part.zarr"),
                                   "--region", "1,1:5,10:50", "--compressor", "blosc",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "OME-Zarr, 3 level(s)" in res.output
    g = zarr.open_group(tmp_path / "part.zarr", mode="r")
    assert g["0"].shape == (1, 4, 40, 90)
    assert g["1"].shape == (1, 4, 20, 45)
    assert g["0"].metadata.codecs[-1].to_dict()["name"] == "blosc"
    ms = g.attrs["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == pytest.approx(
        [0.0, 2.0, 4.0, 0.0])  # where the region lies
    assert [c["label"] for c in g.attrs["ome"]["omero"]["channels"]] == ["actin"]
    np.testing.assert_array_equal(g["0"][:], bigcomp.open(store).values[1:2, 1:5, 10:50])
    bad = CliRunner().invoke(app, ["export", str(store), str(tmp_path / "x.zarr"),
                                   "--compressor", "lz4"])
    assert bad.exit_code == 2
    assert "zstd, blosc" in bad.output
    again = CliRunner().invoke(app, ["export", str(store), str(tmp_path / "part.zarr")])
    assert again.exit_code == 1
    assert "--overwrite" in again.output


def test_export_transposes_into_ngff_order(tmp_path):
    src = _source().transpose("z", "c", "y", "x")  # not an NGFF order: no ome block
    bigcomp.compress(src, tmp_path / "zc.zarr", mode="lossless", pyramid=False, **KW)
    assert "ome" not in json.loads((tmp_path / "zc.zarr" / "zarr.json").read_text())[
        "attributes"]
    export(tmp_path / "zc.zarr", tmp_path / "plain.zarr", **KW)
    g = zarr.open_group(tmp_path / "plain.zarr", mode="r")
    assert [a["name"] for a in g.attrs["ome"]["multiscales"][0]["axes"]] == list("czyx")
    np.testing.assert_array_equal(g["0"][:], _source().values)


# ------------------------------------------------------------------------------ readers
def test_ome_zarr_models_validates(store, tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05")
    export(store, tmp_path / "plain.zarr", **KW)
    for path in (tmp_path / "plain.zarr", store):  # the bigcomp store's metadata too
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]
        image = models.image.ImageAttrs.model_validate(attrs["ome"])
        assert len(image.multiscales[0].datasets) == 3
    # the whole plain store (array metadata included)
    models.Image.from_zarr(zarr.open_group(tmp_path / "plain.zarr", mode="r"))


def test_tensorstore_reads_export(store, tmp_path):
    ts = pytest.importorskip("tensorstore")
    export(store, tmp_path / "plain.zarr", **KW)
    for p in ("0", "2"):
        arr = ts.open({"driver": "zarr3", "kvstore": {
            "driver": "file", "path": str(tmp_path / "plain.zarr" / p)}}).result()
        np.testing.assert_array_equal(arr.read().result(),
                                      bigcomp.open(store, level=int(p)).values)


def test_ome_zarr_py_reads(store, tmp_path):
    pytest.importorskip("ome_zarr")
    export(store, tmp_path / "plain.zarr", **KW)
    for path in (store, tmp_path / "plain.zarr"):  # bigcomp store: through bigcomp's codecs
        out = json.loads(subprocess.run([sys.executable, "-c", textwrap.dedent(f'''
            import json
            from ome_zarr.io import parse_url
            from ome_zarr.reader import Reader
            node = list(Reader(parse_url({str(path)!r}))())[0]
            print(json.dumps({{"shapes": [list(d.shape) for d in node.data],
                              "sum": int(node.data[-1].sum().compute()),
                              "names": node.metadata.get("channel_names")}}))
        ''')], capture_output=True, text=True, timeout=300, check=True).stdout)
        assert out["shapes"] == [[2, 6, 70, 90], [2, 6, 35, 45], [2, 6, 18, 23]]
        assert out["sum"] == int(bigcomp.open(store, level=2).values.astype("int64").sum())
        assert out["names"] == ["H2B", "actin"]


def test_ngff_zarr_reads_export(store, tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    export(store, tmp_path / "plain.zarr", **KW)
    ms = ngff_zarr.from_ngff_zarr(str(tmp_path / "plain.zarr"))
    assert [im.data.shape for im in ms.images] == [(2, 6, 70, 90), (2, 6, 35, 45),
                                                   (2, 6, 18, 23)]
    assert ms.images[0].scale == pytest.approx({"c": 1.0, "z": 2.0, "y": 0.4, "x": 0.4})
    np.testing.assert_array_equal(np.asarray(ms.images[2].data),
                                  bigcomp.open(store, level=2).values)
