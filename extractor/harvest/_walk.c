/*
 * Accelerator for extractor/harvest/reader.py `_walk_dataset`: steps over the regular elements
 * of a little-endian DICOM dataset held in a buffer and collects the values of wanted tags.
 *
 * It only fast-forwards. At the first element it does not handle in exactly the way the Python
 * walker would (undefined length, item tags, an unknown VR, a value running past the file or
 * past the buffer when wanted, fewer than 12 bytes left in the buffer) it stops and returns that
 * element's position; the Python walker handles the element and calls back in. So the walking
 * rules (and every error message) live in Python.
 *
 * walk(data, base, pos, size, explicit, columns, us_tags, first_tag, last_tag, row, raw)
 *     -> (pos, past_last)
 *   data      bytes of the file from file offset `base`
 *   pos       file offset of the element to start at
 *   size      file size
 *   explicit  explicit VR (else implicit VR)
 *   columns   dict: wanted tag -> row column name
 *   us_tags   frozenset of the wanted tags whose dictionary VR is US; None: collect raw values only
 *   first_tag hand back any element whose tag is smaller
 *   last_tag  stop (past_last = True) at the first element whose tag is greater
 *   row       dict: column -> value, for values converted here (see `store`)
 *   raw       dict: tag -> (VR as str, '' when implicit; value bytes), for values Python converts
 *
 * Conversion here mirrors reader.py `_convert_value` for its two cheap cases, and
 * tests/test_reader_differential.py checks both give the same rows: US attributes (by dictionary
 * or by explicit VR) become the first unsigned short (None when shorter than 2 bytes); ASCII
 * text without ESC becomes `normalise_text` of its backslash-separated values (each stripped of
 * spaces and NULs, None when all are empty). Anything else goes to `raw`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define UNDEFINED_LENGTH 0xFFFFFFFFu

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The same VR lists as reader.py SHORT_LENGTH_VRS / LONG_LENGTH_VRS. */
static const char *SHORT_VRS[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN",
                                  "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US", NULL};
static const char *LONG_VRS[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV", NULL};

static int in_list(const unsigned char *vr, const char **list) {
    for (int i = 0; list[i] != NULL; i++) {
        if (vr[0] == (unsigned char)list[i][0] && vr[1] == (unsigned char)list[i][1]) return 1;
    }
    return 0;
}

/* normalise_text: the backslash-separated values stripped of spaces and NULs, rejoined; None if all empty. */
static PyObject *normalised_text(const unsigned char *value, Py_ssize_t length) {
    char small[512];
    char *text = length <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(length);
    if (text == NULL) return PyErr_NoMemory();
    Py_ssize_t out = 0, start = 0;
    int any_value = 0;
    for (Py_ssize_t i = 0; i <= length; i++) {
        if (i < length && value[i] != '\\') continue;
        Py_ssize_t a = start, b = i;
        while (a < b && (value[a] == ' ' || value[a] == 0)) a++;
        while (b > a && (value[b - 1] == ' ' || value[b - 1] == 0)) b--;
        if (start > 0) text[out++] = '\\';
        memcpy(text + out, value + a, b - a);
        out += b - a;
        any_value |= b > a;
        start = i + 1;
    }
    PyObject *result = any_value ? PyUnicode_DecodeASCII(text, out, NULL) : Py_NewRef(Py_None);
    if (text != small) PyMem_Free(text);
    return result;
}

static int is_plain_ascii(const unsigned char *value, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i < length; i++) {
        if (value[i] >= 0x80 || value[i] == 0x1b) return 0;
    }
    return 1;
}

