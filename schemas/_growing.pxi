# A buffer of bytes that grows as it is written, for the compiled modules: the sinks' scan
# renders lines of JSON into one (consumers/_scan.pyx), the producer's one pass Avro values
# (producer/_convert.pyx). Each includes this file.

from cpython.mem cimport PyMem_Realloc
from libc.string cimport memcpy


cdef struct _Text:
    char* data
    Py_ssize_t size
    Py_ssize_t room


cdef int _grow(_Text* t, Py_ssize_t more) except -1:
    cdef Py_ssize_t room = t.room * 2 if t.room else 4096
    cdef char* data
    while room < t.size + more:
        room *= 2
    data = <char*>PyMem_Realloc(t.data, room)
    if data == NULL:
        raise MemoryError()
    t.data, t.room = data, room
    return 0


cdef inline int _put(_Text* t, const char* s, Py_ssize_t k) except -1:
    if t.size + k > t.room:
        _grow(t, k)
    memcpy(t.data + t.size, s, k)
    t.size += k
    return 0
