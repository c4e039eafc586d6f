/*
 * Accelerator for extractor/harvest/reader.py `_walk_dataset`: steps over the regular elements
 * of a little-endian DICOM dataset held in a buffer and collects the values of wanted tags.
 *
 * It only fast-forwards. At the first element it does not handle in exactly the way the Python
 * walker would (undefined length, item tags, an unknown VR, a value running past the file or
 * past the buffer when wanted, fewer than 12 bytes left in the buffer) it stops and returns that
 * element's position; the Python walker handles the element and calls back in. So the rules
 * (and every error message) live in Python, and this loop holds no decision of its own.
 *
 * walk(data, base, pos, size, explicit, wanted, first_tag, last_tag, out) -> (pos, past_last)
 *   data      bytes of the file from file offset `base`
 *   pos       file offset of the element to start at
 *   size      file size
 *   explicit  explicit VR (else implicit VR)
 *   wanted    set of int tags whose values go into `out`
 *   first_tag hand back any element whose tag is smaller
 *   last_tag  stop (past_last = True) at the first element whose tag is greater
 *   out       dict: tag -> (VR as str, '' when implicit; value bytes)
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

static PyObject *store(PyObject *out, PyObject *wanted, uint32_t tag, const unsigned char *vr,
                       const unsigned char *value, Py_ssize_t length, int *is_wanted) {
    PyObject *key = PyLong_FromUnsignedLong(tag);
    if (key == NULL) return NULL;
    int found = PySet_Contains(wanted, key);
    if (found <= 0) {
        *is_wanted = 0;
        if (found < 0) {
            Py_DECREF(key);
            return NULL;
        }
        return key;
    }
    *is_wanted = 1;
    PyObject *item = Py_BuildValue("(s#y#)", vr ? (const char *)vr : "", (Py_ssize_t)(vr ? 2 : 0),
                                   (const char *)value, length);
    if (item == NULL || PyDict_SetItem(out, key, item) < 0) {
        Py_XDECREF(item);
        Py_DECREF(key);
        return NULL;
    }
    Py_DECREF(item);
    return key;
}

static PyObject *walk(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    long long base, pos, size;
    int explicit;
    PyObject *wanted, *out;
    unsigned long first_tag, last_tag;
    if (!PyArg_ParseTuple(args, "y*LLLpOkkO!", &buffer, &base, &pos, &size, &explicit, &wanted, &first_tag,
                          &last_tag, &PyDict_Type, &out))
        return NULL;
    if (!PyAnySet_Check(wanted)) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_TypeError, "wanted must be a set or frozenset of int tags");
        return NULL;
    }
    const unsigned char *data = buffer.buf;
    long long data_end = base + buffer.len;
    int past_last = 0;

    while (pos < size && pos + 12 <= data_end) {
        const unsigned char *p = data + (pos - base);
        uint16_t group = u16(p), element = u16(p + 2);
        uint32_t tag = ((uint32_t)group << 16) | element;
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
        if (value_pos + length > data_end) {
            /* a value outside the buffer: skip it unless wanted (Python refills the window) */
            PyObject *key = PyLong_FromUnsignedLong(tag);
            if (key == NULL) goto error;
            int found = PySet_Contains(wanted, key);
            Py_DECREF(key);
            if (found < 0) goto error;
            if (found) break;
        } else {
            int is_wanted;
            PyObject *key = store(out, wanted, tag, explicit ? vr : NULL, data + (value_pos - base),
                                  (Py_ssize_t)length, &is_wanted);
            if (key == NULL) goto error;
            Py_DECREF(key);
        }
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

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
