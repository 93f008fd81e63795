"""Archives against real files: good ones round-trip, hostile ones are refused with their code,
an error that names the entry, nothing written outside the target folder and no descriptor left
open.

Every hostile archive is built here, by zipfile and tarfile writing crafted entries, or byte by
byte (:func:`raw_zip`, :func:`raw_gzip`) where those libraries refuse to write the lie.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import stat
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assistantd.daemon.acquire import archive
from assistantd.daemon.acquire.archive import (
    ArchiveError,
    ArchiveLimits,
    Extracted,
    Kind,
    extract,
    sniff,
    unwrap,
    write_archive,
)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
LIMITS = ArchiveLimits(max_files=20, max_bytes=1 * MIB, max_depth=8)


# Building archives.


def zip_of(path: Path, entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    """A zip written by zipfile, each entry a name (or a crafted ZipInfo) and its data."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for name, data in entries:
            zipped.writestr(name, data)
    return path


def zip_entry(name: str, mode: int) -> zipfile.ZipInfo:
    """A ZipInfo made on Unix with the given file mode (type bits included)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def tgz_of(
    path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes]], **options: str | int
) -> Path:
    """A .tar.gz written by tarfile, each member a crafted TarInfo and its data."""
    with tarfile.open(path, "w:gz", **options) as tar:  # type: ignore[call-overload]
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, **fields: str | int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@dataclass
class RawEntry:
    """One zip entry as the bytes will say it, true or not."""

    name: bytes
    data: bytes = b""  # as stored (already compressed for DEFLATED)
    size: int | None = None  # the uncompressed size declared; len(data) if None
    crc: int | None = None  # zlib.crc32(data) if None
    method: int = zipfile.ZIP_STORED
    flags: int = 0
    mode: int = 0o100644


def raw_zip(path: Path, entries: Iterable[RawEntry]) -> Path:
    """A zip written byte by byte: local headers, data, central directory, end record."""
    body = bytearray()
    directory = bytearray()
    count = 0
    for entry in entries:
        size = len(entry.data) if entry.size is None else entry.size
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        common = (entry.flags, entry.method, 0, 0x21, crc, len(entry.data), size, len(entry.name))
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, *common, 0) + entry.name + entry.data
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            0x314,
            20,
            *common,
            0,
            0,
            0,
            0,
            entry.mode << 16,
            offset,
        )
        directory += entry.name
        count += 1
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


def raw_gzip(path: Path, deflated: bytes) -> Path:
    """A gzip file around a raw deflate stream (CRC and length left zero: nobody reaches them)."""
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + deflated + bytes(8))
    return path


def deflated(data: bytes) -> bytes:
    """``data`` as a raw deflate stream that more blocks may follow (ends on a full flush)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


FINAL_BLOCK = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty last block


