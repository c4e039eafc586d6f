/*
 * Accelerator for extractor/harvest/header_json.py `_items_json`: turns a run of plain elements of
 * an explicit VR little-endian dataset held in a buffer into their DICOM JSON objects.
 *
 * Like _walk.c it only goes forward. At the first element it does not convert in exactly the way
 * `_value_json` would (a sequence, an item tag, the character set, a pixel data tag, an unknown
 * VR, AT or UN, an undefined or cut length, text that is not plain ASCII, numbers `_numbers` or
 * `_binary_numbers` would leave to pydicom) it stops and returns that element's position; the
 * Python loop handles the element and calls back. So every decision about unusual input stays in
 * Python, and tests/test_header_json.py checks both give pydicom's JSON.
 *
 * plain_elements(data, pos, end, out) -> pos
 *   data  the file's bytes from offset 0
 *   pos   offset of the element to start at; elements are read while pos < end
 *   out   dict: "GGGGEEEE" -> {"vr": ..., "Value" or "InlineBinary": ...}, added to in element order
 *
 * Conversions mirror header_json.py: binary values base64 (left out past BULK_INLINE_BYTES),
 * numbers unpacked little-endian, and `_text_values` for text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define BULK_INLINE_BYTES 768
#define SPECIFIC_CHARACTER_SET 0x00080005u

enum kind { STOP, BINARY, NUMBER, SPLIT_RSTRIP, TEXT, SINGLE_TEXT, AE, UR, PN, IS, DS };
enum number { U16, S16, U32, S32, F32, F64, S64, U64 };

struct vr_rule {
    const char *vr;
    int long_length; /* 12-byte element header */
    enum kind kind;
    enum number number;
};

/* Every VR with the header length reader.py SHORT_LENGTH_VRS / LONG_LENGTH_VRS give it. */
static const struct vr_rule RULES[] = {
    {"AE", 0, AE, 0},           {"AS", 0, SPLIT_RSTRIP, 0}, {"AT", 0, STOP, 0},         {"CS", 0, SPLIT_RSTRIP, 0},
    {"DA", 0, SPLIT_RSTRIP, 0}, {"DS", 0, DS, 0},           {"DT", 0, SPLIT_RSTRIP, 0}, {"FD", 0, NUMBER, F64},
    {"FL", 0, NUMBER, F32},     {"IS", 0, IS, 0},           {"LO", 0, TEXT, 0},         {"LT", 0, SINGLE_TEXT, 0},
    {"PN", 0, PN, 0},           {"SH", 0, TEXT, 0},         {"SL", 0, NUMBER, S32},     {"SS", 0, NUMBER, S16},
    {"ST", 0, SINGLE_TEXT, 0},  {"TM", 0, SPLIT_RSTRIP, 0}, {"UI", 0, SPLIT_RSTRIP, 0}, {"UL", 0, NUMBER, U32},
    {"US", 0, NUMBER, U16},     {"OB", 1, BINARY, 0},       {"OD", 1, BINARY, 0},       {"OF", 1, BINARY, 0},
    {"OL", 1, BINARY, 0},       {"OV", 1, BINARY, 0},       {"OW", 1, BINARY, 0},       {"SQ", 1, STOP, 0},
    {"SV", 1, NUMBER, S64},     {"UC", 1, TEXT, 0},         {"UN", 1, STOP, 0},         {"UR", 1, UR, 0},
    {"UT", 1, SINGLE_TEXT, 0},  {"UV", 1, NUMBER, U64},     {NULL, 0, STOP, 0},
};

static const int NUMBER_SIZE[] = {2, 2, 4, 4, 4, 8, 8, 8};

static PyObject *KEY_VR, *KEY_VALUE, *KEY_INLINE, *KEY_ALPHABETIC, *KEY_IDEOGRAPHIC, *KEY_PHONETIC;

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t u64(const unsigned char *p) { return (uint64_t)u32(p) | ((uint64_t)u32(p + 4) << 32); }

