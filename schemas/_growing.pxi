# A buffer of bytes that grows as it is written, for the compiled modules: the sinks' scan
# renders lines of JSON into one and fills Arrow's columns in others (consumers/_scan.pyx),
# the producer's one pass writes Avro values (producer/_convert.pyx). Each includes this file.
# C's allocator, so that a column is filled with the GIL released; ``_release`` frees it.

from libc.stdlib cimport free, realloc
from libc.string cimport memcpy


cdef struct _Text:
    char* data
    Py_ssize_t size
    Py_ssize_t room


cdef int _grown(_Text* t, Py_ssize_t more) noexcept nogil:
    """Room for ``more`` bytes past the end; -1 if there is no memory for it."""
    cdef Py_ssize_t room = t.room * 2 if t.room else 4096
    cdef char* data
    while room < t.size + more:
        room *= 2
    data = <char*>realloc(t.data, room)
    if data == NULL:
        return -1
    t.data, t.room = data, room
    return 0


cdef int _grow(_Text* t, Py_ssize_t more) except -1:
    if _grown(t, more) < 0:
        raise MemoryError()
    return 0


cdef inline int _put(_Text* t, const char* s, Py_ssize_t k) except -1:
    if t.size + k > t.room:
        _grow(t, k)
    memcpy(t.data + t.size, s, k)
    t.size += k
    return 0


cdef inline int _add(_Text* t, const void* s, Py_ssize_t k) noexcept nogil:
    """``_put`` without the GIL: -1 if there is no memory for it."""
    if t.size + k > t.room and _grown(t, k) < 0:
        return -1
    memcpy(t.data + t.size, s, k)
    t.size += k
    return 0


cdef inline void _release(_Text* t) noexcept nogil:
    free(t.data)
    t.data, t.size, t.room = NULL, 0, 0
