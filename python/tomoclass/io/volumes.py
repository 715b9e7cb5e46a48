"""Reading and writing volumes (EM or MRC, chosen by extension).

Volumes are float32 numpy arrays indexed ``[z, y, x]`` (x runs fastest in the files), as
mrcfile returns them. A 2-D image is returned as a volume with nz = 1. Voxel sizes are in
Å. MRC files without the ``MAP `` identifier (as PyTom's ``write_mrc`` writes them,
``pytom/agnostic/io.py`` 2125) are read when the rest of the header fits the file, with one
warning per run. NaN/Inf voxels are not rejected on reading; callers use
:func:`check_finite`.

EM files carry no voxel size, so :func:`read_voxel_size` returns None for them and
:func:`write_volume` does not store one. PyTom has no field for it either: its ``EMHeader``
(``pytom/basic/files.py`` 564) sets only the sizes, the type and machine bytes and the tilt
angle; ``pytom/agnostic/io.py`` ``write_em`` (2142) takes a ``pixel_size`` but stores only
the tilt angle (word 42, 2161) and rotation angles (words 43-45); and ``read_pixelsize``
(1865) reads an EM file's "pixel size" from bytes 40-51 (1891), which lie in the EM
comment and which PyTom's writers leave 0 (PyTom at 4089d5d).
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import mrcfile
import mrcfile.utils
import numpy as np

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.io.em import check_real, read_em, read_em_header, read_em_into, write_em
from tomoclass.io.files import PathLike, atomic_output

Format = Literal["em", "mrc"]

EM_EXTENSIONS = (".em",)
MRC_EXTENSIONS = (".mrc", ".rec", ".map", ".mrcs")
_CHECK_CHUNK = 1 << 24  # voxels per block in check_finite


def _fail(path: PathLike, message: str) -> TomoclassError:
    return TomoclassError(f"{os.fspath(path)}: {message}")


def volume_format(path: PathLike) -> Format:
    """``"em"`` or ``"mrc"`` from the file extension (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    if suffix in EM_EXTENSIONS:
        return "em"
    if suffix in MRC_EXTENSIONS:
        return "mrc"
    known = ", ".join(EM_EXTENSIONS + MRC_EXTENSIONS)
    raise _fail(path, f"unknown volume file extension {suffix!r} (known: {known})")


_NO_MAP_ID = "Map ID string not found"
_warned_no_map_id: list[str] = []


def _open_mrc(path: PathLike, mmap: bool, header_only: bool, permissive: bool):
    if mmap:
        return mrcfile.mmap(path, mode="r", permissive=permissive)
    return mrcfile.open(path, mode="r", permissive=permissive, header_only=header_only)


def _without_map_id(path: PathLike, mmap: bool, header_only: bool):
    """An MRC file whose header lacks only the ``MAP `` id (PyTom's ``write_mrc``): opened
    permissively if its data fill the file exactly; else the usual error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle = _open_mrc(path, mmap, header_only, permissive=True)
    header = handle.header
    try:
        shape = mrcfile.utils.data_shape_from_header(header)
        itemsize = mrcfile.utils.data_dtype_from_header(header).itemsize
        expected = header.nbytes + int(header.nsymbt) + int(np.prod(shape)) * itemsize
    except (ValueError, OverflowError):
        expected = -1
    if expected != os.path.getsize(path) or (not header_only and handle.data is None):
        handle.close()
        raise ValueError(f"{_NO_MAP_ID}, and the header does not fit the file")
    if not _warned_no_map_id:
        _warned_no_map_id.append(os.fspath(path))
        warnings.warn(
            f"{os.fspath(path)}: MRC header without the 'MAP ' id (as PyTom's write_mrc "
            "writes it); read anyway (said once)",
            TomoclassWarning,
            stacklevel=5,
        )
    return handle


@contextlib.contextmanager
def _mrc(
    path: PathLike, *, mmap: bool = False, header_only: bool = False
) -> Iterator[mrcfile.mrcfile.MrcFile]:
    """Open an MRC file read-only and strictly (but see the module docstring on files
    without the ``MAP`` id); errors become :class:`TomoclassError`."""
    if not os.path.exists(path):
        raise _fail(path, "no such file")
    try:
        try:
            handle = _open_mrc(path, mmap, header_only, permissive=False)
        except ValueError as err:
            if _NO_MAP_ID not in str(err):
                raise
            handle = _without_map_id(path, mmap, header_only)
        with handle as mrc:
            yield mrc
    except (ValueError, EOFError, OverflowError) as err:
        raise _fail(path, f"not a valid MRC file ({err})") from None
    except OSError as err:
        raise _fail(path, f"cannot read ({err.strerror or err})") from None


def _mrc_shape(path: PathLike, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(nz, ny, nx)`` shape of MRC data of ``shape``; a 2-D image has nz = 1."""
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) != 3:
        raise _fail(path, f"holds {len(shape)}-D data {shape}, not a single volume")
    return shape


