# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The producer's one pass, compiled: a watched Event's JSON (as orjson parsed it) straight to
the framed Avro value, with no record in between.

``kafkube.producer.converting`` says what the record of an Event is; this writes that
record's Avro bytes (schema version ``VERSION``) as ``to_record`` and the codec's writer
would, field by field from the object, and gives back with them what the producer decides
on: uid, resourceVersion, count, (type, reason) and the record's key. Whatever it does not
write the same way for certain (a field of an unusual type, a metadata that is not a JSON
object, an Event it cannot identify) it leaves alone: ``convert`` answers None, and the
producer takes the Python path, which decides. A test holds the two paths to the same bytes.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_Size

from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.math cimport modf, nearbyint
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp

VERSION = 3  # the writer schema whose fields this writes, in its order

cdef str _CORE = "v1", _EVENTS = "events.k8s.io/v1", _EVENTS_BETA = "events.k8s.io/v1beta1"
cdef dict _WATCH_TYPES = {"ADDED": 0, "MODIFIED": 1, "DELETED": 2}  # the enum's symbols

# What to write, and what it answers, when a field is not what it should be.
cdef enum:
    WRITTEN = 0
    DEFER = 1  # not written the same way for certain: the Python path
    PRESENT = 2  # a union's value is there: its branch is written, the value is next

include "../schemas/_growing.pxi"


cdef inline int _byte(_Text* out, unsigned char value) except -1:
    if out.size >= out.room:
        _grow(out, 1)
    out.data[out.size] = <char>value
    out.size += 1
    return 0


cdef inline int _long(_Text* out, int64_t value) except -1:
    """Avro's zig-zag varint."""
    cdef uint64_t encoded = (<uint64_t>value << 1) ^ <uint64_t>(value >> 63)
    if out.size + 10 > out.room:
        _grow(out, 10)
    while encoded > 0x7F:
        out.data[out.size] = <char>((encoded & 0x7F) | 0x80)
        out.size += 1
        encoded >>= 7
    out.data[out.size] = <char>encoded
    out.size += 1
    return 0


cdef inline int _string(_Text* out, str value) except -1:
    cdef Py_ssize_t size
    cdef const char* data = PyUnicode_AsUTF8AndSize(value, &size)
    _long(out, size)
    _put(out, data, size)
    return 0


cdef inline object _get(object mapping, str key):
    """``mapping.get(key)`` of a dict, without a method call."""
    cdef PyObject* found = PyDict_GetItem(mapping, key)
    return None if found == NULL else <object>found


cdef inline int _text(_Text* out, object value) except -1:
    """A ``["null", "string"]`` of ``converting._text``: a string, empty or absent: null."""
    if value is None:
        return _byte(out, 0)
    if type(value) is not str:
        return DEFER  # str() of it: the Python path
    if not value:
        return _byte(out, 0)
    _byte(out, 2)
    return _string(out, <str>value)


cdef inline int _counted(_Text* out, int counted, int64_t count) except -1:
    """A ``["null", int]`` of what ``_integer`` answered (not DEFER)."""
    if counted != WRITTEN:
        return _byte(out, 0)
    _byte(out, 2)
    return _long(out, count)


cdef int64_t _micros(double now):
    """``datetime.fromtimestamp(now)`` in microseconds: the fraction rounded half to even."""
    cdef double whole
    cdef double fraction = nearbyint(modf(now, &whole) * 1e6)
    if fraction >= 1e6:
        fraction -= 1e6
        whole += 1
    elif fraction < 0:
        fraction += 1e6
        whole -= 1
    return <int64_t>whole * 1000000 + <int64_t>fraction


cdef inline int _object(_Text* out, object value) except -1:
    """A ``["null", record or map]`` union's branch, of a JSON object read as
    ``converting._mapping`` reads it: null (WRITTEN) for none or an empty one, PRESENT for
    one with something in it, DEFER for anything that is not a dict."""
    if value is None or (type(value) is dict and not value):
        return _byte(out, 0)
    if type(value) is not dict:
        return DEFER
    _byte(out, 2)
    return PRESENT



# --- the line pass: a watch stream's line of JSON straight to the value -----------------------
#
# ``Converter.convert_line`` reads one line as ``orjson.loads`` would, and the event in it as
# ``convert`` reads the dict: no dict is made. It answers only for what it reads the same way
# for certain: plain ASCII (any other byte: the dict path), no number in exponent form or of
# more than 18 digits, no surrogate escape, no key with an escape, no label or annotation
# named twice, 64 levels deep at most; anything else, or anything that is not valid JSON, is
# None, and the caller parses the line and takes the dict path, which decides.


cdef enum:  # what a value is
    ABSENT = 0
    NUL = 1
    STRING = 2
    OBJECT = 3
    INTEGER = 4  # digits, with a sign at most
    OTHER = 5  # true, false, a fraction, an array
    _DEEPEST = 64


