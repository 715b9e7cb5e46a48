"""Property-based fuzzing of every file reader (SPEC §7: bad input is a TomoclassError naming
the file; never another exception, a crash, a hang, or a huge allocation).

Each ``_fuzz_*`` function is a Hypothesis property; the ``test_*`` function that runs it counts
the inputs it generated (``COUNTS``), prints the count and asserts it reached the intended
number of examples.
"""

from __future__ import annotations

import collections
import itertools
import os
import struct
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tomoclass.errors import TomoclassError
from tomoclass.io import read_particle_list
from tomoclass.io.em import TYPE_TO_DTYPE, read_em, read_em_header
from tomoclass.io.pytom_job import read_mco_job
from tomoclass.io.volumes import read_volume, read_volume_into, read_voxel_size, volume_shape

COUNTS: collections.Counter[str] = collections.Counter()
_SERIAL = itertools.count()


def fuzz_settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def run_counted(prop, tmp_path: Path, n: int, record_property) -> None:
    """Run the Hypothesis property ``prop`` and check it saw ``n`` generated inputs."""
    name = prop.__name__
    before = COUNTS[name]
    prop(tmp_path)
    generated = COUNTS[name] - before
    print(f"{name}: {generated} generated inputs")
    record_property("generated_inputs", generated)
    assert generated >= n, f"{name}: only {generated} of {n} inputs generated"


def fresh(tmp_path: Path, name: str) -> Path:
    """A new empty folder per example (tmp_path is shared by all examples of a test)."""
    folder = tmp_path / f"ex{next(_SERIAL)}"
    folder.mkdir()
    return folder / name


def contract(path: Path, read):
    """``read()``'s result, or None after a TomoclassError that names ``path``.

    Any other exception propagates and fails the test (with Hypothesis' minimal input).
    """
    try:
        return read()
    except TomoclassError as err:
        assert os.fspath(path) in str(err), f"error does not name the file: {err}"
        return None


def must_fail(path: Path, read) -> str:
    with pytest.raises(TomoclassError) as info:
        read()
    assert os.fspath(path) in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------------ EM

EM_ORDER = {0: ">", 1: "<", 2: "<", 3: ">", 4: ">", 5: ">", 6: "<"}
EM_TYPES = sorted(TYPE_TO_DTYPE)


def em_header(machine: int, type_code: int, dims, order: str, rest: bytes = b"") -> bytes:
    head = struct.pack(order + "4B3i", machine, 0, 0, type_code, *dims)
    return head + rest.ljust(512 - 16, b"\0")[: 512 - 16]


@fuzz_settings(200)
@given(
    machine=st.integers(0, 6),
    type_code=st.sampled_from(EM_TYPES),
    dims=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    swapped=st.booleans(),
    trailing=st.integers(0, 16),
    rest=st.binary(max_size=496),
    mmap=st.booleans(),
    data=st.data(),
)
def _fuzz_em_valid(tmp_path, machine, type_code, dims, swapped, trailing, rest, mmap, data):
    """Valid headers (right or swapped byte order, random comment/params/user bytes) and data."""
    COUNTS["_fuzz_em_valid"] += 1
    order = EM_ORDER[machine]
    if swapped:
        order = "<" if order == ">" else ">"
    dtype = TYPE_TO_DTYPE[type_code].newbyteorder(order)
    nbytes = dims[0] * dims[1] * dims[2] * dtype.itemsize
    payload = data.draw(st.binary(min_size=nbytes, max_size=nbytes))
    path = fresh(tmp_path, "v.em")
    path.write_bytes(em_header(machine, type_code, dims, order, rest) + payload + bytes(trailing))
    result = contract(path, lambda: read_em(path, mmap=mmap))
    # A swapped header is only accepted when its dimensions fit the file exactly.
    assert (result is None) == (swapped and trailing > 0)
    if result is not None:
        array, header = result
        assert array.shape == (dims[2], dims[1], dims[0])
        assert (header.nx, header.ny, header.nz) == dims
        expected = np.frombuffer(payload, dtype=dtype).astype(dtype.newbyteorder("="))
        got = np.asarray(array).astype(dtype.newbyteorder("="))
        assert got.tobytes() == expected.tobytes()
        assert read_em_header(path).shape == array.shape
        into = np.empty(array.shape, np.float32)
        if np.issubdtype(dtype, np.complexfloating):
            must_fail(path, lambda: read_volume_into(path, into))
        else:
            read_volume_into(path, into)
            if dtype.itemsize == 4 and dtype.kind == "f":  # read as is: every bit, NaNs too
                assert into.tobytes() == expected.tobytes()
            else:
                np.testing.assert_array_equal(into.ravel(), expected.astype(np.float32))


