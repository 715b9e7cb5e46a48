"""Volume I/O: EM reader/writer, MRC through mrcfile, atomic writes, clear errors."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoclass.errors import TomoclassError
from tomoclass.io import (
    EMHeader,
    check_finite,
    read_em,
    read_em_header,
    read_volume,
    read_voxel_size,
    volume_shape,
    write_em,
    write_volume,
)
from tomoclass.io import em as em_module
from tomoclass.io import volumes as volumes_module
from tomoclass.io.volumes import read_volume_into

EM_TYPES = {  # EM data type code -> numpy type (TOM toolbox / PyTom libtomc)
    1: np.int8,
    2: np.int16,
    4: np.int32,
    5: np.float32,
    8: np.complex64,
    9: np.float64,
    10: np.complex128,
}
LITTLE_MACHINES = (1, 2, 6)  # VAX, Convex, PC
BIG_MACHINES = (0, 3, 4, 5)  # OS-9, SGI, SUN, Mac


def em_bytes(
    data: np.ndarray,
    code: int,
    *,
    machine: int = 6,
    order: str = "<",
    dims: tuple[int, int, int] | None = None,
    comment: bytes = b"",
    params: tuple[int, ...] = (0,) * 40,
    user: bytes = b"",
    general: int = 0,
) -> bytes:
    """An EM file built by hand: header fields in ``order``, then x-fastest voxels."""
    nz, ny, nx = data.shape
    nx, ny, nz = dims or (nx, ny, nz)
    head = bytes([machine, general, 0, code]) + struct.pack(order + "3i", nx, ny, nz)
    head += comment.ljust(80, b"\0") + struct.pack(order + "40i", *params) + user.ljust(256, b"\0")
    assert len(head) == 512
    stored = np.dtype(EM_TYPES[code]).newbyteorder(order)
    return head + np.ascontiguousarray(data, dtype=stored).tobytes()


def sample(dtype, shape=(3, 4, 5), seed=0) -> np.ndarray:
    """Deterministic test values of ``dtype`` and ``shape`` (``[z, y, x]``)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-100, 100, size=shape)
    if np.issubdtype(dtype, np.complexfloating):
        return (values + 1j * rng.integers(-100, 100, size=shape)).astype(dtype) / 4
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype) / 8
    return values.astype(dtype)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- EM: types and byte orders --------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(EM_TYPES))
def test_em_round_trip_every_type(tmp_path, code):
    data = sample(EM_TYPES[code])
    path = tmp_path / "v.em"
    write_em(path, data)
    back, header = read_em(path)
    assert back.dtype == np.dtype(EM_TYPES[code])
    assert header.type_code == code and header.machine == 6 and header.byteorder == "<"
    np.testing.assert_array_equal(back, data)
    raw = path.read_bytes()
    assert raw[0] == 6 and raw[3] == code and len(raw) == 512 + data.nbytes


@pytest.mark.parametrize("code", sorted(EM_TYPES))
@pytest.mark.parametrize("machine", LITTLE_MACHINES + BIG_MACHINES)
def test_em_reads_hand_built_files_in_both_byte_orders(tmp_path, code, machine):
    order = "<" if machine in LITTLE_MACHINES else ">"
    data = sample(EM_TYPES[code], seed=code)
    path = tmp_path / "hand.em"
    path.write_bytes(em_bytes(data, code, machine=machine, order=order))
    back, header = read_em(path)
    assert header.byteorder == order and header.machine == machine
    assert back.dtype == np.dtype(EM_TYPES[code])  # loaded in native byte order
    np.testing.assert_array_equal(back, data)
    mapped, _ = read_em(path, mmap=True)
    np.testing.assert_array_equal(mapped, data)
    into = np.full(data.shape, np.nan, np.float32)
    if np.issubdtype(data.dtype, np.complexfloating):
        assert_fails(path, "complex", lambda p: read_volume_into(p, into))
    else:
        read_volume_into(path, into)  # float32 read in place (swapped if big endian)
        np.testing.assert_array_equal(into, data.astype(np.float32))


def test_big_endian_file_written_back_little_endian(tmp_path):
    data = sample(np.float32)
    params = tuple(range(-20, 20))
    src = tmp_path / "big.em"
    src.write_bytes(em_bytes(data, 5, machine=3, order=">", comment=b"sgi", params=params))
    back, header = read_em(src)
    write_em(tmp_path / "little.em", back, header)
    again, header2 = read_em(tmp_path / "little.em")
    np.testing.assert_array_equal(again, data)
    assert header2.machine == 6 and header2.byteorder == "<"
    assert header2.params == params and header2.comment.rstrip(b"\0") == b"sgi"


