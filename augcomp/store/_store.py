"""``Store``: coded files kept as Parquet part files on any fsspec file system.

Layout under the store's URL::

    augcomp-store.json          what this folder is (format and version)
    parts/part-<time>-<id>.parquet   entries, one row each; a part file is never changed once it is there
    verify.json                 the bad entries the last ``verify`` found, until a precompute repairs them
    quarantine/                 part files that could not be read at all, moved aside by a repair

Every writer writes whole part files under a temporary name (which no reader lists) and renames them into
``parts/`` when complete, so two writers at once never corrupt the store and a killed writer leaves no half-written
entry. An entry may exist in more than one part (two writers encoded it at once); readers take any copy whose checksum
holds, and coding is deterministic, so the copies are the same.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from augcomp._errors import AugcompError
from augcomp.store._format import FORMAT, FORMAT_VERSION, INDEX_COLUMNS, Entry, schema

__all__ = ["Store", "StoreError", "VerifyReport"]

_STRING_COLUMNS = ["key", "checksum", "image", "codec", "codec_id", "target_kind", "file_kind", "source", "identity"]


class StoreError(AugcompError, RuntimeError):
    """The store cannot be opened or written (not a store, missing package, unreadable)."""


@dataclass
class VerifyReport:
    """What :meth:`Store.verify` found.

    Attributes:
        entries: distinct keys with at least one good copy.
        bad: one record per bad row or unreadable part: ``{"key", "part", "row", "reason"}`` (``key`` and ``row``
            are None for a part that cannot be read at all).
        digest: :meth:`Store.digest` over the good entries.
        rows: rows read.
    """

    entries: int
    bad: list[dict[str, Any]] = field(default_factory=list)
    digest: str = ""
    rows: int = 0


def _require_pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError as e:
        raise StoreError("the store needs pyarrow and fsspec: pip install 'augcomp[store]'") from e
    return pq


class Store:
    """A store of coded files at ``url`` (a local folder or any fsspec URL: ``s3://``, ``gs://``, ``memory://``).

    Args:
        url: where the store lives; created on the first write.
        storage_options: passed to fsspec (credentials, endpoint, ...).

    Raises:
        StoreError: ``url`` holds something that is not a store, or pyarrow/fsspec are missing.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        _require_pyarrow()
        from fsspec.core import url_to_fs

        self.url = str(url)
        self.fs, self.root = url_to_fs(self.url, **(storage_options or {}))
        self.root = self.root.rstrip("/")
        self.parts_dir = f"{self.root}/parts"
        # key -> [(part, row, checksum)], and the part files already read into it
        self._index: dict[str, list[tuple[str, int, str]]] = {}
        self._rows: dict[str, dict[str, Any]] = {}
        self._seen: set[str] = set()
        # The last part files read whole: a sweep's consecutive batches mostly hit the same parts.
        self._tables: dict[str, Any] = {}
        marker = f"{self.root}/augcomp-store.json"
        if self.fs.exists(self.root) and not self.fs.exists(marker):
            listing = [p for p in self.fs.ls(self.root, detail=False)]
            if listing:
                raise StoreError(f"{self.url} exists and is not an augcomp store (no augcomp-store.json); give an "
                                 "empty or new folder")

    # ------------------------------------------------------------------------------------------ reading

    def parts(self) -> list[str]:
        """The part files, in name order (oldest first)."""
        if not self.fs.exists(self.parts_dir):
            return []
        names = [p for p in self.fs.ls(self.parts_dir, detail=False) if p.rsplit("/", 1)[-1].startswith("part-")
                 and p.endswith(".parquet")]
        return sorted(names)

    def refresh(self) -> None:
        """Reads the index of part files written since the last look (by this or any other writer)."""
        pq = _require_pyarrow()
        for part in self.parts():
            if part in self._seen:
                continue
            try:
                with self.fs.open(part, "rb") as f:
                    table = pq.read_table(f, columns=list(INDEX_COLUMNS))
            except Exception:  # unreadable: verify reports it; readers skip it
                self._seen.add(part)
                continue
            self._add_rows(part, table.to_pylist())
            self._seen.add(part)

    def _add_rows(self, part: str, rows: list[dict[str, Any]]) -> None:
        for i, row in enumerate(rows):
            self._index.setdefault(row["key"], []).append((part, i, row["checksum"]))
            self._rows.setdefault(row["key"], row)

    def keys(self) -> set[str]:
        """Every key with at least one copy in the store."""
        self.refresh()
        return set(self._index)

    def locations(self, key: str) -> list[str]:
        """The part files holding a copy of ``key`` (empty if none)."""
        if key not in self._index:
            self.refresh()
        return [part for part, _, _ in self._index.get(key, [])]

    def __contains__(self, key: str) -> bool:
        if key not in self._index:
            self.refresh()
        return key in self._index

    def __len__(self) -> int:
        return len(self.keys())

    def read(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The entries of ``keys`` found in the store with a checksum that holds; others are left out (a caller
        then encodes them again)."""
        pq = _require_pyarrow()
        keys = list(dict.fromkeys(keys))
        if any(k not in self._index for k in keys):
            self.refresh()  # once per call: listing the parts is a request on an object store
        wanted = [k for k in keys if k in self._index]
        by_part: dict[str, list[tuple[str, int]]] = {}
        for key in wanted:
            for part, row, _ in self._index[key]:
                by_part.setdefault(part, []).append((key, row))
        found: dict[str, Entry] = {}
        for part in sorted(by_part):
            todo = [(k, r) for k, r in by_part[part] if k not in found]
            if not todo:
                continue
            table = self._tables.pop(part, None)
            if table is None:
                try:
                    with self.fs.open(part, "rb") as f:
                        table = pq.read_table(f)
                except Exception:
                    continue
            self._tables[part] = table  # most recent last
            while len(self._tables) > 8:
                del self._tables[next(iter(self._tables))]
            for key, row in todo:
                entry = Entry(**{name: table.column(name)[row].as_py() for name in table.column_names})
                if entry.key == key and entry.checksum == entry.expected_checksum():
                    found[key] = entry
        return found

    def read_one(self, key: str) -> Entry | None:
        """The entry of ``key``, reading only the row group that holds it (a training sample's variant: one
        random entry at a time, where :meth:`read` would read whole part files); None if absent or bad."""
        pq = _require_pyarrow()
        if key not in self._index:
            self.refresh()
        for part, row, _ in self._index.get(key, []):
            try:
                with self.fs.open(part, "rb") as f:
                    reader = pq.ParquetFile(f)
                    meta = reader.metadata
                    group, start = 0, 0
                    while group < meta.num_row_groups and start + meta.row_group(group).num_rows <= row:
                        start += meta.row_group(group).num_rows
                        group += 1
                    table = reader.read_row_group(group)
            except Exception:
                continue
            values = {name: table.column(name)[row - start].as_py() for name in table.column_names}
            entry = Entry(**values)
            if entry.key == key and entry.checksum == entry.expected_checksum():
                return entry
        return None

    # ------------------------------------------------------------------------------------------ writing

    def _ensure(self) -> None:
        marker = f"{self.root}/augcomp-store.json"
        if not self.fs.exists(marker):
            self.fs.makedirs(self.parts_dir, exist_ok=True)
            self._atomic_write(marker, json.dumps({"format": FORMAT, "version": FORMAT_VERSION}).encode())
        else:
            self.fs.makedirs(self.parts_dir, exist_ok=True)

    def _atomic_write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, path)

    def write(self, entries: Sequence[Entry], row_group_size: int | None = None) -> str | None:
        """Adds ``entries`` as one new part file (complete or not at all); returns its path (None if empty).

        Args:
            row_group_size: entries per Parquet row group (default: one group); small groups let
                :meth:`read_one` read one entry without the rest of the part.
        """
        if not entries:
            return None
        import pyarrow as pa
        pq = _require_pyarrow()

        self._ensure()
        rows = [e.row() for e in entries]
        table = pa.Table.from_pylist(rows, schema=schema())
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        final = f"{self.parts_dir}/{name}"
        tmp = f"{self.parts_dir}/.tmp-{name}"
        # Coded bytes do not compress; the repeated strings do, by dictionary and zstd. No min/max statistics for the
        # bytes: they would copy two whole files into every row group's metadata.
        compression = {c: "zstd" for c in schema().names}
        compression["data"] = "none"
        with self.fs.open(tmp, "wb") as f:
            pq.write_table(table, f, compression=compression, use_dictionary=_STRING_COLUMNS,
                           write_statistics=[c for c in schema().names if c != "data"],
                           row_group_size=row_group_size)
        self.fs.mv(tmp, final)
        self._add_rows(final, [{k: r[k] for k in INDEX_COLUMNS} for r in rows])
        self._seen.add(final)
        return final

    # ------------------------------------------------------------------------------------------ checking

    def digest(self, pairs: Iterable[tuple[str, str]] | None = None) -> str:
        """sha256 of the sorted (key, checksum) pairs: the same whatever engine, worker count or file layout filled
        the store. Without ``pairs``: from the index (each key's smallest checksum), without re-hashing."""
        if pairs is None:
            self.refresh()
            pairs = ((k, min(c for _, _, c in locs)) for k, locs in self._index.items())
        h = hashlib.sha256()
        for key, check in sorted(pairs):
            h.update(f"{key} {check}\n".encode())
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        """Entries per codec and target, bytes, mean bpp and the digest (from the index; ``verify`` re-hashes)."""
        self.refresh()
        per: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
        for row in self._rows.values():
            per.setdefault((row["codec"], row["target_kind"], row["target"]), []).append(row)
        groups = []
        for (codec, kind, target), rows in sorted(per.items()):
            groups.append({"codec": codec, "target_kind": kind, "target": target, "entries": len(rows),
                           "bytes": int(sum(r["bits"] for r in rows) // 8),
                           "mean_bpp": sum(r["bpp"] for r in rows) / len(rows)})
        size = sum(self.fs.size(p) for p in self.parts())
        return {"url": self.url, "entries": len(self._rows), "parts": len(self.parts()), "store_bytes": size,
                "groups": groups, "digest": self.digest()}

    def verify(self, progress: bool = False) -> VerifyReport:
        """Re-hashes every row and decodes every entry with its codec's own decoder; writes the bad ones to
        ``verify.json`` (a later :meth:`repair` removes them) and returns the report."""
        pq = _require_pyarrow()
        from tqdm.auto import tqdm

        self.refresh()
        bad: list[dict[str, Any]] = []
        good: dict[str, str] = {}
        rows_read = 0
        decoders: dict[str, Any] = {}
        parts = self.parts()
        bar = tqdm(total=sum(len(v) for v in self._index.values()), desc="verify", unit="entry", disable=not progress)
        for part in parts:
            try:
                with self.fs.open(part, "rb") as f:
                    table = pq.read_table(f)
            except Exception as e:
                keyed = [(k, r) for k, locs in self._index.items() for p, r, _ in locs if p == part]
                if keyed:
                    bad += [{"key": k, "part": part, "row": r, "reason": f"unreadable part: {e}"} for k, r in keyed]
                else:
                    bad.append({"key": None, "part": part, "row": None, "reason": f"unreadable part: {e}"})
                bar.update(len(keyed))
                continue
            for row, values in enumerate(table.to_pylist()):
                rows_read += 1
                entry = Entry(**values)
                reason = self._check(entry, decoders)
                if reason:
                    bad.append({"key": entry.key, "part": part, "row": row, "reason": reason})
                else:
                    good[entry.key] = min(good.get(entry.key, entry.checksum), entry.checksum)
                bar.update(1)
        bar.close()
        # A key whose every copy is bad is bad; a bad copy beside a good one is still reported, so repair drops it.
        report = VerifyReport(entries=len(good), bad=bad, digest=self.digest(good.items()), rows=rows_read)
        path = f"{self.root}/verify.json"
        if bad:
            self._ensure()
            self._atomic_write(path, json.dumps({"bad": bad}, indent=1).encode())
        elif self.fs.exists(path):
            self.fs.rm(path)
        return report

    @staticmethod
    def _check(entry: Entry, decoders: dict[str, Any]) -> str:
        if entry.checksum != entry.expected_checksum():
            return "checksum mismatch"
        try:
            codec = decoders.get(entry.codec_id)
            if codec is None:
                codec = decoders[entry.codec_id] = codec_from_identity(entry.identity)
            pixels = codec.decode_file(entry.data, entry.channels)
        except Exception as e:  # any decoder failure is a bad entry, named with its cause
            return f"does not decode: {type(e).__name__}: {e}"
        if tuple(pixels.shape) != (entry.channels, entry.height, entry.width):
            return f"decodes to {tuple(pixels.shape)}, not {(entry.channels, entry.height, entry.width)}"
        return ""

    def pending_repairs(self) -> list[dict[str, Any]]:
        """The bad rows of the last :meth:`verify` that no :meth:`repair` has removed yet."""
        path = f"{self.root}/verify.json"
        if not self.fs.exists(path):
            return []
        with self.fs.open(path, "rb") as f:
            return json.loads(f.read().decode())["bad"]

    def repair(self) -> list[dict[str, Any]]:
        """Removes the bad rows the last :meth:`verify` found: each affected part is rewritten without them (the new
        part is complete before the old one goes), and an unreadable part is moved to ``quarantine/``. Returns the
        records removed; their keys are then missing, so the next precompute encodes exactly those."""
        pq = _require_pyarrow()
        import pyarrow as pa

        bad = self.pending_repairs()
        by_part: dict[str, set[int]] = {}
        for record in bad:
            by_part.setdefault(record["part"], set()).add(record["row"])
        for part, rows in by_part.items():
            if not self.fs.exists(part):
                continue
            try:
                with self.fs.open(part, "rb") as f:
                    table = pq.read_table(f)
            except Exception:
                self.fs.makedirs(f"{self.root}/quarantine", exist_ok=True)
                self.fs.mv(part, f"{self.root}/quarantine/{part.rsplit('/', 1)[-1]}")
                continue
            keep = [i for i in range(table.num_rows) if i not in rows]
            if keep:
                self.write([Entry(**r) for r in table.take(pa.array(keep, type=pa.int64())).to_pylist()])
            self.fs.rm(part)
        if bad:
            self.fs.rm(f"{self.root}/verify.json")
        # The index is rebuilt from what is there now.
        self._tables.clear()
        self._index.clear()
        self._rows.clear()
        self._seen.clear()
        return bad


def codec_from_identity(identity: str) -> Any:
    """The codec module an entry's identity (JSON) describes, built with the options it names."""
    from augcomp import codecs

    ident = json.loads(identity)
    options = {}
    for key, text in ident.get("options", {}).items():
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return codecs.get(ident["codec"], **options)