@fuzz_settings(200)
@given(
    kind=st.sampled_from(["header", "data", "random"]),
    machine=st.integers(0, 6),
    type_code=st.sampled_from(EM_TYPES),
    dims=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    data=st.data(),
)
def _fuzz_em_broken(tmp_path, kind, machine, type_code, dims, data):
    """Headers cut to 0..511 bytes, data cut short, and random bytes."""
    COUNTS["_fuzz_em_broken"] += 1
    order = EM_ORDER[machine]
    header = em_header(machine, type_code, dims, order)
    nbytes = dims[0] * dims[1] * dims[2] * TYPE_TO_DTYPE[type_code].itemsize
    if kind == "header":
        raw = header[: data.draw(st.integers(0, 511))]
    elif kind == "data":
        raw = header + bytes(data.draw(st.integers(0, nbytes - 1)))
    else:
        raw = data.draw(st.binary(max_size=2048))
    path = fresh(tmp_path, "b.em")
    path.write_bytes(raw)
    readers = [
        lambda: read_em(path),
        lambda: read_em(path, mmap=True),
        lambda: read_em_header(path),
        lambda: read_volume(path),
        lambda: read_volume_into(path, np.empty(dims[::-1], np.float32)),
    ]
    for read in readers:
        if kind == "random":
            contract(path, read)
        else:
            must_fail(path, read)


SIZES = st.one_of(
    st.just(10**6),
    st.sampled_from([0, -1, 1 << 20, (1 << 20) + 1, 2**31 - 1, -(2**31)]),
    st.integers(-(2**31), 2**31 - 1),
)


@fuzz_settings(150)
@given(
    machine=st.integers(0, 6),
    type_code=st.sampled_from(EM_TYPES),
    dims=st.tuples(SIZES, SIZES, SIZES),
    data_bytes=st.integers(0, 4096),
)
def _fuzz_em_huge(tmp_path, machine, type_code, dims, data_bytes):
    """Absurd dimensions (10^6 per axis, 2^31 - 1, negative): refused fast, nothing allocated."""
    COUNTS["_fuzz_em_huge"] += 1
    assume(max(abs(d) for d in dims) > 4096)
    path = fresh(tmp_path, "h.em")
    path.write_bytes(em_header(machine, type_code, dims, EM_ORDER[machine]) + bytes(data_bytes))
    for read in (
        lambda: read_em(path),
        lambda: read_em(path, mmap=True),
        lambda: read_em_header(path),
        lambda: read_volume(path),
        lambda: volume_shape(path),
    ):
        start = time.perf_counter()
        must_fail(path, read)
        assert time.perf_counter() - start < 1.0


def test_em_valid(tmp_path, record_property):
    run_counted(_fuzz_em_valid, tmp_path, 200, record_property)


def test_em_broken(tmp_path, record_property):
    run_counted(_fuzz_em_broken, tmp_path, 200, record_property)


def test_em_huge_dimensions_fail_fast(tmp_path, record_property):
    run_counted(_fuzz_em_huge, tmp_path, 150, record_property)


def test_em_billion_voxels_fail_fast(tmp_path):
    path = tmp_path / "huge.em"
    path.write_bytes(em_header(6, 5, (10**6, 10**6, 10**6), "<"))
    start = time.perf_counter()
    must_fail(path, lambda: read_em(path))
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------------- MRC

MRC_DTYPES = [np.float32, np.int8, np.int16, np.uint16, np.uint8, np.float16, np.complex64]