def test_wrong_machine_byte_falls_back_to_the_order_that_fits(tmp_path):
    data = sample(np.float32)
    path = tmp_path / "mislabelled.em"
    path.write_bytes(em_bytes(data, 5, machine=0, order="<"))  # says OS-9, is little endian
    back, header = read_em(path)
    assert header.byteorder == "<"
    np.testing.assert_array_equal(back, data)


def test_unsigned_types_are_widened_losslessly(tmp_path):
    for dtype, code in ((np.uint8, 2), (np.uint16, 4)):
        data = np.array([[[0, 1, np.iinfo(dtype).max]]], dtype=dtype)
        write_em(tmp_path / "u.em", data)
        back, header = read_em(tmp_path / "u.em")
        assert header.type_code == code
        np.testing.assert_array_equal(back, data.astype(np.int64))


def test_unsupported_type_is_refused(tmp_path):
    with pytest.raises(TomoclassError, match=r"x\.em"):
        write_em(tmp_path / "x.em", np.zeros((2, 2, 2), dtype=np.int64))
    assert not (tmp_path / "x.em").exists()


# --- EM: header and axis order --------------------------------------------------------------


def test_header_fields_survive_read_write(tmp_path):
    params = tuple(i * 1000 - 7 for i in range(40))
    header = EMHeader(
        general_purpose=1,
        unused=0,
        comment=b"tilt series 7",
        params=params,
        user_data=b"\x01\x02user",
    )
    write_em(tmp_path / "a.em", sample(np.float32), header)
    _, read_back = read_em(tmp_path / "a.em")
    assert read_back.general_purpose == 1
    assert read_back.comment == b"tilt series 7".ljust(80, b"\0")
    assert read_back.params == params
    assert read_back.user_data == b"\x01\x02user".ljust(256, b"\0")

    other = sample(np.int16, shape=(2, 6, 7))
    write_em(tmp_path / "b.em", other, read_back)
    back, header_b = read_em(tmp_path / "b.em")
    np.testing.assert_array_equal(back, other)
    assert (header_b.nx, header_b.ny, header_b.nz, header_b.type_code) == (7, 6, 2, 2)
    assert header_b.comment == read_back.comment
    assert header_b.params == read_back.params
    assert header_b.user_data == read_back.user_data
    assert header_b.general_purpose == read_back.general_purpose
    raw = (tmp_path / "b.em").read_bytes()
    assert raw[16:512] == (tmp_path / "a.em").read_bytes()[16:512]


def test_zyx_order_with_x_fastest(tmp_path):
    nx, ny, nz = 5, 4, 3
    values = [100 * z + 10 * y + x for z in range(nz) for y in range(ny) for x in range(nx)]
    head = bytes([6, 0, 0, 5]) + struct.pack("<3i", nx, ny, nz) + bytes(496)
    hand = head + struct.pack(f"<{len(values)}f", *values)
    path = tmp_path / "order.em"
    path.write_bytes(hand)

    data, header = read_em(path)
    assert data.shape == (nz, ny, nx) and header.shape == (nz, ny, nx)
    z, y, x = np.indices((nz, ny, nx))
    np.testing.assert_array_equal(data, 100 * z + 10 * y + x)
    assert data[2, 1, 4] == 214

    write_em(tmp_path / "again.em", data)
    assert (tmp_path / "again.em").read_bytes()[512:] == hand[512:]
    write_volume(tmp_path / "order.mrc", data)
    with mrcfile.open(tmp_path / "order.mrc") as mrc:
        assert (mrc.header.nx, mrc.header.ny, mrc.header.nz) == (nx, ny, nz)
        assert mrc.data[2, 1, 4] == 214


def test_2d_array_is_written_with_nz_1(tmp_path):
    image = sample(np.float32, shape=(4, 6))
    write_em(tmp_path / "img.em", image)
    header = read_em_header(tmp_path / "img.em")
    assert (header.nx, header.ny, header.nz) == (6, 4, 1)
    np.testing.assert_array_equal(read_volume(tmp_path / "img.em"), image[None])
    assert volume_shape(tmp_path / "img.em") == (1, 4, 6)


# --- memory mapping -------------------------------------------------------------------------


