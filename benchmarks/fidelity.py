"""Fidelity of bigcomp and its peers on synthetic and real data: writes docs/evaluation.md.

Usage::

    python benchmarks/fidelity.py [--quick] [--data ../shared/data]

Runs :func:`bigcomp.evaluate.run_evaluation` on the synthetic light-sheet, SMLM-like and
diffraction-like stacks (``bigcomp.datasets``, ground truth known) and on the real STORM movie and
brain-3D channel 0 in ``../shared/data`` (read in place; camera as in ``benchmarks/_data.py``),
then writes the tables, the targets (Dice ≥ 0.99 and localisation error change ≤ 5 % at q = 1σ)
and a few small PNGs under ``docs/img/``.

Next to each target it reports a *noise reference*: the same metric for the original plus an
independent error that is uniform on ±q/2 σ in the variance-stabilised domain (what an ideal
quantiser with step q adds), so a number can be read against what an error of that size does.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _data import brain, storm

import bigcomp
from bigcomp import datasets, metrics
from bigcomp.evaluate import DEFAULT_MODES, _bigcomp, _roundtrip, run_evaluation
from bigcomp.metrics._blocks import as_dask
from bigcomp.metrics.report import markdown_table, plot_error_maps, plot_tradeoff
from bigcomp.noise import CameraModel

PEERS = ("zstd", "blosc", "jpegxl", "sz3", "x265")


def cases(root: str, quick: bool):
    """(name, data, kwargs for run_evaluation, source note)."""
    n = 8 if quick else 16
    ls = datasets.light_sheet((n, 256, 256), seed=0)
    yield "synthetic light-sheet", ls, {}, "bigcomp.datasets.light_sheet, known camera"
    # 4x the frames of the light-sheet stack: ~3800 / ~1900 true spots, enough for a
    # localisation-change CI of about ±1 % / ±2 %
    sm = datasets.smlm((4 * n, 256, 256), seed=1)
    yield "synthetic SMLM", sm, {}, "bigcomp.datasets.smlm, known camera and emitters"
    dif = datasets.diffraction_series((2 * n, 512, 512), seed=2)
    yield ("synthetic diffraction", dif, {"psf_sigma": 1.0},
           "bigcomp.datasets.diffraction_series, photon counting, known Bragg spots")
    ds = storm(root)
    if ds is not None:
        yield (ds.name, ds.data, {"camera": ds.camera, "spots": True},
               f"camera: {ds.camera_note}")
    if not quick:
        ds = brain(root)
        if ds is not None:
            yield ds.name, ds.data, {"camera": ds.camera}, f"camera: {ds.camera_note}"


def _row(table, method: str, col: str) -> float:
    try:
        v = table.loc[method, col]
        return float(v)
    except (KeyError, TypeError, ValueError):
        return float("nan")


def noise_reference(x: np.ndarray, camera: CameraModel, q: float = 1.0,
                    seed: int = 0) -> np.ndarray:
    """``x`` plus an independent error uniform on ±q/2 σ in the VST domain, rounded.

    The error an ideal quantiser of step q adds (variance q²/12 σ²), but drawn independently
    of the data: metrics of this array say what an error of that size does.
    """
    rng = np.random.default_rng(seed)
    y = camera.forward(np.asarray(x, np.float64)) + rng.uniform(-q / 2, q / 2, np.shape(x))
    back = np.rint(camera.inverse(y))
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        info = np.iinfo(np.asarray(x).dtype)
        back = np.clip(back, info.min, info.max)
    return back.astype(np.asarray(x).dtype)


def references(data, kw: dict, q: float = 1.0) -> dict[str, float]:
    """Dice and localisation of the noise reference; per-image-threshold Dice of wnl q."""
    syn = data if hasattr(data, "truth") else None
    x = np.asarray(syn.data if syn is not None else data)
    cam = kw.get("camera") or CameraModel(syn.gain, syn.offset, syn.read_noise)
    ref = noise_reference(x, cam, q)
    dec, _ = _roundtrip(as_dask(x), _bigcomp(f"wnl:q={q:g}", cam))
    out = {"dice_ref": metrics.segmentation_agreement(x, ref)["dice"],
           "dice_per_image": metrics.segmentation_agreement(x, dec, per_image=True)["dice"]}
    if syn is None and not kw.get("spots"):
        return out
    psf = kw.get("psf_sigma", 1.3)
    det_x = metrics.detect_spots(x, camera=cam, psf_sigma=psf)
    det_ref = metrics.detect_spots(ref, camera=cam, psf_sigma=psf)
    out["shift_ref"] = metrics.localisation_error(det_x, det_ref)["rmse"]
    if syn is not None and syn.spots is not None:
        pc = metrics.paired_localisation_change(syn.spots, det_x, det_ref)
        out.update(loc_ref=pc["change_pct"], loc_ref_low=pc["ci_low"],
                   loc_ref_high=pc["ci_high"])
    return out


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{v:+.1f} % [{lo:+.1f}, {hi:+.1f}]"


def _loc_cell(t, ref: dict) -> str:
    m = "bigcomp wnl q=1"
    loc = _row(t, m, "loc_change_pct")
    if not np.isfinite(loc):
        shift = _row(t, m, "loc_shift_px")
        if not np.isfinite(shift):
            return "—"
        return (f"no ground truth; RMS shift vs original {shift:.3f} px (noise reference "
                f"{ref.get('shift_ref', float('nan')):.3f} px)")
    lo, hi = _row(t, m, "loc_change_ci_low"), _row(t, m, "loc_change_ci_high")
    mark = "✓" if hi <= 5 else "✓ (CI crosses 5 %)" if loc <= 5 else "✗"
    return f"{_ci(loc, lo, hi)} {mark}"


def targets(results, refs: dict[str, dict]) -> list[str]:
    head = ("| dataset | Dice at q=1σ (≥ 0.99) | Dice, noise reference | Dice, per-image Otsu | "
            "loc. error change at q=1σ (≤ 5 %), paired [95 % CI] | median error change "
            "[95 % CI] | noise reference change | unpaired change (old statistic) |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    m = "bigcomp wnl q=1"
    for name, ev in results:
        t, ref = ev.table, refs.get(name, {})
        d = _row(t, m, "dice")
        med = _row(t, m, "loc_median_change_pct")
        lines.append(
            f"| {name} | {d:.4f} {'✓' if d >= 0.99 else '✗'} | "
            f"{ref.get('dice_ref', float('nan')):.4f} | "
            f"{ref.get('dice_per_image', float('nan')):.4f} | {_loc_cell(t, ref)} | "
            + (_ci(med, _row(t, m, "loc_median_ci_low"), _row(t, m, "loc_median_ci_high"))
               if np.isfinite(med) else "—") + " | "
            + (_ci(ref["loc_ref"], ref["loc_ref_low"], ref["loc_ref_high"])
               if "loc_ref" in ref else "—") + " | "
            + (f"{_row(t, m, 'loc_change_unpaired_pct'):+.1f} %"
               if np.isfinite(med) else "—") + " |")
    return lines


def ratios(results) -> list[str]:
    head = ("| dataset | ratio q=1σ | ratio SZ3 q=1 | ratio best lossless peer | "
            "ratio bigcomp lossless |")
    lines = [head, "|---|---|---|---|---|"]
    for name, ev in results:
        t = ev.table
        peers = t[(t["kind"] == "peer") & (t["q"] == 0)]["ratio"].dropna()
        lines.append(f"| {name} | {_row(t, 'bigcomp wnl q=1', 'ratio'):.2f} | "
                     f"{_row(t, 'SZ3 q=1', 'ratio'):.2f} | "
                     f"{peers.max() if len(peers) else float('nan'):.2f} | "
                     f"{_row(t, 'bigcomp lossless', 'ratio'):.2f} |")
    return lines


def figures(results, img: str) -> list[str]:
    from matplotlib.figure import Figure

    paths = []
    for col, fname, label in (("psnr_db", "fidelity_psnr.png", "PSNR (dB)"),
                              ("dice", "fidelity_dice.png", "Dice (original vs decoded)")):
        fig = Figure(figsize=(3.2 * len(results), 3.0), dpi=70, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(results)))
        for ax, (name, ev) in zip(axes, results, strict=True):
            plot_tradeoff(ev.table, col, "", ax=ax, ylabel=label, title=name)
        fig.savefig(os.path.join(img, fname))
        paths.append(fname)
    loc = [(n, ev) for n, ev in results if "loc_change_pct" in ev.table]
    if loc:
        fig = Figure(figsize=(3.4 * len(loc), 3.0), dpi=70, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(loc)))
        for ax, (name, ev) in zip(axes, loc, strict=True):
            plot_tradeoff(ev.table, "loc_change_pct", "", ax=ax,
                          ylabel="localisation error change (%)", title=name)
        fig.savefig(os.path.join(img, "fidelity_localisation.png"))
        paths.append("fidelity_localisation.png")
    sm = dict(results).get("synthetic SMLM")
    if sm is not None:
        keep = {k: v for k, v in sm.details.items() if k.startswith(("bigcomp wnl", "SZ3 q=4"))}
        for v in keep.values():  # a 96 x 96 crop keeps the PNG small
            v["error_slice"] = v["error_slice"][:96, :96]
        sub = type(sm)(sm.table, keep, sm.info)
        if plot_error_maps(sub, os.path.join(img, "fidelity_error_maps.png")):
            paths.append("fidelity_error_maps.png")
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "evaluation.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results, sources, refs = [], {}, {}
    for name, data, kw, note in cases(os.path.normpath(args.data), args.quick):
        t = time.perf_counter()
        ev = run_evaluation(data, modes=DEFAULT_MODES, peers=PEERS, **kw)
        results.append((name, ev))
        sources[name] = note
        refs[name] = references(data, kw)
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        print(markdown_table(ev.table), file=sys.stderr)
    img = os.path.join(os.path.dirname(os.path.abspath(args.out)), "img")
    os.makedirs(img, exist_ok=True)
    pngs = figures(results, img)
    text = render(results, sources, refs, pngs, time.perf_counter() - t0, args.quick)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


NOTES = """\
Reading the targets: at q = 1σ every pixel stays within 0.5σ and the RMS error against the
noise-free truth grows by 4–5 % (column *RMS vs truth / noise*), as quantisation noise of
variance q²/12 = σ²/12 predicts (√(1 + 1/12) = 1.041). Each target sits next to its *noise
reference*: the same metric for the original plus an independent error uniform on ±q/2 σ in the
VST domain, i.e. what an ideal quantiser's error of that size does to the analysis.