@fuzz_settings(200)
@given(
    shape=st.one_of(
        st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
        st.tuples(st.integers(1, 5), st.integers(1, 5)),
    ),
    dtype=st.sampled_from(MRC_DTYPES),
    mutation=st.sampled_from(["none", "flip", "truncate", "word", "huge"]),
    mmap=st.booleans(),
    data=st.data(),
)
def _fuzz_mrc(tmp_path, shape, dtype, mutation, mmap, data):
    """mrcfile-written volumes, then bytes flipped, words overwritten, cut, or huge sizes."""
    COUNTS["_fuzz_mrc"] += 1
    path = fresh(tmp_path, "v.mrc")
    volume = (np.arange(np.prod(shape)).reshape(shape) % 7).astype(dtype)
    with mrcfile.new(path) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 2.5
    raw = bytearray(path.read_bytes())
    if mutation == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif mutation == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mutation == "word":  # one of the 256 header words (sizes, mode, nsymbt, ...)
        i = data.draw(st.integers(0, 255))
        raw[4 * i : 4 * i + 4] = struct.pack("<i", data.draw(st.integers(-(2**31), 2**31 - 1)))
    elif mutation == "huge":
        raw[0:12] = struct.pack("<3i", *data.draw(st.tuples(SIZES, SIZES, SIZES)))
    path.write_bytes(bytes(raw))
    start = time.perf_counter()
    array = contract(path, lambda: read_volume(path, mmap=mmap))
    contract(path, lambda: volume_shape(path))
    contract(path, lambda: read_voxel_size(path))
    if mutation == "huge":
        assert time.perf_counter() - start < 1.0
    if mutation == "none":
        if dtype is np.complex64:
            assert array is None
        else:
            expected = volume.reshape((1, *shape) if len(shape) == 2 else shape)
            assert array is not None
            assert np.array_equal(np.asarray(array, dtype=np.float32), expected)
            assert volume_shape(path) == expected.shape
            assert read_voxel_size(path) == 2.5
    elif array is not None:
        assert array.ndim == 3


def test_mrc(tmp_path, record_property):
    run_counted(_fuzz_mrc, tmp_path, 200, record_property)


def test_mrc_billion_voxels_fail_fast(tmp_path):
    path = tmp_path / "huge.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((2, 2, 2), np.float32))
    raw = bytearray(path.read_bytes())
    raw[0:12] = struct.pack("<3i", 10**6, 10**6, 10**6)
    path.write_bytes(bytes(raw))
    for read in (lambda: read_volume(path), lambda: read_volume(path, mmap=True)):
        start = time.perf_counter()
        must_fail(path, read)
        assert time.perf_counter() - start < 1.0


def test_mrc_negative_size_mmap(tmp_path):
    """Minimal reproducer: an MRC header with nx = -257 gives a TomoclassError without mmap,
    but OverflowError ("memory mapped length must be positive") from np.memmap with mmap."""
    path = tmp_path / "neg.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((1, 1), np.float32))
    raw = bytearray(path.read_bytes())
    raw[0:4] = struct.pack("<i", -257)
    path.write_bytes(bytes(raw))
    must_fail(path, lambda: read_volume(path))
    must_fail(path, lambda: read_volume(path, mmap=True))


def test_em_and_mrc_random_bytes(tmp_path, record_property):
    run_counted(_fuzz_volume_bytes, tmp_path, 150, record_property)


@fuzz_settings(150)
@given(suffix=st.sampled_from([".em", ".mrc", ".map", ".mrcs"]), raw=st.binary(max_size=3000))
def _fuzz_volume_bytes(tmp_path, suffix, raw):
    """Random bytes under every volume extension."""
    COUNTS["_fuzz_volume_bytes"] += 1
    path = fresh(tmp_path, "r" + suffix)
    path.write_bytes(raw)
    for read in (lambda: read_volume(path), lambda: volume_shape(path)):
        contract(path, read)


# --------------------------------------------------------------------- PyTom particle XML

XML_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"))
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999", "", " ", "1,5", "0x10", "abc"]),
    st.text(max_size=8),
)
FILENAMES = st.one_of(
    st.sampled_from(
        ["p.em", "./p.em", "../../etc/passwd", "/etc/passwd", "a/../../b.em", "", ".", "..", "x/"]
    ),
    # XML 1.0 holds no surrogates, control characters or U+FFFE/U+FFFF (Python's 'Cn').
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), max_size=30
    ),
    st.text(alphabet="a./", min_size=200, max_size=400),  # longer than NAME_MAX
)
CHILD_TAGS = [
    "Rotation",
    "Shift",
    "PickPosition",
    "Wedge",
    "SingleTiltWedge",
    "WedgeInfo",
    "DoubleTiltWedge",
    "GeneralWedge",
    "Score",
    "Class",
    "InfoGUI",
    "Unknown",
]
CHILD_ATTRIBUTES = {
    "Rotation": ["Z1", "Z2", "X", "Paradigm"],
    "Shift": ["X", "Y", "Z"],
    "PickPosition": ["X", "Y", "Z", "Origin", "Binning"],
    "SingleTiltWedge": ["Angle1", "Angle2", "CutoffRadius", "Smooth"],
    "WedgeInfo": ["Angle1", "Angle2", "Angle", "CutoffRadius", "Smooth"],
    "Wedge": ["Type"],
    "DoubleTiltWedge": [],
    "GeneralWedge": ["Filename"],
    "Score": ["Type", "Value"],
    "Class": ["Name"],
    "InfoGUI": ["ProjectDir"],
    "Unknown": ["Foo"],
}
WEDGE_TYPES = st.sampled_from(["SingleTiltWedge", "DoubleTiltWedge", "WedgeInfo", "Other", ""])