def test_mmap_equals_normal_read_and_loads_nothing(tmp_path):
    data = sample(np.float32, shape=(6, 5, 4))
    for name in ("m.em", "m.mrc"):
        write_volume(tmp_path / name, data)
        mapped = read_volume(tmp_path / name, mmap=True)
        assert isinstance(mapped, np.memmap)
        assert not mapped.flags.writeable
        assert mapped.shape == (6, 5, 4)
        np.testing.assert_array_equal(mapped, read_volume(tmp_path / name))
    mapped, _ = read_em(tmp_path / "m.em", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.offset == 512


def test_mmap_keeps_stored_type(tmp_path):
    data = sample(np.int16)
    (tmp_path / "big.em").write_bytes(em_bytes(data, 2, machine=5, order=">"))
    mapped = read_volume(tmp_path / "big.em", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.dtype(">i2")
    np.testing.assert_array_equal(mapped.astype(np.float32), data)
    loaded = read_volume(tmp_path / "big.em")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, data)


# --- MRC and EM <-> MRC ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mrc", ".rec", ".map", ".mrcs", ".MRC"])
def test_mrc_round_trip_with_voxel_size(tmp_path, suffix):
    data = sample(np.float32, shape=(4, 6, 8))
    path = tmp_path / f"v{suffix}"
    write_volume(path, data, voxel_size=3.42)
    back = read_volume(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data)
    assert read_voxel_size(path) == pytest.approx(3.42, rel=1e-6)
    assert volume_shape(path) == (4, 6, 8)


def test_voxel_size_absent(tmp_path):
    write_volume(tmp_path / "v.mrc", sample(np.float32))
    assert read_voxel_size(tmp_path / "v.mrc") is None
    write_volume(tmp_path / "v.em", sample(np.float32), voxel_size=2.0)
    assert read_voxel_size(tmp_path / "v.em") is None  # EM files store no voxel size


def test_bad_voxel_size(tmp_path):
    with pytest.raises(TomoclassError, match="voxel_size"):
        write_volume(tmp_path / "v.mrc", sample(np.float32), voxel_size=-1.0)


def test_em_and_mrc_hold_identical_data(tmp_path):
    data = sample(np.float64, shape=(3, 7, 5))  # written as float32 by write_volume
    write_volume(tmp_path / "a.em", data)
    write_volume(tmp_path / "a.mrc", data)
    from_em, from_mrc = read_volume(tmp_path / "a.em"), read_volume(tmp_path / "a.mrc")
    assert from_em.dtype == from_mrc.dtype == np.float32
    np.testing.assert_array_equal(from_em, from_mrc)
    np.testing.assert_array_equal(from_em, data.astype(np.float32))
    assert volume_shape(tmp_path / "a.em") == volume_shape(tmp_path / "a.mrc") == (3, 7, 5)
    assert read_em_header(tmp_path / "a.em").type_code == 5


def test_integer_mrc_read_as_float32(tmp_path):
    data = sample(np.int16)
    with mrcfile.new(tmp_path / "i.mrc") as mrc:
        mrc.set_data(data)
    back = read_volume(tmp_path / "i.mrc")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data)


# --- bad input ------------------------------------------------------------------------------


def assert_fails(path: Path, match: str, *calls) -> None:
    for call in calls:
        with pytest.raises(TomoclassError, match=match) as info:
            call(path)
        assert str(path) in str(info.value)


READERS = (
    read_volume,
    volume_shape,
    read_voxel_size,
    lambda p: read_volume(p, mmap=True),
    lambda p: read_volume_into(p, np.empty((3, 4, 5), np.float32)),
)


@pytest.mark.parametrize("name", ["v.em", "v.mrc"])
def test_read_into_needs_the_volumes_shape(tmp_path, name):
    data = sample(np.float32)
    write_volume(tmp_path / name, data)
    into = np.empty((3, 4, 5), np.float32)
    read_volume_into(tmp_path / name, into)
    np.testing.assert_array_equal(into, data)
    wrong = np.zeros((5, 4, 3), np.float32)
    assert_fails(tmp_path / name, r"volume of shape \(3, 4, 5\), expected \(5, 4, 3\)",
                 lambda p: read_volume_into(p, wrong))  # fmt: skip
    assert not wrong.any()


def test_missing_file(tmp_path):
    assert_fails(tmp_path / "none.em", "no such file", read_em, read_em_header, *READERS)
    assert_fails(tmp_path / "none.mrc", "no such file", *READERS)


def test_short_header(tmp_path):
    path = tmp_path / "short.em"
    path.write_bytes(bytes([6, 0, 0, 5]) + bytes(100))
    assert_fails(path, "shorter than the 512-byte EM header", read_em, *READERS)


