"""zarr v3 codecs (``ArrayBytesCodec``) wrapping bigcomp's numcodecs codecs.

Use one as the ``serializer`` of a zarr v3 array::

    zarr.create_array(store, shape=..., chunks=..., dtype="uint16",
                      serializer=bigcomp.zarr3.WNL(q=1, gain=2, offset=100, read_noise=1.6))

They are registered under the names ``"bigcomp.lossless"`` and ``"bigcomp.wnl"`` (in-package on
import and through the ``zarr.codecs`` entry point), so ``zarr.open`` reads such arrays in any
process that has bigcomp installed.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from .. import codecs as _numcodecs

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["WNL", "Lossless"]


def _native_dtype(chunk_spec: ArraySpec) -> np.dtype:
    dtype = chunk_spec.dtype
    dtype = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
    return np.dtype(dtype).newbyteorder("=")


class _ChunkCodecMixin:
    """Sync/async plumbing shared by the zarr v3 wrappers."""

    codec_name: ClassVar[str]
    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        _, configuration = parse_named_configuration(data, cls.codec_name, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict:
        return {"name": self.codec_name, "configuration": asdict(self)}

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        array = chunk_array.as_ndarray_like()  # CuPy for zarr's GPU buffers: encoded on the GPU
        if isinstance(array, np.ndarray):
            # zarr gh-3558: F-ordered chunks must be made C-contiguous before encoding
            array = np.ascontiguousarray(array)
        return chunk_spec.prototype.buffer.from_bytes(self._codec.encode(array))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        # device bytes: GPU decode; a chunk of another shape, dtype, mode or codec parameters
        # than the array's is refused before anything is decoded
        decoded = self._codec.decode(chunk_bytes.as_array_like(), shape=chunk_spec.shape,
                                     dtype=_native_dtype(chunk_spec))
        decoded = decoded.reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, _input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        """Not a fixed function of the input size: zarr's protocol for compressors.

        zarr's abstract ``BaseCodec.compute_encoded_size`` asks variable-size codecs to raise
        ``NotImplementedError`` (its blosc, zstd and gzip codecs do the same); zarr then treats
        the encoded size as unknown, e.g. inside shards, whose index records each chunk's size.
        """
        raise NotImplementedError(
            "bigcomp chunks have a data-dependent size (zarr treats this as 'size unknown')"
        )


@dataclass(frozen=True)
class Lossless(_ChunkCodecMixin, ArrayBytesCodec):
    """zarr v3 form of :class:`bigcomp.codecs.Lossless`."""

    codec_name: ClassVar[str] = "bigcomp.lossless"
    coder: str = "max"

    def __init__(self, *, coder: str = "max") -> None:
        object.__setattr__(self, "coder", coder)
        _ = self._codec  # validate now

    @cached_property
    def _codec(self) -> _numcodecs.Lossless:
        return _numcodecs.Lossless(coder=self.coder)


@dataclass(frozen=True)
class WNL(_ChunkCodecMixin, ArrayBytesCodec):
    """zarr v3 form of :class:`bigcomp.codecs.WNL` (within noise level, step ``q`` in σ)."""

    codec_name: ClassVar[str] = "bigcomp.wnl"
    q: float = 1.0
    gain: float = 1.0
    offset: float = 0.0
    read_noise: float = 0.0
    order: str = "qp"
    coder: str = "max"
    noise_maps: str | None = None

    def __init__(
        self,
        *,
        q: float = 1.0,
        gain: float = 1.0,
        offset: float = 0.0,
        read_noise: float = 0.0,
        order: str = "qp",
        coder: str = "max",
        noise_maps: str | None = None,
    ) -> None:
        codec = _numcodecs.WNL(q, gain, offset, read_noise, order, coder,
                               noise_maps=noise_maps)  # validates
        for name in ("q", "gain", "offset", "read_noise", "order", "coder"):
            object.__setattr__(self, name, getattr(codec, name))
        object.__setattr__(self, "noise_maps", noise_maps)

    def to_dict(self) -> dict:
        config = asdict(self)
        if config["noise_maps"] is None:  # (arrays written before per-pixel maps existed)
            del config["noise_maps"]
        return {"name": self.codec_name, "configuration": config}

    @cached_property
    def _codec(self) -> _numcodecs.WNL:
        return _numcodecs.WNL(self.q, self.gain, self.offset, self.read_noise, self.order,
                              self.coder, noise_maps=self.noise_maps)


register_codec(Lossless.codec_name, Lossless)
register_codec(WNL.codec_name, WNL)
