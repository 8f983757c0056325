"""Where faces come from: one ``--data`` string picks a Hub dataset, parquet files, an image folder or ``builtin``.

Every source is a row-addressable sequence: ``read(start, stop)`` returns the encoded images of
rows ``start..stop-1`` (bytes, or already-decoded arrays for ``builtin``), so decode workers can each
take a slice, and a row id always means the same image of the same source.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DataConfig
from ..errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
BUILTIN_SEED = 1234


@dataclass
class Source:
    """A resolved data source. ``items`` is a datasets.Dataset, a list of paths, or None (builtin)."""

    kind: str  # hub | parquet | folder | builtin
    name: str
    num_rows: int
    fingerprint: str
    items: object = None
    column: str | None = None
    image_size: int = 96
    stats: dict = field(default_factory=dict)  # listing-time counts (e.g. files ignored by extension)
    max_bytes: int = int(DataConfig.max_file_mb * (1 << 20))  # a file or cell larger than this is skipped as too large, unread
    earlier_fingerprints: tuple[str, ...] = ()  # what earlier versions of animevae called the same data (a resume accepts them)

    def read(self, start: int, stop: int) -> list:
        """Encoded images of rows start..stop-1: bytes, an np.ndarray (HxWx3), or an Exception (unreadable)."""
        if self.kind == "builtin":
            from .toyfaces import render_faces

            return list(render_faces(stop - start, seed=BUILTIN_SEED, size=self.image_size, start=start))
        if self.kind == "folder":
            return [read_file(p, self.max_bytes) for p in self.items[start:stop]]
        cells = self.items[start:stop][self.column]
        return [_cell_bytes(c, self.max_bytes) for c in cells]

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "rows": self.num_rows, "image_column": self.column, "fingerprint": self.fingerprint}


class Skipped(Exception):
    """A row that is not read at all, with the reason it is counted under (``decode.REASONS``)."""

    def __init__(self, reason: str, what: str):
        super().__init__(what)
        self.reason = reason


def read_file(path: str, max_bytes: int):
    """The bytes of a regular file of at most ``max_bytes``; else a ``Skipped`` or the ``OSError``, never blocking.

    FIFOs, sockets, devices (and links to them) are ``skipped_not_a_file`` without being opened for a
    blocking read: ``open`` on a FIFO would wait for a writer forever, ``/dev/zero`` would never end.
    Larger files are ``skipped_too_large`` from their size alone; the read is capped too, in case the
    file grows between the two.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))  # a FIFO opens at once, writer or not
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket
            return Skipped("skipped_not_a_file", f"{path}: a socket")
        return e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Skipped("skipped_not_a_file", f"{path}: not a regular file")
        if info.st_size > max_bytes:
            return Skipped("skipped_too_large", f"{path}: {info.st_size} bytes")
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            return e
    return data if len(data) <= max_bytes else Skipped("skipped_too_large", f"{path}: over {max_bytes} bytes")


def _cell_bytes(cell, max_bytes: int):
    """A datasets Image cell (decode=False) is {bytes, path}; bytes may be None when it points at a file."""
    if isinstance(cell, dict):
        if cell.get("bytes") is not None:
            return _capped(cell["bytes"], max_bytes)
        if cell.get("path"):
            return read_file(cell["path"], max_bytes)
    if isinstance(cell, (bytes, bytearray)):
        return _capped(bytes(cell), max_bytes)
    return ValueError(f"not an image cell: {type(cell).__name__}")


def _capped(data: bytes, max_bytes: int):
    return data if len(data) <= max_bytes else Skipped("skipped_too_large", f"a {len(data)}-byte cell")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_source(cfg: DataConfig, image_size: int = 96) -> Source:
    """Resolve ``cfg.source`` to a Source, with a clear error when it does not exist or is empty."""
    source = _open(cfg, image_size)
    source.max_bytes = int(cfg.max_file_mb * (1 << 20))
    return source


def _open(cfg: DataConfig, image_size: int) -> Source:
    spec = cfg.source
    if spec == "builtin":
        n = min(cfg.builtin_count, cfg.limit or cfg.builtin_count)
        return Source("builtin", f"builtin ({n} procedural faces)", n, _hash(["builtin-v1", BUILTIN_SEED, n, image_size]), image_size=image_size)
    path = Path(spec).expanduser()
    if path.is_dir():
        parquet = sorted(glob.glob(os.path.join(glob.escape(str(path)), "**", "*.parquet"), recursive=True))
        return _parquet_source(cfg, parquet, spec) if parquet else _folder_source(cfg, path)
    if path.is_file() or glob.has_magic(spec):
        files = [str(path)] if path.is_file() else sorted(glob.glob(str(path), recursive=True))
        if not files:
            raise UserError(f"--data {spec}: the pattern matches no files")
        if not all(f.endswith(".parquet") for f in files):
            raise UserError(f"--data {spec}: expected parquet files (or a folder of images); got {Path(files[0]).name}")
        return _parquet_source(cfg, files, spec)
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise UserError(f"--data {spec}: no such file or folder (and not a Hub dataset id like USER/NAME); try --data builtin")
    return _hub_source(cfg)


