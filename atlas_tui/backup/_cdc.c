/*
 * Content-defined chunk boundaries from a gear rolling hash, for atlas_tui.backup.chunker.
 *
 * For each chunk the hash starts at zero `min_size` bytes after the chunk start and takes
 * one byte per step: h = (h << 1) + table[byte], modulo 2^64. Because of the shift, a
 * byte leaves the hash 64 steps after it entered. A boundary follows the first byte where
 * the top bits of h are all zero: `strict_bits` of them before `avg_size`, `loose_bits`
 * after it, so chunk sizes gather around `avg_size`. A chunk that reaches `max_size` is
 * cut there. The table comes from the repository key, so equal data chunks differently
 * in different repositories.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TABLE_BYTES (256 * 8)

typedef struct {
    Py_ssize_t *items;
    Py_ssize_t count;
    Py_ssize_t capacity;
} cut_list;

static int cut_list_push(cut_list *list, Py_ssize_t value)
{
    if (list->count == list->capacity) {
        Py_ssize_t capacity = list->capacity ? list->capacity * 2 : 64;
        Py_ssize_t *items = PyMem_RawRealloc(list->items, (size_t)capacity * sizeof(Py_ssize_t));
        if (items == NULL) {
            return -1;
        }
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = value;
    return 0;
}

static uint64_t top_bits_mask(int bits)
{
    if (bits <= 0) {
        return 0;
    }
    if (bits >= 64) {
        return UINT64_MAX;
    }
    return UINT64_MAX << (64 - bits);
}

/*
 * Length of the chunk that starts at data[0], or 0 when more input is needed to decide.
 * The first `scanned` bytes were searched by an earlier call without finding a boundary.
 * Only the last 64 bytes before a position decide the hash there, so the search
 * restarts 64 bytes before `scanned`, with the same result as a search from the start.
 */
static Py_ssize_t chunk_length(const uint64_t *table, const unsigned char *data, Py_ssize_t available,
                               Py_ssize_t min_size, Py_ssize_t avg_size, Py_ssize_t max_size,
                               uint64_t strict_mask, uint64_t loose_mask, int final, Py_ssize_t scanned)
{
    Py_ssize_t limit = available < max_size ? available : max_size;
    Py_ssize_t normal = avg_size < limit ? avg_size : limit;
    Py_ssize_t i = min_size;
    uint64_t h = 0;

    if (available <= min_size) {
        return final ? available : 0;
    }
    if (scanned > limit) {
        scanned = limit;
    }
    if (scanned - 64 > i) {
        i = scanned - 64;
    }
    for (; i < scanned; i++) {
        h = (h << 1) + table[data[i]];
    }
    for (; i < normal; i++) {
        h = (h << 1) + table[data[i]];
        if ((h & strict_mask) == 0) {
            return i + 1;
        }
    }
    for (; i < limit; i++) {
        h = (h << 1) + table[data[i]];
        if ((h & loose_mask) == 0) {
            return i + 1;
        }
    }
    if (limit == max_size || final) {
        return limit;
    }
    return 0;
}

static PyObject *cut_points(PyObject *self, PyObject *args)
{
    const char *table_bytes;
    Py_ssize_t table_length;
    Py_buffer data;
    Py_ssize_t min_size, avg_size, max_size, scanned = 0;
    int strict_bits, loose_bits, final;
    uint64_t table[256];
    cut_list cuts = {NULL, 0, 0};
    int failed = 0;
    PyObject *result;

    (void)self;
    if (!PyArg_ParseTuple(args, "y#y*nnniip|n", &table_bytes, &table_length, &data, &min_size, &avg_size,
                          &max_size, &strict_bits, &loose_bits, &final, &scanned)) {
        return NULL;
    }
    if (table_length != TABLE_BYTES) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError, "gear table must be %d bytes, got %zd", TABLE_BYTES, table_length);
        return NULL;
    }
    if (min_size < 0 || min_size >= avg_size || avg_size >= max_size) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError, "need 0 <= min_size < avg_size < max_size, got %zd, %zd, %zd",
                     min_size, avg_size, max_size);
        return NULL;
    }
    /* The table is little-endian uint64 values whatever the host byte order. */
    for (int k = 0; k < 256; k++) {
        uint64_t value = 0;
        for (int b = 7; b >= 0; b--) {
            value = (value << 8) | (unsigned char)table_bytes[k * 8 + b];
        }
        table[k] = value;
    }

    Py_BEGIN_ALLOW_THREADS
    {
        const unsigned char *bytes = data.buf;
        uint64_t strict_mask = top_bits_mask(strict_bits);
        uint64_t loose_mask = top_bits_mask(loose_bits);
        Py_ssize_t start = 0;
        while (start < data.len) {
            Py_ssize_t length = chunk_length(table, bytes + start, data.len - start, min_size, avg_size,
                                             max_size, strict_mask, loose_mask, final, scanned);
            scanned = 0;
            if (length == 0) {
                break;
            }
            start += length;
            if (cut_list_push(&cuts, start) < 0) {
                failed = 1;
                break;
            }
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&data);
    if (failed) {
        PyMem_RawFree(cuts.items);
        return PyErr_NoMemory();
    }
    result = PyList_New(cuts.count);
    if (result != NULL) {
        for (Py_ssize_t k = 0; k < cuts.count; k++) {
            PyObject *value = PyLong_FromSsize_t(cuts.items[k]);
            if (value == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, k, value);
        }
    }
    PyMem_RawFree(cuts.items);
    return result;
}

static PyMethodDef cdc_methods[] = {
    {"cut_points", cut_points, METH_VARARGS,
     "cut_points(table, data, min_size, avg_size, max_size, strict_bits, loose_bits, final, scanned=0) -> list[int]\n\n"
     "Return the end offsets of the chunks found in data. Without final, the bytes after\n"
     "the last offset did not yet decide a boundary and must be passed again with more data;\n"
     "their count, passed as scanned, lets the next call skip searching them again."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cdc_module = {
    PyModuleDef_HEAD_INIT, "_cdc", "Gear-hash content-defined chunking.", -1, cdc_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cdc(void)
{
    return PyModule_Create(&cdc_module);
}