static const struct vr_rule *rule_for(const unsigned char *vr) {
    for (int i = 0; RULES[i].vr != NULL; i++) {
        if (vr[0] == (unsigned char)RULES[i].vr[0] && vr[1] == (unsigned char)RULES[i].vr[1]) return &RULES[i];
    }
    return NULL;
}

/* Python's str.isspace for ASCII: \t \n \v \f \r, the separators \x1c-\x1f and the space. */
static int is_space(unsigned char c) { return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20); }

static int is_pad(unsigned char c) { return c == ' ' || c == 0; }

static PyObject *ascii(const unsigned char *text, Py_ssize_t length) {
    return PyUnicode_DecodeASCII((const char *)text, length, NULL);
}

static PyObject *json_object(PyObject *vr, PyObject *key, PyObject *value) {
    PyObject *object = PyDict_New();
    if (object == NULL) return NULL;
    if (PyDict_SetItem(object, KEY_VR, vr) < 0 || (key != NULL && PyDict_SetItem(object, key, value) < 0)) {
        Py_DECREF(object);
        return NULL;
    }
    return object;
}

static PyObject *base64(const unsigned char *data, Py_ssize_t length) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[(BULK_INLINE_BYTES + 2) / 3 * 4];
    Py_ssize_t n = 0, i = 0;
    for (; i + 2 < length; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        out[n++] = alphabet[v >> 6 & 63];
        out[n++] = alphabet[v & 63];
    }
    if (i < length) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < length ? (uint32_t)data[i + 1] << 8 : 0);
        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        out[n++] = i + 1 < length ? alphabet[v >> 6 & 63] : '=';
        out[n++] = '=';
    }
    return PyUnicode_DecodeASCII(out, n, NULL);
}

static PyObject *number_at(enum number type, const unsigned char *p) {
    switch (type) {
    case U16: return PyLong_FromLong(u16(p));
    case S16: return PyLong_FromLong((int16_t)u16(p));
    case U32: return PyLong_FromUnsignedLong(u32(p));
    case S32: return PyLong_FromLong((int32_t)u32(p));
    case S64: return PyLong_FromLongLong((int64_t)u64(p));
    case U64: return PyLong_FromUnsignedLongLong(u64(p));
    case F32: {
        uint32_t bits = u32(p);
        float value;
        memcpy(&value, &bits, sizeof value);
        return PyFloat_FromDouble((double)value);
    }
    case F64: {
        uint64_t bits = u64(p);
        double value;
        memcpy(&value, &bits, sizeof value);
        return PyFloat_FromDouble(value);
    }
    }
    return NULL;
}

/* `_binary_numbers`; NULL without an error when the length is not a whole number of values. */
static PyObject *numbers(enum number type, const unsigned char *value, Py_ssize_t length) {
    int size = NUMBER_SIZE[type];
    if (length % size) return NULL;
    PyObject *list = PyList_New(length / size);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < length / size; i++) {
        PyObject *item = number_at(type, value + i * size);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* The grammar of header_json.py _INTEGER (IS) or _DECIMAL (DS), for ASCII text whose only
 * whitespace is \t \n \v \f \r and space (anything else is left to Python: 0 here). */
static int is_number_text(const unsigned char *s, Py_ssize_t n, int decimal) {
    Py_ssize_t i = 0, digits = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= 0x09 && s[i] <= 0x0d))) i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    if (decimal) {
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
        }
        if (digits && i < n && (s[i] == 'e' || s[i] == 'E')) {
            i++;
            if (i < n && (s[i] == '+' || s[i] == '-')) i++;
            Py_ssize_t exponent = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++, exponent++;
            if (!exponent) return 0;
        }
    }
    if (!digits) return 0;
    while (i < n && (s[i] == ' ' || (s[i] >= 0x09 && s[i] <= 0x0d))) i++;
    return i == n;
}

/* The number of one IS or DS value, by Python's own int() or float(); NULL without an error when
 * the text does not match the grammar (pydicom decides then). */