cdef struct _Span:
    Py_ssize_t start, end  # the value's bytes; a string's with its quotes
    int kind
    bint escaped  # a string with a backslash in it
    int keys  # an object's keys


ctypedef const unsigned char* _Bytes


cdef inline Py_ssize_t _ws(_Bytes s, Py_ssize_t n, Py_ssize_t i) noexcept:
    while i < n and (s[i] == 32 or s[i] == 10 or s[i] == 13 or s[i] == 9):
        i += 1
    return i


cdef inline bint _hex(unsigned char c) noexcept:
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


cdef Py_ssize_t _string_end(_Bytes s, Py_ssize_t n, Py_ssize_t i, bint* escaped) noexcept:
    """Past the string whose quote is at ``i``; -1: not one read here."""
    cdef unsigned char c
    i += 1
    while i < n:
        c = s[i]
        if c == 34:
            return i + 1
        if c == 92:
            escaped[0] = True
            if i + 1 >= n:
                return -1
            c = s[i + 1]
            if c == 117:
                if i + 5 >= n or not (_hex(s[i + 2]) and _hex(s[i + 3]) and _hex(s[i + 4])
                                      and _hex(s[i + 5])):
                    return -1
                if (s[i + 2] == 100 or s[i + 2] == 68) and s[i + 3] >= 56:
                    return -1  # a surrogate, paired or not (d800-dfff): the dict path
                i += 6
                continue
            if c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 \
                    or c == 116:
                i += 2
                continue
            return -1
        if c < 0x20 or c >= 0x80:
            return -1
        i += 1
    return -1


cdef Py_ssize_t _number_end(_Bytes s, Py_ssize_t n, Py_ssize_t i, int* kind) noexcept:
    cdef Py_ssize_t start = i
    kind[0] = INTEGER
    if i < n and s[i] == 45:
        i += 1
    if i >= n or not (48 <= s[i] <= 57):
        return -1
    if s[i] == 48:
        i += 1
    else:
        while i < n and 48 <= s[i] <= 57:
            i += 1
    if i < n and s[i] == 46:
        kind[0] = OTHER
        i += 1
        if i >= n or not (48 <= s[i] <= 57):
            return -1
        while i < n and 48 <= s[i] <= 57:
            i += 1
    if i < n and (s[i] == 101 or s[i] == 69):
        return -1  # an exponent: orjson refuses what overflows
    if i - start > 18:
        return -1
    return i


cdef inline bint _word(_Bytes s, Py_ssize_t n, Py_ssize_t i, const char* word, int k) noexcept:
    return i + k <= n and memcmp(s + i, word, k) == 0


cdef Py_ssize_t _value_end(_Bytes s, Py_ssize_t n, Py_ssize_t i, int depth, _Span* span) \
        noexcept:
    """Past the value at ``i`` (``span`` says what it is); -1: not one read here."""
    cdef unsigned char c
    cdef _Span inner
    if i >= n or depth > _DEEPEST:
        return -1
    c = s[i]
    span.start, span.escaped, span.keys = i, False, 0
    if c == 34:
        span.kind = STRING
        i = _string_end(s, n, i, &span.escaped)
    elif c == 123:
        span.kind = OBJECT
        i = _fields(s, n, i, depth + 1, NULL, NULL, 0, NULL, &span.keys)
    elif c == 91:
        span.kind = OTHER
        i = _ws(s, n, i + 1)
        if i < n and s[i] == 93:
            i += 1
        else:
            while True:
                i = _value_end(s, n, i, depth + 1, &inner)
                if i < 0:
                    return -1
                i = _ws(s, n, i)
                if i < n and s[i] == 44:
                    i = _ws(s, n, i + 1)
                elif i < n and s[i] == 93:
                    i += 1
                    break
                else:
                    return -1
    elif c == 110:
        span.kind = NUL
        i = i + 4 if _word(s, n, i, "null", 4) else -1
    elif c == 116:
        span.kind = OTHER
        i = i + 4 if _word(s, n, i, "true", 4) else -1
    elif c == 102:
        span.kind = OTHER
        i = i + 5 if _word(s, n, i, "false", 5) else -1
    else:
        i = _number_end(s, n, i, &span.kind)
    span.end = i
    return i


cdef struct _Nest:  # the keys looked for in the object under one key, read in the same pass
    const char** names
    const int* sizes
    int count
    _Span* spans
    int inner_at  # the key among these whose object is read so in turn, or -1
    _Nest* inner


cdef inline void _nest(_Nest* nest, const char** names, const int* sizes, int count,
                       _Span* spans, int inner_at, _Nest* inner) noexcept:
    nest.names, nest.sizes, nest.count, nest.spans = names, sizes, count, spans
    nest.inner_at, nest.inner = inner_at, inner


