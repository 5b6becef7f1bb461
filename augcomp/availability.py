"""Whether a registered codec is usable here: :mod:`augcomp.codecs.availability`, under its earlier name."""

from augcomp.codecs.availability import DOWNLOADS, codec_available, codec_usability, offline

__all__ = ["DOWNLOADS", "codec_available", "codec_usability", "offline"]
