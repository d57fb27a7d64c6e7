/*
 * Content-defined chunk boundaries from a gear rolling hash, for atlas_tui.backup.chunker,
 * and a reader of small files for the same module (see `read_small` at the end).
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
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/*
 * read_small(path, limit) -> (stat fields, bytes or None)
 *
 * lstat, open, fstat, read and close of one small file with the GIL released once. A
 * backup's reading thread made these five calls for each of tens of thousands of small
 * files, and each call gave the GIL to a sealing thread and waited to get it back.
 * Only a path that lstat shows as a regular file of at most `limit` bytes is opened,
 * with O_NOFOLLOW and O_NONBLOCK. It is read only when fstat shows a regular file, so a
 * FIFO or device put in its place is never read. The stat fields come from fstat when
 * the file was opened, else from lstat, in the order of os.stat_result. The data is
 * None when the path is not a regular file or holds more than `limit` bytes.
 */
static PyObject *read_small(PyObject *module, PyObject *args)
{
    PyObject *path_object;
    Py_ssize_t limit;
    struct stat info;
    char *buffer = NULL;
    Py_ssize_t length = 0;
    int error = 0, opened = 0, too_big = 0;

    (void)module;
    if (!PyArg_ParseTuple(args, "O!n", &PyBytes_Type, &path_object, &limit)) {
        return NULL;
    }
    if (limit < 0) {
        PyErr_Format(PyExc_ValueError, "limit must be at least 0, got %zd", limit);
        return NULL;
    }
    const char *path = PyBytes_AS_STRING(path_object);
    if ((Py_ssize_t)strlen(path) != PyBytes_GET_SIZE(path_object)) {
        PyErr_SetString(PyExc_ValueError, "embedded null byte in path");
        return NULL;
    }

    Py_BEGIN_ALLOW_THREADS
    if (lstat(path, &info) != 0) {
        error = errno;
    } else if (S_ISREG(info.st_mode) && info.st_size <= limit) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            error = errno;
        } else {
            if (fstat(fd, &info) != 0) {
                error = errno;
            } else if (S_ISREG(info.st_mode)) {
                /* Reading one byte past the limit shows a file that grew since lstat. */
                buffer = malloc((size_t)limit + 1);
                if (buffer == NULL) {
                    error = ENOMEM;
                }
                while (buffer != NULL && length <= limit) {
                    ssize_t count = read(fd, buffer + length, (size_t)(limit + 1 - length));
                    if (count < 0 && errno == EINTR) {
                        continue;
                    }
                    if (count < 0) {
                        error = errno;
                        break;
                    }
                    if (count == 0) {
                        break;
                    }
                    length += count;
                }
                opened = error == 0;
                too_big = length > limit;
            }
            close(fd);
        }
    }
    Py_END_ALLOW_THREADS

    if (error != 0) {
        free(buffer);
        errno = error;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_object);
    }
    PyObject *data;
    if (opened && !too_big) {
        data = PyBytes_FromStringAndSize(buffer, length);
    } else {
        data = Py_NewRef(Py_None);
    }
    free(buffer);
    if (data == NULL) {
        return NULL;
    }
    PyObject *fields = Py_BuildValue(
        "(kKkkkkLLLLdddLLLlLk)",
        (unsigned long)info.st_mode, (unsigned long long)info.st_ino, (unsigned long)info.st_dev,
        (unsigned long)info.st_nlink, (unsigned long)info.st_uid, (unsigned long)info.st_gid,
        (long long)info.st_size, (long long)info.st_atim.tv_sec, (long long)info.st_mtim.tv_sec,
        (long long)info.st_ctim.tv_sec,
        (double)info.st_atim.tv_sec + info.st_atim.tv_nsec * 1e-9,
        (double)info.st_mtim.tv_sec + info.st_mtim.tv_nsec * 1e-9,
        (double)info.st_ctim.tv_sec + info.st_ctim.tv_nsec * 1e-9,
        (long long)info.st_atim.tv_sec * 1000000000LL + info.st_atim.tv_nsec,
        (long long)info.st_mtim.tv_sec * 1000000000LL + info.st_mtim.tv_nsec,
        (long long)info.st_ctim.tv_sec * 1000000000LL + info.st_ctim.tv_nsec,
        (long)info.st_blksize, (long long)info.st_blocks, (unsigned long)info.st_rdev);
    if (fields == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    return Py_BuildValue("(NN)", fields, data);
}

static PyMethodDef cdc_methods[] = {
    {"cut_points", cut_points, METH_VARARGS,
     "cut_points(table, data, min_size, avg_size, max_size, strict_bits, loose_bits, final, scanned=0) -> list[int]\n\n"
     "Return the end offsets of the chunks found in data. Without final, the bytes after\n"
     "the last offset did not yet decide a boundary and must be passed again with more data;\n"
     "their count, passed as scanned, lets the next call skip searching them again."},
    {"read_small", read_small, METH_VARARGS,
     "read_small(path, limit) -> (stat fields, bytes or None)\n\n"
     "lstat the path and, when it is a regular file of at most limit bytes, read it whole,\n"
     "all with the GIL released once. The fields are in the order of os.stat_result; the\n"
     "bytes are None when the path is not a regular file or holds more than limit bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cdc_module = {
    PyModuleDef_HEAD_INIT, "_cdc", "Gear-hash content-defined chunking.", -1, cdc_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cdc(void)
{
    return PyModule_Create(&cdc_module);
}