cdef void _emptied(_Nest* nest) noexcept:
    cdef int at
    while nest != NULL:
        for at in range(nest.count):
            nest.spans[at].kind = ABSENT
        nest = nest.inner


cdef Py_ssize_t _fields(_Bytes s, Py_ssize_t n, Py_ssize_t i, int depth, const char** names,
                        const int* sizes, int count, _Span* spans, int* keys,
                        int inner_at=-1, _Nest* nest=NULL) noexcept:
    """Past the object at ``i`` (its ``{``), each of its keys among ``names`` with its
    value's span in ``spans`` (the last one of a key named twice, as a dict keeps it), the
    number of its keys in ``keys``; the object of the key at ``inner_at`` read with
    ``nest``'s keys as it goes. -1: not one read here (a key with an escape, where keys are
    looked for, included)."""
    cdef Py_ssize_t key, size
    cdef bint escaped
    cdef int at, found
    cdef _Span value
    keys[0] = 0
    i = _ws(s, n, i + 1)
    if i < n and s[i] == 125:
        return i + 1
    while True:
        if i >= n or s[i] != 34:
            return -1
        key, escaped = i + 1, False
        i = _string_end(s, n, i, &escaped)
        if i < 0 or (escaped and count):  # a key looked for might hide behind an escape
            return -1
        size = i - 1 - key
        i = _ws(s, n, i)
        if i >= n or s[i] != 58:
            return -1
        found = -1
        for at in range(count):
            if sizes[at] == size and memcmp(s + key, names[at], size) == 0:
                found = at
                break
        i = _ws(s, n, i + 1)
        if found == inner_at and found >= 0 and i < n and s[i] == 123 and depth < _DEEPEST:
            _emptied(nest)
            value.kind, value.start, value.escaped = OBJECT, i, False
            i = _fields(s, n, i, depth + 1, nest.names, nest.sizes, nest.count, nest.spans,
                        &value.keys, nest.inner_at, nest.inner)
            value.end = i
        else:
            i = _value_end(s, n, i, depth, &value)
        if i < 0:
            return -1
        keys[0] += 1
        if found >= 0:
            spans[found] = value
        i = _ws(s, n, i)
        if i < n and s[i] == 44:
            i = _ws(s, n, i + 1)
        elif i < n and s[i] == 125:
            return i + 1
        else:
            return -1




cdef int _unescape(_Text* out, _Bytes s, Py_ssize_t i, Py_ssize_t end) except -1:
    """A string's bytes between its quotes, its escapes undone (``_string_end`` read them:
    no surrogate among them), into ``out``."""
    cdef unsigned char c
    cdef unsigned int code
    cdef int at
    while i < end:
        c = s[i]
        if c != 92:
            _byte(out, c)
            i += 1
            continue
        c = s[i + 1]
        if c == 117:
            code = 0
            for at in range(2, 6):
                c = s[i + at]
                code = code * 16 + (c - 48 if c <= 57 else (c - 55 if c <= 70 else c - 87))
            if code < 0x80:
                _byte(out, <unsigned char>code)
            elif code < 0x800:
                _byte(out, <unsigned char>(0xC0 | (code >> 6)))
                _byte(out, <unsigned char>(0x80 | (code & 0x3F)))
            else:
                _byte(out, <unsigned char>(0xE0 | (code >> 12)))
                _byte(out, <unsigned char>(0x80 | ((code >> 6) & 0x3F)))
                _byte(out, <unsigned char>(0x80 | (code & 0x3F)))
            i += 6
            continue
        if c == 98:
            c = 8
        elif c == 102:
            c = 12
        elif c == 110:
            c = 10
        elif c == 114:
            c = 13
        elif c == 116:
            c = 9
        _byte(out, c)  # a quote, a backslash or a slash as itself
        i += 2
    return 0


# The keys each object of an Event is read for, by place: both API views' names of a field.
cdef list _KEPT = []  # the tables' words, alive as long as the module


cdef void _table(list words, const char** names, int* sizes) noexcept:
    cdef int at
    for at in range(len(words)):
        _KEPT.append(words[at])
        names[at], sizes[at] = <const char*>(<bytes>words[at]), len(<bytes>words[at])


cdef enum:  # the top level's keys
    T_TYPE, T_OBJECT, T_KIND, T_KEYS
cdef const char* _TOP[3]
cdef int _TOP_SIZES[3]
_table([b"type", b"object", b"kind"], _TOP, _TOP_SIZES)