*Localisation* (changed in this version). The earlier statistic, RMS error against the truth
over all spots matched in the decoded data divided by the same over all spots matched in the
original, mixes two things: a true spot found in only one of the two (a match near the 1 px
radius weighs as much as 50 good fits) and the precision change itself. It moved by
several % between seeds (+5.2 % SMLM, +13.1 % diffraction on 16 and 8 frames; +1.8 % and
+2.5 % in the `--quick` run). On the same 16 SMLM frames the paired statistic below gives
+2.7 % [+1.5, +4.2]: two true spots found only in the original and three only in the decoded
data, all matched at ≈ 0.95 px, made the difference. Now the change is computed on the true spots found in both
(*pairs*), per spot, with a paired bootstrap 95 % interval, and the SMLM and diffraction stacks
have 4× the frames (3879 and 1936 pairs): SMLM +2.0 % [+1.4, +2.7], diffraction
+3.0 % [+1.1, +5.1]; the noise reference gives +1.9 % [+1.2, +2.6] and +3.7 % [+1.9, +5.9], so
bigcomp changes localisation as much as an independent error of the same size would. That is
less than the 4 % of pure noise-limited precision because the error against the truth also has
a part that noise does not drive (PSF-model mismatch, neighbouring emitters, structured
background). Two more seeds of the same sizes gave SMLM +1.9 % [+1.0, +2.7] and
+2.0 % [+0.6, +3.5], diffraction +0.6 % [−1.1, +2.2] and +3.2 % [+1.7, +4.8]. The median error
change is reported too; it is robust to the tail but noisier (wider interval).

