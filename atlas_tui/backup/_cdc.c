/*
 * Content-defined chunk boundaries from a gear rolling hash, for atlas_tui.backup.chunker,
 * and a reader of small files for the same module (see `read_small_files` at the end).
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

/* What read_one found for one path; the buffer is malloc'ed and freed by the caller. */
typedef struct {
    const char *path;
    struct stat info;
    char *buffer;
    Py_ssize_t length;
    int error;
    int read;
} small_file;

/*
 * lstat, open, fstat, read and close one small file; runs without the GIL.
 *
 * Only a path that lstat shows as a regular file of at most `limit` bytes is opened,
 * with O_NOFOLLOW and O_NONBLOCK. It is read only when fstat shows a regular file, so a
 * FIFO or device put in its place is never read. `read` is set when the whole file,
 * at most `limit` bytes and no more than fstat showed, is in the buffer.
 */
static void read_one(small_file *file, Py_ssize_t limit)
{
    if (lstat(file->path, &file->info) != 0) {
        file->error = errno;
        return;
    }
    if (!S_ISREG(file->info.st_mode) || file->info.st_size > limit) {
        return;
    }
    int fd = open(file->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        file->error = errno;
        return;
    }
    if (fstat(fd, &file->info) != 0) {
        file->error = errno;
    } else if (S_ISREG(file->info.st_mode) && file->info.st_size <= limit) {
        /* A buffer of the size fstat gives, and one byte more: reading that byte shows a
           file that grew since, which is then not read here. */
        Py_ssize_t capacity = (Py_ssize_t)file->info.st_size + 1;
        file->buffer = malloc((size_t)capacity);
        if (file->buffer == NULL) {
            file->error = ENOMEM;
        }
        while (file->buffer != NULL && file->length < capacity) {
            ssize_t count = read(fd, file->buffer + file->length, (size_t)(capacity - file->length));
            if (count < 0 && errno == EINTR) {
                continue;
            }
            if (count < 0) {
                file->error = errno;
                break;
            }
            if (count == 0) {
                break;
            }
            file->length += count;
        }
        file->read = file->error == 0 && file->length < capacity;
    }
    close(fd);
}

/* The stat fields in the order of os.stat_result. */
static PyObject *stat_fields(const struct stat *info)
{
    return Py_BuildValue(
        "(kKkkkkLLLLdddLLLlLk)",
        (unsigned long)info->st_mode, (unsigned long long)info->st_ino, (unsigned long)info->st_dev,
        (unsigned long)info->st_nlink, (unsigned long)info->st_uid, (unsigned long)info->st_gid,
        (long long)info->st_size, (long long)info->st_atim.tv_sec, (long long)info->st_mtim.tv_sec,
        (long long)info->st_ctim.tv_sec,
        (double)info->st_atim.tv_sec + info->st_atim.tv_nsec * 1e-9,
        (double)info->st_mtim.tv_sec + info->st_mtim.tv_nsec * 1e-9,
        (double)info->st_ctim.tv_sec + info->st_ctim.tv_nsec * 1e-9,
        (long long)info->st_atim.tv_sec * 1000000000LL + info->st_atim.tv_nsec,
        (long long)info->st_mtim.tv_sec * 1000000000LL + info->st_mtim.tv_nsec,
        (long long)info->st_ctim.tv_sec * 1000000000LL + info->st_ctim.tv_nsec,
        (long)info->st_blksize, (long long)info->st_blocks, (unsigned long)info->st_rdev);
}

/* The result for one file: (stat fields, bytes or None), or the OSError instance. */
static PyObject *small_file_result(small_file *file, PyObject *path_object)
{
    if (file->error != 0) {
        PyObject *error = PyObject_CallFunction(PyExc_OSError, "isO", file->error, strerror(file->error),
                                                path_object);
        return error;
    }
    PyObject *data = file->read ? PyBytes_FromStringAndSize(file->buffer, file->length) : Py_NewRef(Py_None);
    if (data == NULL) {
        return NULL;
    }
    PyObject *fields = stat_fields(&file->info);
    if (fields == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    return Py_BuildValue("(NN)", fields, data);
}

/*
 * read_small_files(paths, limit) -> list of (stat fields, bytes or None) or OSError
 *
 * Looks at and reads a batch of small files (see read_one) with the GIL released once.
 * A backup's reading thread made five system calls for each of tens of thousands of
 * small files, and each call gave the GIL to a sealing thread and waited to get it
 * back. A batch also lets a helper thread read ahead while files come from disk.
 */
static PyObject *read_small_files(PyObject *module, PyObject *args)
{
    PyObject *paths;
    Py_ssize_t limit;

    (void)module;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &paths, &limit)) {
        return NULL;
    }
    if (limit < 0) {
        PyErr_Format(PyExc_ValueError, "limit must be at least 0, got %zd", limit);
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(paths);
    small_file *files = PyMem_Calloc(count ? (size_t)count : 1, sizeof(small_file));
    if (files == NULL) {
        return PyErr_NoMemory();
    }
    /* The list is copied, so that no other thread can change it while the GIL is released. */
    PyObject *copied = PyList_GetSlice(paths, 0, count);
    if (copied == NULL) {
        PyMem_Free(files);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *path = PyList_GET_ITEM(copied, k);
        if (!PyBytes_Check(path)) {
            PyErr_Format(PyExc_TypeError, "paths must be bytes, got %.100s", Py_TYPE(path)->tp_name);
            goto fail;
        }
        if ((Py_ssize_t)strlen(PyBytes_AS_STRING(path)) != PyBytes_GET_SIZE(path)) {
            PyErr_SetString(PyExc_ValueError, "embedded null byte in path");
            goto fail;
        }
        files[k].path = PyBytes_AS_STRING(path);
    }

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++) {
        read_one(&files[k], limit);
    }
    Py_END_ALLOW_THREADS

    PyObject *results = PyList_New(count);
    for (Py_ssize_t k = 0; results != NULL && k < count; k++) {
        PyObject *result = small_file_result(&files[k], PyList_GET_ITEM(copied, k));
        if (result == NULL) {
            Py_CLEAR(results);
            break;
        }
        PyList_SET_ITEM(results, k, result);
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        free(files[k].buffer);
    }
    PyMem_Free(files);
    Py_DECREF(copied);
    return results;

fail:
    PyMem_Free(files);
    Py_DECREF(copied);
    return NULL;
}

static PyMethodDef cdc_methods[] = {
    {"cut_points", cut_points, METH_VARARGS,
     "cut_points(table, data, min_size, avg_size, max_size, strict_bits, loose_bits, final, scanned=0) -> list[int]\n\n"
     "Return the end offsets of the chunks found in data. Without final, the bytes after\n"
     "the last offset did not yet decide a boundary and must be passed again with more data;\n"
     "their count, passed as scanned, lets the next call skip searching them again."},
    {"read_small_files", read_small_files, METH_VARARGS,
     "read_small_files(paths, limit) -> list of (stat fields, bytes or None) or OSError\n\n"
     "lstat each path and, when it is a regular file of at most limit bytes, read it whole,\n"
     "all with the GIL released once. The fields are in the order of os.stat_result; the\n"
     "bytes are None when the path is not a regular file or has more than limit bytes. A\n"
     "path that cannot be looked at or read gives its OSError in place of the tuple."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cdc_module = {
    PyModuleDef_HEAD_INIT, "_cdc", "Gear-hash content-defined chunking.", -1, cdc_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cdc(void)
{
    return PyModule_Create(&cdc_module);
}
