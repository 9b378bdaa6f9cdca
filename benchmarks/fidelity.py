"""Fidelity of bigcomp and its peers on synthetic and real data: writes docs/evaluation.md.

Usage::

    python benchmarks/fidelity.py [--quick] [--data ../shared/data]

Runs :func:`bigcomp.evaluate.run_evaluation` on the synthetic light-sheet, SMLM-like and
diffraction-like stacks (``bigcomp.datasets``, ground truth known) and on the real STORM movie and
brain-3D channel 0 in ``../shared/data`` (read in place; camera as in ``benchmarks/_data.py``),
then writes the tables, the targets (Dice ≥ 0.99 and localisation error change ≤ 5 % at q = 1σ)
and a few small PNGs under ``docs/img/``.
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
from bigcomp import datasets
from bigcomp.evaluate import DEFAULT_MODES, run_evaluation
from bigcomp.metrics.report import markdown_table, plot_error_maps, plot_tradeoff
from bigcomp.noise import CameraModel

PEERS = ("zstd", "blosc", "jpegxl", "sz3", "x265")


def cases(root: str, quick: bool):
    """(name, data, kwargs for run_evaluation, source note)."""
    n = 8 if quick else 16
    ls = datasets.light_sheet((n, 256, 256), seed=0)
    yield "synthetic light-sheet", ls, {}, "bigcomp.datasets.light_sheet, known camera"
    sm = datasets.smlm((n, 256, 256), seed=1)
    yield "synthetic SMLM", sm, {}, "bigcomp.datasets.smlm, known camera and emitters"
    dif = datasets.diffraction_series((n // 2, 512, 512), seed=2)
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


def targets(results) -> list[str]:
    lines = ["| dataset | Dice at q=1σ (≥ 0.99) | loc. error change at q=1σ (≤ 5 %) | "
             "ratio q=1σ | ratio SZ3 q=1 | ratio best lossless peer | ratio bigcomp lossless |",
             "|---|---|---|---|---|---|---|"]
    for name, ev in results:
        t = ev.table
        d = _row(t, "bigcomp wnl q=1", "dice")
        loc = _row(t, "bigcomp wnl q=1", "loc_change_pct")
        shift = _row(t, "bigcomp wnl q=1", "loc_shift_px")
        peers = t[(t["kind"] == "peer") & (t["q"] == 0)]["ratio"].dropna()
        locs = (f"{loc:+.1f} % {'✓' if loc <= 5 else '✗'}" if np.isfinite(loc) else
                f"no ground truth; RMS shift vs original {shift:.3f} px" if np.isfinite(shift)
                else "—")
        lines.append(f"| {name} | {d:.4f} {'✓' if d >= 0.99 else '✗'} | {locs} | "
                     f"{_row(t, 'bigcomp wnl q=1', 'ratio'):.2f} | "
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
        for ax, (name, ev) in zip(axes, results):
            plot_tradeoff(ev.table, col, "", ax=ax, ylabel=label, title=name)
        fig.savefig(os.path.join(img, fname))
        paths.append(fname)
    loc = [(n, ev) for n, ev in results if "loc_change_pct" in ev.table]
    if loc:
        fig = Figure(figsize=(3.4 * len(loc), 3.0), dpi=70, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(loc)))
        for ax, (name, ev) in zip(axes, loc):
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
    results, sources = [], {}
    for name, data, kw, note in cases(os.path.normpath(args.data), args.quick):
        t = time.perf_counter()
        ev = run_evaluation(data, modes=DEFAULT_MODES, peers=PEERS, **kw)
        results.append((name, ev))
        sources[name] = note
        print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        print(markdown_table(ev.table), file=sys.stderr)
    img = os.path.join(os.path.dirname(os.path.abspath(args.out)), "img")
    os.makedirs(img, exist_ok=True)
    pngs = figures(results, img)
    text = render(results, sources, pngs, time.perf_counter() - t0, args.quick)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


NOTES = """\
Reading the targets: at q = 1σ every pixel stays within 0.5σ and the RMS error against the
noise-free truth grows by only 4–5 % (column *RMS vs truth / noise*); Dice ≥ 0.99 holds on the
synthetic sets, where Otsu separates real objects. On the STORM movie (sparse spots) and the brain
stack Otsu's threshold falls inside the noisy background, so its mask edge is noise and any change
of the noise moves it: Dice 0.97–0.99 there measures the threshold's fragility more than lost
structure (SZ3 at the same bound scores lower). The localisation change is a ratio of two RMS
errors over ~1000 matched spots and moves by several % between seeds (+1.8 % SMLM and +2.5 %
diffraction in the `--quick` run); on the photon-counting diffraction frames (background ≈ 1
count, read noise 0) quantising the faintest spots changes which ones are detected (spot Jaccard
0.88), which is where the +13 % comes from. Lossless peers keep every metric exact at 2–5×;
SZ3 at the same bound gives 5–10 % less ratio and a real error above q/2 after rounding.
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
`:coder=fast`), peers `zstd` (`:level=19`), `blosc`, `jpegxl` (lossless; `jpegxl:distance=1`
for lossy), `sz3` (at each q of the wnl modes, absolute bound q/2 on the float32 VST, then
inverse, rounded); `temporal`, `inr` and `x265` are accepted and reported as not available in
this version. The individual metrics are in `bigcomp.metrics` and work chunk-wise on dask arrays.

