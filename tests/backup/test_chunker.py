"""The compiled chunker against a pure-Python reference of the same boundary rule."""

from __future__ import annotations

import io
import os
import random
import stat

import pytest

from atlas_tui.backup import chunker as chunker_module
from atlas_tui.backup.chunker import Chunker, gear_table, mask_bits
from atlas_tui.backup.models import ChunkerParams

_MASK64 = (1 << 64) - 1

PARAMS = [
    ChunkerParams(min_size=64, avg_size=256, max_size=1024),
    ChunkerParams(min_size=512, avg_size=2048, max_size=8192),
    ChunkerParams(min_size=1000, avg_size=4096, max_size=5000),
]


def reference_cut_points(seed: bytes, data: bytes, params: ChunkerParams) -> list[int]:
    """Return every chunk end offset of `data` as a whole stream, computed byte by byte in Python."""
    table = gear_table(seed)
    gear = [int.from_bytes(table[i * 8 : i * 8 + 8], "little") for i in range(256)]
    strict_bits, loose_bits = mask_bits(params)
    strict = (_MASK64 << (64 - strict_bits)) & _MASK64
    loose = (_MASK64 << (64 - loose_bits)) & _MASK64
    cuts = []
    start = 0
    while start < len(data):
        remaining = len(data) - start
        if remaining <= params.min_size:
            cuts.append(len(data))
            break
        limit = min(remaining, params.max_size)
        length = limit
        value = 0
        for i in range(params.min_size, limit):
            value = ((value << 1) + gear[data[start + i]]) & _MASK64
            mask = strict if i < params.avg_size else loose
            if value & mask == 0:
                length = i + 1
                break
        start += length
        cuts.append(start)
    return cuts


def chunk_ends(chunks: list[bytes]) -> list[int]:
    ends, total = [], 0
    for chunk in chunks:
        total += len(chunk)
        ends.append(total)
    return ends


@pytest.mark.parametrize("params", PARAMS, ids=["tiny", "small", "narrow"])
def test_c_matches_reference(params: ChunkerParams) -> None:
    """The C chunker places exactly the reference boundaries on random data."""
    rng = random.Random(7)
    seed = rng.randbytes(32)
    data = rng.randbytes(120_000)

    expected = reference_cut_points(seed, data, params)
    actual = Chunker(seed, params).cut_points(data, final=True)

    assert actual == expected


def test_streaming_matches_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading in small blocks gives the same chunks as one call over all the data."""
    monkeypatch.setattr(chunker_module, "READ_SIZE", 3000)
    rng = random.Random(8)
    seed = rng.randbytes(32)
    data = rng.randbytes(90_000)
    chunker = Chunker(seed, PARAMS[1])

    chunks = list(chunker.split(io.BytesIO(data)))

    assert b"".join(chunks) == data
    assert chunk_ends(chunks) == reference_cut_points(seed, data, PARAMS[1])


@pytest.mark.parametrize("read_size", [100, 700, 3000, 9000])
@pytest.mark.parametrize("params", PARAMS)
def test_resumed_search_matches_reference(
    monkeypatch: pytest.MonkeyPatch, params: ChunkerParams, read_size: int
) -> None:
    """Blocks that end inside a chunk resume the search there and still give the reference boundaries."""
    monkeypatch.setattr(chunker_module, "READ_SIZE", read_size)
    rng = random.Random(read_size)
    seed = rng.randbytes(32)
    data = rng.randbytes(60_000)

    chunks = list(Chunker(seed, params).split(io.BytesIO(data)))

    assert chunk_ends(chunks) == reference_cut_points(seed, data, params)


def test_sizes_within_bounds() -> None:
    """Every chunk but the last is between min and max size, and the average is near avg_size."""
    params = PARAMS[1]
    data = random.Random(9).randbytes(400_000)
    chunks = list(Chunker(b"k" * 32, params).split(io.BytesIO(data)))
    sizes = [len(chunk) for chunk in chunks[:-1]]

    assert min(sizes) > params.min_size
    assert max(sizes) <= params.max_size
    assert params.avg_size * 0.75 < sum(sizes) / len(sizes) < params.avg_size * 2


def test_insertion_moves_few_boundaries() -> None:
    """Ten bytes inserted in the middle of 300 KB change only the chunks around them."""
    rng = random.Random(10)
    data = rng.randbytes(300_000)
    changed = data[:150_000] + b"0123456789" + data[150_000:]
    chunker = Chunker(rng.randbytes(32), PARAMS[1])

    before = set(chunker.split(io.BytesIO(data)))
    after = list(chunker.split(io.BytesIO(changed)))
    new = [chunk for chunk in after if chunk not in before]

    assert len(after) > 100
    assert len(new) <= 3


def test_seed_changes_boundaries() -> None:
    """Two repository keys cut the same data at different places."""
    data = random.Random(11).randbytes(100_000)

    first = Chunker(b"a" * 32, PARAMS[1]).cut_points(data, final=True)
    second = Chunker(b"b" * 32, PARAMS[1]).cut_points(data, final=True)

    assert first != second


def test_empty_stream_no_chunks() -> None:
    """An empty file has no chunks."""
    assert list(Chunker(b"k" * 32, PARAMS[0]).split(io.BytesIO(b""))) == []


def test_read_small_reads_a_file_of_one_chunk(tmp_path) -> None:
    """A regular file of at most `min_size` bytes comes back whole, with its `lstat` fields."""
    chunker = Chunker(b"k" * 32, PARAMS[1])
    path = tmp_path / "small"
    data = random.Random(3).randbytes(PARAMS[1].min_size)
    path.write_bytes(data)
    [(info, read)] = chunker.read_small([bytes(path)])
    expected = os.lstat(path)
    assert read == data
    assert list(chunker.split(io.BytesIO(data))) == [data]
    for field in ("st_mode", "st_ino", "st_dev", "st_size", "st_uid", "st_gid", "st_mtime_ns", "st_ctime_ns"):
        assert getattr(info, field) == getattr(expected, field), field


def test_read_small_leaves_larger_and_special_files_unread(tmp_path) -> None:
    """A larger file, a FIFO, a device and a symlink are not read; a FIFO would block if opened."""
    chunker = Chunker(b"k" * 32, PARAMS[1])
    large = tmp_path / "large"
    large.write_bytes(b"x" * (PARAMS[1].min_size + 1))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(large)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")

    outcomes = chunker.read_small([bytes(large), bytes(fifo), b"/dev/null", bytes(link), bytes(empty)])

    assert [data for _, data in outcomes] == [None, None, None, None, b""]
    assert stat.S_ISFIFO(outcomes[1][0].st_mode)
    assert stat.S_ISCHR(outcomes[2][0].st_mode)
    assert stat.S_ISLNK(outcomes[3][0].st_mode)


def test_read_small_missing_path(tmp_path) -> None:
    """A path that is gone gives the OSError of `lstat` with the path, and the next path is still read."""
    missing = bytes(tmp_path / "gone")
    present = tmp_path / "here"
    present.write_bytes(b"here\n")

    missing_outcome, present_outcome = Chunker(b"k" * 32, PARAMS[1]).read_small([missing, bytes(present)])

    assert isinstance(missing_outcome, FileNotFoundError)
    assert missing_outcome.filename == missing
    assert present_outcome[1] == b"here\n"