cdef enum:  # an Event's
    E_API, E_METADATA, E_SOURCE, E_DEPRECATED_SOURCE, E_TYPE, E_REASON, E_ACTION, E_MESSAGE,
    E_NOTE, E_INVOLVED, E_REGARDING, E_RELATED, E_REPORTING_COMPONENT, E_REPORTING_CONTROLLER,
    E_REPORTING_INSTANCE, E_EVENT_TIME, E_FIRST, E_DEPRECATED_FIRST, E_LAST,
    E_DEPRECATED_LAST, E_COUNT, E_DEPRECATED_COUNT, E_SERIES, E_KEYS
cdef const char* _EVENT[23]
cdef int _EVENT_SIZES[23]
_table([
    b"apiVersion", b"metadata", b"source", b"deprecatedSource", b"type", b"reason", b"action",
    b"message", b"note", b"involvedObject", b"regarding", b"related", b"reportingComponent",
    b"reportingController", b"reportingInstance", b"eventTime", b"firstTimestamp",
    b"deprecatedFirstTimestamp", b"lastTimestamp", b"deprecatedLastTimestamp", b"count",
    b"deprecatedCount", b"series",
], _EVENT, _EVENT_SIZES)

cdef enum:  # its metadata's
    M_UID, M_RESOURCE_VERSION, M_NAME, M_NAMESPACE, M_CREATED, M_LABELS, M_ANNOTATIONS, M_KEYS
cdef const char* _METADATA[7]
cdef int _METADATA_SIZES[7]
_table([b"uid", b"resourceVersion", b"name", b"namespace", b"creationTimestamp", b"labels",
        b"annotations"], _METADATA, _METADATA_SIZES)

cdef enum:  # an object reference's, in the record's order
    R_KIND, R_API, R_NAMESPACE, R_NAME, R_UID, R_RESOURCE_VERSION, R_FIELD_PATH, R_KEYS
cdef const char* _REFERENCE[7]
cdef int _REFERENCE_SIZES[7]
_table([b"kind", b"apiVersion", b"namespace", b"name", b"uid", b"resourceVersion",
        b"fieldPath"], _REFERENCE, _REFERENCE_SIZES)

cdef enum:  # a source's, then a series'
    S_COMPONENT, S_HOST, S_KEYS
cdef const char* _SOURCE[2]
cdef int _SOURCE_SIZES[2]
_table([b"component", b"host"], _SOURCE, _SOURCE_SIZES)
cdef enum:
    SERIES_COUNT, SERIES_LAST, SERIES_KEYS
cdef const char* _SERIES[2]
cdef int _SERIES_SIZES[2]
_table([b"count", b"lastObservedTime"], _SERIES, _SERIES_SIZES)



cdef inline bint _is(_Bytes s, _Span* span, const char* text, int size) noexcept:
    """Whether a string without escapes is ``text``."""
    return span.end - span.start - 2 == size and memcmp(s + span.start + 1, text, size) == 0

cdef enum:
    _ENTRIES = 64  # a map's entries read here at most


cdef inline Py_ssize_t _read(_Bytes s, Py_ssize_t n, _Span* span, const char** names,
                             const int* sizes, int count, _Span* spans) noexcept:
    """The keys of the object in ``span`` (its spans emptied first); -1: not read here (a
    key with an escape in it)."""
    cdef int at, keys
    for at in range(count):
        spans[at].kind = ABSENT
    if span.kind != OBJECT:
        return 0
    return _fields(s, n, span.start, 1, names, sizes, count, spans, &keys)


cdef enum:
    _MOMENTS = 8
    _MOMENT_BYTES = 40


cdef struct _Moment:  # a time's text and its microseconds (known: a time at all)
    char text[_MOMENT_BYTES]
    Py_ssize_t size
    int64_t micros
    bint known