*The old diffraction +13 %* (8 frames, seed 2) was not a detection effect: 421 of the 422 true
spots found in the original were found in the decoded data too. The spot Jaccard of 0.88 comes
from the 330 of 752 detections that match no true spot (broad fits at the 3 px width limit, on
bright diffuse background: 16–27 counts in the noise-free frame, whose median is 2), of which
292 recur. Paired over the 421 spots the change was +12.5 % [+2.3, +24.6]: three dim spots
(96–179 photons, errors 0.30 → 0.59, 0.36 → 0.70 and 0.76 → 0.95 px) carry 80 % of the
increase of the summed squared error, while spots above 1000 photons changed by +5 % and the
median by +4.6 %. A heavy tail in a small sample, not a systematic loss; with 32 frames the
interval is ±2 %.

*Segmentation* (changed in this version). The threshold is now Otsu's on the original, applied
to the original and the decoded data alike (one pipeline, fixed parameters); before, each array
got its own Otsu threshold from a 1024-bin histogram over its own min–max. On the brain stack
that histogram was the problem, not the data: its range (0–16075 ADU, set by a few bright
pixels) makes a bin 15.7 ADU ≈ 2.6σ of the smoothed noise, and the decoded stack's slightly
different maximum shifted the bin grid, moving its threshold from 337.5 to 330.2 ADU: Dice
0.9864. With the shared threshold it is 0.9968 (noise reference 0.9967); per-image thresholds,
still available (`per_image_threshold=True`), now use one bin grid for both arrays and give
0.9968 as well. The STORM movie stays at 0.9694 with either choice, and its noise reference is
0.9726: Otsu lies 2.4 MADs of the smoothed movie above its median (that MAD, 2.0 ADU, is 2.7×
what camera noise alone gives after smoothing), the foreground is 9 % of the pixels in small
smoothed single-molecule blobs whose edges lie in shallow gradients, and a 0.29σ error moves
≈ 6 % of the mask pixels across the threshold (1 − Dice = |A △ B| / (|A| + |B|)). Li, triangle
and background + 3σ or 5σ thresholds, tried on this movie (shared) and not adopted, gave
0.958–0.971. Dice ≥ 0.99 is therefore out of reach on this movie for any codec whose error is
as large as 1σ quantisation (SZ3 at the same bound: 0.9724); on the other four datasets it
holds, at the noise reference.

