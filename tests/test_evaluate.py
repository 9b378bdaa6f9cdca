"""bigcomp.evaluate: the table, the report folder and the CLI command on small synthetic data."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("skimage")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from bigcomp import datasets, metrics, video
from bigcomp.chunk import decode_chunk, encode_chunk
from bigcomp.evaluate import evaluate, evaluate_command, parse_region
from bigcomp.noise import CameraModel


@pytest.fixture(scope="module")
def light():
    return datasets.light_sheet((4, 64, 64), seed=3)


@pytest.fixture(scope="module")
def report(light, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    table = evaluate(light, modes=("lossless", "wnl:q=1", "temporal:q=1",
                                   "inr:ratio=20:steps=20"),
                     peers=("zstd", "sz3", "x265"), out=out)
    return table, out


def test_table_rows_and_notes(report):
    table, _ = report
    x265 = "x265 crf 28, 12-bit"
    assert list(table.index) == ["bigcomp lossless", "bigcomp wnl q=1", "bigcomp temporal q=1",
                                 "bigcomp inr ratio=20 steps=20", "zstd -3", "SZ3 q=1", x265]
    if video.available("libx265"):
        assert table.loc[x265, "note"] == "planes as frames"
        assert table.loc[x265, "ratio"] > 5
        assert table.loc[x265, "psnr_db"] > 30
    else:
        assert "not installed" in table.loc[x265, "note"]
        assert math.isnan(table.loc[x265, "ratio"])
    lossless = table.loc["bigcomp lossless"]
    assert lossless["psnr_db"] == math.inf
    assert lossless["dice"] == 1.0
    assert lossless["max_err_sigma"] == 0.0
    assert lossless["noise_excess"] == 1.0
    q1 = table.loc["bigcomp wnl q=1"]
    assert 0 < q1["max_err_sigma"] <= 0.5
    assert q1["ratio"] > lossless["ratio"] > 1
    assert 1.0 < q1["noise_excess"] < 1.1  # q=1: error barely above the noise itself


def test_whole_array_modes(light, report):
    """temporal and inr are compressed as one store; their ratio counts every stored byte."""
    table, _ = report
    temporal = table.loc["bigcomp temporal q=1"]
    assert temporal["ratio"] > 1
    assert temporal["max_err_sigma"] < 10  # outliers exact, the rest within ~q/2 of the noise
    inr = table.loc["bigcomp inr ratio=20 steps=20"]
    if importlib.util.find_spec("torch") is None:
        assert "ImportError" in inr["note"] or "torch" in inr["note"]
        return
    assert inr["note"] == ""
    assert math.isnan(inr["q"])
    assert 15 < inr["ratio"] < 25
    assert inr["psnr_db"] > 20


def test_numbers_match_metrics(light, report):
    table, _ = report
    cam = CameraModel(light.gain, light.offset, light.read_noise)
    blob = encode_chunk(light.data, q=1.0, camera=cam)  # one chunk: (4, 64, 64)
    back = decode_chunk(blob)
    row = table.loc["bigcomp wnl q=1"]
    assert row["ratio"] == pytest.approx(light.data.nbytes / len(blob))
    assert row["psnr_db"] == pytest.approx(metrics.psnr(light.data, back))
    assert row["ssim"] == pytest.approx(metrics.ssim(light.data, back))
    assert row["max_err_sigma"] == pytest.approx(
        metrics.sigma_error(light.data, back, camera=cam)["max"])
    assert row["dice"] == pytest.approx(
        metrics.segmentation_agreement(light.data, back)["dice"])
    s = metrics.pixel_stats(light.data, back, camera=cam, truth=light.truth)
    assert row["noise_excess"] == pytest.approx(s["truth_rms_ratio"])


def test_report_files(report):
    _, out = report
    for name in ("report.md", "report.html", "ratio_psnr.png", "ratio_dice.png",
                 "error_maps.png", "error_histograms.png", "frc.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert "bigcomp wnl q=1" in md
    assert "x265 crf 28, 12-bit" in md
    assert "<table>" in (out / "report.html").read_text()


def test_spots_and_region():
    s = datasets.smlm((6, 64, 64), seed=1)
    table = evaluate(s, modes=("lossless", "wnl:q=1"), peers=(), region="1:5,:,:")
    ll = table.loc["bigcomp lossless"]
    assert ll["loc_change_pct"] == 0.0
    assert ll["loc_shift_px"] == 0.0
    assert ll["spots"] > 5
    assert ll["loc_change_ci_low"] == 0.0 == ll["loc_change_ci_high"]
    q1 = table.loc["bigcomp wnl q=1"]
    assert abs(q1["loc_change_pct"]) < 25
    assert q1["loc_change_ci_low"] <= q1["loc_change_pct"] <= q1["loc_change_ci_high"]
    assert 0 < q1["loc_pairs"] <= ll["loc_pairs"]
    for col in ("loc_median_change_pct", "loc_change_unpaired_pct", "loc_shift_change_pct"):
        assert math.isfinite(q1[col]), col


def test_parse_region_and_errors():
    assert parse_region("3", 2) == (slice(3, 4), slice(None))
    assert parse_region(None, 1) == (slice(None),)
    with pytest.raises(ValueError, match="more axes"):
        parse_region("1,2,3", 2)
    with pytest.raises(ValueError, match="camera"):
        evaluate(np.zeros((8, 8), np.uint16), peers=())
    with pytest.raises(ValueError, match="unknown peer"):
        evaluate(np.zeros((8, 8), np.uint16), camera=CameraModel(), peers=("gzip",))


def test_cli_command(tmp_path, light):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)  # two commands: "evaluate" stays a sub-command
    path = tmp_path / "stack.npy"
    np.save(path, light.data)
    res = CliRunner().invoke(app, ["evaluate", str(path), "--modes", "wnl:q=2", "--peers", "",
                                   "--gain", "2", "--offset", "100", "--read-noise", "1.6",
                                   "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "bigcomp wnl q=2" in res.output
    assert (tmp_path / "rep" / "report.md").exists()
    res = CliRunner().invoke(app, ["evaluate", str(path), "--modes", "wnl:q=2", "--peers", "",
                                   "--gain", "2", "--offset", "100", "--read-noise", "1.6",
                                   "--threshold", "li", "--per-image-threshold"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["evaluate", str(path), "--peers", "", "--gain", "2",
                                   "--offset", "100", "--read-noise", "1.6",
                                   "--threshold", "mean"])
    assert res.exit_code != 0
    assert "threshold" in res.output


def test_cli_camera_file(tmp_path, light):
    """--camera takes a camera file (a global .json here; per-pixel maps use their medians)."""
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from bigcomp.camera_file import save_camera
    from bigcomp.datasets import scmos_camera

    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)
    path = tmp_path / "stack.npy"
    np.save(path, light.data)
    save_camera(CameraModel(2.0, 100.0, 1.6), tmp_path / "cam.json")
    res = CliRunner().invoke(app, ["evaluate", str(path), "--modes", "wnl:q=2", "--peers", "",
                                   "--camera", str(tmp_path / "cam.json")])
    assert res.exit_code == 0, res.output
    assert "camera gain 2 ADU/e-, offset 100 ADU, read noise 1.6 e-" in res.output
    save_camera(scmos_camera(light.data.shape[-2:]), tmp_path / "maps.zarr")
    res = CliRunner().invoke(app, ["evaluate", str(path), "--modes", "wnl:q=2", "--peers", "",
                                   "--camera", str(tmp_path / "maps.zarr")])
    assert res.exit_code == 0, res.output
    assert "median camera" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(path), "--camera", str(tmp_path / "cam.json"),
                                   "--gain", "2"])
    assert res.exit_code != 0


def test_threshold_options(light):
    kw = {"modes": ("wnl:q=2",), "peers": ()}
    shared = evaluate(light, **kw)
    own = evaluate(light, per_image_threshold=True, **kw)
    fixed = evaluate(light, threshold=150.0, **kw)
    cam = CameraModel(light.gain, light.offset, light.read_noise)
    back = decode_chunk(encode_chunk(light.data, q=2.0, camera=cam))
    for table, opts in ((shared, {}), (own, {"per_image": True}), (fixed, {"threshold": 150.0})):
        assert table.loc["bigcomp wnl q=2", "dice"] == pytest.approx(
            metrics.segmentation_agreement(light.data, back, **opts)["dice"])
