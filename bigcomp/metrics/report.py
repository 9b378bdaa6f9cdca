"""Fidelity report: markdown / HTML tables and matplotlib (Agg) plots of an evaluation.

Used by :func:`bigcomp.evaluate.evaluate` (``out=``) and ``benchmarks/fidelity.py``.
"""

from __future__ import annotations

import html
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..evaluate import Evaluation

__all__ = ["COLUMNS", "INTERVALS", "markdown_table", "plot_error_histograms", "plot_error_maps",
           "plot_frc", "plot_tradeoff", "write_report"]

#: Column -> (header, format) for the tables, in display order.
COLUMNS = {
    "q": ("q (σ)", "{:g}"), "ratio": ("ratio", "{:.2f}"), "psnr_db": ("PSNR dB", "{:.1f}"),
    "ssim": ("SSIM", "{:.4f}"), "max_err_sigma": ("max err σ", "{:.3f}"),
    "mean_err_sigma": ("mean err σ", "{:.3f}"), "correlation": ("corr.", "{:.5f}"),
    "frc_min": ("FRC min", "{:.3f}"), "dice": ("Dice", "{:.4f}"), "iou": ("IoU", "{:.4f}"),
    "spots": ("spots", "{:.0f}"), "loc_shift_px": ("loc. shift px", "{:.3f}"),
    "spot_jaccard": ("spot Jaccard", "{:.3f}"), "loc_rmse_px": ("loc. RMSE px", "{:.3f}"),
    "loc_pairs": ("pairs", "{:.0f}"),
    "loc_change_pct": ("loc. err Δ% [95 % CI]", "{:+.1f}"),
    "loc_median_change_pct": ("median Δ% [95 % CI]", "{:+.1f}"),
    "loc_change_unpaired_pct": ("unpaired Δ%", "{:+.1f}"),
    "noise_excess": ("RMS vs truth / noise", "{:.3f}"),
    "truth_rms_sigma": ("RMS vs truth σ", "{:.3f}"), "note": ("note", "{}"),
}


#: Column -> (low, high) columns of its confidence interval, shown as ``value [low, high]``.
INTERVALS = {
    "loc_change_pct": ("loc_change_ci_low", "loc_change_ci_high"),
    "loc_median_change_pct": ("loc_median_ci_low", "loc_median_ci_high"),
}


def _with_interval(row: Any, column: str, text: str) -> str:
    lo, hi = INTERVALS.get(column, ("", ""))
    if lo not in row or hi not in row:
        return text
    fmt = COLUMNS[column][1]
    a, b = row[lo], row[hi]
    if not (isinstance(a, float) and isinstance(b, float) and math.isfinite(a)
            and math.isfinite(b)):
        return text
    return f"{text} [{fmt.format(a)}, {fmt.format(b)}]"


def _cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in COLUMNS if c in table.columns and table[c].notna().any()]
    head = ["method"] + [COLUMNS[c][0] for c in cols]
    body = []
    for name, row in table.iterrows():
        cells = [str(name)]
        for c in cols:
            v = row[c]
            if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
                cells.append("—" if c != "note" else "")
            elif isinstance(v, float) and math.isinf(v):
                cells.append("∞")
            else:
                cells.append(_with_interval(row, c, COLUMNS[c][1].format(v)))
        body.append(cells)
    return head, body


