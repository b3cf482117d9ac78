# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The sinks' fast path, compiled: a list of consumed messages in, runs of checked datums out.

``kafkube.consumers.fastpath`` says when it is used and what it stands for; the runner takes
what it gives. Per message it reads the framing, finds the writer schema among those it is
given, checks the datum whole with that schema's program (``kafkube.schemas.program``) and
copies it out. Consecutive records of one partition, one writer and one hour make a run. Any
message it does not pass (an error or end-of-partition event, a framing or schema it was not
given, a datum its check refuses) comes back as it is, in its place, for the runner's Python
path to decide on.
"""

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint64_t
from cpython.datetime cimport datetime_new, import_datetime
from libc.string cimport memcmp, memcpy, memset
from libc.stdlib cimport calloc, free, malloc

from datetime import timezone

from orjson import dumps as _orjson_dumps

import_datetime()
cdef object _UTC = timezone.utc

cdef extern from "Python.h":
    object PyObject_CallMethodNoArgs(object obj, object name)

# The opcodes of kafkube.schemas.program (a test holds the two to the same numbers).
cdef enum:
    NULL_ = 0
    BOOLEAN = 1
    LONG = 2
    FLOAT = 3
    DOUBLE = 4
    STRING = 5
    BYTES = 6
    ENUM = 7
    RECORD = 8
    ARRAY = 9
    MAP = 10
    NULLABLE = 11
    TIMESTAMP = 12

cdef enum:
    MAX_KEYS = 64  # a map's keys the JSON renderer tells apart (more: the Python path)
    MAX_VARINT = 10
    MAX_DEPTH = 64
    CORRUPT = -1

# For the tests: the numbers above by the names kafkube.schemas.program gives them.
OPCODES = {
    "NULL": NULL_, "BOOLEAN": BOOLEAN, "LONG": LONG, "FLOAT": FLOAT, "DOUBLE": DOUBLE,
    "STRING": STRING, "BYTES": BYTES, "ENUM": ENUM, "RECORD": RECORD, "ARRAY": ARRAY,
    "MAP": MAP, "NULLABLE": NULLABLE, "TIMESTAMP": TIMESTAMP,
}

cdef str _ERROR = "error", _VALUE = "value", _TOPIC = "topic", _PARTITION = "partition"
cdef str _OFFSET = "offset", _TIMESTAMP = "timestamp"


cdef int32_t[1] _KEY_CODE
_KEY_CODE[0] = STRING  # a map's key: a string


cdef inline Py_ssize_t _skip_varint(
    const unsigned char* d, Py_ssize_t p, Py_ssize_t n
) noexcept nogil:
    """Past a varint of at most ten bytes; CORRUPT if it does not end in time."""
    cdef Py_ssize_t e = p
    while True:
        if e >= n or e - p >= MAX_VARINT:
            return CORRUPT
        if not d[e] & 128:
            return e + 1
        e += 1


cdef inline Py_ssize_t _varint(
    const unsigned char* d, Py_ssize_t p, Py_ssize_t n, int64_t* value
) noexcept nogil:
    """A zig-zag varint of at most ten bytes that fits 64 bits; CORRUPT otherwise."""
    cdef uint64_t raw = 0
    cdef int shift = 0
    cdef unsigned char byte
    while True:
        if p >= n or shift >= 7 * MAX_VARINT:
            return CORRUPT
        byte = d[p]
        p += 1
        if shift == 63 and byte & 0x7E:
            return CORRUPT  # more than 64 bits
        raw |= (<uint64_t>(byte & 127)) << shift
        if not byte & 128:
            value[0] = <int64_t>(raw >> 1) ^ -(<int64_t>(raw & 1))
            return p
        shift += 7


cdef inline bint _utf8(const unsigned char* d, Py_ssize_t p, Py_ssize_t e):
    """Whether bytes are UTF-8 as Python's strict decoder has it (ASCII at a glance)."""
    cdef Py_ssize_t i = p
    while i < e:
        if d[i] & 128:
            try:
                PyUnicode_DecodeUTF8(<const char*>d + p, e - p, "strict")
            except UnicodeDecodeError:
                return False
            return True
        i += 1
    return True


cdef Py_ssize_t _skip(
    const int32_t* code, int32_t node, const unsigned char* d, Py_ssize_t p, Py_ssize_t n,
    int depth
) noexcept:
    """Past one value of ``node`` at ``p``; CORRUPT if the bytes are not one."""
    cdef int32_t op = code[node]
    cdef int64_t value, count
    cdef int32_t i
    if depth > MAX_DEPTH:
        return CORRUPT
    if op == NULL_:
        return p
    if op == LONG or op == TIMESTAMP:
        return _skip_varint(d, p, n)
    if op == STRING or op == BYTES:
        p = _length_at(d, p, n, &value)
        if p == CORRUPT or (op == STRING and not _utf8(d, p, p + value)):
            return CORRUPT
        return p + value
    if op == RECORD:
        for i in range(code[node + 1]):
            p = _skip(code, code[node + 3 + i], d, p, n, depth + 1)
            if p == CORRUPT:
                return CORRUPT
        return p
    if op == NULLABLE:
        if p >= n:
            return CORRUPT
        if d[p] == 0:
            return p + 1
        if d[p] != 2:
            return CORRUPT
        return _skip(code, code[node + 1], d, p + 1, n, depth + 1)
    if op == BOOLEAN:
        if p >= n or d[p] > 1:
            return CORRUPT
        return p + 1
    if op == ENUM:
        p = _varint(d, p, n, &value)
        if p == CORRUPT or value < 0 or value >= code[node + 1]:
            return CORRUPT
        return p
    if op == FLOAT or op == DOUBLE:
        value = 4 if op == FLOAT else 8
        if p + value > n:
            return CORRUPT
        return p + value
    if op == ARRAY or op == MAP:
        while True:
            p = _block(d, p, n, &count)
            if p == CORRUPT:
                return CORRUPT
            if count == 0:
                return p
            while count > 0:
                if op == MAP:
                    p = _skip(_KEY_CODE, 0, d, p, n, depth + 1)  # the key: a string
                    if p == CORRUPT:
                        return CORRUPT
                p = _skip(code, code[node + 1], d, p, n, depth + 1)
                if p == CORRUPT:
                    return CORRUPT
                count -= 1
    return CORRUPT


