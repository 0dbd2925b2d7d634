"""De-identification: the PS3.15 basic profile (:mod:`reviewer.export.deid_profile`) applied to pydicom datasets,
and the same scrubbing for text that leaves the app in other forms (JSON sidecars, manifests, PNG captions).

One :class:`Deidentifier` serves one export: its UID map is consistent (the same source UID always becomes the
same new UID, so SR and SEG references still resolve), deterministic (an HMAC of the UID under a key drawn for
the export, not reversible without the key, which is never written) and shared by every object of the export.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID_dictionary

from reviewer.export.deid_profile import (
    BASIC_PROFILE,
    CODES,
    PATIENT_CHARACTERISTICS,
    TYPE2_DATES,
)

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
FREE_TEXT_VRS = {"LT", "ST", "UT"}
# values remembered as identifying: text, names and dates (not numbers, codes, times or UIDs, which the rules
# remove or map but which would match unrelated digits when searching written files)
IDENTITY_VRS = {"AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
KEEP_FREE_TEXT = {"DerivationDescription"}
# dates / times of the patient that follow the table even when other dates are shifted
PATIENT_DATES = {"PatientBirthDate", "PatientBirthTime", "LastMenstrualDate"}
MIN_PHI_LEN = 4
NOT_MAPPED_UIDS = {"CodingSchemeUID", "MappingResourceUID", "ContextGroupExtensionCreatorUID",
                   "ImplementationClassUID", "PrivateRecordUID"}
# removed, but vocabulary rather than identity: never searched for (they recur in every export)
NOT_IDENTITY = {"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
                "URNCodeValue", "DeidentificationMethod", "PrivateCreator"}
# a UID in free text (four or more numeric components): replaced through the export's map
UID_TOKEN = re.compile(r"(?<![\d.])[0-2](?:\.(?:0|[1-9]\d*)){3,}(?![\d.])")
REMOVED = "[removed]"


# values that stand for "no identity" in already anonymised data: not identifying, and searching for them would
# refuse exports that contain the same words (our own pseudonyms start with ANON-)
PLACEHOLDERS = {"anon", "anonymous", "anonymized", "anonymised", "anonymize", "unknown", "none", "null", "removed",
                "deidentified", "de-identified", "not available", "n/a", "na", "test", "patient", "nobody", "empty",
                "redacted", "xxxx", "xxxxx", "0000", "00000000"}


def _placeholder(value: str) -> bool:
    v = value.strip().strip("^=").replace("^", " ").strip().lower()
    return v in PLACEHOLDERS or not any(c.isalnum() for c in v)


def _date_forms(value: str) -> list[str]:
    """The spellings of a DICOM date (YYYYMMDD) that might appear in paths, JSON or captions."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value.strip()[:8]) if len(value.strip()) >= 8 else None
    if not m:
        return [value]
    y, mo, d = m.groups()
    return [f"{y}{mo}{d}", f"{y}-{mo}-{d}", f"{mo}-{d}-{y}", f"{d}.{mo}.{y}", f"{y}/{mo}/{d}", f"{mo}/{d}/{y}"]


