"""The write-ahead journal in front of SQLite.

A write is acknowledged once its record is in the journal file: one os.write() of a
framed record, a few microseconds on the event loop, where a SQLite commit costs tens.
What the kernel has accepted survives a killed process. The writer thread applies records
to the database in large transactions in the background and stores the number of the
last record applied in the same transaction; at open, the records the database has not
seen yet are applied before anything else, so every acknowledged write reaches SQLite
exactly once.

Files: <data-dir>/rpcchat.journal.<generation>. The loop appends to the newest; past
`rotate_bytes` it starts the next generation, and an older file is deleted as soon as all
of its records are applied.

A record: a 16-byte header (payload length, CRC-32 of the payload, record number), then
the payload, the changes as JSON, each as [type name, field values...]. A torn record at
the end of the newest file (the process died inside write()) was never acknowledged; it
is cut off at open.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import pickle
import re
import struct
import types
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from rpcchat.domain.feature_records import FEATURE_CHANGE_TYPES
from rpcchat.domain.group_file_records import GROUP_FILE_CHANGE_TYPES
from rpcchat.domain.records import CORE_CHANGE_TYPES, Change

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "rpcchat.journal."
ROTATE_BYTES = 8 * 1024 * 1024
_HEADER = struct.Struct("<IIQ")  # payload length, CRC-32 of the payload, record number
_MAX_PAYLOAD = 256 * 1024 * 1024
_FILE_NAME = re.compile(re.escape(JOURNAL_PREFIX) + r"(\d{1,18})")

CHANGE_TYPES: tuple[type, ...] = (
    *CORE_CHANGE_TYPES, *GROUP_FILE_CHANGE_TYPES, *FEATURE_CHANGE_TYPES,
)


class JournalError(OSError):
    """The journal could not take a record; the write was not acknowledged."""


# --- encoding changes ---------------------------------------------------------------
#
# A change goes to the journal as (type name, (field values...)), a nested dataclass
# field as its own tuple of values, pickled. Pickle because it is about four times
# faster than JSON here and keeps tuples and floats exactly; reading uses an unpickler
# that refuses every class, so a journal file can only ever yield plain values.

_PLAIN_TYPES = (int, float, str, bool, type(None))


def _is_plain(hint: Any) -> bool:
    """Plain values: numbers, strings, None and JSON-ready dicts."""
    if hint in _PLAIN_TYPES or hint is Any:
        return True
    origin = get_origin(hint)
    if origin is dict:
        return True
    if origin in (Union, types.UnionType):
        return all(_is_plain(arg) for arg in get_args(hint))
    return False


@dataclass(frozen=True)
class _Shape:
    """How one dataclass becomes a tuple of plain values, and back."""

    cls: type
    values: Callable[[Any], tuple[Any, ...]]
    nested: tuple[tuple[int, _Shape], ...]  # (field index, shape) of dataclass fields
    count: int  # of fields

    def encode(self, value: Any) -> tuple[Any, ...]:
        fields = self.values(value)
        if not self.nested:
            return fields
        out = list(fields)
        for index, inner in self.nested:
            out[index] = inner.encode(out[index])
        return tuple(out)

    def decode(self, fields: Any) -> Any:
        if not isinstance(fields, tuple) or len(fields) != self.count:
            raise ValueError(f"{self.cls.__name__}: needs a tuple of {self.count} fields")
        if self.nested:
            out = list(fields)
            for index, inner in self.nested:
                out[index] = inner.decode(out[index])
            fields = out
        return self.cls(*fields)


def _shape_of(cls: type) -> _Shape:
    hints = get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    nested: list[tuple[int, _Shape]] = []
    for index, name in enumerate(names):
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            nested.append((index, _shape_of(hint)))
        elif not _is_plain(hint):
            raise TypeError(f"{cls.__name__}.{name}: {hint} cannot go to the journal")
    getter = attrgetter(*names)
    values: Callable[[Any], tuple[Any, ...]] = (
        getter if len(names) > 1 else (lambda value: (getter(value),)))
    return _Shape(cls, values, tuple(nested), len(names))


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the journal holds plain values only, not {module}.{name}")


class ChangeCodec:
    """Changes to bytes and back, by type name and field order."""

    def __init__(self, change_types: Sequence[type] = CHANGE_TYPES) -> None:
        shapes = [_shape_of(cls) for cls in change_types]
        self._by_type = {shape.cls: (shape.cls.__name__, shape) for shape in shapes}
        self._by_name = {shape.cls.__name__: shape for shape in shapes}
        if len(self._by_name) != len(self._by_type):
            raise ValueError("change type names must be unique")

    def encode(self, changes: Sequence[Change]) -> bytes:
        items = []
        for change in changes:
            name, shape = self._by_type[type(change)]
            items.append((name, shape.encode(change)))
        return pickle.dumps(tuple(items), protocol=5)

    def decode(self, payload: bytes) -> list[Change]:
        try:
            items = _PlainUnpickler(io.BytesIO(payload)).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise ValueError(f"unreadable journal record: {exc}") from exc
        if not isinstance(items, tuple):
            raise ValueError("a journal record holds a tuple of changes")
        changes: list[Change] = []
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and item[0] in self._by_name):
                raise ValueError(f"not a journaled change: {str(item)[:80]}")
            changes.append(self._by_name[item[0]].decode(item[1]))
        return changes


# --- records on disk -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    number: int
    payload: bytes


def frame(number: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload), number) + payload


def read_records(data: bytes) -> tuple[list[Record], int]:
    """The whole records at the start of `data`, and where they end (the rest is torn
    or damaged)."""
    records: list[Record] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc, number = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start:start + length]
        if length > _MAX_PAYLOAD or len(payload) < length or zlib.crc32(payload) != crc:
            break
        records.append(Record(number, payload))
        offset = start + length
    return records, offset


def journal_files(directory: Path) -> list[tuple[int, Path]]:
    """(generation, path) of the journal files, oldest first."""
    found = []
    for path in directory.glob(JOURNAL_PREFIX + "*"):
        match = _FILE_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_journal(directory: Path) -> Iterator[tuple[int, list[Record]]]:
    """(generation, whole records) of each journal file, oldest first, one file in memory
    at a time. A torn tail of the newest file (never acknowledged) is cut off."""
    files = journal_files(directory)
    for position, (generation, path) in enumerate(files):
        data = path.read_bytes()
        found, end = read_records(data)
        if end < len(data):
            if position == len(files) - 1:
                logger.warning("journal %s: cutting %d bytes of a torn last record",
                               path.name, len(data) - end)
                with open(path, "r+b") as handle:
                    handle.truncate(end)
            else:
                logger.error("journal %s is damaged after byte %d; %d bytes are unreadable",
                             path.name, end, len(data) - end)
        del data
        yield generation, found


def remove_files(directory: Path) -> None:
    for _, path in journal_files(directory):
        path.unlink(missing_ok=True)


def batches(records: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(records), size):
        yield records[start:start + size]


# --- appending (event loop) ------------------------------------------------------------


class JournalWriter:
    """Appends records on the event loop; one write() each, no fsync.

    `applied(number)` tells it how far the database has caught up, so files whose records
    are all applied can go."""

    def __init__(self, directory: Path, codec: ChangeCodec, *, next_number: int,
                 generation: int, rotate_bytes: int = ROTATE_BYTES) -> None:
        self._directory = directory
        self._codec = codec
        self._rotate_bytes = rotate_bytes
        self.last_number = next_number - 1
        self._generation = generation
        self._fd = -1
        self._size = 0
        self._broken: str | None = None
        # Older generations not deleted yet: (last record number in it, path).
        self._older: list[tuple[int, Path]] = []
        self._open_generation()

    def _path(self, generation: int) -> Path:
        return self._directory / f"{JOURNAL_PREFIX}{generation}"

    def _open_generation(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self._path(self._generation), flags, 0o600)
        self._size = os.fstat(self._fd).st_size

    def append(self, changes: Sequence[Change]) -> int:
        """Write one record; its number once the kernel has all of it."""
        if self._broken is not None:
            raise JournalError(f"journal unusable: {self._broken}")
        number = self.last_number + 1
        data = frame(number, self._codec.encode(changes))
        if self._size + len(data) > self._rotate_bytes and self._size:
            self._rotate()
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise JournalError(f"short write ({written} of {len(data)} bytes)")
        except OSError as exc:
            self._undo_partial(exc)
            raise JournalError(f"journal write failed: {exc}") from exc
        self._size += len(data)
        self.last_number = number
        return number

    def _undo_partial(self, cause: OSError) -> None:
        # A partial record in the middle would hide every later one at the next open.
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = f"could not remove a partial record ({exc}) after: {cause}"
            logger.error("journal: %s", self._broken)

    def _rotate(self) -> None:
        # The next file is opened first: if that fails, appends go on in the current one.
        old_fd, old_path = self._fd, self._path(self._generation)
        self._generation += 1
        try:
            self._open_generation()
        except OSError:
            self._generation -= 1
            self._fd = old_fd
            raise
        os.close(old_fd)
        self._older.append((self.last_number, old_path))

    def applied(self, number: int) -> None:
        """The database holds every record up to `number`: drop files entirely below."""
        while self._older and self._older[0][0] <= number:
            _, path = self._older.pop(0)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.error("journal: could not delete %s: %s", path.name, exc)

    def close(self, *, all_applied: bool) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if all_applied:
            remove_files(self._directory)