Lossless peers keep every metric exact at 2–5×; SZ3 at the same bound gives 5–10 % less ratio
(about the same on the diffraction frames) and a real error above q/2 after rounding. x265
(crf 28, 12-bit, planes as frames) is the other end: 270–2 760× with errors up to 17–180σ,
Dice 0.67–0.98 and spot localisation errors 75–140 % larger than the original's — what a
general video codec does to measurements at the ratios it is usually run at.
"""

USAGE = """\
Scientists adopt lossy compression when they can see that their analysis does not change.
`bigcomp.evaluate` produces that evidence for your own data in one call: it compresses the data
with each bigcomp mode and each peer (chunk by chunk, as a zarr store would), decodes it and
measures what changed — ratio, PSNR, SSIM, the error in units of the camera's noise σ (the
unit of bigcomp's bound q/2), intensity correlation, Fourier ring correlation, segmentation
Dice/IoU, spot localisation and, for synthetic data with a known noise-free image, how far each
error is from the noise itself.

```python
import bigcomp
from bigcomp.evaluate import evaluate          # also bigcomp.evaluate once registered

camera = bigcomp.estimate_camera(stack)        # or CameraModel(gain=, offset=, read_noise=)
table = evaluate(stack, camera=camera,
                 modes=("lossless", "wnl:q=1", "wnl:q=2", "wnl:q=4"),
                 peers=("zstd", "blosc", "jpegxl", "sz3"),
                 spots=True,                   # SMLM / diffraction: detect + localise spots
                 region="0:16,:,:",            # optional: a sub-array
                 out="report/")                # report.md, report.html, PNGs
```

```bash
bigcomp evaluate movie.tif --modes lossless,wnl:q=1,wnl:q=2 --peers zstd,sz3 \\
    --gain 2.1 --offset 100 --read-noise 1.6 --spots --out report/
```