def markdown_table(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (no ``tabulate`` needed)."""
    head, body = _cells(table)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def _html_table(table: pd.DataFrame) -> str:
    head, body = _cells(table)
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _fig(w: float = 5.0, h: float = 3.6):
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, no global state

    return Figure(figsize=(w, h), dpi=90, layout="constrained")


def _save(fig: Any, path: str) -> str:
    fig.savefig(path)
    return path


def plot_tradeoff(table: pd.DataFrame, column: str, path: str, *, ylabel: str | None = None,
                  ax: Any = None, title: str | None = None) -> str | None:
    """Scatter of ratio (x, log) against ``column``; bigcomp modes joined by a line."""
    t = table[table["ratio"].notna()] if "ratio" in table else table.iloc[:0]
    if column not in t or t[column].replace([np.inf, -np.inf], np.nan).notna().sum() == 0:
        return None
    fig = None
    if ax is None:
        fig = _fig()
        ax = fig.subplots()
    y = t[column].replace(np.inf, np.nan)
    big = t["kind"] == "bigcomp"
    ax.plot(t["ratio"][big], y[big], "o-", color="C0", label="bigcomp")
    ax.plot(t["ratio"][~big], y[~big], "s", color="C3", label="peers")
    lo, hi = INTERVALS.get(column, ("", ""))
    if lo in t and hi in t:  # confidence intervals as error bars
        err = np.vstack([(y - t[lo]).clip(lower=0), (t[hi] - y).clip(lower=0)])
        ax.errorbar(t["ratio"], y, yerr=err, fmt="none", ecolor="0.5", elinewidth=0.8,
                    capsize=2)
    for name, xr, yv in zip(t.index, t["ratio"], y, strict=True):
        if np.isfinite(yv):
            ax.annotate(str(name).replace("bigcomp ", ""), (xr, yv), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("compression ratio")
    ax.set_ylabel(ylabel or COLUMNS.get(column, (column,))[0])
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path) if fig is not None else None


def plot_error_maps(ev: Evaluation, path: str) -> str | None:
    """One panel per lossy method: VST(decoded) − VST(original) on the middle plane (σ)."""
    lossy = [n for n, d in ev.details.items() if d["max_sigma"] > 0]
    if not lossy:
        return None
    n = len(lossy)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _fig(3.0 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    lim = max(float(np.abs(ev.details[k]["error_slice"]).max()) for k in lossy)
    for ax, name in zip(axes, lossy, strict=False):  # axes may outnumber lossy
        im = ax.imshow(ev.details[name]["error_slice"], cmap="RdBu_r", vmin=-lim, vmax=lim,
                       interpolation="nearest")
        ax.set_title(name.replace("bigcomp ", ""), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes[:n]), shrink=0.8, label="error (σ)")
    return _save(fig, path)


def plot_error_histograms(ev: Evaluation, path: str) -> str | None:
    """Signed σ-error histograms (log counts) of the lossy methods."""
    fig = _fig()
    ax = fig.subplots()
    drawn = 0
    for name, d in ev.details.items():
        h, e = d["hist"], d["edges"]
        if h.sum() == 0 or not d["max_sigma"] > 0:
            continue
        ax.stairs(np.where(h > 0, h / h.sum(), np.nan), e, label=name.replace("bigcomp ", ""))
        drawn += 1
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.set_xlabel("VST(decoded) − VST(original)  (σ; outside ±3 in the end bins)")
    ax.set_ylabel("fraction of pixels")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_frc(ev: Evaluation, path: str) -> str | None:
    """Fourier ring correlation of each lossy method with the original."""
    fig = _fig()
    ax = fig.subplots()
    drawn = 0
    for name, d in ev.details.items():
        f, r = d["frc"]
        if not d["max_sigma"] > 0:
            continue
        ax.plot(f, r, label=name.replace("bigcomp ", ""))
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("FRC(original, decoded)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_report(ev: Evaluation, out: str | os.PathLike, *, title: str) -> list[str]:
    """Write ``report.md``, ``report.html`` and the PNG plots into folder ``out``."""
    os.makedirs(out, exist_ok=True)
    out = os.fspath(out)
    plots = [
        plot_tradeoff(ev.table, "psnr_db", os.path.join(out, "ratio_psnr.png")),
        plot_tradeoff(ev.table, "dice", os.path.join(out, "ratio_dice.png")),
        plot_tradeoff(ev.table, "loc_change_pct" if "loc_change_pct" in ev.table
                      else "loc_shift_px", os.path.join(out, "ratio_localisation.png")),
        plot_error_maps(ev, os.path.join(out, "error_maps.png")),
        plot_error_histograms(ev, os.path.join(out, "error_histograms.png")),
        plot_frc(ev, os.path.join(out, "frc.png")),
    ]
    plots = [p for p in plots if p]
    i = ev.info
    cam = i["camera"]
    lines = [f"# {title}", "",
             f"Data {tuple(i['shape'])} {i['dtype']} ({i['mb']:.1f} MB), chunks "
             f"{tuple(i['chunks'])}" + (f", region `{i['region']}`" if i["region"] else "")
             + f". Camera: gain {cam.gain:.4g} ADU/e⁻, offset {cam.offset:.4g} ADU, read noise "
             f"{cam.read_noise:.4g} e⁻.", ""]
    if i.get("spots_original") is not None:
        lines.append(f"Spots detected in the original: {i['spots_original']}"
                     + (f"; localisation RMSE vs ground truth {i['loc_rmse_original']:.3f} px."
                        if i.get("loc_rmse_original") is not None else "."))
    if i.get("noise_rms_sigma") is not None:
        lines.append(f"RMS of the noise itself, VST(original) − VST(truth): "
                     f"{i['noise_rms_sigma']:.3f} σ.")
    lines += ["", markdown_table(ev.table), ""]
    lines += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    body = "\n".join(f"<p>{html.escape(ln)}</p>" for ln in lines[2:4] if ln)
    imgs = "\n".join(f'<img src="{os.path.basename(p)}" alt="{os.path.basename(p)}">'
                     for p in plots)
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>"
                f"{html.escape(title)}</title><style>table{{border-collapse:collapse}}"
                f"td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style>"
                f"</head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n{_html_table(ev.table)}"
                f"\n{imgs}\n</body></html>\n")
    return [os.path.join(out, "report.md"), os.path.join(out, "report.html"), *plots]
