"""EM files (TOM toolbox / PyTom format): reader and writer without extra dependencies.

Layout: a 512-byte header, then the voxels with x running fastest, then y, then z. In numpy
the data are therefore ``[z, y, x]`` (C order), the same as an MRC volume read by mrcfile.

Header (byte offsets):

* 0: machine code. Byte order as in the TOM library that PyTom ships
  (``tom_io_em_is_swaped``): 1 VAX, 2 Convex and 6 PC are little endian; 0 OS-9, 3 SGI,
  4 SUN and 5 Mac are big endian. Since that byte is not always set correctly by other
  writers, a file whose dimensions only make sense in the other byte order (they match the
  file size exactly) is read in that order.
* 1: general purpose; 2: unused ("1 = header abandoned" in TOM); 3: data type code.
* 4-15: int32 nx, ny, nz.
* 16-95: 80-byte comment. 96-255: 40 int32 parameters (TOM: voltage, Cs, ..., tilt angle
  x1000 at index 18). 256-511: 256 bytes of user data.

Data type codes (TOM ``tom_io_em_emtype2iotype``): 1 int8, 2 int16, 4 int32, 5 float32,
8 complex64 (two float32), 9 float64, 10 complex128 (two float64). The format has no
unsigned types: :func:`write_em` widens uint8 to int16 and uint16 to int32 (lossless).
Files are always written little endian with machine code 6 (PC), as PyTom writes them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.io.files import PathLike, atomic_output

ByteOrder = Literal["<", ">"]

HEADER_SIZE = 512
MAX_DIM = 1 << 20  # per-axis sanity bound (EMAN2 uses the same); the file size is checked too

MACHINE_BYTEORDER: dict[int, ByteOrder] = {
    0: ">",  # OS-9
    1: "<",  # VAX
    2: "<",  # Convex
    3: ">",  # SGI
    4: ">",  # SUN
    5: ">",  # Mac
    6: "<",  # PC
}
MACHINE_PC = 6

TYPE_TO_DTYPE: dict[int, np.dtype] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.float32),
    8: np.dtype(np.complex64),
    9: np.dtype(np.float64),
    10: np.dtype(np.complex128),
}
DTYPE_TO_TYPE: dict[np.dtype, int] = {dt: code for code, dt in TYPE_TO_DTYPE.items()}
# Types the format lacks, written as the smallest EM type that holds every value.
WIDENED: dict[np.dtype, np.dtype] = {
    np.dtype(np.bool_): np.dtype(np.int8),
    np.dtype(np.uint8): np.dtype(np.int16),
    np.dtype(np.uint16): np.dtype(np.int32),
    np.dtype(np.float16): np.dtype(np.float32),
}

_HEAD = struct.Struct("4B3i")  # machine, general purpose, unused, type, nx, ny, nz
_PARAMS = struct.Struct("40i")
_COMMENT = slice(16, 96)
_PARAMS_AT = slice(96, 256)
_USER = slice(256, 512)


@dataclass(frozen=True)
class EMHeader:
    """Every field of a 512-byte EM header.

    ``nx, ny, nz`` are the sizes along x (fastest), y and z; the numpy shape is
    ``(nz, ny, nx)`` (:attr:`shape`). ``byteorder`` is the order the file was read in;
    writing always uses little endian. ``comment`` (80 bytes) and ``user_data`` (256 bytes)
    are raw bytes, zero-padded when shorter. ``params`` are the 40 int32 parameters.
    """

    machine: int = MACHINE_PC
    general_purpose: int = 0
    unused: int = 0
    type_code: int = 5
    nx: int = 1
    ny: int = 1
    nz: int = 1
    comment: bytes = bytes(80)
    params: tuple[int, ...] = field(default=(0,) * 40)
    user_data: bytes = bytes(256)
    byteorder: ByteOrder = "<"

    def __post_init__(self) -> None:
        object.__setattr__(self, "comment", _padded(self.comment, 80, "comment"))
        object.__setattr__(self, "user_data", _padded(self.user_data, 256, "user data"))
        params = tuple(int(p) for p in self.params)
        if len(params) != 40 or any(not -(2**31) <= p < 2**31 for p in params):
            raise ValueError("EM header params must be 40 int32 values")
        object.__setattr__(self, "params", params)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The numpy shape of the data, ``(nz, ny, nx)``."""
        return (self.nz, self.ny, self.nx)

    @property
    def dtype(self) -> np.dtype:
        """The stored element type, with the file's byte order."""
        return TYPE_TO_DTYPE[self.type_code].newbyteorder(self.byteorder)

    @property
    def data_nbytes(self) -> int:
        """Bytes of voxel data the header announces."""
        return self.nx * self.ny * self.nz * TYPE_TO_DTYPE[self.type_code].itemsize

    def to_bytes(self) -> bytes:
        """The header as 512 little-endian bytes."""
        head = struct.pack(
            "<4B3i",
            self.machine,
            self.general_purpose,
            self.unused,
            self.type_code,
            self.nx,
            self.ny,
            self.nz,
        )
        return head + self.comment + struct.pack("<40i", *self.params) + self.user_data