@st.composite
def element_xml(draw, tag: str, depth: int = 0) -> str:
    """``<tag ...>`` with a random subset of its attributes, random values, random children."""
    attrs = []
    for name in CHILD_ATTRIBUTES[tag]:
        if draw(st.booleans()) or draw(st.booleans()):
            if name == "Paradigm":
                value = draw(st.sampled_from(["ZXZ", "ZYZ", ""]))
            elif name == "Type":
                value = draw(WEDGE_TYPES)
            elif name in ("Origin", "Name", "ProjectDir", "Foo", "Filename"):
                value = draw(st.text(max_size=10))
            else:
                value = draw(NUMBER_TEXT)
            attrs.append(f" {name}={quoteattr(value)}")
    children = ""
    if depth < 2 and tag in ("Wedge", "DoubleTiltWedge", "SingleTiltWedge", "WedgeInfo"):
        inner = ["SingleTiltWedge", "DoubleTiltWedge", "WedgeInfo", "Unknown"]
        for child in draw(st.lists(st.sampled_from(inner), max_size=3)):
            children += draw(element_xml(child, depth + 1))
        if tag in ("SingleTiltWedge", "WedgeInfo") and draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(["Z1", "Z2", "X"]), unique=True))
            values = "".join(f" {n}={quoteattr(draw(NUMBER_TEXT))}" for n in names)
            children += f"<TiltAxisRotation{values}/>"
    return f"<{tag}{''.join(attrs)}>{children}</{tag}>"


@st.composite
def particle_xml(draw) -> str:
    attrs = ""
    if draw(st.integers(0, 9)):  # mostly with a Filename
        attrs = f" Filename={quoteattr(draw(FILENAMES))}"
    children = "".join(
        draw(element_xml(tag)) for tag in draw(st.lists(st.sampled_from(CHILD_TAGS)))
    )
    return f"<Particle{attrs}>{children}</Particle>"


def finite(lo: float = -1e6, hi: float = 1e6):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def clean_particle(draw):
    """A fully valid particle and the values it must read back as."""
    values = {
        "filename": draw(FILENAMES.filter(lambda s: s != "")),
        "rotation": draw(st.tuples(finite(), finite(), finite())),
        "shift": draw(st.tuples(finite(), finite(), finite())),
        "wedge": draw(st.tuples(finite(0, 90), finite(0, 90))),
        "score": draw(finite()),
        "class": draw(st.text(alphabet=XML_CHARS, max_size=5)),
    }
    z1, z2, x = (repr(v) for v in values["rotation"])
    sx, sy, sz = (repr(v) for v in values["shift"])
    a1, a2 = (repr(v) for v in values["wedge"])
    text = (
        f"<Particle Filename={quoteattr(values['filename'])}>"
        f'<Rotation Z1="{z1}" Z2="{z2}" X="{x}" Paradigm="ZXZ"/>'
        f'<Shift X="{sx}" Y="{sy}" Z="{sz}"/>'
        f'<Wedge Type="SingleTiltWedge"><SingleTiltWedge Angle1="{a1}" Angle2="{a2}"'
        ' CutoffRadius="0.0" Smooth="0.0"/></Wedge>'
        f'<Score Type="FLCFScore" Value="{values["score"]!r}"/>'
        f"<Class Name={quoteattr(values['class'])}/><Unknown Foo='1'/>"
        "</Particle>"
    )
    return text, values


