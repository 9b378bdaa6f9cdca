"""Shared numcodecs plumbing of bigcomp's codecs."""

from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from ..chunk import decode_chunk, encode_chunk, validate_parameters
from ..errors import ParameterError, UnsupportedDataError
from ..noise import CameraModel

__all__ = ["ChunkCodec"]


class ChunkCodec(Codec):
    """Base of the bigcomp numcodecs codecs: subclasses only store and validate parameters."""

    codec_id: str | None = None
    q: float = 0.0
    order: str = "qp"
    coder: str = "max"

    def _camera(self) -> CameraModel | None:
        return None

    def _maps(self):
        return None

    def _maps_for(self, shape: tuple[int, ...]):
        """The per-pixel maps to encode a chunk of ``shape`` with (they must span it)."""
        maps = self._maps()
        if maps is not None and self.q > 0 and tuple(shape[-2:]) != maps.shape:
            raise ParameterError(
                f"this codec's per-pixel camera maps cover {maps.shape[0]} x {maps.shape[1]} "
                f"pixels, the chunk's planes {tuple(shape[-2:])}: a codec cannot tell where a "
                "chunk sits on the sensor; write such arrays with bigcomp.compress")
        return maps

    def _validate(self) -> None:
        validate_parameters(self.q, self._camera(), self.order, self.coder)

    def encode(self, buf) -> bytes:
        """Compress one chunk (an ndarray keeps its shape in the chunk header).

        A device array (CuPy, anything with ``__cuda_array_interface__``) is encoded on the GPU,
        into the very bytes the CPU would write.
        """
        if hasattr(buf, "__cuda_array_interface__"):
            from ..gpu import dispatch_encode

            return dispatch_encode(
                buf, q=self.q, camera=self._camera(), order=self.order, coder=self.coder,
                noise_maps=self._maps_for(buf.shape))
        # normalise input: keep the shape of ndarrays, accept any other buffer as 1-D
        arr = buf if isinstance(buf, np.ndarray) else ensure_contiguous_ndarray(buf)
        return encode_chunk(
            arr, q=self.q, camera=self._camera(), order=self.order, coder=self.coder,
            noise_maps=self._maps_for(arr.shape))

    def expected_header(self) -> dict:
        """The chunk header fields this codec writes, which every chunk it decodes must have:
        a chunk of another mode, step, camera, order or coder was not written by this array's
        codec (a misplaced or substituted chunk) and is refused before it is decoded."""
        cam = self._camera()
        fields = {"mode": "wnl" if self.q > 0 else "lossless", "coder": self.coder,
                  "order": self.order if self.q > 0 else "qp"}
        if self.q > 0:
            fields.update(q=self.q, **cam.to_dict(), per_pixel=self._maps() is not None)
        return fields

    def decode(self, buf, out=None, *, shape=None, dtype=None):
        """Decompress one chunk, into ``out`` when given (on the GPU for a device ``out``/``buf``).

        The chunk must have been written with this codec's parameters and, where given, have
        ``shape`` and ``dtype`` (:class:`bigcomp.errors.ChunkMismatchError` otherwise).
        """
        expect = {**self.expected_header(), "shape": shape, "dtype": dtype}
        if hasattr(out, "__cuda_array_interface__") or hasattr(buf, "__cuda_array_interface__"):
            from ..gpu import dispatch_decode

            return dispatch_decode(buf, out=out, expect=expect, noise_maps=self._maps())
        # normalise input
        if buf is None:
            raise UnsupportedDataError("nothing to decode: the chunk is None")
        enc = ensure_contiguous_ndarray(buf)
        dec = decode_chunk(enc, expect=expect, noise_maps=self._maps())
        # setup output
        return ndarray_copy(dec, out)
