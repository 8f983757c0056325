"""open_source on real sources: builtin, parquet folders/files/globs (the shared faces and generated ones), image folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from messy_images import EXPECTED, NOT_IMAGES, encode, messy_bytes, write_messy_set, write_parquet
from PIL import Image

from animevae.config import DataConfig
from animevae.data.sources import IMAGE_EXTENSIONS, _hash, open_source
from animevae.data.toyfaces import render_faces
from animevae.errors import UserError


def _src(spec, **kw):
    return open_source(DataConfig(source=str(spec), **kw))


def _hub_rows(files, start, stop, column="image") -> list[bytes]:
    """The same rows read independently: datasets' own parquet loader, undecoded."""
    ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    ds = ds.cast_column(column, datasets.Image(decode=False))
    return [cell["bytes"] for cell in ds[start:stop][column]]


# ---------------------------------------------------------------------------------------------- builtin


def test_builtin():
    src = _src("builtin", builtin_count=50)
    assert (src.kind, src.num_rows, src.column) == ("builtin", 50, None)
    rows = src.read(3, 7)
    assert len(rows) == 4 and all(r.shape == (96, 96, 3) and r.dtype == np.uint8 for r in rows)
    np.testing.assert_array_equal(np.stack(rows), render_faces(7, seed=1234)[3:7])
    np.testing.assert_array_equal(np.stack(src.read(0, 7)[3:]), np.stack(rows))
    assert _src("builtin", builtin_count=50, limit=10).num_rows == 10
    assert _src("builtin", builtin_count=50, limit=500).num_rows == 50
    small = open_source(DataConfig(source="builtin", builtin_count=5), image_size=48)
    assert small.read(0, 1)[0].shape == (48, 48, 3)
    fps = {src.fingerprint, _src("builtin", builtin_count=50).fingerprint}
    assert len(fps) == 1
    assert _src("builtin", builtin_count=51).fingerprint != src.fingerprint
    assert small.fingerprint != open_source(DataConfig(source="builtin", builtin_count=5), image_size=96).fingerprint


# ---------------------------------------------------------------------------------------------- parquet (shared faces)


def test_parquet_folder_shared_faces(shared_faces):
    src = _src(shared_faces, limit=40)
    assert (src.kind, src.num_rows, src.column) == ("parquet", 40, "image")
    files = sorted(shared_faces.glob("*.parquet"))
    got = src.read(5, 12)
    assert got == _hub_rows(files, 5, 12)
    assert all(isinstance(b, bytes) and b[:3] == b"\xff\xd8\xff" for b in got)  # JPEG bytes, not decoded images
    assert src.read(0, 40)[5:12] == got
    assert src.describe()["rows"] == 40 and src.describe()["image_column"] == "image"
    assert _src(shared_faces, limit=41).fingerprint != src.fingerprint
    assert _src(shared_faces, limit=40).fingerprint == src.fingerprint
    full = _src(shared_faces)
    assert full.num_rows == sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 30_000


def test_single_parquet_file(shared_faces):
    second = sorted(shared_faces.glob("*.parquet"))[1]
    src = _src(second, limit=20)
    assert (src.kind, src.num_rows) == ("parquet", 20)
    direct = pq.read_table(second, columns=["image"]).slice(0, 20).column("image").to_pylist()
    assert src.read(0, 20) == [cell["bytes"] for cell in direct]


def test_glob_of_parquet_files(shared_faces):
    files = sorted(shared_faces.glob("*.parquet"))
    spec = str(shared_faces / "train-0000[12]-*.parquet")  # files 1 and 2, in sorted order
    src = _src(spec)
    n1 = pq.ParquetFile(files[1]).metadata.num_rows
    assert src.num_rows == n1 + pq.ParquetFile(files[2]).metadata.num_rows
    first_of_2 = pq.read_table(files[2], columns=["image"]).slice(0, 3).column("image").to_pylist()
    last_of_1 = pq.read_table(files[1], columns=["image"]).slice(n1 - 2, 2).column("image").to_pylist()
    assert src.read(n1 - 2, n1 + 3) == [c["bytes"] for c in last_of_1 + first_of_2]
    assert src.read(n1 - 2, n1 + 3) == _hub_rows(files[1:3], n1 - 2, n1 + 3)
    with pytest.raises(UserError, match="matches no files"):
        _src(shared_faces / "nothing-*.parquet")


# ---------------------------------------------------------------------------------------------- parquet (generated)