@dataclass
class DeidRecord:
    """What one export did, for the manifest."""

    enabled: bool
    profile: str = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"
    options: list[str] = field(default_factory=list)
    dates: str = "removed"  # removed | shifted (intervals kept) | kept
    uids: str = "replaced consistently within this export (HMAC under a key that is not stored)"
    private_tags: str = "removed"
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Deidentifier:
    """Applies the basic profile to datasets and scrubs text; one instance per export.

    ``shift_days``: Retain Longitudinal Temporal Information with Modified Dates (every date moves by the same
    number of days, times kept, so intervals survive). ``keep_patient_characteristics``: the Retain Patient
    Characteristics option (age, sex, size, weight). ``key``: HMAC key for UIDs and pseudonyms (random by default;
    give the same key to several exports to keep their UIDs linkable).
    """

    def __init__(self, shift_days: int | None = None, keep_patient_characteristics: bool = False,
                 key: bytes | None = None, pseudonym_prefix: str = "ANON"):
        if shift_days is not None and int(shift_days) == 0:
            raise ValueError("a date shift of 0 days keeps the dates: leave --shift-dates out to remove them")
        self.shift_days = None if shift_days is None else int(shift_days)
        self.keep_patient_characteristics = keep_patient_characteristics
        self.key = key or secrets.token_bytes(32)
        self.prefix = pseudonym_prefix
        self.uid_map: dict[str, str] = {}
        self.phi: set[str] = set()
        self.phi_words: set[str] = set()
        self.paths: set[str] = set()
        self.produced_dates: set[str] = set()  # shifted dates written (may equal another source date)  # where the source lives (folder names often carry names and dates)
        self.counts: dict[str, int] = {}
        self.warnings: list[str] = []
        self.profile = dict(BASIC_PROFILE)
        if keep_patient_characteristics:
            self.profile.update({k: "K" for k in PATIENT_CHARACTERISTICS})

    # -- maps --------------------------------------------------------------------------------------------------
    def _digest(self, text: str) -> bytes:
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).digest()

    def map_uid(self, uid: str) -> str:
        """The export's replacement for ``uid`` (registered DICOM UIDs such as SOP classes are kept)."""
        uid = str(uid).strip().rstrip("\x00")
        if not uid or uid in UID_dictionary:
            return uid
        new = self.uid_map.get(uid)
        if new is None:
            new = "2.25." + str(int.from_bytes(self._digest("uid:" + uid)[:16], "big"))
            self.uid_map[uid] = new
        return new

    def pseudonym(self, identity: str) -> str:
        """A stable pseudonym (e.g. ANON-3F9A1C07B2) for a patient identity within this export."""
        return f"{self.prefix}-{self._digest('patient:' + identity).hex()[:10].upper()}"

    def shift_date(self, value: str) -> str:
        """Shift a DA (YYYYMMDD) or the date part of a DT by ``shift_days``; unparsable values become empty."""
        v = str(value).strip()
        if len(v) < 8 or not v[:8].isdigit():
            return ""
        try:
            d = _dt.date(int(v[:4]), int(v[4:6]), int(v[6:8])) + _dt.timedelta(days=self.shift_days or 0)
        except ValueError:
            return ""
        self.produced_dates.update(_date_forms(d.strftime("%Y%m%d")))
        return d.strftime("%Y%m%d") + v[8:]

    # -- collecting identifying values --------------------------------------------------------------------------
    def collect(self, datasets: Iterable[Dataset]) -> None:
        """Remember the identifying values of the source (used to clean descriptors and to scrub text)."""
        for ds in datasets:
            self._collect(ds)

    def _add_phi(self, value: str, vr: str) -> None:
        value = str(value).strip().rstrip("\x00").strip()
        if len(value) < MIN_PHI_LEN or _placeholder(value):
            return
        if vr in ("DA", "DT"):
            self.phi.update(f for f in _date_forms(value) if len(f) >= MIN_PHI_LEN)
            return
        self.phi.add(value)
        if vr == "PN":
            for part in re.split(r"[\^= ]", value):
                part = part.strip()
                if _placeholder(part):
                    continue
                if len(part) >= MIN_PHI_LEN:
                    self.phi.add(part)
                elif len(part) >= 2 and part.isalpha():
                    self.phi_words.add(part)  # short name parts: matched as whole words only

    def _collect(self, ds: Dataset, inside_removed: bool = False) -> None:
        for elem in ds:
            action = self.profile.get(elem.keyword)
            if elem.VR == "SQ":
                for item in elem.value or []:  # everything inside a removed sequence is identifying
                    self._collect(item, inside_removed or action == "X" or elem.tag.is_private)
                continue
            if elem.VR not in IDENTITY_VRS or elem.value is None or elem.keyword in NOT_IDENTITY \
                    or elem.tag.is_private_creator:
                continue
            identifying = inside_removed or elem.tag.is_private or action in ("D", "Z", "X") \
                or elem.VR in ("PN", "DA", "DT")
            if elem.keyword in PATIENT_CHARACTERISTICS and self.keep_patient_characteristics:
                identifying = False
            if not identifying:
                continue
            values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
            for v in values:
                if isinstance(v, bytes):
                    v = v.decode("latin-1", "ignore")
                if elem.tag.is_private and not any(c.isalpha() for c in str(v)):
                    continue  # private numbers (calibration values...) would match unrelated digits
                self._add_phi(str(v), elem.VR)

    def _words_re(self) -> "re.Pattern[str] | None":
        if not self.phi_words:
            return None
        key = frozenset(self.phi_words)
        if getattr(self, "_words_key", None) == key:
            return self._words_cache
        alternatives = "|".join(re.escape(w) for w in sorted(self.phi_words, key=len, reverse=True))
        self._words_key = key
        self._words_cache = re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", re.IGNORECASE)
        return self._words_cache

    def searchable(self) -> list[str]:
        """What a written file must not contain: identifying values, source UIDs and paths. Dates this export
        writes itself (shifted dates, today's creation date) are left out: they may equal a source date."""
        today = set(_date_forms(_dt.date.today().strftime("%Y%m%d")))
        values = {p for p in self.phi if p not in self.produced_dates and p not in today}
        return sorted(values) + sorted(self.uid_map) + sorted(self.paths)

    def contains_phi(self, text: str) -> bool:
        words = self._words_re()
        return any(p in text for p in self.phi) or bool(words is not None and words.search(text))

    # -- datasets --------------------------------------------------------------------------------------------
    def apply(self, source: Dataset, collect: bool = True, identity: str = "") -> Dataset:
        """A de-identified copy of ``source`` (the source is not modified).

        ``collect``: remember the dataset's identifying values (off for datasets the app built itself);
        ``identity``: what the pseudonym is derived from (default: PatientID, else PatientName).
        """
        if collect:
            self._collect(source)
        ds = copy.deepcopy(source)
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            msg = (f"image {ds.get('InstanceNumber', '?')} of series {ds.get('SeriesNumber', '?')} is flagged "
                   "BurnedInAnnotation=YES: identifying text may be burned into the pixels and is NOT removed")
            if msg not in self.warnings:
                self.warnings.append(msg)
        patient = identity or str(source.get("PatientID", "") or source.get("PatientName", "") or "unknown")
        self._walk(ds, top=True, patient=patient)
        self._stamp(ds)
        if hasattr(ds, "file_meta") and "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return ds

    def _count(self, action: str) -> None:
        self.counts[action] = self.counts.get(action, 0) + 1

    def _walk(self, ds: Dataset, top: bool, patient: str) -> None:
        for elem in list(ds):
            tag, kw, vr = elem.tag, elem.keyword, elem.VR
            if tag.is_private:
                del ds[tag]
                self._count("private removed")
                continue
            if 0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF:
                del ds[tag]  # curves and overlay planes (their data and descriptions)
                self._count("curve/overlay removed")
                continue
            action = self.profile.get(kw)
            if vr in ("DA", "DT", "TM") and kw not in PATIENT_DATES and (action in (None, "Z", "X")):
                self._date(ds, elem, top)
                continue
            if action is None:
                action = self._generic_action(elem)
            if action == "X":
                del ds[tag]
            elif action == "Z":
                elem.value = DicomSequence([]) if vr == "SQ" else ("" if vr in TEXT_VRS else None)
            elif action == "D":
                if kw in ("PatientName", "PatientID"):
                    elem.value = self.pseudonym(patient) + ("^" if vr == "PN" else "")
                else:
                    elem.value = "ANONYMOUS^" if vr == "PN" else "ANONYMOUS"
            elif action == "U":
                elem.value = self._map_uids(elem.value)
            elif action == "C":
                if elem.value is not None and self.contains_phi(str(elem.value)):
                    del ds[tag]
                    action = "X"
            elif action == "K" and vr == "SQ":
                for item in elem.value or []:
                    self._walk(item, top=False, patient=patient)
            if action == "K" and vr in TEXT_VRS and vr != "UI" and elem.value is not None \
                    and self.contains_phi(str(elem.value)):
                elem.value = ""  # a kept string holding an identifying value of the source (emptied, so a type 2
                action = "Z"     # attribute such as Manufacturer stays present)
            self._count(action)

    def _generic_action(self, elem: Any) -> str:
        vr = elem.VR
        if vr == "PN":
            return "X"
        if vr == "UI":  # instances are mapped; classes, syntaxes and vocabularies are not identifying
            kw = elem.keyword
            return "K" if kw.endswith(("ClassUID", "SyntaxUID")) or kw in NOT_MAPPED_UIDS else "U"
        if vr in FREE_TEXT_VRS and elem.keyword not in KEEP_FREE_TEXT:
            return "X"
        return "K"

    def _map_uids(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return self.map_uid(value)
        return [self.map_uid(v) for v in value]

    def _date(self, ds: Dataset, elem: Any, top: bool) -> None:
        vr, kw = elem.VR, elem.keyword
        if self.shift_days is not None:
            if vr in ("DA", "DT") and elem.value:
                vals = elem.value if not isinstance(elem.value, str) else [elem.value]
                shifted = [self.shift_date(str(v)) for v in vals]
                elem.value = shifted[0] if isinstance(elem.value, str) else shifted
                self._count("date shifted")
            else:
                self._count("K")
            return
        if top and kw in TYPE2_DATES:
            elem.value = ""
            self._count("Z")
        else:
            del ds[elem.tag]
            self._count("X")

    def _stamp(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self.method_text()[:64]
        seq = []
        for key in self.option_keys():
            value, meaning = CODES[key]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            seq.append(item)
        ds.DeidentificationMethodCodeSequence = DicomSequence(seq)
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.shift_days is not None else "REMOVED"

    # -- descriptions -------------------------------------------------------------------------------------------
    def option_keys(self) -> list[str]:
        keys = ["basic", "clean_descriptors"]
        if self.shift_days is not None:
            keys.append("modified_dates")
        if self.keep_patient_characteristics:
            keys.append("patient_characteristics")
        return keys

    def method_text(self) -> str:
        return "reviewer: PS3.15 E.1 basic profile" + (", dates shifted" if self.shift_days is not None else "")

    def record(self) -> DeidRecord:
        return DeidRecord(
            enabled=True,
            options=[f"DCM {CODES[k][0]} {CODES[k][1]}" for k in self.option_keys()],
            dates="shifted by a fixed number of days (intervals kept; the offset is not recorded)"
            if self.shift_days is not None else "removed (type 2 dates left empty)",
            counts=dict(sorted(self.counts.items())), warnings=list(self.warnings),
        )

    # -- text outside DICOM --------------------------------------------------------------------------------------
    def add_source_paths(self, paths: Iterable[str]) -> None:
        """Remember the source's file and folder paths: never written, replaced in text, searched for."""
        import os

        for p in paths:
            if p and len(str(p)) >= MIN_PHI_LEN:
                self.paths.add(os.path.abspath(str(p)))

    def scrub_text(self, text: str) -> str:
        """Replace identifying values of the source, its paths and its UIDs in free text (JSON, captions)."""
        out = str(text)
        for p in sorted(self.paths, key=len, reverse=True):
            if p in out:
                out = out.replace(p, "[source path]")
        out = UID_TOKEN.sub(lambda m: self.map_uid(m.group(0)), out)
        for p in sorted(self.phi, key=len, reverse=True):
            if p in out:
                out = out.replace(p, REMOVED)
        words = self._words_re()
        return words.sub(REMOVED, out) if words is not None else out

    def scrub_json(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.scrub_text(obj)
        if isinstance(obj, dict):
            return {self.scrub_text(str(k)): self.scrub_json(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_json(v) for v in obj]
        return obj
