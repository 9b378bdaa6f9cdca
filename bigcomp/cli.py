"""The ``bigcomp`` command line. Heavy imports live inside the commands so ``--help`` is instant."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="bigcomp",
    help="Noise-calibrated compression of microscopy and diffraction data.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Noise-calibrated compression of microscopy and diffraction data."""


@app.command()
def demo(
    shape: Annotated[
        str, typer.Option(help="Shape of the synthetic light-sheet stack, as Z,Y,X.")
    ] = "32,512,512",
    q: Annotated[float, typer.Option(help="Quantisation step in noise σ for the lossy run.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic data.")] = 0,
) -> None:
    """Compress a synthetic light-sheet stack (known camera) lossless and within noise level.

    Prints, for each mode and coder: compression ratio, encode/decode speed and the largest
    error in units of the noise σ, measured on the integers actually decoded.
    """
    import time

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from .chunk import decode_chunk, encode_chunk
    from .datasets import light_sheet
    from .noise import CameraModel

    console = Console()
    dims = tuple(int(s) for s in shape.split(","))
    with console.status("generating synthetic light-sheet stack"):
        syn = light_sheet(dims, seed=seed)
    camera = CameraModel(syn.gain, syn.offset, syn.read_noise)
    data = syn.data
    console.print(
        f"light-sheet stack {data.shape} {data.dtype} ({data.nbytes / 1e6:.1f} MB), camera: "
        f"gain {camera.gain} ADU/e-, offset {camera.offset} ADU, read noise {camera.read_noise} e-"
    )
    table = Table(title="bigcomp demo")
    for col in ("mode", "coder", "ratio", "encode MB/s", "decode MB/s", "max error (σ)"):
        table.add_column(col, justify="right")
    y_true = camera.forward(data)
    for label, qq in (("lossless", 0.0), (f"wnl q={q:g}σ", q)):
        for coder in ("max", "fast"):
            encode_chunk(data[:2], q=qq, camera=camera, coder=coder)  # compile kernels
            t0 = time.perf_counter()
            blob = encode_chunk(data, q=qq, camera=camera, coder=coder)
            t1 = time.perf_counter()
            back = decode_chunk(blob)
            t2 = time.perf_counter()
            err = float(np.abs(camera.forward(back) - y_true).max())
            table.add_row(
                label,
                coder,
                f"{data.nbytes / len(blob):.2f}x",
                f"{data.nbytes / (t1 - t0) / 1e6:.0f}",
                f"{data.nbytes / (t2 - t1) / 1e6:.0f}",
                f"{err:.3f}",
            )
    console.print(table)


@app.command()
def version() -> None:
    """Print the bigcomp version."""
    from . import __version__

    typer.echo(__version__)