def test_messy_parquet_rows(messy_parquet):
    path, names = messy_parquet
    src = _src(path)
    assert (src.kind, src.num_rows, src.column) == ("parquet", len(EXPECTED), "image")
    data = messy_bytes()
    assert src.read(0, src.num_rows) == [data[n] for n in names]
    assert src.read(4, 9) == [data[n] for n in names[4:9]]
    assert src.read(4, 9) == _hub_rows([path], 4, 9)
    assert src.read(0, 1)[0] == data[names[0]]


def _faces_bytes(n):
    """n small procedural faces as PNG bytes, named like Hub image cells."""
    return [(f"{i}.png", encode(Image.fromarray(f), "PNG")) for i, f in enumerate(render_faces(n, seed=5, size=16))]


@pytest.mark.parametrize("column,image_first", [("image", True), ("img", True), ("img", False), ("picture", False)])
def test_image_column_detected(tmp_path, column, image_first):
    items = _faces_bytes(4)
    extra = {"label": ["a", "b", "c", "d"], "id": [0, 1, 2, 3]}
    path = write_parquet(tmp_path / "faces.parquet", items, column=column, extra=extra, image_first=image_first)
    assert (pq.read_schema(path).names[0] == column) == image_first
    src = _src(path)
    assert src.column == column
    assert src.read(0, 4) == [b for _, b in items]


@pytest.mark.parametrize("column", ["image", "img"])
def test_image_column_found_by_name_without_image_feature(tmp_path, column):
    """Parquet written by other tools: {bytes, path} structs with no Image feature, found by column name."""
    items = _faces_bytes(3)
    path = write_parquet(tmp_path / "raw.parquet", items, column=column, extra={"caption": ["x", "y", "z"]}, image_feature=False, image_first=False)
    features = datasets.load_dataset("parquet", data_files=str(path), split="train").features
    assert not isinstance(features[column], datasets.Image)
    src = _src(path)
    assert src.column == column and src.read(0, 3) == [b for _, b in items]


def test_image_column_prefers_image_name(tmp_path):
    faces, other = _faces_bytes(3), _faces_bytes(6)[3:]
    ds = (
        datasets.Dataset.from_dict({"thumb": [{"bytes": b, "path": n} for n, b in other], "image": [{"bytes": b, "path": n} for n, b in faces]})
        .cast_column("thumb", datasets.Image())
        .cast_column("image", datasets.Image())
    )
    ds.to_parquet(str(tmp_path / "two.parquet"))
    src = _src(tmp_path / "two.parquet")
    assert src.column == "image" and src.read(0, 3) == [b for _, b in faces]
    over = _src(tmp_path / "two.parquet", image_column="thumb")
    assert over.column == "thumb" and over.read(0, 3) == [b for _, b in other]
    assert over.fingerprint != src.fingerprint


def test_image_column_override_and_errors(tmp_path):
    items = _faces_bytes(3)
    path = write_parquet(tmp_path / "f.parquet", items, column="face", extra={"caption": ["x", "y", "z"]})
    assert _src(path, image_column="face").column == "face"
    with pytest.raises(UserError) as e:
        _src(path, image_column="photo")
    msg = str(e.value)
    assert "photo" in msg and "face" in msg and "caption" in msg  # names the missing column and lists the real ones
    plain = write_parquet(tmp_path / "plain.parquet", items, column="blob", extra={"caption": ["x", "y", "z"]}, image_feature=False)
    features = datasets.load_dataset("parquet", data_files=str(plain), split="train").features
    assert not any(isinstance(f, datasets.Image) for f in features.values())
    with pytest.raises(UserError, match="--image-column"):
        _src(plain)
    assert _src(plain, image_column="blob").read(0, 3) == [b for _, b in items]  # {bytes, path} structs still read


# ---------------------------------------------------------------------------------------------- image folders


def test_image_folder(messy_dir):
    src = _src(messy_dir)
    assert src.kind == "folder" and src.column is None
    assert src.num_rows == len(EXPECTED)  # every image-extension file, the nested one included
    assert src.stats == {"ignored_not_image_extension": len(NOT_IMAGES)}
    files = [Path(p) for p in src.items]
    assert [p.relative_to(messy_dir).as_posix() for p in files] == sorted(EXPECTED)
    assert "nested/deeper/face.png" in {p.relative_to(messy_dir).as_posix() for p in files}
    data = messy_bytes()
    assert src.read(0, src.num_rows) == [data[p.relative_to(messy_dir).as_posix()] for p in files]
    assert src.read(3, 5) == src.read(0, 8)[3:5]
    assert all(Path(p).suffix.lower() in IMAGE_EXTENSIONS for p in src.items)
    assert _src(messy_dir, limit=5).num_rows == 5
    assert _src(messy_dir, limit=5).items == src.items[:5]