def test_truncated_em(tmp_path):
    path = tmp_path / "trunc.em"
    path.write_bytes(em_bytes(sample(np.float32), 5)[:-4])
    assert_fails(path, "truncated", read_em, read_em_header, *READERS)


def test_bad_type_and_machine_codes(tmp_path):
    good = em_bytes(sample(np.float32), 5)
    for byte_at, value, message in ((3, 3, "data type code 3"), (0, 7, "machine code 7")):
        raw = bytearray(good)
        raw[byte_at] = value
        path = tmp_path / f"bad{byte_at}.em"
        path.write_bytes(bytes(raw))
        assert_fails(path, message, read_em, *READERS)


def test_nonpositive_and_absurd_dimensions(tmp_path):
    data = sample(np.float32, shape=(1, 1, 4))
    for dims, message in (((4, 0, 1), "nonpositive"), ((4, -3, 1), "nonpositive")):
        path = tmp_path / "dims.em"
        path.write_bytes(em_bytes(data, 5, dims=dims))
        assert_fails(path, message, read_em, *READERS)
    path = tmp_path / "absurd.em"
    path.write_bytes(em_bytes(data, 5, dims=(4, 1, 1 << 30)))
    assert_fails(path, "absurd", read_em, *READERS)


def test_huge_claim_fails_fast_without_allocating(tmp_path, monkeypatch):
    path = tmp_path / "huge.em"
    path.write_bytes(em_bytes(sample(np.float32, shape=(1, 1, 4)), 5, dims=(10**4, 10**4, 10**4)))

    def must_not_be_called(*args, **kwargs):
        raise AssertionError("tried to read or map the data")

    monkeypatch.setattr(np, "fromfile", must_not_be_called)
    monkeypatch.setattr(em_module.np, "memmap", must_not_be_called)
    assert_fails(path, "truncated", read_em, *READERS)


def test_unknown_extension(tmp_path):
    path = tmp_path / "v.tif"
    path.write_bytes(b"\0" * 600)
    assert_fails(path, "unknown volume file extension", *READERS)
    with pytest.raises(TomoclassError, match=r"v\.tif"):
        write_volume(path, sample(np.float32))


def test_corrupt_mrc(tmp_path):
    path = tmp_path / "corrupt.mrc"
    path.write_bytes(b"\0" * 2000)
    assert_fails(path, "not a valid MRC", *READERS)
    write_volume(tmp_path / "ok.mrc", sample(np.float32))
    truncated = tmp_path / "trunc.mrc"
    truncated.write_bytes((tmp_path / "ok.mrc").read_bytes()[:-8])
    assert_fails(truncated, "MRC", *READERS[:2], *READERS[3:])


def test_complex_em_is_not_a_volume(tmp_path):
    write_em(tmp_path / "c.em", sample(np.complex64))
    assert_fails(tmp_path / "c.em", "complex", read_volume)


@pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")
def test_check_finite(tmp_path):
    good = sample(np.float32)
    check_finite(good, "good.em")
    check_finite(sample(np.int16), "int.em")
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = -np.inf
    with pytest.raises(TomoclassError, match=r"bad\.em: contains NaN or Inf \(2 voxels\)"):
        check_finite(bad, "bad.em")
    write_volume(tmp_path / "bad.mrc", bad)
    with pytest.raises(TomoclassError, match=r"bad\.mrc"):
        check_finite(read_volume(tmp_path / "bad.mrc", mmap=True), tmp_path / "bad.mrc")


# --- atomic writes --------------------------------------------------------------------------


@pytest.fixture(params=["old.em", "old.mrc"])
def existing(tmp_path, request) -> tuple[Path, bytes]:
    path = tmp_path / request.param
    write_volume(path, sample(np.float32, seed=42), voxel_size=1.5)
    return path, path.read_bytes()


def test_bad_data_leaves_existing_file(existing):
    path, before = existing
    junk = np.array([[["a", None], [object(), "b"]]], dtype=object)
    with pytest.raises(TomoclassError, match=re.escape(path.name)):
        write_volume(path, junk)
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_failure_mid_write_leaves_existing_file(existing, monkeypatch):
    path, before = existing

    def half_em(f, volume, dtype):
        f.write(b"\1" * 100)
        raise OSError(28, "No space left on device")

    class HalfMrc:
        def __init__(self, name, overwrite=False):
            Path(name).write_bytes(b"\1" * 100)

        def __enter__(self):
            raise ValueError("simulated failure")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(em_module, "_write_payload", half_em)
    monkeypatch.setattr(volumes_module.mrcfile, "new", HalfMrc)
    with pytest.raises(TomoclassError, match=re.escape(path.name)):
        write_volume(path, sample(np.float32, seed=1))
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_overwrite_off(existing):
    path, before = existing
    with pytest.raises(TomoclassError, match="already exists"):
        write_volume(path, sample(np.float32, seed=1), overwrite=False)
    assert path.read_bytes() == before
    write_volume(path.with_name("new" + path.suffix), sample(np.float32), overwrite=False)