static PyObject *number_from_text(const unsigned char *s, Py_ssize_t n, int decimal) {
    if (!is_number_text(s, n, decimal)) return NULL;
    PyObject *text = ascii(s, n);
    if (text == NULL) return NULL;
    PyObject *number = decimal ? PyFloat_FromString(text) : PyLong_FromUnicodeObject(text, 10);
    Py_DECREF(text);
    return number;
}

/* One PN value as {"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...} (`_person_name`). */
static PyObject *person_name(const unsigned char *s, Py_ssize_t n) {
    PyObject *name = PyDict_New();
    if (name == NULL) return NULL;
    PyObject *keys[] = {KEY_ALPHABETIC, KEY_IDEOGRAPHIC, KEY_PHONETIC};
    Py_ssize_t start = 0;
    int component = 0;
    for (Py_ssize_t i = 0; i <= n && component < 3; i++) {
        if (i < n && s[i] != '=') continue;
        PyObject *text = ascii(s + start, i - start);
        if (text == NULL || PyDict_SetItem(name, keys[component], text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(name);
            return NULL;
        }
        Py_DECREF(text);
        component++;
        start = i + 1;
    }
    return name;
}

/* One value of a text VR after the whole text was cut at backslashes; NULL without an error
 * when Python should decide (IS or DS text off the grammar). */
static PyObject *text_value(enum kind kind, const unsigned char *s, Py_ssize_t n) {
    switch (kind) {
    case TEXT:
        while (n > 0 && is_pad(s[n - 1])) n--;
        return ascii(s, n);
    case AE:
        while (n > 0 && is_space(s[0])) s++, n--;
        while (n > 0 && is_space(s[n - 1])) n--;
        return ascii(s, n);
    case PN: return person_name(s, n);
    case IS: return number_from_text(s, n, 0);
    case DS: return number_from_text(s, n, 1);
    default: return ascii(s, n);
    }
}

/* `_text_values`: the JSON values of a plain ASCII text; NULL without an error to leave it to Python. */
static PyObject *text_values(enum kind kind, const unsigned char *s, Py_ssize_t n) {
    if (kind == SINGLE_TEXT || kind == UR) {
        if (kind == SINGLE_TEXT) while (n > 0 && is_pad(s[n - 1])) n--;
        else while (n > 0 && is_space(s[n - 1])) n--;
        PyObject *text = ascii(s, n);
        if (text == NULL) return NULL;
        PyObject *list = PyList_New(1);
        if (list == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        PyList_SET_ITEM(list, 0, text);
        return list;
    }
    if (kind != TEXT && kind != AE) {
        while (n > 0 && is_pad(s[n - 1])) n--; /* text.rstrip(" \x00") before the split */
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    if (n == 0 && (kind == PN || kind == IS || kind == DS)) {
        PyObject *empty = PyUnicode_New(0, 0); /* [""]: no value */
        if (empty == NULL || PyList_Append(list, empty) < 0) {
            Py_XDECREF(empty);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(empty);
        return list;
    }
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\\') continue;
        PyObject *value = text_value(kind, s + start, i - start);
        if (value == NULL || PyList_Append(list, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(value);
        start = i + 1;
    }
    return list;
}

static int is_plain_ascii(const unsigned char *value, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i < length; i++) {
        if (value[i] >= 0x80 || value[i] == 0x1b) return 0;
    }
    return 1;
}

static int is_empty_text_list(PyObject *values) {
    return PyList_GET_SIZE(values) == 1 && PyUnicode_Check(PyList_GET_ITEM(values, 0)) &&
           PyUnicode_GET_LENGTH(PyList_GET_ITEM(values, 0)) == 0;
}

/* `_value_json` of one value: 1 with *json set (NULL: left out), 0 to leave it to Python, -1 on error. */
static int value_json(const struct vr_rule *rule, PyObject *vr, const unsigned char *value, Py_ssize_t length,
                      PyObject **json) {
    *json = NULL;
    if (length == 0) {
        *json = json_object(vr, NULL, NULL);
        return *json ? 1 : -1;
    }
    if (rule->kind == BINARY) {
        if (length > BULK_INLINE_BYTES) return 1;
        PyObject *text = base64(value, length);
        if (text == NULL) return -1;
        *json = json_object(vr, KEY_INLINE, text);
        Py_DECREF(text);
        return *json ? 1 : -1;
    }
    PyObject *values;
    if (rule->kind == NUMBER) {
        values = numbers(rule->number, value, length);
    } else {
        if (!is_plain_ascii(value, length)) return 0;
        values = text_values(rule->kind, value, length);
    }
    if (values == NULL) return PyErr_Occurred() ? -1 : 0;
    *json = is_empty_text_list(values) ? json_object(vr, NULL, NULL) : json_object(vr, KEY_VALUE, values);
    Py_DECREF(values);
    return *json ? 1 : -1;
}

static int is_handed_back(uint32_t tag) {
    return (tag >> 16) == 0xFFFE || tag == SPECIFIC_CHARACTER_SET || tag == 0x7FE00008u || tag == 0x7FE00009u ||
           tag == 0x7FE00010u;
}

static PyObject *plain_elements(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t pos, end;
    PyObject *out;
    if (!PyArg_ParseTuple(args, "y*nnO!", &buffer, &pos, &end, &PyDict_Type, &out)) return NULL;
    const unsigned char *data = buffer.buf;
    Py_ssize_t size = buffer.len;
    while (pos < end && pos >= 0 && pos + 8 <= size) {
        const unsigned char *p = data + pos;
        uint32_t tag = ((uint32_t)u16(p) << 16) | u16(p + 2);
        if (is_handed_back(tag)) break;
        const struct vr_rule *rule = rule_for(p + 4);
        if (rule == NULL || rule->kind == STOP) break;
        if (rule->long_length && pos + 12 > size) break;
        Py_ssize_t header = rule->long_length ? 12 : 8;
        uint32_t length = rule->long_length ? u32(p + 8) : u16(p + 6);
        if (length == UNDEFINED_LENGTH || (Py_ssize_t)length > size - pos - header) break;
        PyObject *vr = PyUnicode_DecodeASCII((const char *)p + 4, 2, NULL);
        if (vr == NULL) goto error;
        PyObject *json;
        int converted = value_json(rule, vr, p + header, (Py_ssize_t)length, &json);
        Py_DECREF(vr);
        if (converted < 0) goto error;
        if (converted == 0) break;
        if (json != NULL) {
            char hex[9];
            snprintf(hex, sizeof hex, "%08X", (unsigned int)tag);
            PyObject *key = PyUnicode_DecodeASCII(hex, 8, NULL);
            int failed = key == NULL || PyDict_SetItem(out, key, json) < 0;
            Py_XDECREF(key);
            Py_DECREF(json);
            if (failed) goto error;
        }
        pos += header + length;
    }
    PyBuffer_Release(&buffer);
    return PyLong_FromSsize_t(pos);

error:
    PyBuffer_Release(&buffer);
    return NULL;
}

static PyMethodDef methods[] = {
    {"plain_elements", plain_elements, METH_VARARGS, "DICOM JSON of a run of plain elements; see _header_json.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT, .m_name = "_header_json", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__header_json(void) {
    KEY_VR = PyUnicode_InternFromString("vr");
    KEY_VALUE = PyUnicode_InternFromString("Value");
    KEY_INLINE = PyUnicode_InternFromString("InlineBinary");
    KEY_ALPHABETIC = PyUnicode_InternFromString("Alphabetic");
    KEY_IDEOGRAPHIC = PyUnicode_InternFromString("Ideographic");
    KEY_PHONETIC = PyUnicode_InternFromString("Phonetic");
    if (!KEY_VR || !KEY_VALUE || !KEY_INLINE || !KEY_ALPHABETIC || !KEY_IDEOGRAPHIC || !KEY_PHONETIC) return NULL;
    return PyModule_Create(&module);
}