class _Corrupt(Exception):
    """Bytes the decoder does not take (the Python path then says why)."""


cdef Py_ssize_t _block(
    const unsigned char* d, Py_ssize_t p, Py_ssize_t n, int64_t* count
) noexcept nogil:
    """An array's or a map's block header at ``p``: its count of items (0: the last block)
    and where they start, past a negative count's byte size; CORRUPT if it does not end, or
    counts more items than bytes are left (stricter than the reader for items of no bytes)."""
    p = _varint(d, p, n, count)
    if p == CORRUPT:
        return CORRUPT
    if count[0] < 0:
        count[0] = -count[0]
        if count[0] < 0:  # the lowest long has no positive twin in 64 bits
            return CORRUPT
        p = _skip_varint(d, p, n)
        if p == CORRUPT:
            return CORRUPT
    if count[0] > n - p:
        return CORRUPT
    return p


cdef int64_t _items(const unsigned char* d, Py_ssize_t* at, Py_ssize_t n) except -1:
    """The count of items of the block at ``at[0]`` (0: the last), ``at`` moved to them."""
    cdef int64_t count
    cdef Py_ssize_t p = _block(d, at[0], n, &count)
    if p == CORRUPT:
        raise _Corrupt()
    at[0] = p
    return count


cdef Py_ssize_t _length_at(
    const unsigned char* d, Py_ssize_t p, Py_ssize_t n, int64_t* length
) noexcept nogil:
    """A string's or bytes' length at ``p``, and where its bytes start; CORRUPT if it is
    negative, does not end or runs past the datum."""
    if p >= n:
        return CORRUPT
    if d[p] & 129:
        p = _varint(d, p, n, length)
        if p == CORRUPT or length[0] < 0:
            return CORRUPT
    else:
        length[0] = d[p] >> 1
        p += 1
    if length[0] > n - p:
        return CORRUPT
    return p


cdef struct _Civil:
    int64_t year, month, day, hour, minute, second, micro


cdef bint _civil(int64_t micros, _Civil* c) noexcept:
    """A timestamp-micros's calendar fields in UTC; False outside years 1 to 9999 (where
    datetime's own arithmetic raises OverflowError)."""
    cdef int64_t seconds = micros // 1000000, days, rest, era, day_of_era, year_of_era
    cdef int64_t day_of_year, mp, year, month
    days = seconds // 86400
    rest = seconds - days * 86400
    # The civil date of a day count (H. Hinnant's days_from_civil, inverted).
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    year = year_of_era + era * 400
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    c.day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year += month <= 2
    c.year, c.month = year, month
    c.hour, c.minute, c.second = rest // 3600, rest % 3600 // 60, rest % 60
    c.micro = micros - seconds * 1000000
    return 1 <= year <= 9999


cdef object _datetime(int64_t micros):
    """A timestamp-micros as the Python reader gives it: a datetime in UTC (OverflowError
    outside years 1 to 9999, as datetime's own arithmetic)."""
    cdef _Civil c
    if not _civil(micros, &c):
        raise OverflowError("date value out of range")
    return datetime_new(c.year, c.month, c.day, c.hour, c.minute, c.second, c.micro, _UTC)


cdef double _real(int32_t op, const unsigned char* d, Py_ssize_t* at, Py_ssize_t n) except? -1:
    """A float or a double at ``at[0]`` (``at`` moves past it)."""
    cdef float single
    cdef double double_
    cdef Py_ssize_t size = 4 if op == FLOAT else 8
    if at[0] + size > n:
        raise _Corrupt()
    if op == FLOAT:
        memcpy(&single, d + at[0], 4)  # Avro's floats are little-endian, as this machine's
        double_ = single
    else:
        memcpy(&double_, d + at[0], 8)
    at[0] += size
    return double_


# --- what the reader and the JSON renderer decode alike ----------------------------------------

cdef inline int64_t _long(const unsigned char* d, Py_ssize_t* at, Py_ssize_t n) except? -1:
    """A long (zigzag varint) at ``at[0]``; ``at`` moves past it."""
    cdef int64_t value
    cdef Py_ssize_t p = _varint(d, at[0], n, &value)
    if p == CORRUPT:
        raise _Corrupt()
    at[0] = p
    return value


cdef inline bint _present(const unsigned char* d, Py_ssize_t* at, Py_ssize_t n) except -1:
    """A ``["null", X]`` union's branch: whether an X follows."""
    cdef Py_ssize_t p = at[0]
    if p >= n or (d[p] != 0 and d[p] != 2):
        raise _Corrupt()
    at[0] = p + 1
    return d[p] == 2