def _read_mrc(path: PathLike, mmap: bool) -> np.ndarray:
    with _mrc(path, mmap=mmap) as mrc:
        data = mrc.data
        check_real(path, data.dtype)
        shape = _mrc_shape(path, data.shape)
        if mmap:
            return data.reshape(shape)  # stays a read-only np.memmap after the file closes
        return np.array(data, dtype=np.float32).reshape(shape)


def read_volume(path: PathLike, *, mmap: bool = False) -> np.ndarray:
    """Read a volume as a float32 ``[z, y, x]`` array (EM or MRC by extension).

    With ``mmap=True`` nothing is loaded: a read-only ``np.memmap`` in the stored element
    type (and byte order) is returned, and the caller converts it to float32 in chunks.
    """
    if volume_format(path) == "mrc":
        plain = None if mmap else _read_plain_mrc(path)
        return _read_mrc(path, mmap) if plain is None else plain
    data, _ = read_em(path, mmap=mmap)
    check_real(path, data.dtype)
    return data if mmap else data.astype(np.float32, copy=False)


def read_volume_into(path: PathLike, out: np.ndarray) -> None:
    """Read a volume (EM or MRC by extension) into ``out``, a C-contiguous float32
    ``[z, y, x]`` array of its shape; an error naming the file if the shape differs."""
    if volume_format(path) == "em":
        return read_em_into(path, out)
    if _read_plain_mrc(path, out) is not None:
        return None
    volume = _read_mrc(path, mmap=False)
    if volume.shape != out.shape:
        raise _fail(path, f"volume of shape {volume.shape}, expected {out.shape}")
    out[...] = volume


def volume_shape(path: PathLike) -> tuple[int, int, int]:
    """The ``(nz, ny, nx)`` shape of a volume file, reading only its header."""
    if volume_format(path) == "em":
        return read_em_header(path).shape
    with _mrc(path, header_only=True) as mrc:
        header = mrc.header
        shape = mrcfile.utils.data_shape_from_header(header)
        itemsize = mrcfile.utils.data_dtype_from_header(header).itemsize
    announced = int(np.prod(shape, dtype=np.int64)) * itemsize
    available = os.path.getsize(path) - header.nbytes - int(header.nsymbt)
    if announced > available:
        raise _fail(
            path, f"truncated MRC file: {announced} data bytes announced, {available} present"
        )
    return tuple(int(n) for n in _mrc_shape(path, shape))


def read_voxel_size(path: PathLike) -> float | None:
    """The voxel size in Å (the x value of the MRC header), or None when the file has none.

    EM files always give None (see the module docstring). Fast enough to ask every particle.
    """
    if volume_format(path) == "em":
        read_em_header(path)  # still report a missing or corrupt file
        return None
    size = _plain_voxel_size(path)
    if size is None:  # not a plain MRC header: mrcfile judges it, and errors name the file
        with _mrc(path, header_only=True) as mrc:
            size = float(mrc.voxel_size.x)
    return size if size > 0 and np.isfinite(size) else None