def _limit(ds, cfg: DataConfig):
    return ds.select(range(min(cfg.limit, len(ds)))) if cfg.limit is not None else ds


def _image_column(ds, cfg: DataConfig, where: str) -> str:
    from datasets import Image

    if cfg.image_column is not None:
        if cfg.image_column not in ds.column_names:
            raise UserError(f"{where}: no column '{cfg.image_column}'; columns: {', '.join(ds.column_names)}")
        return cfg.image_column
    for name in ("image", "img"):
        if name in ds.column_names:
            return name
    for name, feature in ds.features.items():
        if isinstance(feature, Image):
            return name
    raise UserError(f"{where}: no image column found among {', '.join(ds.column_names)}; name it with --image-column")


def _as_bytes_dataset(ds, cfg: DataConfig, kind: str, name: str, fingerprint_parts, earlier_parts=None) -> Source:
    from datasets import Image

    column = _image_column(ds, cfg, name)
    ds = _limit(ds, cfg)
    if len(ds) == 0:
        raise UserError(f"--data {name}: the dataset is empty")
    if isinstance(ds.features[column], Image):
        ds = ds.cast_column(column, Image(decode=False))
    ds = ds.select_columns([column])
    earlier = (_hash([kind, earlier_parts, column, cfg.limit]),) if earlier_parts is not None else ()
    return Source(kind, name, len(ds), _hash([kind, fingerprint_parts, column, cfg.limit]), ds, column, earlier_fingerprints=earlier)


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _parquet_source(cfg: DataConfig, files: list[str], spec: str) -> Source:
    import datasets

    # the files' contents name the data, not where they lie or when they were copied: a run resumes on a moved
    # or re-downloaded copy (hashing reads each file once, about a second per GB)
    try:
        contents = [(os.path.basename(f), os.path.getsize(f), _file_digest(f)) for f in files]
        stats = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in files]  # the earlier fingerprint's parts
    except OSError as e:
        raise UserError(f"--data {spec}: cannot read {e.filename or 'a parquet file'} ({e.strerror or e}); check that it is there and readable") from None
    try:
        ds = datasets.load_dataset("parquet", data_files=[glob.escape(f) for f in files], split="train")
    except Exception as e:  # pyarrow / datasets raise many types for a bad file
        raise UserError(f"--data {spec}: cannot read these parquet files ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    return _as_bytes_dataset(ds, cfg, "parquet", spec, ["content", contents], earlier_parts=stats)


def _hub_source(cfg: DataConfig) -> Source:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.source, split=cfg.split, revision=cfg.revision)
    except (ConnectionError, TimeoutError) as e:
        raise UserError(
            f"--data {cfg.source}: cannot reach the Hugging Face Hub ({str(e).splitlines()[0][:100]}); "
            "pass a local parquet file or image folder, or --data builtin"
        ) from None
    except datasets.exceptions.DatasetNotFoundError:
        raise UserError(f"--data {cfg.source}: no such dataset on the Hub (or it is private); check the id, or use a local path") from None
    except ValueError as e:  # unknown split and similar
        raise UserError(f"--data {cfg.source}: {str(e).splitlines()[0][:200]}") from None
    except OSError as e:
        raise UserError(f"--data {cfg.source}: cannot load from the Hub ({str(e).splitlines()[0][:120]}); pass a local path or --data builtin") from None
    return _as_bytes_dataset(ds, cfg, "hub", cfg.source, [cfg.split, cfg.revision, ds._fingerprint])


def list_image_files(root: Path) -> tuple[list[str], dict]:
    """Image files below ``root``, sorted; follows folder links once each, so a link loop cannot recurse."""
    files, ignored, seen = [], 0, set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in filenames:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                files.append(os.path.join(dirpath, name))
            else:
                ignored += 1
    files.sort()
    return files, {"ignored_not_image_extension": ignored}


def _folder_source(cfg: DataConfig, root: Path) -> Source:
    files, stats = list_image_files(root)
    if not files:
        raise UserError(f"--data {root}: no images here (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, recursively)")
    if cfg.limit is not None:
        files = files[: cfg.limit]
    listing = []
    for f in files:
        try:
            st = os.stat(f)
            listing.append((os.path.relpath(f, root), st.st_size, st.st_mtime_ns))
        except OSError:
            listing.append((os.path.relpath(f, root), -1, -1))
    return Source("folder", str(root), len(files), _hash(["folder", str(root.resolve()), listing]), files, stats=stats)