def _padded(raw: bytes, size: int, what: str) -> bytes:
    """``raw`` zero-padded to ``size`` bytes; longer input is an error."""
    raw = bytes(raw)
    if len(raw) > size:
        raise ValueError(f"EM header {what} holds at most {size} bytes, got {len(raw)}")
    return raw.ljust(size, b"\0")


def _fail(path: PathLike, message: str) -> TomoclassError:
    return TomoclassError(f"{os.fspath(path)}: {message}")


def _open_for_reading(path: PathLike):
    """Open ``path`` in binary mode, turning OS errors into :class:`TomoclassError`."""
    try:
        return open(path, "rb")  # the caller closes it
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a volume file") from None
    except OSError as err:
        raise _fail(path, f"cannot read ({err.strerror or err})") from None


def _parse_header(raw: bytes, order: ByteOrder) -> EMHeader:
    """Decode the 512 header bytes in the given byte order (no validation of sizes)."""
    machine, general, unused, type_code, nx, ny, nz = struct.unpack(order + _HEAD.format, raw[:16])
    return EMHeader(
        machine=machine,
        general_purpose=general,
        unused=unused,
        type_code=type_code,
        nx=nx,
        ny=ny,
        nz=nz,
        comment=raw[_COMMENT],
        params=struct.unpack(order + _PARAMS.format, raw[_PARAMS_AT]),
        user_data=raw[_USER],
        byteorder=order,
    )


def _dims_problem(header: EMHeader, file_size: int) -> str | None:
    """Why the header's dimensions do not fit the file, or None when they do."""
    dims = (header.nx, header.ny, header.nz)
    if any(d < 1 for d in dims):
        return f"EM header has nonpositive dimensions nx, ny, nz = {dims}"
    if any(d > MAX_DIM for d in dims):
        return f"EM header has absurd dimensions nx, ny, nz = {dims} (limit {MAX_DIM} per axis)"
    available = file_size - HEADER_SIZE
    if header.data_nbytes > available:
        return (
            f"truncated EM file: header announces {dims} voxels of {header.dtype.name} "
            f"({header.data_nbytes} bytes) but only {available} bytes of data follow"
        )
    return None


def _decode_header(path: PathLike, raw: bytes, file_size: int) -> EMHeader:
    """Validate and decode a header, picking the byte order (see the module docstring)."""
    if len(raw) < HEADER_SIZE:
        raise _fail(path, f"file has {len(raw)} bytes, shorter than the 512-byte EM header")
    machine, type_code = raw[0], raw[3]
    if machine not in MACHINE_BYTEORDER:
        raise _fail(path, f"unknown EM machine code {machine} (known: 0-6); not an EM file?")
    if type_code not in TYPE_TO_DTYPE:
        known = ", ".join(str(c) for c in TYPE_TO_DTYPE)
        raise _fail(path, f"unknown EM data type code {type_code} (known: {known})")
    order = MACHINE_BYTEORDER[machine]
    header = _parse_header(raw, order)
    problem = _dims_problem(header, file_size)
    if problem is None:
        return header
    other = _parse_header(raw, ">" if order == "<" else "<")
    if _dims_problem(other, file_size) is None and other.data_nbytes == file_size - HEADER_SIZE:
        return other  # machine byte wrong, but the other byte order fits the file exactly
    raise _fail(path, problem)


def read_em_header(path: PathLike) -> EMHeader:
    """Read and check the header of an EM file; the data are not read.

    Raises :class:`TomoclassError` naming the file when it is missing, shorter than 512 bytes,
    has an unknown machine or type code, nonpositive or absurd dimensions, or fewer data
    bytes than the header announces.
    """
    with _open_for_reading(path) as f:
        file_size = os.fstat(f.fileno()).st_size
        raw = f.read(HEADER_SIZE)
    return _decode_header(path, raw, file_size)