`data` may be numpy, dask or a `bigcomp.datasets.Synthetic` (which brings its camera, noise-free
`truth` and ground-truth `spots`). Method specs: `lossless`, `wnl:q=1` (`:order=pq`,
`:coder=fast`), `temporal:q=1` (`:threshold=4`, `:noise=camera`; the first axis, or `t`, is
time) and `inr:ratio=500` (`:psnr=40`, `:steps=…`, `:device=cuda`; the `inr` extra), which
compress the whole (region of the) array into a temporary store and count every byte it
stores; peers `zstd` (`:level=19`), `blosc`, `jpegxl` (lossless; `jpegxl:distance=1` for
lossy), `sz3` (at each q of the wnl modes, absolute bound q/2 on the float32 VST, then
inverse, rounded), `x265` (`:crf=28`, `:bits=12`) and `x264` (`:crf=23`, `:bits=8`): the
planes of the whole (region of the) array as one grey video through ffmpeg, scaled from the
data's range (`bigcomp.video`; reported as not installed without ffmpeg). The individual
metrics are in `bigcomp.metrics` and work chunk-wise on dask arrays.

What the columns mean:

- **ratio**: raw bytes / compressed bytes, summed over chunks (whole 2-D planes, ≤ 16 along
  axis −3).
- **PSNR**: `10·log10(R²/MSE)` with R = max − min of the original (not the dtype's range).
- **SSIM**: scikit-image's SSIM per 2-D plane (7×7 uniform window), averaged.
- **max/mean err σ**: `|VST(decoded) − VST(original)|`, in noise σ.
- **FRC min**: the lowest Fourier ring correlation between original and decoded over all
  frequencies (high frequencies are noise: q = 1σ leaves ≈ 0.96, i.e. 1/√(1 + 1/12)).
- **Dice / IoU**: Gaussian smoothing (σ = 2 px in-plane), then Otsu's threshold computed on
  the original and applied to both the original and the decoded data (one pipeline, fixed
  parameters); the two masks compared. `threshold="li"`/`"triangle"`/a number and
  `per_image_threshold=True` (each array its own threshold; CLI `--threshold`,
  `--per-image-threshold`) are options.
- **spots**: LoG detection on the variance-stabilised plane (5× the filtered noise), Gaussian
  least-squares fit in a 7×7 window, Hungarian matching within 1 px per plane. *loc. shift*:
  RMS distance between decoded and original detections; *spot Jaccard*: detections kept.
  With ground truth: *loc. RMSE* of the decoded detections against the true positions;
  *pairs*: true spots found in both the original and the decoded data; *loc. err Δ%*: change
  of the RMS error of those same spots, decoded vs original, with a paired bootstrap 95 %
  interval (2000 resamples of the spots); *median Δ%*: the same for the median error;
  *unpaired Δ%*: the earlier statistic, RMS error over all matched spots of each.
- **RMS vs truth / noise**: RMS(decoded − truth) / RMS(original − truth) (1 = the compression
  error is invisible next to the noise; 1.04 = 4 % more).
"""


def render(results, sources, refs, pngs, elapsed, quick) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = ["# Fidelity evaluation", "", USAGE,
             "## Results", "",
             (f"Generated by `python benchmarks/fidelity.py{' --quick' if quick else ''}` in "
              f"{elapsed:.0f} s on {cores} cores ({platform.python_version()}, bigcomp "
              f"{bigcomp.__version__}, {datetime.date.today().isoformat()}). Real data: "
              "`../shared/data` (STORM movie: ZhuangLab/storm-analysis sCMOS sample data; "
              "brain 3D: brainglobe/cellfinder test data, BSD-3)."), "",
             "### Targets", "", *targets(results, refs), "", *ratios(results), "", NOTES,
             *[f"![{p}](img/{p})" for p in pngs], ""]
    for name, ev in results:
        i = ev.info
        cam: CameraModel = i["camera"]
        lines += [f"### {name}", "",
                  (f"{tuple(i['shape'])} {i['dtype']}, {i['mb']:.1f} MB; camera gain "
                   f"{cam.gain:.3g} ADU/e⁻, offset {cam.offset:.4g} ADU, read noise "
                   f"{cam.read_noise:.3g} e⁻ ({sources[name]}).")]
        if i.get("spots_original") is not None:
            lines.append(f"Spots detected in the original: {i['spots_original']}" + (
                f"; localisation RMSE against the true positions {i['loc_rmse_original']:.3f}"
                " px." if i.get("loc_rmse_original") is not None else "."))
        lines += ["", markdown_table(ev.table), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