cdef inline bint _boolean(const unsigned char* d, Py_ssize_t* at, Py_ssize_t n) except -1:
    cdef Py_ssize_t p = at[0]
    if p >= n or d[p] > 1:
        raise _Corrupt()
    at[0] = p + 1
    return d[p] == 1


cdef inline int64_t _symbol(
    const int32_t* code, int32_t node, const unsigned char* d, Py_ssize_t* at, Py_ssize_t n
) except -1:
    """An enum's symbol index, one of the ``code[node + 1]`` it has."""
    cdef int64_t value = _long(d, at, n)
    if value < 0 or value >= code[node + 1]:
        raise _Corrupt()
    return value


cdef object _read(
    const int32_t* code, tuple constants, int32_t node,
    const unsigned char* d, Py_ssize_t* at, Py_ssize_t n, int depth
):
    """One value of ``node`` at ``at[0]``, built as the Python reader builds it (``at`` moves
    past it); raises _Corrupt (or the decoding's own error) for bytes that are not one."""
    cdef int32_t op = code[node], i
    cdef Py_ssize_t p = at[0]
    cdef int64_t value, count
    cdef dict record
    cdef list items
    cdef tuple names
    cdef object key
    if depth > MAX_DEPTH:
        raise _Corrupt()
    if op == NULL_:
        return None
    if op == LONG or op == TIMESTAMP:
        value = _long(d, at, n)
        return value if op == LONG else _datetime(value)
    if op == STRING or op == BYTES:
        p = _length_at(d, p, n, &value)
        if p == CORRUPT:
            raise _Corrupt()
        at[0] = p + value
        if op == STRING:
            return PyUnicode_DecodeUTF8(<const char*>d + p, value, "strict")
        return PyBytes_FromStringAndSize(<const char*>d + p, value)
    if op == RECORD:
        names = <tuple>constants[code[node + 2]]
        record = {}
        for i in range(code[node + 1]):
            record[names[i]] = _read(code, constants, code[node + 3 + i], d, at, n,
                                     depth + 1)
        return record
    if op == NULLABLE:
        if not _present(d, at, n):
            return None
        return _read(code, constants, code[node + 1], d, at, n, depth + 1)
    if op == BOOLEAN:
        return _boolean(d, at, n)
    if op == ENUM:
        return (<tuple>constants[code[node + 2]])[_symbol(code, node, d, at, n)]
    if op == FLOAT or op == DOUBLE:
        return _real(op, d, at, n)
    if op == ARRAY or op == MAP:
        items, record = ([], None) if op == ARRAY else (None, {})
        while True:
            count = _items(d, at, n)
            if count == 0:
                return items if op == ARRAY else record
            while count > 0:
                if op == MAP:
                    key = _read(_KEY_CODE, constants, 0, d, at, n, depth + 1)
                    record[key] = _read(code, constants, code[node + 1], d, at, n,
                                        depth + 1)
                else:
                    items.append(_read(code, constants, code[node + 1], d, at, n,
                                       depth + 1))
                count -= 1
    raise _Corrupt()


cdef object _whole(const int32_t* code, tuple constants, const unsigned char* d,
                   Py_ssize_t start, Py_ssize_t n):
    """A whole datum (from ``start`` to ``n``) as the Python reader builds it; raises for
    bytes that are not one."""
    cdef Py_ssize_t at = start
    record = _read(code, constants, 0, d, &at, n, 0)
    if at != n:
        raise _Corrupt()
    return record


def decode(bytes code, tuple constants, bytes datum):
    """``_whole``, for the tests."""
    return _whole(<const int32_t*>PyBytes_AS_STRING(code), constants,
                  <const unsigned char*>PyBytes_AS_STRING(datum), 0, PyBytes_GET_SIZE(datum))


# --- JSON Lines, rendered from the datum ------------------------------------------------------
# What orjson writes for the record the Python reader builds (``option=OPT_UTC_Z``), written
# straight from the datum: no record is built. The same bytes, byte for byte (a test fuzzes
# the two against each other): strings escaped as orjson escapes them, times as it writes
# them, floats by orjson itself. Bytes have no JSON: a record holding some takes the Python
# path, which says why.

include "../schemas/_growing.pxi"


