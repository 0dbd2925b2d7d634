"""A small DICOM header parser for the common case, much faster than ``pydicom.dcmread`` for a catalog scan.

It reads Part-10 files (128-byte preamble + 'DICM') whose transfer syntax is Explicit or Implicit VR Little
Endian, walks the top-level data elements with ``struct.unpack_from`` over a chunk of the file (read again
further on when an element lies beyond it), keeps only the wanted tags' raw values, skips everything else
(defined-length values in one jump; undefined-length sequences and items walked to their delimiters) and stops
at (7FE0,0010) Pixel Data, recording where its value starts and how long it is.

Values are decoded the way :func:`reviewer.io.dicom_headers._fast_getter` decodes pydicom's raw elements
(strings: latin-1, stripped of spaces and NULs, split on backslash; US: an int), so the FileHeader built from
them equals the one built by the pydicom path. Whenever anything is unusual (another transfer syntax, no
preamble, a VR that does not match, tags out of order, non-ASCII text where pydicom would apply a character set,
no pixel data, encapsulated pixel data, a value past the end of the file, ...) :func:`parse` returns None and the
caller falls back to pydicom, which then decides (and reports) exactly as before.
"""

from __future__ import annotations

import os
from struct import Struct

from pydicom.datadict import dictionary_VR, tag_for_keyword

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
CHUNK = 16384
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD

_EXPLICIT_HEAD = Struct("<HH2sH").unpack_from  # group, element, VR, 16-bit length
_IMPLICIT_HEAD = Struct("<HHI").unpack_from  # group, element, 32-bit length (implicit VR elements and items)
_U32 = Struct("<I").unpack_from
_U16 = Struct("<H").unpack_from

LONG_VRS = frozenset(v.encode() for v in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                                          "UT", "UV"))
VALID_VRS = LONG_VRS | frozenset(v.encode() for v in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS",
                                                      "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL",
                                                      "US"))
STRING_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI"))
SPECIFIC_CHARACTER_SET = 0x00080005


class Decline(Exception):
    """The file is not the simple case: let pydicom read it."""


class FastHeader:
    """What :func:`parse` found: decoded values by keyword, the transfer syntax and the pixel data location."""

    __slots__ = ("values", "transfer_syntax", "pixel_offset", "pixel_length", "size", "n_elements")

    def __init__(self, values: dict, transfer_syntax: str, pixel_offset: int, pixel_length: int, size: int,
                 n_elements: int):
        self.values = values
        self.transfer_syntax = transfer_syntax
        self.pixel_offset = pixel_offset
        self.pixel_length = pixel_length
        self.size = size
        self.n_elements = n_elements  # wanted elements present (what ``len(ds)`` counts on the pydicom path)


class _File:
    """A window ``buf`` = file[base : base + len(buf)] that moves forward on demand."""

    __slots__ = ("f", "size", "buf", "base")

    def __init__(self, f, size: int, buf: bytes):
        self.f, self.size, self.buf, self.base = f, size, buf, 0

    def need(self, pos: int, n: int) -> int:
        """Make bytes [pos, pos + n) available; return their offset in ``buf``. Declines past the end."""
        off = pos - self.base
        if off >= 0 and off + n <= len(self.buf):
            return off
        if pos + n > self.size or pos < 0:
            raise Decline("past the end of the file")
        self.f.seek(pos)
        self.buf = self.f.read(max(n, CHUNK))
        self.base = pos
        if len(self.buf) < n:
            raise Decline("short read")
        return 0