@functools.cache
def zeros_deflated(size: int) -> bytes:
    """``size`` zero bytes (a multiple of 1 MiB) as raw deflate blocks, without a last block.

    Compressing a gigabyte takes seconds; one mebibyte compressed up to a full flush does not
    depend on what came before it, so its bytes repeated are the gigabyte's (about 1 MB).
    """
    return deflated(bytes(MIB)) * (size // MIB)


def tree(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every path under ``folder``: its type, content, and permission bits."""
    found: dict[str, tuple[str, bytes, int]] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        name = path.relative_to(folder).as_posix()
        if stat.S_ISDIR(info.st_mode):
            found[name] = ("dir", b"", stat.S_IMODE(info.st_mode))
        elif stat.S_ISREG(info.st_mode):
            found[name] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode))
        else:
            found[name] = ("other", b"", stat.S_IMODE(info.st_mode))
    return found


def outside(top: Path, into: Path) -> list[str]:
    """Every path under ``top`` except what is inside ``into``: what an escape would change."""
    return sorted(str(path) for path in top.rglob("*") if path != into and into not in path.parents)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# The hostile corpus: one builder per case, each writing its archive into the folder it is given.


@dataclass
class Hostile:
    archive: Path
    kind: Kind
    code: str
    entry: str | None  # the entry the error must name; None: the archive as a whole is refused
    limits: ArchiveLimits = field(default=LIMITS)


Builder = Callable[[Path], Hostile]
HOSTILE: list[Builder] = []


def hostile(build: Builder) -> Builder:
    HOSTILE.append(build)
    return build


@hostile
def zip_absolute_path(folder: Path) -> Hostile:
    # An absolute name pointing next to `into`: a naive join would write it there.
    name = str(folder.parent / "work" / "escaped.txt")
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def tar_absolute_path(folder: Path) -> Hostile:
    name = str(folder.parent / "work" / "escaped.txt")
    return Hostile(tgz_of(folder / "a.tgz", [(member(name), b"x")]), "tar.gz", "unsafe_path", name)


@hostile
def zip_parent_path(folder: Path) -> Hostile:
    name = "../escaped.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def tar_parent_path_inside(folder: Path) -> Hostile:
    name = "a/../../escaped.txt"
    archive = tgz_of(folder / "a.tgz", [(member("a/ok.txt"), b"ok"), (member(name), b"x")])
    return Hostile(archive, "tar.gz", "unsafe_path", name)


@hostile
def zip_backslash(folder: Path) -> Hostile:
    name = "..\\escaped.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def zip_drive_letter(folder: Path) -> Hostile:
    name = "C:/Windows/escaped.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def zip_nul_in_name(folder: Path) -> Hostile:
    # zipfile reads this entry's `filename` as "ok.txt" (cut at the NUL); an unzip in C may too.
    archive = raw_zip(folder / "a.zip", [RawEntry(b"ok.txt\x00.sh", b"x")])
    return Hostile(archive, "zip", "unsafe_path", "ok.txt\x00.sh")


@hostile
def tar_nul_in_name(folder: Path) -> Hostile:
    # A pax header carries the name whole, NUL included.
    name = "é\x00.sh"
    archive = tgz_of(folder / "a.tgz", [(member(name), b"x")], format=tarfile.PAX_FORMAT)
    return Hostile(archive, "tar.gz", "unsafe_path", name)


@hostile
def tar_control_character(folder: Path) -> Hostile:
    name = "notes\n.txt"
    return Hostile(tgz_of(folder / "a.tgz", [(member(name), b"x")]), "tar.gz", "unsafe_path", name)


@hostile
def tar_name_not_utf8(folder: Path) -> Hostile:
    name = "\udcff.txt"  # the byte 0xff, as tarfile reads it back
    archive = tgz_of(
        folder / "a.tgz",
        [(member(name), b"x")],
        format=tarfile.USTAR_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    )
    return Hostile(archive, "tar.gz", "unsafe_path", name)


@hostile
def zip_empty_segment(folder: Path) -> Hostile:
    name = "a//b.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def zip_dot_segment(folder: Path) -> Hostile:
    name = "a/./b.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def zip_name_too_long(folder: Path) -> Hostile:
    name = "x" * 256
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "unsafe_path", name)


@hostile
def zip_symlink(folder: Path) -> Hostile:
    entry = zip_entry("passwd", 0o120777)
    return Hostile(zip_of(folder / "a.zip", [(entry, b"/etc/passwd")]), "zip", "link", "passwd")


@hostile
def zip_symlink_made_on_dos(folder: Path) -> Hostile:
    # "Made by" MS-DOS, link bits all the same: refused rather than trusted to some other unzip.
    entry = zip_entry("passwd", 0o120777)
    entry.create_system = 0
    return Hostile(zip_of(folder / "a.zip", [(entry, b"/etc/passwd")]), "zip", "link", "passwd")


@hostile
def tar_symlink(folder: Path) -> Hostile:
    link = member("passwd", tarfile.SYMTYPE, linkname="/etc/passwd")
    return Hostile(tgz_of(folder / "a.tgz", [(link, b"")]), "tar.gz", "link", "passwd")


@hostile
def tar_symlink_inside(folder: Path) -> Hostile:
    # One that stays inside is refused too: every link is.
    link = member("b.txt", tarfile.SYMTYPE, linkname="a.txt")
    archive = tgz_of(folder / "a.tgz", [(member("a.txt"), b"a"), (link, b"")])
    return Hostile(archive, "tar.gz", "link", "b.txt")


@hostile
def tar_hardlink(folder: Path) -> Hostile:
    link = member("shadow", tarfile.LNKTYPE, linkname="/etc/shadow")
    return Hostile(tgz_of(folder / "a.tgz", [(link, b"")]), "tar.gz", "link", "shadow")


@hostile
def tar_character_device(folder: Path) -> Hostile:
    device = member("null", tarfile.CHRTYPE, devmajor=1, devminor=3)
    return Hostile(tgz_of(folder / "a.tgz", [(device, b"")]), "tar.gz", "special_file", "null")


@hostile
def tar_block_device(folder: Path) -> Hostile:
    device = member("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)
    return Hostile(tgz_of(folder / "a.tgz", [(device, b"")]), "tar.gz", "special_file", "sda")


@hostile
def tar_fifo(folder: Path) -> Hostile:
    fifo = member("pipe", tarfile.FIFOTYPE)
    return Hostile(tgz_of(folder / "a.tgz", [(fifo, b"")]), "tar.gz", "special_file", "pipe")


@hostile
def tar_sparse(folder: Path) -> Hostile:
    sparse = member("holes.bin", tarfile.GNUTYPE_SPARSE)
    archive = tgz_of(folder / "a.tgz", [(sparse, b"")], format=tarfile.GNU_FORMAT)
    return Hostile(archive, "tar.gz", "special_file", "holes.bin")


@hostile
def zip_fifo(folder: Path) -> Hostile:
    entry = zip_entry("pipe", stat.S_IFIFO | 0o644)
    return Hostile(zip_of(folder / "a.zip", [(entry, b"")]), "zip", "special_file", "pipe")


@hostile
def zip_socket(folder: Path) -> Hostile:
    entry = zip_entry("socket", stat.S_IFSOCK | 0o644)
    return Hostile(zip_of(folder / "a.zip", [(entry, b"")]), "zip", "special_file", "socket")


@hostile
def zip_case_collision(folder: Path) -> Hostile:
    archive = zip_of(folder / "a.zip", [("A.txt", b"upper"), ("a.txt", b"lower")])
    return Hostile(archive, "zip", "name_collision", "a.txt")


@hostile
def zip_case_collision_of_folders(folder: Path) -> Hostile:
    archive = zip_of(folder / "a.zip", [("Src/a.js", b"a"), ("src/b.js", b"b")])
    return Hostile(archive, "zip", "name_collision", "src/b.js")


@hostile
def tar_nfc_nfd_collision(folder: Path) -> Hostile:
    composed, decomposed = "caf\u00e9.txt", "cafe\u0301.txt"
    archive = tgz_of(folder / "a.tgz", [(member(composed), b"1"), (member(decomposed), b"2")])
    return Hostile(archive, "tar.gz", "name_collision", decomposed)


@hostile
def zip_file_then_folder(folder: Path) -> Hostile:
    archive = zip_of(folder / "a.zip", [("a", b"file"), ("a/b.txt", b"in a folder")])
    return Hostile(archive, "zip", "name_collision", "a/b.txt")


@hostile
def tar_folder_then_file(folder: Path) -> Hostile:
    archive = tgz_of(folder / "a.tgz", [(member("a", tarfile.DIRTYPE), b""), (member("a"), b"x")])
    return Hostile(archive, "tar.gz", "name_collision", "a")


@hostile
def zip_duplicate_names(folder: Path) -> Hostile:
    archive = raw_zip(folder / "a.zip", [RawEntry(b"x.txt", b"first"), RawEntry(b"x.txt", b"2")])
    return Hostile(archive, "zip", "name_collision", "x.txt")


@hostile
def zip_too_many_files(folder: Path) -> Hostile:
    entries = [(f"f{number:02}.txt", b"x") for number in range(LIMITS.max_files + 1)]
    # Refused from the count in its end record, before any entry is read: none is named.
    return Hostile(zip_of(folder / "a.zip", entries), "zip", "too_many_files", None)


@hostile
def tar_too_many_folders(folder: Path) -> Hostile:
    # Folders count: an archive of folder entries alone would otherwise make any number.
    folders = [(member(f"d{number:02}", tarfile.DIRTYPE), b"") for number in range(21)]
    return Hostile(tgz_of(folder / "a.tgz", folders), "tar.gz", "too_many_files", "d20")


@hostile
def zip_too_deep(folder: Path) -> Hostile:
    name = "d/" * (LIMITS.max_depth + 1) + "deep.txt"
    return Hostile(zip_of(folder / "a.zip", [(name, b"x")]), "zip", "too_deep", name)


@hostile
def tar_too_deep(folder: Path) -> Hostile:
    name = "/".join(["d"] * (LIMITS.max_depth + 1))  # tarfile drops a folder's last "/"
    directory = member(name, tarfile.DIRTYPE)
    return Hostile(tgz_of(folder / "a.tgz", [(directory, b"")]), "tar.gz", "too_deep", name)


@hostile
def zip_declared_too_large(folder: Path) -> Hostile:
    half = bytes(600 * KIB)
    archive = zip_of(folder / "a.zip", [("one.bin", half), ("two.bin", half)])
    return Hostile(archive, "zip", "too_large", "two.bin")


@hostile
def zip_bomb(folder: Path) -> Hostile:
    # 1 GiB of zeros in about 1 MB, sizes declared honestly: refused before a byte is written.
    bomb = RawEntry(b"zeros.bin", zeros_deflated(GIB) + FINAL_BLOCK, GIB, 0, zipfile.ZIP_DEFLATED)
    archive = raw_zip(folder / "a.zip", [RawEntry(b"readme.txt", b"hi"), bomb])
    return Hostile(archive, "zip", "too_large", "zeros.bin")


@hostile
def zip_bomb_declaring_a_small_size(folder: Path) -> Hostile:
    # The central directory says 1,000 bytes; the data inflates to 1 GiB. Reading stops at the
    # declared size, where the CRC (of the gigabyte, as a lying archiver would put) is wrong.
    bomb = RawEntry(
        b"zeros.bin", zeros_deflated(GIB) + FINAL_BLOCK, 1000, 0x12345678, zipfile.ZIP_DEFLATED
    )
    return Hostile(raw_zip(folder / "a.zip", [bomb]), "zip", "corrupt", "zeros.bin")


@hostile
def tar_bomb(folder: Path) -> Hostile:
    # A member of 1 GiB of zeros after a small one: refused at its header.
    first = member("readme.txt", size=2).tobuf(tarfile.USTAR_FORMAT) + b"hi".ljust(512, b"\0")
    header = member("zeros.bin", size=GIB).tobuf(tarfile.USTAR_FORMAT)
    stream = deflated(first + header) + zeros_deflated(GIB) + deflated(bytes(10 * KIB))
    archive = raw_gzip(folder / "a.tgz", stream + FINAL_BLOCK)
    return Hostile(archive, "tar.gz", "too_large", "zeros.bin")


@hostile
def tar_huge_pax_header(folder: Path) -> Hostile:
    # tarfile would read this extended header whole: 1 GiB of memory from 1 MB of gzip.
    pax = member("././@PaxHeader", tarfile.XHDTYPE, size=GIB).tobuf(tarfile.USTAR_FORMAT)
    first = member("readme.txt", size=2).tobuf(tarfile.USTAR_FORMAT) + b"hi".ljust(512, b"\0")
    stream = deflated(first + pax) + zeros_deflated(GIB) + deflated(bytes(10 * KIB))
    archive = raw_gzip(folder / "a.tgz", stream + FINAL_BLOCK)
    return Hostile(archive, "tar.gz", "corrupt", "readme.txt")


@hostile
def tar_one_folder_listed_many_times(folder: Path) -> Hostile:
    listed = [(member("src", tarfile.DIRTYPE), b"") for _ in range(LIMITS.max_files + 1)]
    return Hostile(tgz_of(folder / "a.tgz", listed), "tar.gz", "too_many_files", "src")


@hostile
def tar_size_header_larger_than_data(folder: Path) -> Hostile:
    header = member("short.bin", size=100 * KIB).tobuf(tarfile.USTAR_FORMAT)
    archive = raw_gzip(folder / "a.tgz", deflated(header + bytes(1000)) + FINAL_BLOCK)
    return Hostile(archive, "tar.gz", "corrupt", "short.bin")


@hostile
def tar_size_header_smaller_than_data(folder: Path) -> Hostile:
    # The rest of the data is read as the next header; tarfile alone would end the archive there.
    header = member("long.bin", size=10).tobuf(tarfile.USTAR_FORMAT)
    data = b"#!/bin/sh\n" + b"echo pwned\n" * 200
    padded = data.ljust(-(-len(data) // 512) * 512, b"\0")
    stream = deflated(header + padded + bytes(1024)) + FINAL_BLOCK
    return Hostile(raw_gzip(folder / "a.tgz", stream), "tar.gz", "corrupt", "long.bin")


@hostile
def tar_negative_size(folder: Path) -> Hostile:
    # GNU tar's base-256 numbers can be negative; a size that shrinks the declared total.
    header = member("minus.bin", size=-MIB).tobuf(tarfile.GNU_FORMAT)
    stream = deflated(header + bytes(1024)) + FINAL_BLOCK
    return Hostile(raw_gzip(folder / "a.tgz", stream), "tar.gz", "corrupt", "minus.bin")


@hostile
def tar_truncated(folder: Path) -> Hostile:
    good = tgz_of(folder / "good.tgz", [(member("noise.bin"), os.urandom(64 * KIB))])
    archive = folder / "a.tgz"
    archive.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return Hostile(archive, "tar.gz", "corrupt", "noise.bin")


@hostile
def zip_truncated(folder: Path) -> Hostile:
    good = zip_of(folder / "good.zip", [("noise.bin", os.urandom(64 * KIB))])
    archive = folder / "a.zip"
    archive.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return Hostile(archive, "zip", "not_an_archive", None)


@hostile
def zip_damaged_data(folder: Path) -> Hostile:
    data = os.urandom(4 * KIB)
    archive = raw_zip(folder / "a.zip", [RawEntry(b"noise.bin", data, crc=zlib.crc32(data) ^ 1)])
    return Hostile(archive, "zip", "corrupt", "noise.bin")


@hostile
def tar_gz_that_is_a_zip(folder: Path) -> Hostile:
    archive = zip_of(folder / "a.tgz", [("a.txt", b"x")])
    return Hostile(archive, "tar.gz", "not_an_archive", None)


@hostile
def gzip_of_text(folder: Path) -> Hostile:
    archive = folder / "a.tgz"
    archive.write_bytes(gzip.compress(b"hello, this is no tar\n" * 100))
    return Hostile(archive, "tar.gz", "not_an_archive", None)


@hostile
def empty_file_as_zip(folder: Path) -> Hostile:
    (folder / "a.zip").touch()
    return Hostile(folder / "a.zip", "zip", "not_an_archive", None)


@hostile
def empty_file_as_tar_gz(folder: Path) -> Hostile:
    (folder / "a.tgz").touch()
    return Hostile(folder / "a.tgz", "tar.gz", "not_an_archive", None)


@hostile
def zip_encrypted(folder: Path) -> Hostile:
    archive = raw_zip(folder / "a.zip", [RawEntry(b"secret.txt", b"x" * 12, flags=0x1)])
    return Hostile(archive, "zip", "unsupported", "secret.txt")


@hostile
def zip_bzip2(folder: Path) -> Hostile:
    entry = zipfile.ZipInfo("a.txt")
    entry.compress_type = zipfile.ZIP_BZIP2
    return Hostile(zip_of(folder / "a.zip", [(entry, b"x" * 100)]), "zip", "unsupported", "a.txt")


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("build", HOSTILE, ids=lambda build: build.__name__)
def test_a_hostile_archive_is_refused_and_nothing_escapes(build: Builder, tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    case = build(archives)
    into = tmp_path / "work" / "into"
    into.mkdir(parents=True)
    before = outside(tmp_path, into)
    descriptors = open_descriptors()

    with pytest.raises(ArchiveError) as caught:
        extract(case.archive, case.kind, into, case.limits)

    error = caught.value
    assert error.code == case.code, error
    assert error.entry == case.entry
    if case.entry is not None:
        assert repr(case.entry)[:100] in str(error)
    assert outside(tmp_path, into) == before
    assert open_descriptors() == descriptors
    left = [info for info in tree(into).values()]
    assert len(left) <= case.limits.max_files
    assert sum(len(content) for _, content, _ in left) <= case.limits.max_bytes
    assert all(kind != "other" for kind, _, _ in left)


def test_a_zip_checked_whole_writes_nothing_when_refused(tmp_path: Path) -> None:
    """Every zip refusal comes from the central directory, before the first file is made."""
    archive = zip_bomb(tmp_path)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ArchiveError, match=r"zeros\.bin"):
        extract(archive.archive, "zip", into, LIMITS)
    assert list(into.iterdir()) == []


def test_a_tar_bomb_is_stopped_at_its_header(tmp_path: Path) -> None:
    case = tar_bomb(tmp_path)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ArchiveError, match=r"zeros\.bin"):
        extract(case.archive, "tar.gz", into, LIMITS)
    assert tree(into) == {"readme.txt": ("file", b"hi", 0o644)}


def test_a_huge_tar_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    case = tar_huge_pax_header(tmp_path)
    into = tmp_path / "into"
    into.mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="extended header"):
            extract(case.archive, "tar.gz", into, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # tarfile inflates one 10 KiB record of gzip at a time, up to 10 MiB of zeros (a few copies
    # at once); reading the header would take a gigabyte.
    assert peak < 64 * MIB


def test_a_lying_zip_inflates_no_further_than_it_declares(tmp_path: Path) -> None:
    case = zip_bomb_declaring_a_small_size(tmp_path)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ArchiveError):
        extract(case.archive, "zip", into, LIMITS)
    assert (into / "zeros.bin").stat().st_size <= 1000


def test_the_bytes_written_are_counted_whatever_the_reader_declares(tmp_path: Path) -> None:
    """No reader of the standard library yields more than an entry declares, so the count of
    bytes written (the last guard against a bomb) is reached through an endless reader."""

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = bytes(len(buffer))
            return len(buffer)

    into = tmp_path / "into"
    into.mkdir()
    root = os.open(into, os.O_RDONLY | os.O_DIRECTORY)
    try:
        output = archive._Output(root, LIMITS)
        with pytest.raises(ArchiveError, match=r"endless\.bin") as caught:
            output.file(("endless.bin",), "endless.bin", io.BufferedReader(Endless()), False)
    finally:
        os.close(root)
    assert caught.value.code == "too_large"
    assert 0 < (into / "endless.bin").stat().st_size <= LIMITS.max_bytes


# Good archives.


def make_folder(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """An assistant folder with what an archive must carry and what it must leave out; returns
    the tree an extract of its archive must give."""
    (folder / "src" / "lib").mkdir(parents=True)
    (folder / "assets" / "empty").mkdir(parents=True)
    (folder / "assistant.json").write_text('{"name": "Translator"}\n')
    (folder / "src" / "process.js").write_text("module.exports = {}\n")
    (folder / "src" / "lib" / "data.bin").write_bytes(os.urandom(100 * KIB))
    (folder / "src" / "lib" / "naïve café.txt").write_text("unicode\n")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o700)
    (folder / ".env.example").write_text("KEY=\n")
    for modules in (folder / "node_modules", folder / "src" / "node_modules"):
        (modules / "left-pad").mkdir(parents=True)
        (modules / "left-pad" / "index.js").write_text("module.exports = 1\n")
        (modules / ".bin").mkdir()
        (modules / ".bin" / "left-pad").symlink_to("../left-pad/index.js")
    (folder / "link-to-passwd").symlink_to("/etc/passwd")
    os.mkfifo(folder / "pipe")

    expected = tree(folder)
    skipped = ("node_modules", "src/node_modules", "link-to-passwd", "pipe")
    expected = {
        name: (kind, content, 0o755 if kind == "dir" or mode & 0o111 else 0o644)
        for name, (kind, content, mode) in expected.items()
        if not any(name == skip or name.startswith(f"{skip}/") for skip in skipped)
    }
    return expected


@pytest.mark.parametrize(("kind", "suffix"), [("zip", ".zip"), ("tar.gz", ".tar.gz")])
def test_an_archive_written_extracts_to_the_same_files(
    kind: Kind, suffix: str, tmp_path: Path
) -> None:
    folder = tmp_path / "assistant"
    folder.mkdir()
    expected = make_folder(folder)
    dest = tmp_path / f"out{suffix}"

    written = write_archive(folder, dest, kind)
    into = tmp_path / "into"
    into.mkdir()
    extracted = extract(dest, kind, into, ArchiveLimits())

    assert tree(into) == expected
    assert expected["run.sh"][2] == 0o755
    files = [content for kind_, content, _ in expected.values() if kind_ == "file"]
    assert written.files == extracted.files == len(files)
    assert written.bytes == extracted.bytes == sum(map(len, files))
    assert written.directories == extracted.directories == len(expected) - len(files)
    assert sniff(dest) == kind
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_same_folder_gives_the_same_bytes(kind: Kind, tmp_path: Path) -> None:
    folder = tmp_path / "assistant"
    folder.mkdir()
    make_folder(folder)
    first, second = tmp_path / "first", tmp_path / "second"
    write_archive(folder, first, kind)
    write_archive(folder, second, kind)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_has_no_owner_and_no_top_folder(kind: Kind, tmp_path: Path) -> None:
    folder = tmp_path / "assistant"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "process.js").write_text("x")
    dest = tmp_path / "out"
    write_archive(folder, dest, kind)
    if kind == "zip":
        with zipfile.ZipFile(dest) as zipped:
            assert zipped.namelist() == ["src/", "src/process.js"]
    else:
        with tarfile.open(dest, "r:gz") as tar:
            members = tar.getmembers()
        assert [info.name for info in members] == ["src", "src/process.js"]
        assert {(info.uid, info.gid, info.uname, info.gname) for info in members} == {
            (0, 0, "", "")
        }


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_export_replaces_nothing(kind: Kind, tmp_path: Path) -> None:
    folder = tmp_path / "assistant"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    dest = tmp_path / "out"
    dest.write_text("precious")
    with pytest.raises(FileExistsError):
        write_archive(folder, dest, kind)
    assert dest.read_text() == "precious"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["assistant", "out"]


def test_an_archive_written_inside_its_folder_leaves_itself_out(tmp_path: Path) -> None:
    folder = tmp_path / "assistant"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    write_archive(folder, folder / "self.zip", "zip")
    with zipfile.ZipFile(folder / "self.zip") as zipped:
        assert zipped.namelist() == ["a.txt"]


def test_modes_come_from_nothing_but_the_execute_bit(tmp_path: Path) -> None:
    archive_path = tgz_of(
        tmp_path / "modes.tgz",
        [
            (member("setuid", mode=0o4777), b"x"),
            (member("private", mode=0o600), b"x"),
            (member("sticky", tarfile.DIRTYPE, mode=0o1777), b""),
            (member("sticky/group-exec", mode=0o2010), b"x"),
        ],
    )
    into = tmp_path / "into"
    into.mkdir()
    previous = os.umask(0o077)  # the daemon's umask does not decide either
    try:
        extract(archive_path, "tar.gz", into, LIMITS)
    finally:
        os.umask(previous)
    assert {name: mode for name, (_, _, mode) in tree(into).items()} == {
        "private": 0o644,
        "setuid": 0o755,
        "sticky": 0o755,
        "sticky/group-exec": 0o755,
    }


def test_folders_implied_by_names_are_made(tmp_path: Path) -> None:
    archive_path = zip_of(tmp_path / "a.zip", [("a/b/c.txt", b"c"), ("a/d.txt", b"d")])
    into = tmp_path / "into"
    into.mkdir()
    assert extract(archive_path, "zip", into, LIMITS) == Extracted(2, 2, 2)
    assert tree(into) == {
        "a": ("dir", b"", 0o755),
        "a/b": ("dir", b"", 0o755),
        "a/b/c.txt": ("file", b"c", 0o644),
        "a/d.txt": ("file", b"d", 0o644),
    }


def test_a_tar_made_of_dot_slash_names_extracts(tmp_path: Path) -> None:
    """What ``tar czf pack.tgz -C folder .`` makes: ``./``, ``./a``, ... A folder listed twice
    in the same spelling is no collision."""
    archive_path = tgz_of(
        tmp_path / "a.tgz",
        [
            (member("./", tarfile.DIRTYPE), b""),
            (member("./src", tarfile.DIRTYPE), b""),
            (member("./src/", tarfile.DIRTYPE), b""),
            (member("./src/process.js"), b"js"),
        ],
    )
    into = tmp_path / "into"
    into.mkdir()
    extract(archive_path, "tar.gz", into, LIMITS)
    assert tree(into) == {"src": ("dir", b"", 0o755), "src/process.js": ("file", b"js", 0o644)}


def test_a_utf8_name_without_the_utf8_flag_is_read_as_utf8(tmp_path: Path) -> None:
    archive_path = raw_zip(tmp_path / "a.zip", [RawEntry("café.txt".encode(), b"x")])
    into = tmp_path / "into"
    into.mkdir()
    extract(archive_path, "zip", into, LIMITS)
    assert list(tree(into)) == ["café.txt"]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_empty_archive_extracts_to_nothing(kind: Kind, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    write_archive(folder, tmp_path / "out", kind)
    into = tmp_path / "into"
    into.mkdir()
    assert extract(tmp_path / "out", kind, into, LIMITS) == Extracted(0, 0, 0)


def test_extract_wants_an_empty_folder(tmp_path: Path) -> None:
    archive_path = zip_of(tmp_path / "a.zip", [("a.txt", b"new")])
    into = tmp_path / "into"
    into.mkdir()
    (into / "a.txt").write_text("old")
    with pytest.raises(ValueError, match="not empty"):
        extract(archive_path, "zip", into, LIMITS)
    assert (into / "a.txt").read_text() == "old"


# unwrap


def test_unwrap_gives_the_one_top_folder_and_drops_mac_junk(tmp_path: Path) -> None:
    (tmp_path / "repo-main" / "src").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "repo-main").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "repo-main" / "._src").write_bytes(b"\0")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    assert unwrap(tmp_path) == tmp_path / "repo-main"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["repo-main"]


@pytest.mark.parametrize(
    "entries",
    [
        [],
        ["assistant.json"],
        ["one/", "two/"],
        ["src/", "assistant.json"],
        ["__MACOSX/"],
    ],
)
def test_unwrap_keeps_a_folder_without_one_top_folder(entries: list[str], tmp_path: Path) -> None:
    for entry in entries:
        if entry.endswith("/"):
            (tmp_path / entry).mkdir()
        else:
            (tmp_path / entry).write_text("{}")
    assert unwrap(tmp_path) == tmp_path


def test_unwrap_does_not_follow_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "top").symlink_to(tmp_path / "elsewhere")
    assert unwrap(folder) == folder


# sniff


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"PK\x03\x04" + bytes(26), "zip"),
        (b"PK\x05\x06" + bytes(18), "zip"),
        (gzip.compress(b"anything"), "tar.gz"),
        (b'{"name": "x"}', "json"),
        (b' \r\n\t {"name": "x"}', "json"),
        (b"{", "json"),
        (b"[1, 2]", None),
        (b"", None),
        (b"    ", None),
        (b"hello", None),
        (b"PK", None),
        (b"\xef\xbb\xbf{}", None),
        (b" " * (70 * KIB) + b"{}", None),
    ],
)
def test_sniff_tells_by_the_first_bytes(content: bytes, kind: str | None, tmp_path: Path) -> None:
    path = tmp_path / "download"
    path.write_bytes(content)
    assert sniff(path) == kind


def test_sniff_knows_an_empty_zip(tmp_path: Path) -> None:
    zip_of(tmp_path / "empty.zip", [])
    assert sniff(tmp_path / "empty.zip") == "zip"


def test_a_zip_with_too_many_entries_is_refused_from_its_end_record(tmp_path: Path) -> None:
    # Refused before zipfile reads the central directory (which costs memory per entry):
    # the count comes from the end record alone, whatever the entries hold.
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        for number in range(50):
            zipped.writestr(f"f{number}.txt", b"")
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ArchiveError) as caught:
        extract(path, "zip", into, ArchiveLimits(max_files=20))
    assert caught.value.code == "too_many_files"
    assert "holds 50 entries" in caught.value.message
    assert list(into.iterdir()) == []