What the columns mean:

- **ratio**: raw bytes / compressed bytes, summed over chunks (whole 2-D planes, ≤ 16 along
  axis −3).
- **PSNR**: `10·log10(R²/MSE)` with R = max − min of the original (not the dtype's range).
- **SSIM**: scikit-image's SSIM per 2-D plane (7×7 uniform window), averaged.
- **max/mean err σ**: `|VST(decoded) − VST(original)|`, in noise σ.
- **FRC min**: the lowest Fourier ring correlation between original and decoded over all
  frequencies (high frequencies are noise: q = 1σ leaves ≈ 0.96, i.e. 1/√(1 + 1/12)).
- **Dice / IoU**: Gaussian smoothing (σ = 2 px in-plane) then Otsu's threshold, run on the
  original and the decoded data separately; the two masks compared.
- **spots**: LoG detection on the variance-stabilised plane (5× the filtered noise), Gaussian
  least-squares fit in a 7×7 window, Hungarian matching within 1 px per plane. *loc. shift*:
  RMS distance between decoded and original detections; *spot Jaccard*: detections kept;
  with ground truth, *loc. RMSE* against the true positions and its change (Δ%) relative to
  the original data.
- **RMS vs truth / noise**: RMS(decoded − truth) / RMS(original − truth) (1 = the compression
  error is invisible next to the noise; 1.04 = 4 % more).
"""


def render(results, sources, pngs, elapsed, quick) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = ["# Fidelity evaluation", "", USAGE,
             "## Results", "",
             f"Generated by `python benchmarks/fidelity.py{' --quick' if quick else ''}` in "
             f"{elapsed:.0f} s on {cores} cores ({platform.python_version()}, bigcomp "
             f"{bigcomp.__version__}, {datetime.date.today().isoformat()}). Real data: "
             "`../shared/data` (STORM movie: ZhuangLab/storm-analysis sCMOS sample data; "
             "brain 3D: brainglobe/cellfinder test data, BSD-3).", "",
             "### Targets", "", *targets(results), "", NOTES,
             *[f"![{p}](img/{p})" for p in pngs], ""]
    for name, ev in results:
        i = ev.info
        cam: CameraModel = i["camera"]
        lines += [f"### {name}", "",
                  f"{tuple(i['shape'])} {i['dtype']}, {i['mb']:.1f} MB; camera gain "
                  f"{cam.gain:.3g} ADU/e⁻, offset {cam.offset:.4g} ADU, read noise "
                  f"{cam.read_noise:.3g} e⁻ ({sources[name]})."]
        if i.get("spots_original") is not None:
            lines.append(f"Spots detected in the original: {i['spots_original']}" + (
                f"; localisation RMSE against the true positions {i['loc_rmse_original']:.3f}"
                " px." if i.get("loc_rmse_original") is not None else "."))
        lines += ["", markdown_table(ev.table), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