def _skip_sequence(fl: _File, pos: int, implicit: bool, depth: int = 0) -> int:
    """``pos`` is just after an undefined-length element's header; return the position after its delimiter."""
    if depth > 32:
        raise Decline("sequences nested too deep")
    while True:
        off = fl.need(pos, 8)
        group, elem, length = _IMPLICIT_HEAD(fl.buf, off)
        tag = group << 16 | elem
        pos += 8
        if tag == SEQ_END:
            return pos
        if tag != ITEM:
            raise Decline("unexpected element in a sequence")
        if length != UNDEFINED:
            pos += length
            continue
        while True:  # an undefined-length item: walk its elements up to the item delimiter
            off = fl.need(pos, 8)
            if implicit:
                group, elem, length = _IMPLICIT_HEAD(fl.buf, off)
                tag = group << 16 | elem
                if tag == ITEM_END:
                    pos += 8
                    break
                vr = None
                pos += 8
            else:
                group, elem, vr, length = _EXPLICIT_HEAD(fl.buf, off)
                tag = group << 16 | elem
                if tag == ITEM_END:
                    pos += 8
                    break
                if vr in LONG_VRS:
                    off = fl.need(pos, 12)
                    (length,) = _U32(fl.buf, off + 8)
                    pos += 12
                elif vr in VALID_VRS:
                    pos += 8
                else:
                    raise Decline("unknown VR inside a sequence")
            if length == UNDEFINED:
                if implicit or vr == b"UN":
                    pos = _skip_sequence(fl, pos, True, depth + 1)
                elif vr in (b"SQ", b"OB", b"OW"):
                    pos = _skip_sequence(fl, pos, False, depth + 1)
                else:
                    raise Decline("undefined length on a non-sequence element")
            else:
                pos += length


def wanted_tags(keywords) -> dict[int, tuple[str, str]]:
    out = {}
    for kw in keywords:
        tag = tag_for_keyword(kw)
        if tag is not None:
            out[tag] = (kw, dictionary_VR(tag))
    return out


def _decode(vr: str, raw: bytes, implicit: bool):
    """Value as the pydicom path's getter returns it (None for an empty string value)."""
    if vr in STRING_VRS:
        if implicit and not raw.isascii():
            raise Decline("non-ASCII text in an implicit VR file (pydicom would apply the character set)")
        text = raw.decode("latin-1").strip(" \x00")
        if implicit:  # pydicom converts these values itself: accept only the plain forms where it agrees
            parts = text.split("\\")
            if text == "" or any(p != p.strip(" \x00") or p == "" for p in parts):
                raise Decline("empty or padded value in an implicit VR file")
            if vr in ("DS", "IS"):
                try:
                    nums = [float(p) for p in parts]
                except ValueError:
                    raise Decline("not a number") from None
                if vr == "IS" and any(not n.is_integer() for n in nums):
                    raise Decline("IS value is not an integer")
        if text == "":
            return None
        return text.split("\\") if "\\" in text else text
    if vr == "US":
        if len(raw) != 2:
            raise Decline("US value of unusual length")
        return _U16(raw, 0)[0]
    if vr == "PN":
        if not raw.isascii() or b"\\" in raw or b"\x00" in raw.rstrip(b" \x00"):
            raise Decline("person name needs pydicom's decoding")
        text = raw.decode("ascii").strip(" \x00")
        return text or None
    raise Decline(f"VR {vr} of a wanted element is not decoded here")