def check_paths(folder: Path, plist) -> None:
    """``paths()`` is absolute, normalised, relative to the list folder and deterministic."""
    paths = plist.paths()
    assert paths == plist.paths()
    for p, path in zip(plist, paths, strict=True):
        assert path.is_absolute()
        assert path == Path(os.path.normpath(folder / p.filename))


@fuzz_settings(300)
@given(
    root=st.sampled_from(["ParticleList", "ParticleList", "ParticleList", "particleList", "Job"]),
    particles=st.lists(particle_xml(), max_size=4),
    extra=st.lists(st.sampled_from(["<Unknown/>", "<!-- c -->", "<?pi x?>", "text"]), max_size=2),
    declaration=st.sampled_from(
        ["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="latin-1"?>']
    ),
)
def _fuzz_pytom_xml(tmp_path, root, particles, extra, declaration):
    """Structured PyTom lists: random numbers (NaN/Inf/empty/text), missing attributes, unknown
    elements and wedge spellings, odd filenames, wrong root elements."""
    COUNTS["_fuzz_pytom_xml"] += 1
    path = fresh(tmp_path, "list.xml")
    body = "".join(extra) + "".join(particles)
    text = f"{declaration}<{root}>{body}</{root}>"
    encoding = "latin-1" if "latin-1" in declaration else "utf-8"
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8"))  # mislabelled encoding: the reader decides
    plist = contract(path, lambda: read_particle_list(path))
    if plist is not None:
        assert root == "ParticleList"
        assert len(plist) == len(particles)
        check_paths(path.parent, plist)


@fuzz_settings(200)
@given(particles=st.lists(clean_particle(), max_size=4))
def _fuzz_pytom_xml_valid(tmp_path, particles):
    """Fully valid lists must read back exactly the generated numbers."""
    COUNTS["_fuzz_pytom_xml_valid"] += 1
    path = fresh(tmp_path, "list.xml")
    body = "".join(text for text, _ in particles)
    path.write_text(f"<ParticleList>{body}</ParticleList>", encoding="utf-8")
    plist = read_particle_list(path)
    assert len(plist) == len(particles)
    for p, (_, v) in zip(plist, particles, strict=True):
        assert p.filename == v["filename"]
        assert (p.rotation.z1, p.rotation.z2, p.rotation.x) == v["rotation"]
        assert (p.shift.x, p.shift.y, p.shift.z) == v["shift"]
        assert (p.wedge.angle1, p.wedge.angle2) == v["wedge"]
        assert p.score == v["score"]
        assert p.class_name == v["class"]
    check_paths(path.parent, plist)


@fuzz_settings(200)
@given(
    kind=st.sampled_from(["bytes", "text", "filename-bytes"]),
    raw=st.binary(max_size=600),
    text=st.text(max_size=300),
)
def _fuzz_pytom_xml_raw(tmp_path, kind, raw, text):
    """Random bytes, random text, and valid lists whose Filename holds non-UTF-8 bytes."""
    COUNTS["_fuzz_pytom_xml_raw"] += 1
    path = fresh(tmp_path, "list.xml")
    if kind == "bytes":
        content = raw
    elif kind == "text":
        content = text.encode("utf-8", "surrogatepass")
    else:
        content = b'<ParticleList><Particle Filename="p' + raw + b'.em"/></ParticleList>'
    path.write_bytes(content)
    plist = contract(path, lambda: read_particle_list(path))
    if plist is not None:
        check_paths(path.parent, plist)


SECRET = "TOMOCLASS-SECRET-6f1d"
ENTITY_PAYLOADS = [
    # billion laughs
    '<?xml version="1.0"?><!DOCTYPE ParticleList [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + ']><ParticleList><Particle Filename="&i;"/></ParticleList>',
    # quadratic blow-up
    '<!DOCTYPE ParticleList [<!ENTITY a "'
    + "x" * 10000
    + '">]><ParticleList>'
    + '<Particle Filename="'
    + "&a;" * 1000
    + '"/></ParticleList>',
    # external entity (file)
    '<!DOCTYPE ParticleList [<!ENTITY x SYSTEM "file://{secret}">]>'
    '<ParticleList><Particle Filename="&x;"/></ParticleList>',
    # external entity, relative
    '<!DOCTYPE ParticleList [<!ENTITY x SYSTEM "secret.txt">]>'
    '<ParticleList><Particle Filename="p.em">&x;</Particle></ParticleList>',
    # public external entity
    '<!DOCTYPE ParticleList [<!ENTITY x PUBLIC "-//X//EN" "file://{secret}">]>'
    "<ParticleList>&x;</ParticleList>",
    # parameter entity pulling an external DTD
    '<!DOCTYPE ParticleList [<!ENTITY % p SYSTEM "file://{dtd}"> %p;]>'
    '<ParticleList><Particle Filename="&leak;"/></ParticleList>',
    # unparsed entity
    '<!DOCTYPE ParticleList [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "file://{secret}" NDATA n>]>'
    "<ParticleList/>",
    # internal entity, harmless looking
    '<!DOCTYPE ParticleList [<!ENTITY name "p.em">]>'
    '<ParticleList><Particle Filename="&name;"/></ParticleList>',
]


