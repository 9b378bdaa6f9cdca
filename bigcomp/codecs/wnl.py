"""Within-noise-level (WNL) codec: every pixel kept within q/2 of the camera's noise σ."""

from __future__ import annotations

import base64

from ..chunk import error_bound
from ..errors import CorruptChunkError, ParameterError
from ..noise import CameraModel
from ..pixelmodel import NoiseMaps
from ._base import ChunkCodec

__all__ = ["WNL"]


class WNL(ChunkCodec):
    """Lossy compression with an error bound in units of the photon-noise σ.

    Pixel values are variance-stabilised with the camera model (generalised Anscombe), quantised
    with step ``q`` (in σ), predicted from their neighbours and entropy-coded. For uint8/uint16
    data the quantisation is a table look-up with an exact bound: every pixel returns within
    :attr:`max_error` (≤ q/2) σ of its value, in the stabilised domain.

    Parameters
    ----------
    q : float
        Quantisation step in noise σ (> 0). 1 keeps every pixel within half a σ.
    gain, offset, read_noise : float
        Camera model: ADU per electron, dark offset in ADU, read noise in electrons.
    order : {"qp", "pq"}
        ``"qp"``: quantise then predict (parallel, default). ``"pq"``: predict then quantise
        (closed-loop DPCM, sequential: slower, and 2-16 % larger than ``"qp"`` on every
        benchmark set, single-molecule movies included).
    coder : {"max", "fast", "rice"}
        ``"max"``: context-modelled rANS (smallest); ``"fast"``: bit-packed blocks of 32 values
        (fastest); ``"rice"``: Golomb-Rice blocks of 64 (4-8 % larger than ``max`` at q = 1,
        encoding about twice as fast; format version 2).
    noise_maps : str, optional
        Per-pixel camera maps (sCMOS) as noise classes of the whole sensor, base64 of
        :attr:`bigcomp.pixelmodel.NoiseMaps.blob`; ``gain``, ``offset`` and ``read_noise`` are
        then the maps' medians, for display. Written by :func:`bigcomp.compress` (which knows
        where each chunk sits on the sensor); this codec only encodes chunks whose planes span
        the whole sensor.

    Examples
    --------
    >>> import numpy as np
    >>> from bigcomp.codecs import WNL
    >>> rng = np.random.default_rng(0)
    >>> data = (100 + 2 * rng.poisson(50, (64, 64))).astype("uint16")
    >>> codec = WNL(q=1.0, gain=2.0, offset=100.0, read_noise=1.6)
    >>> back = codec.decode(codec.encode(data))
    >>> bool(codec.max_error <= 0.5)
    True
    """

    codec_id = "bigcomp_wnl"

    def __init__(
        self,
        q: float = 1.0,
        gain: float = 1.0,
        offset: float = 0.0,
        read_noise: float = 0.0,
        order: str = "qp",
        coder: str = "max",
        noise_maps: str | None = None,
    ):
        if not isinstance(q, (int, float)) or not q > 0:
            raise ParameterError(
                f"WNL needs q > 0 (quantisation step in noise sigma), got {q!r}; "
                "use bigcomp.codecs.Lossless for lossless compression"
            )
        self.q = float(q)
        camera = CameraModel(gain, offset, read_noise)  # validates
        self.gain, self.offset, self.read_noise = camera.gain, camera.offset, camera.read_noise
        self.order = order
        self.coder = coder
        if noise_maps is not None:
            if not isinstance(noise_maps, str):
                raise ParameterError("noise_maps is the base64 text of NoiseMaps.blob, got "
                                     f"{type(noise_maps).__name__}")
            self.noise_maps = noise_maps
            _ = self._maps()  # validates
        self._validate()

    def _maps(self) -> NoiseMaps | None:
        if getattr(self, "noise_maps", None) is None:
            return None
        if getattr(self, "_parsed_maps", None) is None:
            try:
                blob = base64.b64decode(self.noise_maps, validate=True)
            except ValueError as exc:
                raise ParameterError(f"noise_maps is not base64: {exc}") from exc
            try:
                self._parsed_maps = NoiseMaps.from_blob(blob)
            except CorruptChunkError as exc:
                raise ParameterError(f"noise_maps are damaged: {exc}") from exc
        return self._parsed_maps

    def _camera(self) -> CameraModel:
        return CameraModel(self.gain, self.offset, self.read_noise)

    @classmethod
    def from_camera(cls, camera: CameraModel, q: float = 1.0, **kwargs) -> WNL:
        """Build the codec from a :class:`~bigcomp.CameraModel`."""
        return cls(q=q, **camera.to_dict(), **kwargs)

    @property
    def max_error(self) -> float:
        """Bound on ``|VST(decoded) - VST(original)|`` for uint16 data, in noise σ (of each
        pixel's own transform with per-pixel maps)."""
        return self.error_bound("uint16")

    def error_bound(self, dtype="uint16") -> float:
        """Bound on the error in noise σ (stabilised domain) for data of ``dtype``."""
        if self._maps() is not None:
            return self.q / 2
        return error_bound(self.q, self._camera(), dtype, self.order)