def test_written_file_has_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_volume(tmp_path / "p.em", sample(np.float32))
        write_volume(tmp_path / "p.mrc", sample(np.float32))
    finally:
        os.umask(umask)
    for name in ("p.em", "p.mrc"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []


def test_a_missing_folder_is_made_and_a_file_in_the_way_is_a_clear_error(tmp_path):
    made = tmp_path / "no" / "such" / "v.em"
    write_volume(made, sample(np.float32))
    assert made.is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TomoclassError, match="cannot write"):
        write_volume(blocker / "v.em", sample(np.float32))


def test_particle_chunks_name_the_file_with_nan_and_accept_huge_finite_values(tmp_path):
    """The chunk reader checks finiteness with one sum; a sum that overflows is not an error."""
    from tomoclass.features import _read_chunk

    huge = np.full((4, 4, 4), 3e38, np.float32)
    paths = [tmp_path / f"p{i}.em" for i in range(3)]
    for path in paths:
        write_volume(path, huge)
    stack = _read_chunk(paths, 4)
    assert np.array_equal(stack, np.stack([huge] * 3))
    bad = huge.copy()
    bad[1, 2, 3] = -np.inf
    write_volume(paths[1], bad)
    assert_fails(paths[1], r"contains NaN or Inf \(1 voxel\)", lambda p: _read_chunk(paths, 4))


def _mrc_file(path: Path, data: np.ndarray, *, stack=False, extended=0, tail=b"", mode=None):
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        if stack:
            mrc.set_image_stack()
        if extended:
            mrc.set_extended_header(np.arange(extended, dtype="<i4").view([("v", "<i4")]))
    with open(path, "r+b") as f:
        if mode is not None:
            f.write(struct.pack("<3ii", *data.shape[::-1], mode))  # NX, NY, NZ, MODE
        f.seek(0, os.SEEK_END)
        f.write(tail)
    return path


MRC_CASES = {  # name: (data, options, read by the direct path)
    "float32": (sample(np.float32), {}, True),
    "big endian": (sample(np.float32).astype(">f4"), {}, True),
    "extended header": (sample(np.float32), {"extended": 7}, True),
    "image": (sample(np.float32, shape=(4, 5))[None], {}, True),
    "image stack": (sample(np.float32), {"stack": True}, True),
    "int16": (sample(np.int16), {}, True),
    "float16 (Warp)": (sample(np.float16), {}, True),
    "big-endian int16": (sample(np.int16).astype(">i2"), {}, True),
    "complex64": (sample(np.complex64), {}, False),
    "bytes after the data": (sample(np.float32), {"tail": b"\0" * 4}, False),
    "stack of one volume": (sample(np.float32, shape=(1, 3, 4, 5)), {}, False),
    "mode 3 of float32's size": (sample(np.float32), {"mode": 3}, False),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # mrcfile on bytes after the data
@pytest.mark.parametrize("case", MRC_CASES)
def test_plain_mrc_is_read_directly_and_as_mrcfile_reads_it(tmp_path, case, monkeypatch):
    data, options, direct = MRC_CASES[case]
    path = _mrc_file(tmp_path / "v.mrc", data, **options)
    shape = (1, 4, 5) if case == "image" else (3, 4, 5)
    try:
        expected = volumes_module._read_mrc(path, mmap=False)  # through mrcfile
    except TomoclassError as err:
        expected = err
    if direct:  # mrcfile must not be needed
        monkeypatch.setattr(volumes_module, "_read_mrc", lambda *a: pytest.fail("mrcfile used"))
    into = np.full(shape, np.nan, np.float32)
    if isinstance(expected, TomoclassError):
        message = re.escape(str(expected).split(": ", 1)[1])
        assert_fails(path, message, read_volume, lambda p: read_volume_into(p, into))
    else:
        read_volume_into(path, into)
        assert into.tobytes() == expected.reshape(shape).tobytes()
        volume = read_volume(path)
        assert volume.dtype == np.float32 and volume.flags.writeable
        assert volume.tobytes() == expected.tobytes() and volume.shape == expected.shape