@pytest.mark.parametrize("payload", range(len(ENTITY_PAYLOADS)))
def test_pytom_xml_entities_refused(tmp_path, payload):
    """Entity expansion and external entities are refused (TomoclassError naming the file)."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak "{SECRET}">')
    text = ENTITY_PAYLOADS[payload].replace("{secret}", str(secret)).replace("{dtd}", str(dtd))
    path = tmp_path / "list.xml"
    path.write_text(text)
    start = time.perf_counter()
    message = must_fail(path, lambda: read_particle_list(path))
    assert time.perf_counter() - start < 1.0
    assert SECRET not in message


def test_pytom_xml_external_dtd_refused(tmp_path):
    """Minimal reproducer: with an external DTD (not fetched), an undefined entity reference
    is silently dropped (Filename "a&leak;b.em" reads as "ab.em") instead of being refused."""
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak "{SECRET}">')
    path = tmp_path / "list.xml"
    path.write_text(
        f'<!DOCTYPE ParticleList SYSTEM "file://{dtd}">'
        '<ParticleList><Particle Filename="a&leak;b.em"/></ParticleList>'
    )
    plist = contract(path, lambda: read_particle_list(path))
    assert plist is None or SECRET not in plist[0].filename  # not fetched: no leak
    assert plist is None, f"accepted, Filename read as {plist[0].filename!r}"


def test_pytom_xml(tmp_path, record_property):
    run_counted(_fuzz_pytom_xml, tmp_path, 300, record_property)


def test_pytom_xml_valid(tmp_path, record_property):
    run_counted(_fuzz_pytom_xml_valid, tmp_path, 200, record_property)


def test_pytom_xml_raw(tmp_path, record_property):
    run_counted(_fuzz_pytom_xml_raw, tmp_path, 200, record_property)


def test_paths_escaping_the_list_folder(tmp_path):
    """Relative names are resolved against the list folder, ``..`` included (not refused)."""
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    path = folder / "list.xml"
    names = ["../../etc/passwd", "/etc/passwd", "x/../../y.em", "../" * 40 + "z.em"]
    body = "".join(f"<Particle Filename={quoteattr(n)}/>" for n in names)
    path.write_text(f"<ParticleList>{body}</ParticleList>")
    plist = read_particle_list(path)
    assert plist.paths() == [
        tmp_path / "etc" / "passwd",
        Path("/etc/passwd"),
        folder.parent / "y.em",
        Path("/z.em"),
    ]
    assert [p.filename for p in plist] == names  # kept as written


# ----------------------------------------------------------------------------- STAR, tbl

STAR_COLUMNS = [
    "rlnImageName",
    "rlnAngleRot",
    "rlnAngleTilt",
    "rlnAnglePsi",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnOriginZAngst",
    "rlnOriginX",
    "rlnCoordinateX",
    "rlnCoordinateY",
    "rlnCoordinateZ",
    "rlnTomoName",
    "rlnClassNumber",
    "rlnLCCmax",
    "rlnOpticsGroup",
    "rlnTomoSubtomogramRot",
    "rlnUnknownThing",
]
STAR_FIELDS = st.one_of(
    finite().map(repr),
    st.integers(-5, 5).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "abc", '""', "1e999", "0x1"]),
    FILENAMES.filter(lambda s: s and not any(c.isspace() for c in s) and s[0] not in "#_;'\""),
)


@fuzz_settings(300)
@given(
    block=st.sampled_from(["particles", "particles", "", "other"]),
    columns=st.lists(st.sampled_from(STAR_COLUMNS), unique=True, max_size=8),
    rows=st.lists(st.lists(STAR_FIELDS, max_size=10), max_size=5),
    ragged=st.booleans(),
    optics=st.sampled_from(["none", "good", "zero", "text", "other-group"]),
    second=st.booleans(),
)
def _fuzz_star(tmp_path, block, columns, rows, ragged, optics, second):
    """STAR tables: random column subsets, numbers/NaN/Inf/text, ragged rows, optics blocks."""
    COUNTS["_fuzz_star"] += 1
    lines = []
    if optics != "none":
        size = {"good": "4.2", "zero": "0", "text": "abc", "other-group": "4.2"}[optics]
        group = "7" if optics == "other-group" else "1"
        lines += ["data_optics", "", "loop_", "_rlnOpticsGroup #1", "_rlnImagePixelSize #2"]
        lines += [f"{group} {size}", ""]
    lines += [f"data_{block}", "", "loop_"]
    lines += [f"_{c} #{i + 1}" for i, c in enumerate(columns)]
    for row in rows:
        fields = row if ragged else (row + ["1"] * len(columns))[: len(columns)]
        lines.append(" ".join(fields))
    if second:
        lines += ["", "data_more", "", "loop_", "_rlnFoo #1", "1"]
    path = fresh(tmp_path, "p.star")
    path.write_text("\n".join(lines) + "\n")
    plist = contract(path, lambda: read_particle_list(path))
    if plist is not None:
        assert "rlnImageName" in columns
        assert len(plist) <= len(rows)
        assert plist.paths() == plist.paths()


@fuzz_settings(300)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                finite().map(repr),
                st.integers(-3, 3).map(str),
                st.sampled_from(["nan", "inf", "-inf", "1e999", "x", "", "#", "%", "1,2"]),
            ),
            min_size=20,
            max_size=40,
        ),
        max_size=5,
    ),
    valid=st.booleans(),
    raw=st.binary(max_size=200),
    use_raw=st.integers(0, 9),
)
def _fuzz_tbl(tmp_path, rows, valid, raw, use_raw):
    """Dynamo tables: valid 35-column rows, random tokens, ragged rows, NaN/Inf, random bytes."""
    COUNTS["_fuzz_tbl"] += 1
    path = fresh(tmp_path, "p.tbl")
    if use_raw == 0:
        path.write_bytes(raw)
    elif valid:
        table = [[str(i + 1), "1", "1", *(["0"] * 32)] for i in range(len(rows))]
        for i, row in enumerate(rows):
            table[i][3:12] = [str(float(len(v))) for v in row[:9]]
        path.write_text("".join(" ".join(r) + "\n" for r in table))
        plist = read_particle_list(path)
        assert len(plist) == len(rows)
        assert [p.filename for p in plist] == [f"particle_{i + 1:05d}.em" for i in range(len(rows))]
        return
    else:
        path.write_text("".join(" ".join(r) + "\n" for r in rows))
    plist = contract(path, lambda: read_particle_list(path))
    if plist is not None:
        check_paths(path.parent, plist)


def test_star(tmp_path, record_property):
    run_counted(_fuzz_star, tmp_path, 300, record_property)


def test_tbl(tmp_path, record_property):
    run_counted(_fuzz_tbl, tmp_path, 300, record_property)


def test_star_long_image_name(tmp_path):
    """Minimal reproducer: an rlnImageName longer than NAME_MAX (255 bytes) is not an error of
    the file but raised OSError(ENAMETOOLONG) from star._image_folder's Path.exists()."""
    path = tmp_path / "p.star"
    path.write_text("data_particles\n\nloop_\n_rlnImageName #1\n" + "a" * 300 + ".mrc\n")
    plist = contract(path, lambda: read_particle_list(path))
    assert plist is None or len(plist) == 1