def test_folder_unreadable_file_is_an_exception_row(tmp_path):
    write_messy_set(tmp_path)
    src = _src(tmp_path)
    victim = src.items[2]
    os.remove(victim)
    row = src.read(2, 3)[0]
    assert isinstance(row, OSError)


def test_folder_fingerprint_follows_content(tmp_path):
    folder = tmp_path / "faces"
    write_messy_set(folder)
    before = _src(folder).fingerprint
    assert _src(folder).fingerprint == before  # stable when nothing changed
    target = folder / "good.png"
    st = target.stat()
    target.write_bytes(target.read_bytes() + b"\x00")  # one byte more
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = _src(folder).fingerprint
    assert changed != before
    (folder / "nested" / "new.jpg").write_bytes(messy_bytes()["good.jpg"])
    assert _src(folder).fingerprint not in (before, changed)
    (folder / "more-notes.md").write_text("not an image")
    added_note = _src(folder)
    assert added_note.stats["ignored_not_image_extension"] == 2


def test_parquet_fingerprint_follows_file(tmp_path, messy_parquet):
    path = tmp_path / "m.parquet"
    shutil.copy(messy_parquet[0], path)
    before = _src(path).fingerprint
    write_parquet(path, _faces_bytes(3))
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert _src(path).fingerprint != before


def test_parquet_fingerprint_names_the_content_not_the_place(tmp_path):
    """A moved, re-downloaded or touched copy of the same files is the same data (a run resumes on it); the
    fingerprint earlier versions gave (paths and times) is kept beside it, so their runs resume too."""
    a, b = tmp_path / "a" / "faces.parquet", tmp_path / "b" / "faces.parquet"
    write_parquet(a, _faces_bytes(5))
    b.parent.mkdir()
    shutil.copyfile(a, b)
    os.utime(b, ns=(0, a.stat().st_mtime_ns + 7 * 10**9))
    src_a, src_b = _src(a), _src(b)
    assert src_a.fingerprint == src_b.fingerprint
    assert src_a.earlier_fingerprints != src_b.earlier_fingerprints  # the earlier formula named the place and time
    earlier = _hash(["parquet", [(str(a), a.stat().st_size, a.stat().st_mtime)], "image", None])
    assert src_a.earlier_fingerprints == (earlier,)
    write_parquet(b, _faces_bytes(5)[::-1])  # the same faces in another order: other data
    assert _src(b).fingerprint != src_a.fingerprint


def test_folder_with_link_loop_terminates(tmp_path):
    folder = tmp_path / "faces"
    write_messy_set(folder)
    os.symlink(folder, folder / "nested" / "loop")  # a link back to the root
    src = _src(folder)
    assert src.num_rows == len(EXPECTED)


# ---------------------------------------------------------------------------------------------- errors


def test_nonexistent_path(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        _src(tmp_path / "does-not-exist")
    with pytest.raises(UserError, match="no such file or folder"):
        _src("./nowhere/at/all")


def test_empty_folder_and_no_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images here"):
        _src(tmp_path / "empty")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(UserError, match="no images here"):
        _src(tmp_path / "notes")


def test_non_parquet_file_and_bad_parquet(tmp_path, messy_dir):
    with pytest.raises(UserError, match="expected parquet"):
        _src(messy_dir / "good.jpg")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but not really a parquet file")
    with pytest.raises(UserError, match="cannot read"):
        _src(bad)


def test_existing_parquet_file_with_brackets_in_name(tmp_path, messy_parquet):
    path = tmp_path / "faces[1].parquet"
    shutil.copy(messy_parquet[0], path)
    assert path.is_file()
    assert _src(path).num_rows == len(EXPECTED)


def test_parquet_folder_with_brackets_in_name(tmp_path, messy_parquet):
    folder = tmp_path / "faces[v2]"
    folder.mkdir()
    shutil.copy(messy_parquet[0], folder / "train.parquet")
    src = _src(folder)
    assert (src.kind, src.num_rows) == ("parquet", len(EXPECTED))


def test_a_parquet_name_that_cannot_be_read_is_one_clear_error(tmp_path):
    write_parquet(tmp_path / "a.parquet", _faces_bytes(3))
    (tmp_path / "b.parquet").mkdir()  # a folder named like a parquet file: it cannot be opened to hash it
    with pytest.raises(UserError, match=r"--data .*: cannot read .*b\.parquet .*check that it is there and readable"):
        _src(tmp_path)