_MRC_HEADER = 1024
_MRC_MAP_ID = slice(208, 211)  # "MAP" (MRC2014 takes the first three bytes)
_MRC_STAMP = slice(212, 216)  # machine stamp: the byte order
_MRC_MX, _MRC_CELLA = 28, 40  # int32 MX and float32 CELLA x (Å) of the header
# The plain-header fields as mrcfile 1.5.4 reads them (mrcfile/dtypes.py 26-75: NX, NY, NZ,
# MODE are words 1-4, ISPG and NSYMBT words 23-24, MAP and the machine stamp bytes 208 and
# 212), and its shape rule (utils.py 69-92, data_shape_from_header): ISPG 401-630 is a stack
# of volumes (4-D); anything else is one volume (nz, ny, nx) or, with nz = 1, one image.
_MRC_SIZE, _MRC_ISPG = 0, 88  # int32 NX, NY, NZ, MODE; int32 ISPG, NSYMBT
_MRC_VOLUME_STACK = 401


def _plain_mrc_order(raw: bytes) -> str | None:
    """The byte order of the first 1024 bytes of a file if they are a plain MRC header (the
    MAP id and a known machine stamp), else None."""
    if len(raw) < _MRC_HEADER or raw[_MRC_MAP_ID] != b"MAP":
        return None
    try:
        return mrcfile.utils.byte_order_from_machine_stamp(raw[_MRC_STAMP])
    except ValueError:
        return None


def _plain_voxel_size(path: PathLike) -> float | None:
    """``CELLA.x / MX`` (0 when MX is not positive) from a plain MRC header, without
    mrcfile's slower checks (the data are checked when they are read); None for anything
    else."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MRC_HEADER)
    except OSError:
        return None
    order = _plain_mrc_order(raw)
    if order is None:
        return None
    (mx,) = struct.unpack_from(order + "i", raw, _MRC_MX)
    (length,) = struct.unpack_from(order + "f", raw, _MRC_CELLA)
    return length / mx if mx > 0 else 0.0


def _read_plain_mrc(path: PathLike, out: np.ndarray | None = None) -> np.ndarray | None:
    """A plain MRC file of real voxels (a mode mrcfile knows, one volume or image, its data
    filling the file exactly) read into ``out`` (else a new array) as float32, as mrcfile
    would read it but 10-20× faster at 64³: float32 data straight into ``out``, others
    converted. None for any other file, which is left to mrcfile (its checks and errors
    apply), and when the shape is not ``out``'s (``out`` is then unspecified)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MRC_HEADER)
            order = _plain_mrc_order(raw)
            if order is None:
                return None
            nx, ny, nz, mode = struct.unpack_from(order + "4i", raw, _MRC_SIZE)
            ispg, nsymbt = struct.unpack_from(order + "2i", raw, _MRC_ISPG)
            try:
                dtype = mrcfile.utils.dtype_from_mode(mode).newbyteorder(order)
            except ValueError:
                return None
            start, shape = _MRC_HEADER + nsymbt, (nz, ny, nx)
            if (
                dtype.kind == "c"
                or not 0 <= ispg < _MRC_VOLUME_STACK
                or nsymbt < 0
                or min(shape) < 1
                or os.fstat(f.fileno()).st_size != start + dtype.itemsize * nx * ny * nz
                or (out is not None and out.shape != shape)
            ):
                return None
            out = np.empty(shape, np.float32) if out is None else out
            f.seek(start)
            if dtype != np.float32:  # another type, or float32 of the other byte order
                data = np.fromfile(f, dtype=dtype, count=out.size)
                if data.size != out.size:
                    return None
                out[...] = data.reshape(shape)
            elif f.readinto(memoryview(out).cast("B")) != out.nbytes:
                return None
    except OSError:
        return None
    return out