cdef class Converter:
    """One producer's converter: its value framing, cluster and producer id, and a cache of
    the times met (an event's mostly repeat its neighbours')."""

    cdef bytes header
    cdef str cluster, producer_id
    cdef bint core_by_default
    cdef object micros_of  # text -> microseconds since the epoch, or None
    cdef dict times
    cdef _Text out
    cdef _Text scratch  # a string's text with its escapes undone
    cdef _Moment moments[_MOMENTS]  # the line pass's last times, by their text's bytes
    cdef int next_moment

    def __cinit__(self):
        cdef int at
        self.out.data, self.out.size, self.out.room = NULL, 0, 0
        self.scratch.data, self.scratch.size, self.scratch.room = NULL, 0, 0
        self.next_moment = 0
        for at in range(_MOMENTS):
            self.moments[at].size = -1

    def __init__(
        self, bytes header, str cluster, str producer_id, bint core_by_default, micros_of
    ):
        self.header, self.cluster, self.producer_id = header, cluster, producer_id
        self.core_by_default, self.micros_of, self.times = core_by_default, micros_of, {}

    def __dealloc__(self):
        _release(&self.out)
        _release(&self.scratch)

    cdef int _begin(
        self, int64_t watch_type, int64_t observed_micros, bint core, str uid,
        str resource_version,
    ) except -1:
        """A value's framing and the record's fields before the event's own."""
        cdef _Text* out = &self.out
        out.size = 0
        _put(out, self.header, len(self.header))
        _string(out, self.cluster)
        _long(out, watch_type)
        _long(out, observed_micros)
        _string(out, self.producer_id)
        _string(out, _CORE if core else _EVENTS)
        _string(out, uid)
        return _string(out, resource_version)

    cdef int _time(self, object value) except -1:
        """A ``["null", timestamp-micros]`` of ``converting.parse_time``."""
        cdef PyObject* found
        if not isinstance(value, str) or not value:
            return _byte(&self.out, 0)
        found = PyDict_GetItem(self.times, value)
        if found == NULL:
            if len(self.times) >= 8192:
                self.times.clear()
            micros = self.micros_of(value)
            self.times[value] = micros
        else:
            micros = <object>found
        if micros is None:
            return _byte(&self.out, 0)
        _byte(&self.out, 2)
        return _long(&self.out, micros)

    cdef int _integer(self, object value, int64_t* into) except -1:
        """``converting._integer``: WRITTEN with the number, DEFER for text, else 2 (none)."""
        if value is None or type(value) is bool:
            return 2
        if isinstance(value, int):
            try:
                into[0] = value
            except OverflowError:
                return 2
            return WRITTEN if -2147483648 <= into[0] <= 2147483647 else 2
        if isinstance(value, str):
            return DEFER
        return 2

    cdef int _map(self, object value) except -1:
        """A ``["null", map<string>]`` of ``converting._string_map``."""
        cdef Py_ssize_t at = 0
        cdef PyObject* key
        cdef PyObject* item
        cdef int outcome = _object(&self.out, value)
        if outcome != PRESENT:
            return outcome
        _long(&self.out, PyDict_Size(value))
        while PyDict_Next(value, &at, &key, &item):
            if type(<object>key) is not str:
                return DEFER  # str() of keys might make two one
            _string(&self.out, <str>key)
            if <object>item is None:
                _byte(&self.out, 0)
            elif type(<object>item) is str:
                _string(&self.out, <str>item)
            else:
                _string(&self.out, str(<object>item))
        return _byte(&self.out, 0)

    cdef int _reference(self, object value) except -1:
        """A ``["null", ObjectReference]`` of ``converting._reference``."""
        cdef int outcome = _object(&self.out, value)
        if outcome != PRESENT:
            return outcome
        for name in ("kind", "apiVersion", "namespace", "name", "uid", "resourceVersion",
                     "fieldPath"):
            if _text(&self.out, _get(value, name)) == DEFER:
                return DEFER
        return WRITTEN

    cdef int _series(self, object value) except -1:
        """A ``["null", EventSeries]`` of ``converting._series``."""
        cdef int64_t count = 0
        cdef int outcome
        if value is None:
            return _byte(&self.out, 0)
        if type(value) is not dict:
            return DEFER
        outcome = self._integer(_get(value, "count"), &count)
        if outcome == DEFER:
            return DEFER
        _counted(&self.out, outcome, count)
        return self._time(_get(value, "lastObservedTime")) if outcome == WRITTEN else WRITTEN

    def convert(self, dict event, str watch_type, double now):
        """``(value, uid, resourceVersion, count, (type, reason), key)`` of one Event object
        watched as ``watch_type`` at ``now`` (seconds since the epoch); None where the Python
        path must decide."""
        cdef PyObject* symbol = PyDict_GetItem(_WATCH_TYPES, watch_type)
        if symbol == NULL:
            return None
        try:
            return self._convert(event, <object>symbol, _micros(now))
        except UnicodeEncodeError:  # a lone surrogate: the codec refuses it, in Python
            return None

    cdef object _convert(self, dict event, int64_t watch_type, int64_t observed_micros):
        cdef _Text* out = &self.out
        cdef bint core
        cdef int64_t count = 0
        cdef int counted
        declared = _get(event, "apiVersion")
        if declared is None:
            core = self.core_by_default
        elif type(declared) is not str:
            return None
        elif declared == _CORE:
            core = True
        elif declared == _EVENTS or declared == _EVENTS_BETA:
            core = False
        else:
            core = self.core_by_default
        metadata = _get(event, "metadata")
        if type(metadata) is not dict:
            return None
        uid, resource_version, name = (
            _get(metadata, "uid"), _get(metadata, "resourceVersion"), _get(metadata, "name")
        )
        if type(uid) is not str or type(resource_version) is not str or type(name) is not str:
            return None
        if not uid or not resource_version or not name:
            return None
        source = _get(event, "source" if core else "deprecatedSource")
        if source is None:
            source = {}
        elif type(source) is not dict:
            return None
        self._begin(watch_type, observed_micros, core, uid, resource_version)
        if _text(out, _get(metadata, "namespace")) == DEFER:
            return None
        _string(out, <str>name)
        self._time(_get(metadata, "creationTimestamp"))
        if self._map(_get(metadata, "labels")) == DEFER:
            return None
        if self._map(_get(metadata, "annotations")) == DEFER:
            return None
        kind, reason = _get(event, "type"), _get(event, "reason")
        for value in (
            kind, reason, _get(event, "action"), _get(event, "message" if core else "note")
        ):
            if _text(out, value) == DEFER:
                return None
        regarding = _get(event, "involvedObject" if core else "regarding")
        if self._reference(regarding) == DEFER or self._reference(_get(event, "related")) == DEFER:
            return None
        for value in (
            _get(event, "reportingComponent" if core else "reportingController"),
            _get(event, "reportingInstance"),
            _get(source, "component"),
            _get(source, "host"),
        ):
            if _text(out, value) == DEFER:
                return None
        self._time(_get(event, "eventTime"))
        self._time(_get(event, "firstTimestamp" if core else "deprecatedFirstTimestamp"))
        self._time(_get(event, "lastTimestamp" if core else "deprecatedLastTimestamp"))
        counted = self._integer(_get(event, "count" if core else "deprecatedCount"), &count)
        if counted == DEFER:
            return None
        _counted(out, counted, count)
        if self._series(_get(event, "series")) == DEFER:
            return None
        _put(out, b"\x00\x00\x00", 3)  # truncated, regarding_labels, regarding_owner: null
        key = uid
        if regarding:  # a dict here: _reference took it
            regarding_uid = _get(regarding, "uid")
            if regarding_uid:
                key = regarding_uid
        return (
            PyBytes_FromStringAndSize(out.data, out.size),
            uid,
            resource_version,
            count if counted == WRITTEN else None,
            (kind or "", reason or ""),
            (<str>key).encode(),
        )

    # --- the line pass's writers: ``_text``, ``_time``... of a span of the line ------------

    cdef int _line_string(self, _Bytes s, _Span* span) except -1:
        """A string's text as Avro writes a string."""
        if not span.escaped:
            _long(&self.out, span.end - span.start - 2)
            return _put(&self.out, <const char*>s + span.start + 1, span.end - span.start - 2)
        self.scratch.size = 0
        _unescape(&self.scratch, s, span.start + 1, span.end - 1)
        _long(&self.out, self.scratch.size)
        return _put(&self.out, self.scratch.data, self.scratch.size)

    cdef object _line_str(self, _Bytes s, _Span* span):
        """A string's text, as Python's."""
        if not span.escaped:
            return PyUnicode_DecodeUTF8(<const char*>s + span.start + 1,
                                        span.end - span.start - 2, NULL)
        self.scratch.size = 0
        _unescape(&self.scratch, s, span.start + 1, span.end - 1)
        return PyUnicode_DecodeUTF8(self.scratch.data, self.scratch.size, NULL)

    cdef int _line_text(self, _Bytes s, _Span* span) except -1:
        if span.kind == ABSENT or span.kind == NUL:
            return _byte(&self.out, 0)
        if span.kind != STRING:
            return DEFER
        if span.end - span.start == 2:
            return _byte(&self.out, 0)
        _byte(&self.out, 2)
        return self._line_string(s, span)

    cdef int _line_time(self, _Bytes s, _Span* span) except -1:
        """``_time`` of a string's text; the last few texts met are known by their bytes."""
        cdef Py_ssize_t size = span.end - span.start - 2
        cdef const char* text = <const char*>s + span.start + 1
        cdef _Moment* moment
        cdef int at
        if span.kind != STRING or size == 0:
            return _byte(&self.out, 0)
        if span.escaped or size > _MOMENT_BYTES:
            return self._time(self._line_str(s, span))
        for at in range(_MOMENTS):
            moment = &self.moments[at]
            if moment.size == size and memcmp(moment.text, text, size) == 0:
                break
        else:
            micros = self.micros_of(self._line_str(s, span))
            moment = &self.moments[self.next_moment]
            self.next_moment = (self.next_moment + 1) % _MOMENTS
            memcpy(moment.text, text, size)
            moment.size, moment.known = size, micros is not None
            moment.micros = micros if micros is not None else 0
        if not moment.known:
            return _byte(&self.out, 0)
        _byte(&self.out, 2)
        return _long(&self.out, moment.micros)

    cdef int _line_integer(self, _Bytes s, _Span* span, int64_t* into) except -1:
        cdef Py_ssize_t i = span.start
        cdef bint negative = s[i] == 45
        cdef int64_t value = 0
        if span.kind == STRING:
            return DEFER
        if span.kind != INTEGER:
            return 2
        if negative:
            i += 1
        while i < span.end:
            value = value * 10 + (s[i] - 48)
            i += 1
        into[0] = -value if negative else value
        return WRITTEN if -2147483648 <= into[0] <= 2147483647 else 2

    cdef int _line_object(self, _Span* span) except -1:
        if span.kind == ABSENT or span.kind == NUL or (span.kind == OBJECT and span.keys == 0):
            return _byte(&self.out, 0)
        if span.kind != OBJECT:
            return DEFER
        _byte(&self.out, 2)
        return PRESENT

    cdef int _line_map(self, _Bytes s, Py_ssize_t n, _Span* span) except -1:
        cdef _Span keys[_ENTRIES]
        cdef _Span values[_ENTRIES]
        cdef Py_ssize_t i, size
        cdef int count = 0, at, other
        cdef bint escaped
        cdef int outcome = self._line_object(span)
        if outcome != PRESENT:
            return outcome
        if span.keys > _ENTRIES:
            return DEFER
        i = _ws(s, n, span.start + 1)
        while count < span.keys:  # read before: a well-formed object of span.keys keys
            keys[count].start, escaped = i, False
            i = _string_end(s, n, i, &escaped)
            keys[count].end = i
            if escaped:
                return DEFER
            i = _value_end(s, n, _ws(s, n, _ws(s, n, i) + 1), 1, &values[count])
            size = keys[count].end - keys[count].start
            for other in range(count):  # a key named twice: the dict keeps one
                if keys[other].end - keys[other].start == size \
                        and memcmp(s + keys[other].start, s + keys[count].start, size) == 0:
                    return DEFER
            if values[count].kind != NUL and values[count].kind != STRING:
                return DEFER  # str() of it: the dict path
            count += 1
            i = _ws(s, n, _ws(s, n, i) + 1)
        _long(&self.out, count)
        for at in range(count):
            _long(&self.out, keys[at].end - keys[at].start - 2)
            _put(&self.out, <const char*>s + keys[at].start + 1, keys[at].end - keys[at].start - 2)
            if values[at].kind == NUL:
                _byte(&self.out, 0)
            else:
                self._line_string(s, &values[at])
        return _byte(&self.out, 0)

    cdef int _line_reference(self, _Bytes s, Py_ssize_t n, _Span* span, _Span* fields) \
            except -1:
        """``_reference`` of a span; its fields left in ``fields`` (absent where it is not an
        object), for the caller's key."""
        cdef int at, outcome
        if _read(s, n, span, _REFERENCE, _REFERENCE_SIZES, R_KEYS, fields) < 0:
            return DEFER
        outcome = self._line_object(span)
        if outcome != PRESENT:
            return outcome
        for at in range(R_KEYS):
            if self._line_text(s, &fields[at]) == DEFER:
                return DEFER
        return WRITTEN

    cdef int _line_series(self, _Bytes s, Py_ssize_t n, _Span* span) except -1:
        cdef _Span fields[SERIES_KEYS]
        cdef int64_t count = 0
        cdef int outcome
        if span.kind == ABSENT or span.kind == NUL:
            return _byte(&self.out, 0)
        if span.kind != OBJECT:
            return DEFER
        if _read(s, n, span, _SERIES, _SERIES_SIZES, SERIES_KEYS, fields) < 0:
            return DEFER
        outcome = self._line_integer(s, &fields[SERIES_COUNT], &count)
        if outcome == DEFER:
            return DEFER
        _counted(&self.out, outcome, count)
        return self._line_time(s, &fields[SERIES_LAST]) if outcome == WRITTEN else WRITTEN

    def convert_line(self, bytes line, double now):
        """``(watch type, (value, uid, resourceVersion, count, (type, reason), key))`` of a
        line of a watch stream, ``{"type": ..., "object": <an Event>}``, read at ``now``:
        ``convert`` of what ``orjson.loads`` makes of it; None where the line is not read
        here for certain (the caller parses it and decides)."""
        cdef _Bytes s = <_Bytes><const char*>line
        cdef Py_ssize_t n = len(line)
        cdef _Span top[T_KEYS]
        cdef _Span event[E_KEYS]
        cdef _Span metadata[M_KEYS]
        cdef _Span source[S_KEYS]
        cdef _Span regarding_fields[R_KEYS]
        cdef _Span related_fields[R_KEYS]
        cdef _Span* regarding
        cdef _Span* field
        cdef _Text* out = &self.out
        cdef bint core
        cdef int64_t count = 0
        cdef int counted, at, keys, symbol
        cdef Py_ssize_t start, end
        cdef _Nest in_metadata, in_event, at_top
        _nest(&in_metadata, _METADATA, _METADATA_SIZES, M_KEYS, metadata, -1, NULL)
        _nest(&in_event, _EVENT, _EVENT_SIZES, E_KEYS, event, E_METADATA, &in_metadata)
        _nest(&at_top, _TOP, _TOP_SIZES, T_KEYS, top, T_OBJECT, &in_event)
        start = _ws(s, n, 0)
        if start >= n or s[start] != 123:
            return None
        # One pass over the line: the event's and its metadata's keys as they come.
        _emptied(&at_top)
        end = _fields(s, n, start, 1, _TOP, _TOP_SIZES, T_KEYS, top, &keys, T_OBJECT, &in_event)
        if end < 0 or _ws(s, n, end) != n:
            return None
        if top[T_KIND].kind != ABSENT or top[T_OBJECT].kind != OBJECT \
                or top[T_TYPE].kind != STRING or top[T_TYPE].escaped:
            return None
        field = &top[T_TYPE]
        if _is(s, field, "ADDED", 5):
            watch_type, symbol = "ADDED", 0
        elif _is(s, field, "MODIFIED", 8):
            watch_type, symbol = "MODIFIED", 1
        elif _is(s, field, "DELETED", 7):
            watch_type, symbol = "DELETED", 2
        else:
            return None
        field = &event[E_API]
        if field.kind == ABSENT or field.kind == NUL:
            core = self.core_by_default
        elif field.kind != STRING or field.escaped:
            return None
        elif _is(s, field, "v1", 2):
            core = True
        elif _is(s, field, "events.k8s.io/v1", 16) or _is(s, field, "events.k8s.io/v1beta1", 21):
            core = False
        else:
            core = self.core_by_default
        if event[E_METADATA].kind != OBJECT:
            return None
        for at in (M_UID, M_RESOURCE_VERSION, M_NAME):
            if metadata[at].kind != STRING or metadata[at].end - metadata[at].start == 2:
                return None
        field = &event[E_SOURCE if core else E_DEPRECATED_SOURCE]
        if field.kind != ABSENT and field.kind != NUL and field.kind != OBJECT:
            return None
        if _read(s, n, field, _SOURCE, _SOURCE_SIZES, S_KEYS, source) < 0:
            return None
        uid = self._line_str(s, &metadata[M_UID])
        resource_version = self._line_str(s, &metadata[M_RESOURCE_VERSION])
        self._begin(symbol, _micros(now), core, uid, resource_version)
        if self._line_text(s, &metadata[M_NAMESPACE]) == DEFER:
            return None
        self._line_string(s, &metadata[M_NAME])
        self._line_time(s, &metadata[M_CREATED])
        if self._line_map(s, n, &metadata[M_LABELS]) == DEFER:
            return None
        if self._line_map(s, n, &metadata[M_ANNOTATIONS]) == DEFER:
            return None
        for at in (E_TYPE, E_REASON, E_ACTION, E_MESSAGE if core else E_NOTE):
            if self._line_text(s, &event[at]) == DEFER:
                return None
        regarding = &event[E_INVOLVED if core else E_REGARDING]
        if self._line_reference(s, n, regarding, regarding_fields) == DEFER \
                or self._line_reference(s, n, &event[E_RELATED], related_fields) == DEFER:
            return None
        if self._line_text(s, &event[E_REPORTING_COMPONENT if core else E_REPORTING_CONTROLLER]) \
                == DEFER or self._line_text(s, &event[E_REPORTING_INSTANCE]) == DEFER \
                or self._line_text(s, &source[S_COMPONENT]) == DEFER \
                or self._line_text(s, &source[S_HOST]) == DEFER:
            return None
        self._line_time(s, &event[E_EVENT_TIME])
        self._line_time(s, &event[E_FIRST if core else E_DEPRECATED_FIRST])
        self._line_time(s, &event[E_LAST if core else E_DEPRECATED_LAST])
        counted = self._line_integer(s, &event[E_COUNT if core else E_DEPRECATED_COUNT], &count)
        if counted == DEFER:
            return None
        _counted(out, counted, count)
        if self._line_series(s, n, &event[E_SERIES]) == DEFER:
            return None
        _put(out, b"\x00\x00\x00", 3)  # truncated, regarding_labels, regarding_owner: null
        value = PyBytes_FromStringAndSize(out.data, out.size)
        key = uid
        field = &regarding_fields[R_UID]
        if field.kind == STRING and field.end - field.start > 2:
            key = self._line_str(s, field)
        return watch_type, (
            value,
            uid,
            resource_version,
            count if counted == WRITTEN else None,
            (
                self._line_str(s, &event[E_TYPE]) if event[E_TYPE].kind == STRING else "",
                self._line_str(s, &event[E_REASON]) if event[E_REASON].kind == STRING else "",
            ),
            (<str>key).encode(),
        )
