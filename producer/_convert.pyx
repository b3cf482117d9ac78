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
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport modf, nearbyint
from libc.stdint cimport int64_t, uint64_t

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


cdef class Converter:
    """One producer's converter: its value framing, cluster and producer id, and a cache of
    the times met (an event's mostly repeat its neighbours')."""

    cdef bytes header
    cdef str cluster, producer_id
    cdef bint core_by_default
    cdef object micros_of  # text -> microseconds since the epoch, or None
    cdef dict times
    cdef _Text out

    def __cinit__(self):
        self.out.data, self.out.size, self.out.room = NULL, 0, 0

    def __init__(
        self, bytes header, str cluster, str producer_id, bint core_by_default, micros_of
    ):
        self.header, self.cluster, self.producer_id = header, cluster, producer_id
        self.core_by_default, self.micros_of, self.times = core_by_default, micros_of, {}

    def __dealloc__(self):
        _release(&self.out)

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
        if outcome != WRITTEN:
            return _byte(&self.out, 0)
        _byte(&self.out, 2)
        _long(&self.out, count)
        return self._time(_get(value, "lastObservedTime"))

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
        out.size = 0
        _put(out, self.header, len(self.header))
        _string(out, self.cluster)
        _long(out, watch_type)
        _long(out, observed_micros)
        _string(out, self.producer_id)
        _string(out, _CORE if core else _EVENTS)
        _string(out, <str>uid)
        _string(out, <str>resource_version)
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
        if counted == WRITTEN:
            _byte(out, 2)
            _long(out, count)
        else:
            _byte(out, 0)
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