VOXEL_SIZE_TOLERANCE = 1e-3
"""Voxel sizes closer than this fraction are the same (headers store them as float32)."""


def group_voxel_sizes(sizes: Iterable[float | None]) -> dict[float, list[int]]:
    """The indices of ``sizes`` under each different voxel size (the first of its kind; sizes
    within :data:`VOXEL_SIZE_TOLERANCE` count as one), in order of first appearance; None
    (no voxel size) is left out."""
    groups: dict[float, list[int]] = {}
    for i, size in enumerate(sizes):
        if size is None:
            continue
        same = next((g for g in groups if abs(size - g) <= VOXEL_SIZE_TOLERANCE * g), size)
        groups.setdefault(same, []).append(i)
    return groups


def common_voxel_size(paths: Iterable[PathLike]) -> float | None:
    """The voxel size (Å) of every file that gives one, when they agree; None when none gives
    one or they differ (see :func:`read_voxel_size`)."""
    groups = group_voxel_sizes(read_voxel_size(p) for p in paths)
    return next(iter(groups)) if len(groups) == 1 else None


def _as_float32(path: PathLike, data: np.ndarray) -> np.ndarray:
    """``data`` as a 2- or 3-D float32 array, or a :class:`TomoclassError` naming ``path``."""
    try:
        array = np.asarray(data)
        if np.issubdtype(array.dtype, np.complexfloating):
            raise TypeError(f"complex data ({array.dtype})")
        array = array.astype(np.float32, copy=False)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"cannot write this data as a float32 volume ({err})") from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise _fail(path, f"a volume must be a non-empty 2- or 3-D array, got shape {array.shape}")
    return array


def _check_voxel_size(voxel_size: float | None) -> float | None:
    if voxel_size is None:
        return None
    size = float(voxel_size)
    if not (np.isfinite(size) and size > 0):
        raise TomoclassError(f"voxel_size: must be a positive number of Å, got {voxel_size!r}")
    return size


def write_volume(
    path: PathLike,
    data: np.ndarray,
    *,
    voxel_size: float | None = None,
    overwrite: bool = True,
) -> None:
    """Write ``data`` (``[z, y, x]``) as a float32 EM or MRC file, chosen by extension.

    ``voxel_size`` (Å) is stored in MRC files only. The file is written under a temporary
    name in the same folder and then renamed, so a failure never leaves half a file nor
    destroys an existing one. With ``overwrite=False`` an existing file is an error.
    """
    kind = volume_format(path)
    size = _check_voxel_size(voxel_size)
    volume = _as_float32(path, data)
    if not overwrite and os.path.exists(path):
        raise _fail(path, "already exists (overwrite is off)")
    if kind == "em":
        write_em(path, volume)
        return
    with atomic_output(path) as tmp:
        try:
            with mrcfile.new(tmp, overwrite=True) as mrc:
                mrc.set_data(volume)
                if size is not None:
                    mrc.voxel_size = size
        except ValueError as err:
            raise _fail(path, f"cannot write MRC ({err})") from None


def check_finite(data: np.ndarray, path: PathLike) -> None:
    """Raise :class:`TomoclassError` naming ``path`` if ``data`` holds NaN or Inf.

    Works block by block along the first axis, so memory-mapped volumes are not loaded whole.
    """
    array = np.asarray(data)
    if not np.issubdtype(array.dtype, np.inexact):
        return
    array = np.atleast_1d(array)
    step = max(1, _CHECK_CHUNK // max(1, array[0].size))
    bad = 0
    for start in range(0, array.shape[0], step):
        block = array[start : start + step]
        bad += block.size - int(np.count_nonzero(np.isfinite(block)))
    if bad:
        raise _fail(path, f"contains NaN or Inf ({bad} voxel{'s' if bad > 1 else ''})")