# ------------------------------------------------------------------------------- job XML

JOB_PARTICLE = (
    '<Particle Filename="{name}"><Rotation Z1="10.0" Z2="20.0" X="30.0" Paradigm="ZXZ"/>'
    '<Shift X="1.0" Y="-2.0" Z="0.5"/><Wedge Type="SingleTiltWedge"><SingleTiltWedge'
    ' Angle1="30.0" Angle2="30.0" CutoffRadius="0.0" Smooth="0.0"/></Wedge>'
    '<Class Name="{klass}"/></Particle>'
)
JOB = (
    '<{root} NumberIterations="10" DestinationDirectory="results" NumberClasses="3"'
    ' EndThreshold="0.05" FRMAlignment="False" FRMBandwidth="None"{extra}>'
    "<ExpectationMaximisationJob>"
    '<Description Destination="results/" NumberIterations="1" Binning="2">'
    "<ParticleList>{particles}</ParticleList>"
    '<Mask isSphere="True" Filename="./mask.em" Binning="1"/>'
    '<Preprocessing><Bandpass LowestFrequency="2.0" HighestFrequency="10.0" Smooth="0.0"/>'
    "</Preprocessing></Description></ExpectationMaximisationJob>{tail}</{root}>"
)
AC_TAIL = (
    '<AnnealingTemperature Name="SigmaTemperature" Temperature="10.0" TemperatureStep="1.0"/>'
    '<AnnealingCriterion Name="MetropolisCriterion" AllowClassCollapse="False"/>'
)