/* Put one wanted value into `row` (converted) or `raw` (for Python); the later of two copies wins. */
static int store(PyObject *row, PyObject *raw, PyObject *us_tags, PyObject *key, PyObject *column,
                 const unsigned char *vr, const unsigned char *value, Py_ssize_t length) {
    PyObject *converted = NULL;
    if (us_tags != Py_None) {
        int is_us = PySet_Contains(us_tags, key);
        if (is_us < 0) return -1;
        if (is_us || (vr != NULL && vr[0] == 'U' && vr[1] == 'S')) {
            converted = length >= 2 ? PyLong_FromLong(u16(value)) : Py_NewRef(Py_None);
        } else if (is_plain_ascii(value, length)) {
            converted = normalised_text(value, length);
        }
    }
    if (converted != NULL) {
        int failed = PyDict_SetItem(row, column, converted) < 0;
        Py_DECREF(converted);
        if (failed) return -1;
        int earlier = PyDict_Contains(raw, key);  /* an earlier copy of the tag left for Python */
        return earlier < 0 || (earlier && PyDict_DelItem(raw, key) < 0) ? -1 : 0;
    }
    if (PyErr_Occurred()) return -1;
    PyObject *item = Py_BuildValue("(s#y#)", vr ? (const char *)vr : "", (Py_ssize_t)(vr ? 2 : 0),
                                   (const char *)value, length);
    if (item == NULL) return -1;
    int failed = PyDict_SetItem(raw, key, item) < 0;
    Py_DECREF(item);
    return failed ? -1 : 0;
}

static PyObject *walk(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer buffer;
    long long base, pos, size;
    int explicit;
    PyObject *columns, *us_tags, *row, *raw;
    unsigned long first_tag, last_tag;
    if (!PyArg_ParseTuple(args, "y*LLLpO!OkkO!O!", &buffer, &base, &pos, &size, &explicit, &PyDict_Type, &columns,
                          &us_tags, &first_tag, &last_tag, &PyDict_Type, &row, &PyDict_Type, &raw))
        return NULL;
    if (us_tags != Py_None && !PyAnySet_Check(us_tags)) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_TypeError, "us_tags must be a frozenset of int tags, or None");
        return NULL;
    }
    const unsigned char *data = buffer.buf;
    long long data_end = base + buffer.len;
    int past_last = 0;

    while (pos < size && pos + 12 <= data_end) {
        const unsigned char *p = data + (pos - base);
        uint32_t tag = ((uint32_t)u16(p) << 16) | u16(p + 2);
        const unsigned char *vr = NULL;
        long long length, value_pos;
        if (explicit) {
            vr = p + 4;
            if (in_list(vr, SHORT_VRS)) {
                length = u16(p + 6);
                value_pos = pos + 8;
            } else if (in_list(vr, LONG_VRS)) {
                length = u32(p + 8);
                value_pos = pos + 12;
            } else {
                break; /* item tags or an unknown VR: Python decides */
            }
        } else {
            length = u32(p + 4);
            value_pos = pos + 8;
            if (value_pos + length > size) break; /* maybe explicit VR under an implicit syntax */
        }
        if (tag < first_tag) break;
        if (tag > last_tag) {
            past_last = 1;
            break;
        }
        if (length == UNDEFINED_LENGTH || value_pos + length > size) break;
        PyObject *key = PyLong_FromUnsignedLong(tag);
        if (key == NULL) goto error;
        PyObject *column = PyDict_GetItemWithError(columns, key); /* borrowed */
        int failed = column == NULL && PyErr_Occurred();
        if (column != NULL && value_pos + length > data_end) {
            Py_DECREF(key);
            break; /* a wanted value outside the buffer: Python refills its window */
        }
        if (column != NULL) {
            failed = store(row, raw, us_tags, key, column, vr, data + (value_pos - base), (Py_ssize_t)length) < 0;
        }
        Py_DECREF(key);
        if (failed) goto error;
        pos = value_pos + length;
    }
    PyBuffer_Release(&buffer);
    return Py_BuildValue("(LO)", pos, past_last ? Py_True : Py_False);

error:
    PyBuffer_Release(&buffer);
    return NULL;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "Fast-forward over regular elements; see the comment at the top of _walk.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "_walk", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