cdef inline int _put_bytes(_Text* t, bytes b) except -1:
    return _put(t, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef int _put_digits(_Text* t, uint64_t u, int width) except -1:
    """``u`` in decimal, zero-padded to ``width``."""
    cdef char digits[24]
    cdef int i = 24
    while u or i > 24 - width:
        i -= 1
        digits[i] = 48 + <char>(u % 10)
        u = u // 10
    return _put(t, digits + i, 24 - i)


cdef int _put_long(_Text* t, int64_t v) except -1:
    if v < 0:
        _put(t, "-", 1)
        return _put_digits(t, <uint64_t>(-(v + 1)) + 1, 1)
    return _put_digits(t, <uint64_t>v, 1)


cdef inline int _put_after(_Text* t, const char* separator, uint64_t u, int width) except -1:
    _put(t, separator, 1)
    return _put_digits(t, u, width)


cdef int _put_time(_Text* t, int64_t micros) except -1:
    """A timestamp as orjson writes an aware datetime in UTC with ``OPT_UTC_Z``."""
    cdef _Civil c
    if not _civil(micros, &c):
        raise OverflowError("date value out of range")
    _put(t, '"', 1)
    _put_digits(t, c.year, 4)
    _put_after(t, "-", c.month, 2)
    _put_after(t, "-", c.day, 2)
    _put_after(t, "T", c.hour, 2)
    _put_after(t, ":", c.minute, 2)
    _put_after(t, ":", c.second, 2)
    if c.micro:
        _put_after(t, ".", c.micro, 6)
    return _put(t, 'Z"', 2)


cdef const char* _HEX = "0123456789abcdef"


cdef int _put_string(_Text* t, const unsigned char* s, Py_ssize_t k) except -1:
    """UTF-8 already checked, quoted and escaped as orjson does: the quote, the backslash and
    the control characters; nothing else."""
    cdef Py_ssize_t i, j = 1
    cdef unsigned char c
    cdef char* out
    if t.size + 6 * k + 2 > t.room:
        _grow(t, 6 * k + 2)
    out = t.data + t.size
    out[0] = 34
    for i in range(k):
        c = s[i]
        if c >= 32 and c != 34 and c != 92:
            out[j] = c
            j += 1
            continue
        out[j] = 92
        if c == 34 or c == 92:
            out[j + 1] = c
        elif c == 8:
            out[j + 1] = 98  # b
        elif c == 9:
            out[j + 1] = 116  # t
        elif c == 10:
            out[j + 1] = 110  # n
        elif c == 12:
            out[j + 1] = 102  # f
        elif c == 13:
            out[j + 1] = 114  # r
        else:
            out[j + 1], out[j + 2], out[j + 3] = 117, 48, 48  # u00
            out[j + 4], out[j + 5] = _HEX[c >> 4], _HEX[c & 15]
            j += 4
        j += 2
    out[j] = 34
    t.size += j + 1
    return 0


cdef int _json(
    const int32_t* code, tuple rendered, int32_t node,
    const unsigned char* d, Py_ssize_t* at, Py_ssize_t n, int depth, _Text* t
) except -1:
    """One value of ``node`` at ``at[0]`` as JSON (``at`` moves past it); raises _Corrupt (or
    the decoding's own error) where the Python reader or orjson would refuse it. ``rendered``:
    the program's constants, each already a JSON string."""
    cdef int32_t op = code[node], i
    cdef Py_ssize_t p = at[0]
    cdef int64_t value, count
    cdef tuple names
    cdef bint first
    cdef const unsigned char* keys[MAX_KEYS]
    cdef Py_ssize_t key_sizes[MAX_KEYS]
    cdef int known = 0
    if depth > MAX_DEPTH:
        raise _Corrupt()
    if op == NULL_:
        return _put(t, "null", 4)
    if op == LONG or op == TIMESTAMP:
        value = _long(d, at, n)
        return _put_long(t, value) if op == LONG else _put_time(t, value)
    if op == STRING:
        p = _length_at(d, p, n, &value)
        if p == CORRUPT or not _utf8(d, p, p + value):
            raise _Corrupt()
        at[0] = p + value
        return _put_string(t, d + p, value)
    if op == RECORD:
        names = <tuple>rendered[code[node + 2]]
        _put(t, "{", 1)
        for i in range(code[node + 1]):
            if i:
                _put(t, ",", 1)
            _put_bytes(t, <bytes>names[i])
            _put(t, ":", 1)
            _json(code, rendered, code[node + 3 + i], d, at, n, depth + 1, t)
        return _put(t, "}", 1)
    if op == NULLABLE:
        if not _present(d, at, n):
            return _put(t, "null", 4)
        return _json(code, rendered, code[node + 1], d, at, n, depth + 1, t)
    if op == BOOLEAN:
        return _put(t, "true", 4) if _boolean(d, at, n) else _put(t, "false", 5)
    if op == ENUM:
        return _put_bytes(t, <bytes>(<tuple>rendered[code[node + 2]])[_symbol(code, node, d, at, n)])
    if op == FLOAT or op == DOUBLE:
        return _put_bytes(t, _orjson_dumps(_real(op, d, at, n)))  # its own shortest form
    if op == ARRAY or op == MAP:
        _put(t, "[" if op == ARRAY else "{", 1)
        first = True
        while True:
            count = _items(d, at, n)
            if count == 0:
                return _put(t, "]" if op == ARRAY else "}", 1)
            while count > 0:
                if not first:
                    _put(t, ",", 1)
                first = False
                if op == MAP:
                    if _seen(d, at[0], n, keys, key_sizes, &known):
                        raise _Corrupt()  # a key again: the record's dict keeps one
                    _json(_KEY_CODE, rendered, 0, d, at, n, depth + 1, t)
                    _put(t, ":", 1)
                _json(code, rendered, code[node + 1], d, at, n, depth + 1, t)
                count -= 1
    raise _Corrupt()  # bytes, which JSON has not


cdef bint _seen(const unsigned char* d, Py_ssize_t p, Py_ssize_t n,
               const unsigned char** keys, Py_ssize_t* sizes, int* known) except -1:
    """Whether the map key at ``p`` is one of the ``known`` before it (then noted with them);
    past MAX_KEYS keys the record takes the Python path."""
    cdef int64_t size
    cdef int i
    p = _length_at(d, p, n, &size)
    if p == CORRUPT or known[0] >= MAX_KEYS:
        raise _Corrupt()
    for i in range(known[0]):
        if sizes[i] == size and memcmp(keys[i], d + p, size) == 0:
            return True
    keys[known[0]], sizes[known[0]] = d + p, size
    known[0] += 1
    return False


cdef tuple _rendered(tuple constants):
    """Each name and symbol as a JSON string."""
    return tuple(tuple(_orjson_dumps(name) for name in names) for names in constants)


cdef bytes _line(const int32_t* code, tuple rendered, const unsigned char* d, Py_ssize_t start,
                 Py_ssize_t n, _Text* t):
    """A whole datum as one line of JSON; raises for bytes that are not one."""
    cdef Py_ssize_t at = start
    t.size = 0
    _json(code, rendered, 0, d, &at, n, 0, t)
    if at != n:
        raise _Corrupt()
    _put(t, "\n", 1)
    return PyBytes_FromStringAndSize(t.data, t.size)


def render(bytes code, tuple constants, bytes datum):
    """A whole datum as the line of JSON the Python path writes for it; raises where that
    path would not write one (for the tests)."""
    cdef _Text t
    t.data, t.size, t.room = NULL, 0, 0
    try:
        return _line(<const int32_t*>PyBytes_AS_STRING(code), _rendered(constants),
                     <const unsigned char*>PyBytes_AS_STRING(datum), 0,
                     PyBytes_GET_SIZE(datum), &t)
    finally:
        _release(&t)


cdef class _Checked:
    """A writer schema the scan passes, and its program."""
    cdef object writer
    cdef bytes program
    cdef tuple constants
    cdef tuple rendered  # the constants as JSON strings, where lines are rendered

    def __cinit__(self, object writer, bytes program, tuple constants, bint lines):
        self.writer = writer
        self.program = program
        self.constants = constants
        self.rendered = _rendered(constants) if lines else None


cpdef bint valid(bytes program, bytes datum):
    """Whether ``datum`` is one whole value of the program's schema (for the tests)."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(datum)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(datum)
    return _check(<const int32_t*>PyBytes_AS_STRING(program), d, 0, n)


cdef inline bint _check(const int32_t* code, const unsigned char* d, Py_ssize_t p, Py_ssize_t n):
    p = _skip(code, 0, d, p, n, 0)
    return p == n


cdef inline tuple _run(object topic, long partition, _Checked checked, int64_t hour,
                       list datums, list offsets, Py_ssize_t size, Py_ssize_t begin,
                       Py_ssize_t end, list records):
    """A run as ``Scanner.scan`` gives it."""
    return (topic, partition, checked.writer, hour, datums, offsets, size, begin, end, records)


cdef class Scanner:
    """Scans consumed messages for the writer schemas it is given: ``by_fingerprint`` (the
    single-object framing's 8 bytes) and ``by_id`` (a registry's id), each to a (writer,
    program code, program constants) triple. With ``records``, it also builds each record
    whole, as the Python reader does; with ``lines``, each record's line of JSON instead, as
    the Python path writes it."""
    cdef dict by_fingerprint
    cdef dict by_id
    cdef bint records
    cdef bint lines
    cdef _Text text  # where a line is rendered

    def __init__(self, dict by_fingerprint, dict by_id, bint records=False, bint lines=False):
        self.by_fingerprint = {k: _Checked(*v, lines) for k, v in by_fingerprint.items()}
        self.by_id = {k: _Checked(*v, lines) for k, v in by_id.items()}
        self.records = records or lines
        self.lines = lines

    def __cinit__(self):
        self.text.data, self.text.size, self.text.room = NULL, 0, 0

    def __dealloc__(self):
        _release(&self.text)

    def scan(self, list messages):
        """A list of what the messages make, in their order: a run, ``(topic, partition,
        writer, hour, datums, offsets, size, first, end, records)`` (the datums' bytes, their
        offsets, the sum of their sizes, the run's messages as ``messages[first:end]``, and
        the records built or their lines, or None), or a message passed back as it is."""
        cdef list out = [], datums = None, offsets = None, records = None
        cdef bint building = self.records
        cdef object record = None
        cdef const int32_t* code
        cdef Py_ssize_t i, count = PyList_GET_SIZE(messages), start = 0, n, size = 0, begin = 0
        cdef object message, value, topic = None, run_topic = None, stamp
        cdef long partition = -1, run_partition = -1
        cdef int64_t hour = 0, run_hour = 0, ms
        cdef _Checked checked = None, last_checked = None, run_checked = None
        cdef const unsigned char* d
        cdef const unsigned char* last_fingerprint = NULL
        cdef bytes last_value = None
        cdef long last_id = -1, schema_id
        for i in range(count):
            message = <object>PyList_GET_ITEM(messages, i)
            checked = None
            if PyObject_CallMethodNoArgs(message, _ERROR) is None:
                value = PyObject_CallMethodNoArgs(message, _VALUE)
                if type(value) is bytes:
                    d = <const unsigned char*>PyBytes_AS_STRING(value)
                    n = PyBytes_GET_SIZE(value)
                    if n >= 10 and d[0] == 0xC3 and d[1] == 0x01:
                        start = 10
                        if last_fingerprint != NULL and memcmp(last_fingerprint, d + 2, 8) == 0:
                            checked = last_checked
                        else:
                            checked = self.by_fingerprint.get(
                                PyBytes_FromStringAndSize(<const char*>d + 2, 8)
                            )
                            if checked is not None:
                                last_checked, last_value = checked, value
                                last_fingerprint = d + 2
                                last_id = -1
                    elif n >= 5 and d[0] == 0:
                        start = 5
                        schema_id = (d[1] << 24) | (d[2] << 16) | (d[3] << 8) | d[4]
                        if schema_id == last_id and last_fingerprint == NULL:
                            checked = last_checked
                        else:
                            checked = self.by_id.get(schema_id)
                            if checked is not None:
                                last_checked, last_id = checked, schema_id
                                last_fingerprint, last_value = NULL, None
                    if checked is not None and building:
                        code = <const int32_t*>PyBytes_AS_STRING(checked.program)
                        try:
                            if self.lines:
                                record = _line(code, checked.rendered, d, start, n, &self.text)
                            else:
                                record = _whole(code, checked.constants, d, start, n)
                        except Exception:  # the Python path says what it is
                            checked = None
                    elif checked is not None and not _check(
                        <const int32_t*>PyBytes_AS_STRING(checked.program), d, start, n
                    ):
                        checked = None
            if checked is None:  # the Python path decides
                if datums is not None:
                    out.append(_run(run_topic, run_partition, run_checked, run_hour, datums, offsets,
                                    size, begin, i, records))
                    datums = None
                out.append(message)
                continue
            topic = PyObject_CallMethodNoArgs(message, _TOPIC)
            partition = PyObject_CallMethodNoArgs(message, _PARTITION)
            stamp = PyObject_CallMethodNoArgs(message, _TIMESTAMP)
            ms = stamp[1]
            hour = ms // 3600000  # floored, as Python's
            if datums is not None and (
                partition != run_partition or checked is not run_checked or hour != run_hour
                or not (topic is run_topic or topic == run_topic)
            ):
                out.append(_run(run_topic, run_partition, run_checked, run_hour, datums, offsets,
                                size, begin, i, records))
                datums = None
            if datums is None:
                datums, offsets, size, begin = [], [], 0, i
                records = [] if building else None
                run_topic, run_partition, run_checked, run_hour = topic, partition, checked, hour
            datums.append(PyBytes_FromStringAndSize(<const char*>d + start, n - start))
            offsets.append(PyObject_CallMethodNoArgs(message, _OFFSET))
            if building:
                records.append(record)
            size += n - start
        if datums is not None:
            out.append(_run(run_topic, run_partition, run_checked, run_hour, datums, offsets,
                            size, begin, count, records))
        return out


# --- Arrow columns, built from the datums -------------------------------------------------------
# The Parquet format's columns (``kafkube.consumers.parquet``) filled straight from each datum,
# no record built: one builder a column, its buffers laid out as Arrow lays out an array's
# (a validity bitmap, values, offsets), which the Python side hands to Arrow as they are. The
# builders mirror the Arrow schema, the walk the program: a named record met twice is two
# columns. The walk touches no Python object, so it runs with the GIL released (beside the
# sink's reading and pyarrow's encoding, on another core). It gives what the records the
# Python reader builds give Arrow, byte for byte once written (a test compares the two).

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

# The kinds of column, by the Arrow types they build.
cdef enum:
    COL_NULL = 0
    COL_BOOL = 1
    COL_INT32 = 2
    COL_INT64 = 3  # long, timestamp-micros
    COL_FLOAT32 = 4
    COL_FLOAT64 = 5
    COL_TEXT = 6  # string, binary, an enum's symbol: offsets, then the bytes
    COL_STRUCT = 7
    COL_LIST = 8
    COL_MAP = 9  # keys and values: two children

COLUMN_KINDS = {
    "null": COL_NULL, "bool": COL_BOOL, "int32": COL_INT32, "int64": COL_INT64,
    "float32": COL_FLOAT32, "float64": COL_FLOAT64, "text": COL_TEXT, "struct": COL_STRUCT,
    "list": COL_LIST, "map": COL_MAP,
}

# Why a walk stopped (it cannot raise without the GIL).
cdef enum:
    FILLED = 0
    NOT_A_DATUM = -1  # CORRUPT: bytes that are not one whole datum of the program
    NO_MEMORY = -2
    NOT_ITS_COLUMN = -3  # the column tree is not the program's schema
    TOO_BIG = -4  # an int past 32 bits, or over 2 GiB in one column (Arrow's offsets)

cdef enum:
    MAX_OFFSET = 2147483647


cdef struct _Col:
    int kind
    Py_ssize_t count  # of children
    _Col** children
    _Text values  # fixed-width values (a byte a boolean), or a text's bytes
    _Text offsets  # 32-bit: where each slot's bytes or children end (first: 0)
    _Text valid  # a byte a slot: 1 if it holds a value
    Py_ssize_t length, nulls


cdef struct _Symbols:  # an enum's symbols as UTF-8
    const char** text
    Py_ssize_t* size


cdef class Column:
    """One column's builder: ``kind`` (``COLUMN_KINDS``) and the builders of its children (a
    struct's fields; a list's items; a map's keys, then its values)."""
    cdef _Col c
    cdef list children  # keeps each child's _Col alive

    def __cinit__(self, int kind, list children):
        cdef int32_t zero = 0
        cdef Py_ssize_t i
        if kind < COL_NULL or kind > COL_MAP:
            raise ValueError(f"column kind {kind}")
        wanted = 2 if kind == COL_MAP else 1 if kind == COL_LIST else -1
        if wanted >= 0 and len(children) != wanted or kind != COL_STRUCT and wanted < 0 and children:
            raise ValueError(f"a column of kind {kind} with {len(children)} children")
        self.c.kind, self.children = kind, list(children)
        self.c.count = len(children)
        self.c.children = <_Col**>malloc(max(1, self.c.count) * sizeof(_Col*))
        if self.c.children == NULL:
            raise MemoryError()
        for i in range(self.c.count):
            self.c.children[i] = &(<Column?>children[i]).c
        if kind == COL_TEXT or kind == COL_LIST or kind == COL_MAP:
            _put(&self.c.offsets, <const char*>&zero, 4)

    def __dealloc__(self):
        free(self.c.children)
        _release(&self.c.values)
        _release(&self.c.offsets)
        _release(&self.c.valid)

    def finished(self):
        """``(length, nulls, validity bitmap or None, buffers, children finished)``: the
        buffers are a fixed-width column's values (a boolean's as bits), a text's offsets and
        bytes, a list's or a map's offsets; each an object of the buffer protocol, taken from
        the builder (finished once)."""
        cdef _Col* c = &self.c
        cdef bytes validity = _bits(&c.valid, c.length) if c.nulls else None
        cdef list buffers = []
        if c.kind == COL_BOOL:
            buffers.append(_bits(&c.values, c.length))
        elif c.kind == COL_TEXT:
            buffers.append(_taken(&c.offsets))
            buffers.append(_taken(&c.values))
        elif c.kind == COL_LIST or c.kind == COL_MAP:
            buffers.append(_taken(&c.offsets))
        elif c.kind != COL_NULL and c.kind != COL_STRUCT:
            buffers.append(_taken(&c.values))
        return (c.length, c.nulls, validity, buffers,
                [(<Column>child).finished() for child in self.children])


cdef class _Owned:
    """A filled buffer handed to Arrow as it is (the buffer protocol), no copy: freed when
    the last array over it goes."""
    cdef char* data
    cdef Py_ssize_t size
    cdef Py_ssize_t[1] shape

    def __dealloc__(self):
        free(self.data)

    def __getbuffer__(self, Py_buffer* view, int flags):
        self.shape[0] = self.size
        view.buf = self.data if self.data != NULL else <char*>""
        view.obj = self
        view.len = self.size
        view.readonly = 1
        view.itemsize = 1
        view.format = <char*>"B" if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass


cdef _Owned _taken(_Text* t):
    """The buffer's bytes, taken from it (it is left empty)."""
    cdef _Owned owned = _Owned()
    owned.data, owned.size = t.data, t.size
    t.data, t.size, t.room = NULL, 0, 0
    return owned


cdef bytes _bits(_Text* flags, Py_ssize_t length):
    """A byte a slot as Arrow's bitmap: a bit a slot, the lowest first."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, (length + 7) // 8)
    cdef unsigned char* b = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    memset(b, 0, (length + 7) // 8)
    for i in range(length):
        if flags.data[i]:
            b[i >> 3] |= 1 << (i & 7)
    return out


cdef inline int _slot(_Col* col, char valid) noexcept nogil:
    if _add(&col.valid, &valid, 1) < 0:
        return NO_MEMORY
    col.length += 1
    col.nulls += not valid
    return FILLED


cdef inline int _end(_Col* col, Py_ssize_t end) noexcept nogil:
    """A text's, list's or map's slot ends at ``end`` (of its bytes or its children)."""
    cdef int32_t at = <int32_t>end
    if end > MAX_OFFSET:
        return TOO_BIG
    return NO_MEMORY if _add(&col.offsets, &at, 4) < 0 else FILLED


cdef int _absent(_Col* col, char valid) noexcept nogil:
    """A slot with no value of its own: null (``valid`` 0), or, under a null struct, the
    empty value Arrow's builders give a struct's fields there (zero, empty)."""
    cdef char zeros[8]
    cdef int kind = col.kind, done = _slot(col, valid)
    cdef Py_ssize_t i
    memset(zeros, 0, 8)
    if done < 0:
        return done
    if kind == COL_BOOL:
        done = _add(&col.values, zeros, 1)
    elif kind == COL_INT32 or kind == COL_FLOAT32:
        done = _add(&col.values, zeros, 4)
    elif kind == COL_INT64 or kind == COL_FLOAT64:
        done = _add(&col.values, zeros, 8)
    elif kind == COL_TEXT:
        return _end(col, col.values.size)
    elif kind == COL_LIST or kind == COL_MAP:
        return _end(col, col.children[0].length)
    elif kind == COL_STRUCT:
        for i in range(col.count):
            done = _absent(col.children[i], 1)
            if done < 0:
                return done
    return NO_MEMORY if done < 0 else FILLED


cdef int _fill(const int32_t* code, const _Symbols* symbols, int32_t node, _Col* col,
               const unsigned char* d, Py_ssize_t* at, Py_ssize_t n, int depth) noexcept nogil:
    """One value of ``node`` at ``at[0]`` into ``col`` (``at`` moves past it): FILLED, or
    why not."""
    cdef int32_t op = code[node], i, v32
    cdef int kind = col.kind, done = FILLED
    cdef Py_ssize_t p = at[0], size
    cdef int64_t value, count
    cdef char flag
    if depth > MAX_DEPTH:
        return NOT_A_DATUM
    if op == NULLABLE:
        if p >= n or (d[p] != 0 and d[p] != 2):
            return NOT_A_DATUM
        at[0] = p + 1
        if d[p] == 0:
            return _absent(col, 0)
        return _fill(code, symbols, code[node + 1], col, d, at, n, depth + 1)
    if op == NULL_ and kind == COL_NULL:
        return _slot(col, 0)
    if (op == LONG or op == TIMESTAMP or op == ENUM) and (
        kind == COL_INT64 or kind == COL_INT32 or kind == COL_TEXT
    ):
        p = _varint(d, p, n, &value)
        if p == CORRUPT:
            return NOT_A_DATUM
        at[0] = p
        if op == ENUM and kind == COL_TEXT:
            if value < 0 or value >= code[node + 1]:
                return NOT_A_DATUM
            i = code[node + 2]
            done = _add(&col.values, symbols[i].text[value], symbols[i].size[value])
            done = done if done < 0 else _end(col, col.values.size)
        elif op != ENUM and kind == COL_INT64:
            done = _add(&col.values, &value, 8)
        elif op == LONG and kind == COL_INT32:
            if value < -2147483648 or value > 2147483647:
                return TOO_BIG
            v32 = <int32_t>value
            done = _add(&col.values, &v32, 4)
        else:
            return NOT_ITS_COLUMN
    elif (op == STRING or op == BYTES) and kind == COL_TEXT:
        p = _length_at(d, p, n, &value)
        if p == CORRUPT:
            return NOT_A_DATUM
        at[0] = p + value
        done = _add(&col.values, d + p, value)
        done = done if done < 0 else _end(col, col.values.size)
    elif op == RECORD and kind == COL_STRUCT:
        if code[node + 1] != col.count:
            return NOT_ITS_COLUMN
        for i in range(code[node + 1]):
            done = _fill(code, symbols, code[node + 3 + i], col.children[i], d, at, n, depth + 1)
            if done < 0:
                return done
    elif op == BOOLEAN and kind == COL_BOOL:
        if p >= n or d[p] > 1:
            return NOT_A_DATUM
        at[0] = p + 1
        done = _add(&col.values, d + p, 1)
    elif (op == FLOAT and kind == COL_FLOAT32) or (op == DOUBLE and kind == COL_FLOAT64):
        size = 4 if op == FLOAT else 8
        if p + size > n:
            return NOT_A_DATUM
        at[0] = p + size
        done = _add(&col.values, d + p, size)  # little-endian, as Arrow's here
    elif (op == ARRAY and kind == COL_LIST) or (op == MAP and kind == COL_MAP):
        while True:
            p = _block(d, at[0], n, &count)
            if p == CORRUPT:
                return NOT_A_DATUM
            at[0] = p
            if count == 0:
                break
            while count > 0:
                if op == MAP:
                    done = _fill(_KEY_CODE, symbols, 0, col.children[0], d, at, n, depth + 1)
                    if done < 0:
                        return done
                done = _fill(code, symbols, code[node + 1], col.children[op == MAP], d, at, n,
                             depth + 1)
                if done < 0:
                    return done
                count -= 1
        done = _end(col, col.children[0].length)
    else:
        return NOT_ITS_COLUMN
    if done < 0:
        return NO_MEMORY if done == -1 else done
    return _slot(col, 1)


cdef int _fill_all(const int32_t* code, const _Symbols* symbols, _Col* row,
                   const unsigned char** data, const Py_ssize_t* sizes,
                   Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i, at
    cdef int done
    for i in range(count):
        at = 0
        done = _fill(code, symbols, 0, row, data[i], &at, sizes[i], 0)
        if done < 0:
            return done
        if at != sizes[i]:
            return NOT_A_DATUM
    return FILLED


def fill(bytes code, tuple constants, Column row, list datums):
    """Each datum (bytes, or a buffer of them) whole into ``row``, the struct column of the
    program's top-level record, with the GIL released; raises for one that is not a whole
    datum of it (``_Corrupt``), a row that is not the program's (TypeError), an int out of
    32 bits or a column over 2 GiB (OverflowError)."""
    cdef Py_ssize_t count = len(datums), i, j
    cdef list views = [d if type(d) is bytes else memoryview(d).cast("B") for d in datums]
    cdef const unsigned char[::1] view
    cdef const unsigned char** data = <const unsigned char**>malloc(
        max(1, count) * sizeof(const unsigned char*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>malloc(max(1, count) * sizeof(Py_ssize_t))
    cdef _Symbols* symbols = <_Symbols*>calloc(max(1, len(constants)), sizeof(_Symbols))
    cdef const int32_t* program = <const int32_t*>PyBytes_AS_STRING(code)
    cdef int done
    cdef tuple names
    try:
        if data == NULL or sizes == NULL or symbols == NULL:
            raise MemoryError()
        if row.c.kind != COL_STRUCT:
            raise TypeError("a row is a struct column")
        for i in range(len(constants)):  # the constants live as long as this call
            names = constants[i]
            symbols[i].text = <const char**>malloc(max(1, len(names)) * sizeof(const char*))
            symbols[i].size = <Py_ssize_t*>malloc(max(1, len(names)) * sizeof(Py_ssize_t))
            if symbols[i].text == NULL or symbols[i].size == NULL:
                raise MemoryError()
            for j in range(len(names)):
                symbols[i].text[j] = PyUnicode_AsUTF8AndSize(names[j], &symbols[i].size[j])
        for i in range(count):  # the views live as long as this call
            datum = views[i]
            if type(datum) is bytes:
                data[i] = <const unsigned char*>PyBytes_AS_STRING(datum)
                sizes[i] = PyBytes_GET_SIZE(datum)
            else:
                view = datum
                sizes[i] = view.shape[0]
                data[i] = &view[0] if sizes[i] else <const unsigned char*>""
        with nogil:
            done = _fill_all(program, symbols, &row.c, data, sizes, count)
        if done == NOT_A_DATUM:
            raise _Corrupt("a datum is not one whole value of its schema")
        if done == NO_MEMORY:
            raise MemoryError()
        if done == NOT_ITS_COLUMN:
            raise TypeError("a column is not of its field's type")
        if done == TOO_BIG:
            raise OverflowError("an int past 32 bits, or over 2 GiB in one column")
    finally:
        if symbols != NULL:
            for i in range(len(constants)):
                free(symbols[i].text)
                free(symbols[i].size)
        free(symbols)
        free(data)
        free(sizes)
