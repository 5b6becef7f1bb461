"""augcomp: image compression as a training augmentation.

An exact, differentiable, bit-counting JPEG written in torch; the traditional codecs of compression studies (WebP,
AVIF, JPEG 2000, JPEG XL) through their own libraries; CompressAI's neural codecs as frozen augmentations; and
:class:`augcomp.transforms.Compress`, which hits a target bitrate per sample.
"""

from augcomp import codecs, functional
from augcomp._api import CompressResult, compress, decompress
from augcomp._errors import ArgumentError, ArgumentTypeError, AugcompError

__version__ = "0.1.0"

__all__ = [
    "codecs",
    "functional",
    "transforms",
    "compress",
    "decompress",
    "CompressResult",
    "AugcompError",
    "ArgumentError",
    "ArgumentTypeError",
    "__version__",
]


def __getattr__(name: str):
    # transforms imports torchvision's v2 machinery; load it on first use.
    if name == "transforms":
        import importlib

        return importlib.import_module("augcomp.transforms")
    raise AttributeError(f"module 'augcomp' has no attribute {name!r}")