def parse(path: str, wanted: dict[int, tuple[str, str]]) -> FastHeader | None:
    """Parse ``path``'s header for the ``wanted`` tags (from :func:`wanted_tags`); None to fall back to pydicom."""
    try:
        with open(path, "rb") as f:
            buf = f.read(CHUNK)
            if len(buf) < 144 or buf[128:132] != b"DICM":
                return None
            size = os.fstat(f.fileno()).st_size
            fl = _File(f, size, buf)
            return _parse(fl, wanted)
    except (Decline, OSError, UnicodeDecodeError, IndexError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - struct.error and anything else unforeseen: pydicom decides
        return None


def _parse_meta(fl: _File) -> tuple[str, int]:
    """File meta group (always explicit VR little endian): (transfer syntax UID, position after the group)."""
    buf = fl.buf
    group, elem, vr, length = _EXPLICIT_HEAD(buf, 132)
    if (group, elem, vr, length) != (0x0002, 0x0000, b"UL", 4):
        raise Decline("no file meta group length first")
    end = 144 + _U32(buf, 140)[0]
    pos = 144
    ts = None
    while pos < end:
        off = fl.need(pos, 8)
        group, elem, vr, length = _EXPLICIT_HEAD(fl.buf, off)
        if group != 0x0002:
            raise Decline("file meta group length is wrong")
        if vr in LONG_VRS:
            off = fl.need(pos, 12)
            (length,) = _U32(fl.buf, off + 8)
            hdr = 12
        elif vr in VALID_VRS:
            hdr = 8
        else:
            raise Decline("file meta element with an unknown VR")
        if length == UNDEFINED:
            raise Decline("undefined length in the file meta group")
        if elem == 0x0010:
            off = fl.need(pos + hdr, length)
            raw = fl.buf[off:off + length]
            if not raw.isascii():
                raise Decline("odd transfer syntax UID")
            ts = raw.decode("ascii").strip(" \x00")
        pos += hdr + length
    if pos != end or ts is None:
        raise Decline("file meta group length is wrong or no transfer syntax")
    return ts, pos


def _parse(fl: _File, wanted: dict[int, tuple[str, str]]) -> FastHeader:
    ts, pos = _parse_meta(fl)
    if ts == EXPLICIT_LE:
        implicit = False
    elif ts == IMPLICIT_LE:
        implicit = True
    else:
        raise Decline("transfer syntax handled by pydicom")
    off = fl.need(pos, 8)
    looks_explicit = fl.buf[off + 4:off + 6] in VALID_VRS
    if looks_explicit == implicit:  # pydicom notices such files and switches encoding: let it
        raise Decline("dataset encoding does not match the transfer syntax")
    raws: dict[int, tuple[str, bytes]] = {}
    last = -1
    size = fl.size
    while True:
        if pos + 8 > size:
            raise Decline("no pixel data")  # pydicom decides whether that is an error
        off = pos - fl.base
        buf = fl.buf
        if off < 0 or off + 12 > len(buf):
            off = fl.need(pos, min(12, size - pos))
            buf = fl.buf
        if implicit:
            group, elem, length = _IMPLICIT_HEAD(buf, off)
            tag = group << 16 | elem
            vr = None
            hdr = 8
        else:
            group, elem, vr, length = _EXPLICIT_HEAD(buf, off)
            tag = group << 16 | elem
            if vr in LONG_VRS:
                if off + 12 > len(buf):
                    raise Decline("truncated element header")
                (length,) = _U32(buf, off + 8)
                hdr = 12
            elif vr in VALID_VRS:
                hdr = 8
            else:
                raise Decline("unknown VR")
        if tag <= last or group == 0xFFFE or group == 0x0002:
            raise Decline("tags out of order or stray delimiters")
        last = tag
        if tag >= 0x7FE00008:
            if tag != PIXEL_DATA or length == UNDEFINED:
                raise Decline("float, encapsulated or missing pixel data")
            if not implicit and vr not in (b"OW", b"OB", b"OX", b"UN"):
                raise Decline("pixel data with an odd VR")
            pixel_offset, pixel_length = pos + hdr, length
            break
        if length == UNDEFINED:
            if tag in wanted:
                raise Decline("wanted element with undefined length")
            if implicit or vr == b"UN":
                pos = _skip_sequence(fl, pos + hdr, True)
            elif vr == b"SQ":
                pos = _skip_sequence(fl, pos + hdr, False)
            else:
                raise Decline("undefined length on a non-sequence element")
            continue
        vpos = pos + hdr
        if tag in wanted or tag == SPECIFIC_CHARACTER_SET:
            o = fl.need(vpos, length) if length else 0
            raws[tag] = (vr, fl.buf[o:o + length])
        pos = vpos + length
    values = {}
    n_elements = 0
    for tag, (vr, raw) in raws.items():
        n_elements += 1
        if tag == SPECIFIC_CHARACTER_SET:
            continue
        kw, dict_vr = wanted[tag]
        if " or " in dict_vr:  # e.g. PixelPaddingValue (US or SS): counted, never read by the catalog
            continue
        if implicit:
            vr_s = dict_vr
        else:
            vr_s = vr.decode("ascii")
            if vr_s != dict_vr and not (vr_s in STRING_VRS and dict_vr in STRING_VRS):
                raise Decline("VR differs from the dictionary")
        value = _decode(vr_s, raw, implicit)
        if value is not None:
            values[kw] = value
    return FastHeader(values, ts, pixel_offset, pixel_length, size, n_elements)
