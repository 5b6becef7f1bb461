"""A store of coded files: the exact bytes each codec wrote for each (image, codec, target), kept as Parquet on any
fsspec file system, checked by checksums, and filled by a local process pool or Ray Data.

Layer: above the codecs and :func:`augcomp.compress`, below the data, tasks and protocol.
"""

from augcomp.store._coded import TARGET_KINDS, CodecWork, coded_images, encode_entries, key_for
from augcomp.store._format import Entry, codec_id, entry_key, image_hash
from augcomp.store._store import Store, StoreError, VerifyReport, codec_from_identity
from augcomp.store.engines import ENGINES, code_items, run_local, run_ray

__all__ = [
    "ENGINES",
    "TARGET_KINDS",
    "CodecWork",
    "Entry",
    "Store",
    "StoreError",
    "VerifyReport",
    "code_items",
    "codec_from_identity",
    "codec_id",
    "coded_images",
    "encode_entries",
    "entry_key",
    "image_hash",
    "key_for",
    "run_local",
    "run_ray",
]