def read_em(path: PathLike, *, mmap: bool = False) -> tuple[np.ndarray, EMHeader]:
    """Read an EM file: the data as ``[z, y, x]`` in the stored type, and the header.

    Without ``mmap`` the array is loaded in native byte order. With ``mmap=True`` a read-only
    ``np.memmap`` at offset 512 is returned instead (nothing is loaded; its dtype keeps the
    file's byte order, so values are correct either way). A file written as 2-D has nz = 1.
    """
    header = read_em_header(path)
    if mmap:
        try:
            data = np.memmap(
                path, dtype=header.dtype, mode="r", offset=HEADER_SIZE, shape=header.shape
            )
        except (OSError, ValueError) as err:
            raise _fail(path, f"cannot memory-map EM data ({err})") from None
        return data, header
    count = header.nx * header.ny * header.nz
    with _open_for_reading(path) as f:
        f.seek(HEADER_SIZE)
        flat = np.fromfile(f, dtype=header.dtype, count=count)
    if flat.size != count:  # the file shrank after the header was checked
        raise _fail(path, f"truncated EM file: read {flat.size} of {count} voxels")
    native = header.dtype.newbyteorder("=")
    return flat.astype(native, copy=False).reshape(header.shape), header


def check_real(path: PathLike, dtype: np.dtype) -> None:
    """Raise :class:`TomoclassError` naming ``path`` if its data type is complex."""
    if np.issubdtype(dtype, np.complexfloating):
        raise _fail(path, f"holds complex data ({dtype}), not a real-space volume")


def read_em_into(path: PathLike, out: np.ndarray) -> None:
    """Read an EM volume into ``out``, a C-contiguous float32 ``[z, y, x]`` array of its shape.

    Float32 data are read straight into ``out`` (no array in between: at 10³ particles of
    64³, fresh arrays cost more in page faults than the reading itself); other element types
    are converted. Raises :class:`TomoclassError` naming the file if the shape differs.
    """
    if out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array")
    with _open_for_reading(path) as f:
        header = _decode_header(path, f.read(HEADER_SIZE), os.fstat(f.fileno()).st_size)
        if header.shape != out.shape:
            raise _fail(path, f"volume of shape {header.shape}, expected {out.shape}")
        got = None
        if header.dtype.newbyteorder("=") == np.float32:
            got = f.readinto(memoryview(out).cast("B"))
    if got is None:  # another element type: read as read_em does, then converted
        check_real(path, header.dtype)
        out[...] = read_em(path)[0]
        return
    if got != out.nbytes:  # the file shrank after the header was checked
        raise _fail(path, f"truncated EM file: read {got} of {out.nbytes} data bytes")
    if not header.dtype.isnative:
        out.byteswap(inplace=True)


def em_dtype(dtype: np.dtype) -> np.dtype | None:
    """The EM element type that stores ``dtype`` exactly, or None if there is none."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype in DTYPE_TO_TYPE:
        return dtype
    return WIDENED.get(dtype)


def _as_3d(path: PathLike, data: np.ndarray) -> np.ndarray:
    """View a 1-, 2- or 3-D array as ``[z, y, x]`` (missing leading axes have size 1)."""
    if not 1 <= data.ndim <= 3:
        raise _fail(path, f"EM files hold 1-, 2- or 3-D data, got {data.ndim}-D {data.shape}")
    volume = data.reshape((1,) * (3 - data.ndim) + data.shape)
    if any(n < 1 for n in volume.shape) or any(n > 2**31 - 1 for n in volume.shape):
        raise _fail(path, f"cannot write an array of shape {data.shape} to EM")
    return volume


def _write_payload(f, volume: np.ndarray, dtype: np.dtype) -> None:
    """Write the voxels little endian, x fastest, one z-slice at a time (bounded memory)."""
    little = dtype.newbyteorder("<")
    for plane in volume:
        f.write(np.ascontiguousarray(plane, dtype=little).tobytes())


def write_em(path: PathLike, data: np.ndarray, header: EMHeader | None = None) -> None:
    """Write ``data`` (``[z, y, x]``; 2-D is written with nz = 1) as a little-endian EM file.

    Every field of ``header`` is kept except the sizes and the type code, which follow
    ``data``, and the machine code, which becomes 6 (PC, little endian). The element type
    is kept (uint8/uint16/bool/float16 are widened, see the module docstring); other types
    raise :class:`TomoclassError`. The file is written to a temporary name and renamed, so
    a failure leaves any existing file untouched.
    """
    array = np.asarray(data)
    dtype = em_dtype(array.dtype)
    if dtype is None:
        raise _fail(path, f"cannot write data of type {array.dtype} to EM")
    volume = _as_3d(path, array)
    nz, ny, nx = volume.shape
    header = replace(
        header or EMHeader(),
        machine=MACHINE_PC,
        type_code=DTYPE_TO_TYPE[dtype],
        nx=nx,
        ny=ny,
        nz=nz,
        byteorder="<",
    )
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(header.to_bytes())
        _write_payload(f, volume, dtype)
