/*
 * Accelerator for extractor/scrub/raw.py `_scan`: the positions of every element of an explicit VR
 * little-endian dataset up to its pixel data, in one pass over the bytes.
 *
 * scan(data, position, vr_info) -> (elements, stop) or None
 *   data      the file's bytes (or a read-only map of them)
 *   position  where the dataset starts (after the file meta group)
 *   vr_info   raw.py `_VR_INFO`: VR bytes -> (VR name, 4-byte length)
 *   elements  (tag, VR name, header start, value start, value end) of every public element
 *   stop      where the pixel data element starts (or the end of the data)
 *
 * It follows `_scan` rule for rule (the Python function stays, for builds without a compiler, and
 * tests/test_scrub_header.py checks both give the same result on every test file and on damaged
 * copies): None wherever `_scan` declines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define ITEM_DELIMITER 0xFFFEE00Du

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int is_pixel_tag(uint32_t tag) { return tag == 0x7FE00008u || tag == 0x7FE00009u || tag == 0x7FE00010u; }

/* (VR name, is long) of two VR bytes from vr_info; 0 when unknown, -1 on error. */
static int vr_of(PyObject *vr_info, const unsigned char *p, PyObject **name, int *is_long) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)p, 2);
    if (key == NULL) return -1;
    PyObject *info = PyDict_GetItemWithError(vr_info, key); /* borrowed */
    Py_DECREF(key);
    if (info == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 2) {
        PyErr_SetString(PyExc_TypeError, "vr_info values must be (name, is_long) tuples");
        return -1;
    }
    *name = PyTuple_GET_ITEM(info, 0);
    *is_long = PyObject_IsTrue(PyTuple_GET_ITEM(info, 1));
    return *is_long < 0 ? -1 : 1;
}

static PyObject *scan(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t position;
    PyObject *vr_info;
    if (!PyArg_ParseTuple(args, "y*nO!", &buffer, &position, &PyDict_Type, &vr_info)) return NULL;
    const unsigned char *data = buffer.buf;
    Py_ssize_t end = buffer.len;
    PyObject *elements = PyList_New(0);
    PyObject *result = NULL;
    /* the VR of the last element seen: headers repeat VRs, so most lookups are skipped */
    unsigned char last_vr[2] = {0, 0};
    PyObject *last_name = NULL;
    int last_long = 0;
    int64_t previous = -1;
    if (elements == NULL) goto done;
    if (position < 0) goto decline;
    while (position + 8 <= end) {
        const unsigned char *p = data + position;
        uint32_t tag = ((uint32_t)u16(p) << 16) | u16(p + 2);
        PyObject *name;
        int is_long;
        if (last_name != NULL && p[4] == last_vr[0] && p[5] == last_vr[1]) {
            name = last_name;
            is_long = last_long;
        } else {
            int found = vr_of(vr_info, p + 4, &name, &is_long);
            if (found < 0) goto done;
            if (found == 0) goto decline;
            last_vr[0] = p[4], last_vr[1] = p[5], last_name = name, last_long = is_long;
        }
        uint32_t length;
        Py_ssize_t start;
        if (is_long) {
            if (p[6] != 0 || p[7] != 0 || position + 12 > end) goto decline;
            length = u32(p + 8);
            start = position + 12;
        } else {
            length = u16(p + 6);
            start = position + 8;
        }
        if ((int64_t)tag <= previous || tag >= 0x7FE00008u) {
            if (is_pixel_tag(tag)) {
                result = Py_BuildValue("(On)", elements, position);
                goto done;
            }
            if ((int64_t)tag <= previous || tag == ITEM_DELIMITER) goto decline;
        }
        previous = tag;
        if (length == UNDEFINED_LENGTH || (Py_ssize_t)length > end - start) goto decline;
        Py_ssize_t value_end = start + (Py_ssize_t)length;
        if (!((tag >> 16) & 1)) {
            PyObject *item = Py_BuildValue("(kOnnn)", (unsigned long)tag, name, position, start, value_end);
            if (item == NULL || PyList_Append(elements, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
        }
        position = value_end;
    }
    if (position != end) goto decline;
    result = Py_BuildValue("(On)", elements, end);
    goto done;

decline:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(elements);
    PyBuffer_Release(&buffer);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Element positions up to the pixel data; see _raw_scan.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "_raw_scan", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__raw_scan(void) { return PyModule_Create(&module); }