def job_text(kind: str) -> str:
    particles = "".join(JOB_PARTICLE.format(name=f"parts/p{i}.em", klass=i % 2) for i in range(2))
    ac = kind == "ac"
    return JOB.format(
        root="MCOACJob" if ac else "MCOEXMXJob",
        extra=' LocalSearchIncrement="5.0"' if ac else "",
        particles=particles,
        tail=AC_TAIL if ac else "",
    )


JOB_VALUES = st.one_of(
    NUMBER_TEXT,
    st.sampled_from(["0", "1", "-1", "2.5", "1e308", "-1e308", "20.0", "0.0", "1.0000001"]),
    st.sampled_from(["SigmaTemperature", "AnnealingTemperature", "ThresholdAcceptance"]),
    FILENAMES,
)
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["drop-attribute", "set-attribute", "drop-element", "add-element", "root"]),
        st.integers(0, 10**6),
        JOB_VALUES,
    ),
    max_size=3,
)


@fuzz_settings(250)
@given(kind=st.sampled_from(["exmx", "ac"]), mutations=MUTATIONS)
def _fuzz_job(tmp_path, kind, mutations):
    """A valid MCOEXMXJob/MCOACJob with attributes and elements dropped or given random or
    out-of-range values (NaN, Inf, text, negative, huge, fractional, paths)."""
    COUNTS["_fuzz_job"] += 1
    path = fresh(tmp_path, "job.xml")
    folder = path.parent
    (folder / "parts").mkdir()
    for name in ("mask.em", "parts/p0.em", "parts/p1.em"):
        (folder / name).write_bytes(b"")
    root = ET.fromstring(job_text(kind))
    for action, pick, value in mutations:
        elements = list(root.iter())
        element = elements[pick % len(elements)]
        names = sorted(element.attrib)
        if action == "drop-attribute" and names:
            del element.attrib[names[pick % len(names)]]
        elif action == "set-attribute" and names:
            element.set(names[pick % len(names)], value)
        elif action == "drop-element" and element is not root:
            parent = next(p for p in root.iter() if element in list(p))
            parent.remove(element)
        elif action == "add-element":
            ET.SubElement(element, ["Unknown", "Particle", "Mask", "Bandpass"][pick % 4])
        elif action == "root":
            root.tag = ["MCOACJob", "MCOEXMXJob", "Job", "ParticleList"][pick % 4]
    path.write_text(ET.tostring(root, encoding="unicode"), encoding="utf-8")
    job = contract(path, lambda: read_mco_job(path))
    if not mutations:
        assert job is not None and job.kind == kind
    if job is not None:
        assert job.classes >= 2 and job.binning >= 1
        assert 0 <= job.lowest_frequency < job.highest_frequency
        assert len(job.particles) >= 1


def test_job(tmp_path, record_property):
    run_counted(_fuzz_job, tmp_path, 250, record_property)


def test_job_long_mask_filename(tmp_path):
    """Minimal reproducer: a Mask Filename longer than NAME_MAX raised OSError(ENAMETOOLONG)
    from pytom_job._validate_files' Path.is_file(), not a TomoclassError."""
    path = tmp_path / "job.xml"
    (tmp_path / "parts").mkdir()
    for name in ("parts/p0.em", "parts/p1.em"):
        (tmp_path / name).write_bytes(b"")
    path.write_text(job_text("exmx").replace("./mask.em", "m" * 300 + ".em"))
    must_fail(path, lambda: read_mco_job(path))
