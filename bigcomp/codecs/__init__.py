"""numcodecs codecs of bigcomp, registered with numcodecs on import."""

from __future__ import annotations

from numcodecs.registry import register_codec

from .lossless import Lossless
from .wnl import WNL

__all__ = ["WNL", "Lossless"]

register_codec(Lossless)
register_codec(WNL)
