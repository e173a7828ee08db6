/* afpacket.ring._kernels: the ring kernels in C.
 *
 * Same names and behaviour as _kernels_py.py (its docstring states the rules: ownership, bounds,
 * live packet -> file record); tests compare the two byte for byte and fuzz both with random rings.
 * Why C: per packet, pure Python pays for a generator step, a struct unpack and a slice object;
 * here a batch is one call. Ownership words are read with acquire loads and handed back with release
 * stores (the kernel pairs them with smp_wmb/smp_rmb), so this core is also right on arm64.
 * Every read is bounds-checked against the buffer it came from: a corrupt header cannot make it
 * read outside the mapping.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define TP_STATUS_USER 1u
#define TP_STATUS_VLAN_VALID (1u << 4)
#define TP_STATUS_VLAN_TPID_VALID (1u << 6)
#define TP_STATUS_SEND_REQUEST 1u
#define TP_STATUS_SENDING 2u
#define TP_STATUS_WRONG_FORMAT 4u
#define BLOCK_OFF_STATUS 8
#define BLOCK_OFF_NUM_PKTS 12
#define BLOCK_OFF_FIRST_PKT 16
#define BLOCK_OFF_SEQ_NUM 24
#define BLOCK_DESC_SIZE 48
#define SLL_SIZE 20
#define ETH_P_8021Q 0x8100
#define EPB_TYPE 6u
#define EPB_FIXED_FLAGS 44 /* 28-byte head + epb_flags option (8) + end of options (4) + total (4) */

static PyObject *PacketExpiredError; /* afpacket.errors.PacketExpiredError */
static const char EXPIRED[] =
    "packet expired: its frame or block went back to the kernel when the capture read past it; "
    "use it before taking the next one, or keep bytes(pkt) / pkt.copy()";
/* pkttype -> pcapng epb_flags (direction | reception type), as savefile.record.PKTTYPE_TO_EPB_FLAGS */
static uint32_t EPB_FLAGS[256];

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline int32_t rdi32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
static inline void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void wr16be(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32be(uint8_t *p, uint32_t v) { wr16be(p, (uint16_t)(v >> 16)); wr16be(p + 2, (uint16_t)v); }
static inline uint32_t load_acquire(const uint8_t *p) {
    return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
}
static inline void store_release(uint8_t *p, uint32_t v) {
    __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELEASE);
}

/* ---- the layout numbers a ring carries (RingMemory.params, in this order) ---------------------- */
typedef struct {
    long version, snaplen, off_status, off_len, off_snap, off_mac, off_sec, off_frac, frac_ns;
    long off_tci, off_tpid, off_rxhash, sll_off, frame_size, raw, reinsert, hdr_size, cooked;
} Params;
#define NPARAMS 18

static int read_params(PyObject *ring, Params *p) {
    PyObject *t = PyObject_GetAttrString(ring, "params");
    if (t == NULL) return -1;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != NPARAMS) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_TypeError, "ring.params must be a tuple of 18 ints (afpacket.ring.memory.RingMemory)");
        return -1;
    }
    long *out = (long *)p;
    for (Py_ssize_t i = 0; i < NPARAMS; i++) {
        out[i] = PyLong_AsLong(PyTuple_GET_ITEM(t, i));
        if (out[i] == -1 && PyErr_Occurred()) { Py_DECREF(t); return -1; }
    }
    Py_DECREF(t);
    return 0;
}

/* The ring's memory as a buffer: ring.mv (read-write). */
static int ring_buffer(PyObject *ring, Py_buffer *view, PyObject **mv_out) {
    PyObject *mv = PyObject_GetAttrString(ring, "mv");
    if (mv == NULL) return -1;
    if (PyObject_GetBuffer(mv, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) { Py_DECREF(mv); return -1; }
    if (mv_out) *mv_out = mv; else Py_DECREF(mv);
    return 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *batch;
    Py_ssize_t hdr;
    PyObject *view; /* data, made on first access and kept until the batch expires */
} PacketObject;

static PyObject *str_release; /* "release", interned */

/* ======================================== Batch ================================================ */
typedef struct {
    PyObject_HEAD
    PyObject *ring;
    PyObject *mv;       /* ring.mv, sliced for views */
    PyObject *hdrs;     /* list of header offsets */
    PyObject *views;    /* list of views handed out; NULL once expired */
    PyObject *copies;   /* dict hdr -> bytes, or None */
    PyObject *packets;  /* list of packets made by packets(), or NULL */
    PyObject *kept;     /* always an empty list: the C core needs no pool bookkeeping */
    Py_ssize_t count, end, block;
    Py_ssize_t *offs;   /* hdrs as C integers */
    PyObject *bmv;      /* one memoryview of the whole buffer, exported by the batch; packet views are
                         * slices of it, so they share its managed buffer and its one export */
    Py_ssize_t exports; /* buffers exported from this batch and not yet released */
    Py_buffer buf;      /* held until expire() */
    int has_buf;
    Params p;
} BatchObject;

static PyTypeObject BatchType;

static int Batch_traverse(BatchObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->ring); Py_VISIT(self->mv); Py_VISIT(self->hdrs); Py_VISIT(self->views);
    Py_VISIT(self->copies); Py_VISIT(self->packets); Py_VISIT(self->kept); Py_VISIT(self->bmv);
    return 0;
}

static void batch_drop_buffer(BatchObject *self) {
    if (self->has_buf) { PyBuffer_Release(&self->buf); self->has_buf = 0; }
}

static int Batch_clear(BatchObject *self) {
    batch_drop_buffer(self);
    Py_CLEAR(self->ring); Py_CLEAR(self->mv); Py_CLEAR(self->hdrs); Py_CLEAR(self->views);
    Py_CLEAR(self->copies); Py_CLEAR(self->packets); Py_CLEAR(self->kept); Py_CLEAR(self->bmv);
    return 0;
}

static void Batch_dealloc(BatchObject *self) {
    PyObject_GC_UnTrack(self);
    Batch_clear(self);
    PyMem_Free(self->offs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Batch(ring, hdrs, end=0, block=-1): every header must lie aligned and whole inside the buffer
 * (and inside its frame for V1/V2); the same check as the pure-Python Batch. */
/* The header at h is usable: aligned, its sockaddr_ll inside the buffer, its header inside its frame
 * (V1/V2: h + frame_size) or block (``end``). The same rule as the pure-Python Batch. */
static inline int header_ok(const BatchObject *self, Py_ssize_t h, Py_ssize_t end) {
    Py_ssize_t len = self->buf.len, lim = end ? end : h + self->p.frame_size;
    return !(h < 0 || (h & 3) || h + self->p.sll_off + SLL_SIZE > len || h + self->p.hdr_size > lim || lim > len);
}

/* What every batch needs besides its headers: params, the ring's buffer, the lists. */
static int batch_setup(BatchObject *self, PyObject *ring, Py_ssize_t *end, Py_ssize_t block, Py_ssize_t cap) {
    if (self->ring != NULL) { PyErr_SetString(PyExc_RuntimeError, "Batch is already initialised"); return -1; }
    if (read_params(ring, &self->p) < 0) return -1;
    if (ring_buffer(ring, &self->buf, &self->mv) < 0) return -1;
    self->has_buf = 1;
    Py_ssize_t len = self->buf.len;
    if (*end < 0 || *end > len) *end = *end < 0 ? 0 : len;
    self->offs = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(cap > 0 ? cap : 1));
    if (self->offs == NULL) { PyErr_NoMemory(); return -1; }
    Py_INCREF(ring); self->ring = ring;
    if ((self->views = PyList_New(0)) == NULL || (self->kept = PyList_New(0)) == NULL) return -1;
    Py_INCREF(Py_None); self->copies = Py_None;
    self->end = *end; self->block = block;
    return 0;
}

/* Batch(ring, hdrs, end=0, block=-1): every header must pass header_ok(), else ValueError. */
static int Batch_init(BatchObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ring", "hdrs", "end", "block", NULL};
    PyObject *ring, *hdrs;
    Py_ssize_t end = 0, block = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!|nn", kwlist, &ring, &PyList_Type, &hdrs, &end, &block))
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(hdrs);
    if (batch_setup(self, ring, &end, block, n) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t h = PyLong_AsSsize_t(PyList_GET_ITEM(hdrs, i));
        if (h == -1 && PyErr_Occurred()) return -1;
        if (!header_ok(self, h, end)) {
            PyErr_Format(PyExc_ValueError, "frame header offset %zd lies outside its frame/block or the ring", h);
            return -1;
        }
        self->offs[i] = h;
    }
    Py_INCREF(hdrs); self->hdrs = hdrs;
    self->count = n;
    return 0;
}

static PyObject *Batch_get_hdrs(BatchObject *self, void *c) {
    (void)c;
    if (self->hdrs == NULL) { /* made by block_batch(): the list only when someone asks */
        PyObject *l = PyList_New(self->count);
        if (l == NULL) return NULL;
        for (Py_ssize_t i = 0; i < self->count; i++) {
            PyObject *o = PyLong_FromSsize_t(self->offs[i]);
            if (o == NULL) { Py_DECREF(l); return NULL; }
            PyList_SET_ITEM(l, i, o);
        }
        self->hdrs = l;
    }
    Py_INCREF(self->hdrs);
    return self->hdrs;
}

static PyObject *Batch_get_views(BatchObject *self, void *c) {
    (void)c;
    PyObject *v = self->views ? self->views : Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *Batch_get_copies(BatchObject *self, void *c) {
    (void)c;
    Py_INCREF(self->copies);
    return self->copies;
}

static int Batch_set_copies(BatchObject *self, PyObject *v, void *c) {
    (void)c;
    if (v == NULL || (v != Py_None && !PyDict_Check(v))) {
        PyErr_SetString(PyExc_TypeError, "copies must be a dict or None");
        return -1;
    }
    Py_INCREF(v);
    Py_SETREF(self->copies, v);
    return 0;
}

#define POOL_MAX 65536
/* expire(pool=None): revoke the views, let the ring go, return the packets someone still holds.
 * Packets nobody holds go back to ``pool`` (a list) for packets() to reuse. */
static PyObject *Batch_expire(BatchObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *pool = nargs > 0 && PyList_Check(args[0]) ? args[0] : NULL;
    Py_CLEAR(self->views);
    PyObject *made = self->packets;
    self->packets = NULL;
    /* Revoke the views handed out: release those someone still holds, drop the rest. */
    if (made != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(made); i++) {
            PacketObject *pk = (PacketObject *)PyList_GET_ITEM(made, i);
            PyObject *v = pk->view;
            if (v == NULL) continue;
            pk->view = NULL;
            if (Py_REFCNT(v) > 1) {
                PyObject *r = PyObject_CallMethodNoArgs(v, str_release);
                if (r == NULL) {
                    /* BufferError: something exported from the view cannot be revoked (counted below) */
                    if (!PyErr_ExceptionMatches(PyExc_BufferError)) { Py_DECREF(v); Py_DECREF(made); return NULL; }
                    PyErr_Clear();
                } else Py_DECREF(r);
            }
            Py_DECREF(v);
        }
    }
    Py_CLEAR(self->bmv);
    if (self->exports > 0) {
        /* A buffer derived from a packet view (memoryview(view), np.frombuffer) still points into the
         * ring: keep the mapping from being unmapped under it (close() then warns). */
        PyObject *r = PyObject_CallMethod(self->ring, "pin", NULL);
        if (r == NULL) { Py_XDECREF(made); return NULL; }
        Py_DECREF(r);
    }
    batch_drop_buffer(self);
    PyObject *held = PyList_New(0);
    if (held == NULL) { Py_XDECREF(made); return NULL; }
    if (made != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(made); i++) {
            PyObject *pk = PyList_GET_ITEM(made, i);
            int rc = 0;
            if (Py_REFCNT(pk) > 1) rc = PyList_Append(held, pk);
            else if (pool != NULL && PyList_GET_SIZE(pool) < POOL_MAX) {
                Py_CLEAR(((PacketObject *)pk)->batch);
                rc = PyList_Append(pool, pk);
            }
            if (rc < 0) { Py_DECREF(made); Py_DECREF(held); return NULL; }
        }
        Py_DECREF(made);
    }
    return held;
}

static PyMemberDef Batch_members[] = {
    {"ring", T_OBJECT, offsetof(BatchObject, ring), READONLY, "the RingMemory"},
    {"kept", T_OBJECT, offsetof(BatchObject, kept), READONLY, "unused by the C core (always empty)"},
    {"count", T_PYSSIZET, offsetof(BatchObject, count), READONLY, "number of packets"},
    {"end", T_PYSSIZET, offsetof(BatchObject, end), READONLY, "block end (V3) or 0 (frames bound themselves)"},
    {"block", T_PYSSIZET, offsetof(BatchObject, block), READONLY, "block offset (V3) or -1"},
    {NULL}
};

static PyGetSetDef Batch_getset[] = {
    {"hdrs", (getter)Batch_get_hdrs, NULL, "header offsets, ring order", NULL},
    {"views", (getter)Batch_get_views, NULL, "views handed out, None once expired", NULL},
    {"copies", (getter)Batch_get_copies, (setter)Batch_set_copies, "COPY_THRESH full copies by header", NULL},
    {NULL}
};

/* The buffer protocol: the batch's memory, exported once (bmv) and sliced for packet views. */
static int Batch_getbuffer(BatchObject *self, Py_buffer *view, int flags) {
    if (!self->has_buf || self->views == NULL) {
        PyErr_SetString(PyExc_BufferError, "the batch went back to the kernel");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->buf.buf, self->buf.len, 0, flags) < 0) return -1;
    self->exports++;
    return 0;
}

static void Batch_releasebuffer(BatchObject *self, Py_buffer *view) {
    (void)view;
    self->exports--;
}

static PyBufferProcs Batch_as_buffer = {(getbufferproc)Batch_getbuffer, (releasebufferproc)Batch_releasebuffer};

static PyMethodDef Batch_methods[] = {
    {"expire", (PyCFunction)(void (*)(void))Batch_expire, METH_FASTCALL,
     "Revoke the views; return the packets of this batch still referenced elsewhere."},
    {NULL}
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "afpacket.ring._kernels.Batch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The lease on a run of V1/V2 frames or one V3 block.",
    .tp_traverse = (traverseproc)Batch_traverse,
    .tp_clear = (inquiry)Batch_clear,
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_init = (initproc)Batch_init,
    .tp_new = PyType_GenericNew,
    .tp_members = Batch_members,
    .tp_getset = Batch_getset,
    .tp_methods = Batch_methods,
    .tp_as_buffer = &Batch_as_buffer,
};

/* The bytes of the packet at header h: [*start, *stop), cut at its frame/block end. */
static inline void span(const BatchObject *b, Py_ssize_t h, Py_ssize_t *start, Py_ssize_t *stop) {
    const uint8_t *base = b->buf.buf;
    Py_ssize_t s = h + rd16(base + h + b->p.off_mac);
    uint32_t cap = rd32(base + h + b->p.off_snap);
    Py_ssize_t e = s + ((long)cap < b->p.snaplen ? (Py_ssize_t)cap : b->p.snaplen);
    Py_ssize_t end = b->end ? b->end : h + b->p.frame_size;
    if (e > end) e = end > s ? end : s;
    *start = s;
    *stop = e;
}

/* ======================================== PacketBase =========================================== */
static int Packet_traverse(PacketObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->batch);
    Py_VISIT(self->view);
    return 0;
}

static int Packet_clear(PacketObject *self) { Py_CLEAR(self->batch); Py_CLEAR(self->view); return 0; }

static void Packet_dealloc(PacketObject *self) {
    /* Instances are of Python subclasses: their subtype_dealloc drops the reference to the type. */
    PyObject_GC_UnTrack(self);
    Packet_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The packet's batch if it is live; NULL with PacketExpiredError set otherwise. */
static BatchObject *live_batch(PacketObject *self) {
    if (self->batch == NULL || !PyObject_TypeCheck(self->batch, &BatchType)) {
        PyErr_SetString(PyExc_TypeError, "packet is not attached to a C-core Batch");
        return NULL;
    }
    BatchObject *b = (BatchObject *)self->batch;
    if (b->views == NULL || !b->has_buf) {
        PyErr_SetString(PacketExpiredError, EXPIRED);
        return NULL;
    }
    return b;
}

/* COPY_THRESH: the full copy of this packet, borrowed, or NULL (no error) when there is none. */
static PyObject *full_copy(BatchObject *b, Py_ssize_t hdr) {
    if (b->copies == Py_None) return NULL;
    PyObject *key = PyLong_FromSsize_t(hdr);
    if (key == NULL) return NULL;
    PyObject *v = PyDict_GetItemWithError(b->copies, key);
    Py_DECREF(key);
    return v;
}

static PyObject *Packet_get_data(PacketObject *self, void *c) {
    (void)c;
    if (self->view != NULL) {
        if (self->batch == NULL || !PyObject_TypeCheck(self->batch, &BatchType)
            || ((BatchObject *)self->batch)->views == NULL) {
            PyErr_SetString(PacketExpiredError, EXPIRED);
            return NULL;
        }
        Py_INCREF(self->view);
        return self->view;
    }
    BatchObject *b = live_batch(self);
    if (b == NULL) return NULL;
    PyObject *v;
    PyObject *copy = full_copy(b, self->hdr);
    if (copy != NULL) v = PyMemoryView_FromObject(copy);
    else {
        if (PyErr_Occurred()) return NULL;
        if (b->bmv == NULL && (b->bmv = PyMemoryView_FromObject((PyObject *)b)) == NULL) return NULL;
        Py_ssize_t s, e;
        span(b, self->hdr, &s, &e);
        v = PySequence_GetSlice(b->bmv, s, e);
    }
    if (v == NULL) return NULL;
    /* Kept until the batch expires, so a view the user still holds then can be revoked. (Thousands of
     * live views per block are what the garbage collector's young generations walk: most of a packet
     * object's cost; frames(), columns() and the record kernels make no view.) */
    Py_INCREF(v);
    self->view = v;
    return v;
}

static PyObject *Packet_bytes(PacketObject *self, PyObject *unused) {
    (void)unused;
    BatchObject *b = live_batch(self);
    if (b == NULL) return NULL;
    PyObject *copy = full_copy(b, self->hdr);
    if (copy != NULL) { Py_INCREF(copy); return copy; }
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t s, e;
    span(b, self->hdr, &s, &e);
    return PyBytes_FromStringAndSize((const char *)b->buf.buf + s, e - s);
}

static PyObject *Packet_caplen(PacketObject *self, PyObject *unused) {
    (void)unused;
    BatchObject *b = live_batch(self);
    if (b == NULL) return NULL;
    PyObject *copy = full_copy(b, self->hdr);
    if (copy != NULL) return PyLong_FromSsize_t(PyObject_Length(copy));
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t s, e;
    span(b, self->hdr, &s, &e);
    return PyLong_FromSsize_t(e - s);
}

static PyMemberDef Packet_members[] = {
    {"_batch", T_OBJECT_EX, offsetof(PacketObject, batch), 0, "the batch (lease) the packet belongs to"},
    {"_hdr", T_PYSSIZET, offsetof(PacketObject, hdr), 0, "offset of the frame header"},
    {NULL}
};

static PyGetSetDef Packet_getset[] = {
    {"data", (getter)Packet_get_data, NULL,
     "The captured bytes, a zero-copy view into the ring (raises once the batch went back).", NULL},
    {NULL}
};

static PyMethodDef Packet_methods[] = {
    {"__bytes__", (PyCFunction)Packet_bytes, METH_NOARGS, "The captured bytes, copied."},
    {"_caplen", (PyCFunction)Packet_caplen, METH_NOARGS, "Bytes captured."},
    {NULL}
};

static PyTypeObject PacketType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "afpacket.ring._kernels.PacketBase",
    .tp_basicsize = sizeof(PacketObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The hot part of a packet: where it is, and its bytes.",
    .tp_traverse = (traverseproc)Packet_traverse,
    .tp_clear = (inquiry)Packet_clear,
    .tp_dealloc = (destructor)Packet_dealloc,
    .tp_new = PyType_GenericNew,
    .tp_members = Packet_members,
    .tp_getset = Packet_getset,
    .tp_methods = Packet_methods,
};

/* ======================================== helpers ============================================== */
static int check_batch(PyObject *o, const char *fn) {
    if (!PyObject_TypeCheck(o, &BatchType)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a C-core Batch", fn);
        return -1;
    }
    if (!((BatchObject *)o)->has_buf) {
        PyErr_Format(PacketExpiredError, "%s(): the batch went back to the kernel", fn);
        return -1;
    }
    return 0;
}

static int nargs_is(Py_ssize_t nargs, Py_ssize_t lo, Py_ssize_t hi, const char *fn) {
    if (nargs < lo || nargs > hi) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", fn, lo, hi, nargs);
        return -1;
    }
    return 0;
}

/* ======================================== packets ============================================== */
/* packets(batch, cls, pool): a list with one packet of class cls per header. */
static PyObject *k_packets(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 2, 3, "packets") < 0 || check_batch(args[0], "packets") < 0) return NULL;
    BatchObject *b = (BatchObject *)args[0];
    PyObject *cls = args[1];
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PacketType)) {
        PyErr_SetString(PyExc_TypeError, "packets(): cls must be a subclass of PacketBase");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    PyObject *pool = nargs > 2 && PyList_Check(args[2]) ? args[2] : NULL;
    PyObject *list = PyList_New(b->count);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < b->count; i++) {
        PacketObject *p = NULL;
        /* Allocation is most of a packet's cost: reuse objects expire() found unreferenced. */
        while (pool != NULL && p == NULL && PyList_GET_SIZE(pool) > 0) {
            Py_ssize_t last = PyList_GET_SIZE(pool) - 1;
            PyObject *o = PyList_GET_ITEM(pool, last);
            Py_INCREF(o);
            if (PyList_SetSlice(pool, last, last + 1, NULL) < 0) { Py_DECREF(o); Py_DECREF(list); return NULL; }
            if (Py_TYPE(o) == tp && Py_REFCNT(o) == 1) p = (PacketObject *)o;
            else Py_DECREF(o);
        }
        if (p == NULL) p = (PacketObject *)tp->tp_alloc(tp, 0);
        if (p == NULL) { Py_DECREF(list); return NULL; }
        Py_INCREF(b);
        Py_XSETREF(p->batch, (PyObject *)b);
        p->hdr = b->offs[i];
        PyList_SET_ITEM(list, i, (PyObject *)p);
    }
    Py_INCREF(list);
    Py_XSETREF(b->packets, list);
    return list;
}

static PyObject *k_new_pool(PyObject *m, PyObject *cls) {
    (void)m; (void)cls;
    return PyList_New(0); /* filled by Batch.expire() with packets nobody kept */
}

/* ======================================== ownership ============================================ */
static PyObject *k_ready_frames(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 4, 4, "ready_frames") < 0) return NULL;
    PyObject *offsets = args[1];
    if (!PyList_Check(offsets)) { PyErr_SetString(PyExc_TypeError, "ready_frames(): offsets must be a list"); return NULL; }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]), limit = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(offsets);
    if (n == 0) return PyList_New(0);
    if (start < 0 || start >= n) { PyErr_SetString(PyExc_IndexError, "ready_frames(): start outside the ring"); return NULL; }
    Py_buffer buf;
    if (ring_buffer(args[0], &buf, NULL) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) { PyBuffer_Release(&buf); return NULL; }
    if (limit > n) limit = n;
    Py_ssize_t i = start;
    while (PyList_GET_SIZE(out) < limit) {
        PyObject *o = PyList_GET_ITEM(offsets, i);
        Py_ssize_t off = PyLong_AsSsize_t(o);
        if (off == -1 && PyErr_Occurred()) goto fail;
        if (off < 0 || (off & 3) || off + 4 > buf.len) {
            PyErr_Format(PyExc_ValueError, "frame offset %zd outside the ring", off);
            goto fail;
        }
        if (!(load_acquire((const uint8_t *)buf.buf + off) & TP_STATUS_USER)) break;
        if (PyList_Append(out, o) < 0) goto fail;
        if (++i == n) i = 0;
    }
    PyBuffer_Release(&buf);
    return out;
fail:
    PyBuffer_Release(&buf);
    Py_DECREF(out);
    return NULL;
}

static int block_at(PyObject *const *args, Py_buffer *buf, Py_ssize_t *block) {
    *block = PyLong_AsSsize_t(args[1]);
    if (*block == -1 && PyErr_Occurred()) return -1;
    if (ring_buffer(args[0], buf, NULL) < 0) return -1;
    if (*block < 0 || (*block & 7) || *block + BLOCK_DESC_SIZE > buf->len) {
        PyBuffer_Release(buf);
        PyErr_Format(PyExc_ValueError, "block offset %zd outside the ring", *block);
        return -1;
    }
    return 0;
}

static PyObject *k_block_ready(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    Py_buffer buf;
    Py_ssize_t block;
    if (nargs_is(nargs, 2, 2, "block_ready") < 0 || block_at(args, &buf, &block) < 0) return NULL;
    uint32_t st = load_acquire((const uint8_t *)buf.buf + block + BLOCK_OFF_STATUS);
    PyBuffer_Release(&buf);
    return PyBool_FromLong(st & TP_STATUS_USER);
}

static PyObject *k_block_info(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    Py_buffer buf;
    Py_ssize_t block;
    if (nargs_is(nargs, 2, 2, "block_info") < 0 || block_at(args, &buf, &block) < 0) return NULL;
    const uint8_t *p = (const uint8_t *)buf.buf + block;
    uint32_t st = load_acquire(p + BLOCK_OFF_STATUS);
    uint64_t seq;
    memcpy(&seq, p + BLOCK_OFF_SEQ_NUM, 8);
    PyObject *r = Py_BuildValue("(kkkK)", (unsigned long)st, (unsigned long)rd32(p + BLOCK_OFF_NUM_PKTS),
                                (unsigned long)rd32(p + BLOCK_OFF_FIRST_PKT), (unsigned long long)seq);
    PyBuffer_Release(&buf);
    return r;
}

static PyObject *k_release_block(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    Py_buffer buf;
    Py_ssize_t block;
    if (nargs_is(nargs, 2, 2, "release_block") < 0 || block_at(args, &buf, &block) < 0) return NULL;
    store_release((uint8_t *)buf.buf + block + BLOCK_OFF_STATUS, 0);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

static PyObject *k_release_frames(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 2, 2, "release_frames") < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[1], "release_frames(): hdrs must be a sequence");
    if (seq == NULL) return NULL;
    Params p;
    Py_buffer buf;
    if (read_params(args[0], &p) < 0 || ring_buffer(args[0], &buf, NULL) < 0) { Py_DECREF(seq); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t h = PyLong_AsSsize_t(items[i]);
        if (h == -1 && PyErr_Occurred()) break;
        if (h < 0 || (h & 3) || h + 8 > buf.len) {
            PyErr_Format(PyExc_ValueError, "frame offset %zd outside the ring", h);
            break;
        }
        uint8_t *st = (uint8_t *)buf.buf + h;
        if (p.version == 1) wr32(st + 4, 0); /* V1's tp_status is an unsigned long: high word first */
        store_release(st, 0);
    }
    PyBuffer_Release(&buf);
    Py_DECREF(seq);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* The V3 chain rule of block_headers and block_batch: the header at h belongs to the block when it is
 * aligned and wholly before ``end``; chain_next() is the header after it, or -1 where the chain ends. */
static inline int chain_ok(Py_ssize_t h, Py_ssize_t end, long hdr_size) {
    return !((h & 3) || h < 0 || h + hdr_size > end);
}
static inline Py_ssize_t chain_next(const uint8_t *base, Py_ssize_t h) {
    uint32_t nxt = rd32(base + h);
    return nxt ? h + nxt : -1;
}

static PyObject *k_block_headers(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 4, 4, "block_headers") < 0) return NULL;
    Py_ssize_t h = PyLong_AsSsize_t(args[1]), count = PyLong_AsSsize_t(args[2]), end = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    Params p;
    Py_buffer buf;
    if (read_params(args[0], &p) < 0 || ring_buffer(args[0], &buf, NULL) < 0) return NULL;
    if (end > buf.len) end = buf.len;
    PyObject *out = PyList_New(0);
    if (out == NULL) { PyBuffer_Release(&buf); return NULL; }
    const uint8_t *base = buf.buf;
    for (Py_ssize_t i = 0; i < count && chain_ok(h, end, p.hdr_size); i++, h = chain_next(base, h)) {
        PyObject *o = PyLong_FromSsize_t(h);
        if (o == NULL || PyList_Append(out, o) < 0) { Py_XDECREF(o); Py_DECREF(out); PyBuffer_Release(&buf); return NULL; }
        Py_DECREF(o);
    }
    PyBuffer_Release(&buf);
    return out;
}

/* block_batch(ring, first, count, end, block): Batch(ring, block_headers(ring, first, count, end), end,
 * block) in one step, with no list of offsets unless someone asks for batch.hdrs. */
static PyObject *k_block_batch(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 5, 5, "block_batch") < 0) return NULL;
    Py_ssize_t h = PyLong_AsSsize_t(args[1]), count = PyLong_AsSsize_t(args[2]);
    Py_ssize_t end = PyLong_AsSsize_t(args[3]), block = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) return NULL;
    BatchObject *b = (BatchObject *)PyType_GenericNew(&BatchType, NULL, NULL);
    if (b == NULL) return NULL;
    Py_ssize_t cap = count < 1024 ? (count > 0 ? count : 1) : 1024; /* grows below; num_pkts may be garbage */
    if (batch_setup(b, args[0], &end, block, cap) < 0) { Py_DECREF(b); return NULL; }
    const uint8_t *base = b->buf.buf;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < count && chain_ok(h, end, b->p.hdr_size); i++, h = chain_next(base, h)) {
        if (n == cap) {
            Py_ssize_t *bigger = PyMem_Realloc(b->offs, sizeof(Py_ssize_t) * (size_t)(cap * 2));
            if (bigger == NULL) { Py_DECREF(b); return PyErr_NoMemory(); }
            b->offs = bigger;
            cap *= 2;
        }
        if (!header_ok(b, h, end)) {
            PyErr_Format(PyExc_ValueError, "frame header offset %zd lies outside its frame/block or the ring", h);
            Py_DECREF(b);
            return NULL;
        }
        b->offs[n++] = h;
    }
    b->count = n;
    return (PyObject *)b;
}

/* ======================================== reading a batch ====================================== */
static PyObject *k_frame_bytes(PyObject *m, PyObject *batch) {
    (void)m;
    if (check_batch(batch, "frame_bytes") < 0) return NULL;
    BatchObject *b = (BatchObject *)batch;
    PyObject *out = PyList_New(b->count);
    if (out == NULL) return NULL;
    const char *base = b->buf.buf;
    for (Py_ssize_t i = 0; i < b->count; i++) {
        Py_ssize_t s, e;
        span(b, b->offs[i], &s, &e);
        PyObject *o = PyBytes_FromStringAndSize(base + s, e - s);
        if (o == NULL) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, o);
    }
    return out;
}

/* Sum of the packets' wire lengths (tp_len) in the batch: what the walker counts as bytes taken. */
static PyObject *k_wire_bytes(PyObject *m, PyObject *batch) {
    (void)m;
    if (check_batch(batch, "wire_bytes") < 0) return NULL;
    BatchObject *b = (BatchObject *)batch;
    const uint8_t *base = b->buf.buf;
    unsigned long long total = 0;
    for (Py_ssize_t i = 0; i < b->count; i++) total += rd32(base + b->offs[i] + b->p.off_len);
    return PyLong_FromUnsignedLongLong(total);
}

/* One packet as a file stores it (see _kernels_py's docstring): the pieces to copy. */
typedef struct {
    uint64_t ts_ns;
    uint32_t wire, caplen;
    Py_ssize_t start, stop; /* ring bytes */
    int kind;               /* 0 plain, 1 tag inserted after 12 bytes, 2 cooked header in front */
    int extra_len;          /* 4 (tag), 16 (SLL) or 20 (SLL2) */
    uint8_t extra[20];      /* the tag or the cooked header */
    uint8_t pkttype;
    int32_t ifindex;
} Rec;

/* Receive time in ns of the packet at header h (V1 keeps µs: frac_ns scales them). */
static inline uint64_t ts_ns(const BatchObject *b, const uint8_t *base, Py_ssize_t h) {
    return (uint64_t)rd32(base + h + b->p.off_sec) * 1000000000ull
         + (uint64_t)rd32(base + h + b->p.off_frac) * (uint64_t)b->p.frac_ns;
}

static inline void make_rec(const BatchObject *b, Py_ssize_t h, Rec *r) {
    const uint8_t *base = b->buf.buf;
    const Params *p = &b->p;
    uint32_t st = rd32(base + h + p->off_status);
    r->wire = rd32(base + h + p->off_len);
    r->ts_ns = ts_ns(b, base, h);
    span(b, h, &r->start, &r->stop);
    const uint8_t *sll = base + h + p->sll_off;
    r->pkttype = sll[10];
    r->ifindex = rdi32(sll + 4);
    Py_ssize_t cap = r->stop - r->start;
    r->kind = 0;
    if (!p->raw) {
        uint8_t halen = sll[11] < 8 ? sll[11] : 8;
        if (p->cooked == 2) { /* SLL2: protocol, reserved, ifindex, hatype, pkttype, halen, address */
            memcpy(r->extra, sll + 2, 2); /* sll_protocol, already in network order */
            wr16be(r->extra + 2, 0);
            wr32be(r->extra + 4, (uint32_t)r->ifindex);
            wr16be(r->extra + 8, rd16(sll + 8));
            r->extra[10] = r->pkttype;
            r->extra[11] = halen;
            memset(r->extra + 12, 0, 8);
            memcpy(r->extra + 12, sll + 12, halen);
            r->extra_len = 20;
        } else { /* SLL: pkttype, hatype, halen, address, protocol */
            wr16be(r->extra, r->pkttype);
            wr16be(r->extra + 2, rd16(sll + 8));
            wr16be(r->extra + 4, halen);
            memset(r->extra + 6, 0, 8);
            memcpy(r->extra + 6, sll + 12, halen);
            memcpy(r->extra + 14, sll + 2, 2);
            r->extra_len = 16;
        }
        r->kind = 2;
        r->caplen = (uint32_t)cap + (uint32_t)r->extra_len;
        r->wire += (uint32_t)r->extra_len;
        return;
    }
    if (p->off_tci >= 0 && !p->reinsert && cap >= 12) {
        uint16_t tci = rd16(base + h + p->off_tci);
        if ((st & TP_STATUS_VLAN_VALID) || tci) {
            uint16_t tpid = rd16(base + h + p->off_tpid);
            wr16be(r->extra, (st & TP_STATUS_VLAN_TPID_VALID) && tpid ? tpid : ETH_P_8021Q);
            wr16be(r->extra + 2, tci);
            r->kind = 1;
            r->caplen = (uint32_t)cap + 4;
            r->wire += 4;
            return;
        }
    }
    r->caplen = (uint32_t)cap;
}

static inline uint8_t *put_data(const BatchObject *b, const Rec *r, uint8_t *o) {
    const uint8_t *base = b->buf.buf;
    Py_ssize_t cap = r->stop - r->start;
    if (r->kind == 1) {
        memcpy(o, base + r->start, 12);
        memcpy(o + 12, r->extra, 4);
        memcpy(o + 16, base + r->start + 12, (size_t)(cap - 12));
        return o + cap + 4;
    }
    if (r->kind == 2) {
        memcpy(o, r->extra, (size_t)r->extra_len);
        o += r->extra_len;
    }
    memcpy(o, base + r->start, (size_t)cap);
    return o + cap;
}

static int records_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t lo, Py_ssize_t hi, const char *fn,
                        Py_ssize_t *start, Py_ssize_t *stop) {
    if (nargs_is(nargs, lo, hi, fn) < 0 || check_batch(args[0], fn) < 0) return -1;
    *start = PyLong_AsSsize_t(args[1]);
    *stop = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return -1;
    if (!PyByteArray_Check(args[3])) { PyErr_Format(PyExc_TypeError, "%s(): out must be a bytearray", fn); return -1; }
    Py_ssize_t n = ((BatchObject *)args[0])->count;
    if (*stop > n) *stop = n;
    if (*start < 0 || *start > *stop) {
        PyErr_Format(PyExc_ValueError, "%s(): start %zd must lie between 0 and stop (%zd)", fn, *start, *stop);
        return -1;
    }
    return 0;
}

/* Room for ``need`` more bytes at offset base + pos of ``out``; returns the (possibly moved) start. */
static uint8_t *reserve(PyObject *out, Py_ssize_t base, Py_ssize_t pos, Py_ssize_t need, Py_ssize_t *room) {
    if (pos + need > *room) {
        Py_ssize_t want = *room * 2 > pos + need ? *room * 2 : pos + need + 65536;
        if (PyByteArray_Resize(out, base + want) < 0) return NULL;
        *room = want;
    }
    return (uint8_t *)PyByteArray_AS_STRING(out) + base;
}

/* pcap_records(batch, start, stop, out, nanosecond, budget=-1) -> index of the first packet not written */
static PyObject *k_pcap_records(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    Py_ssize_t start, stop;
    if (records_args(args, nargs, 5, 6, "pcap_records", &start, &stop) < 0) return NULL;
    BatchObject *b = (BatchObject *)args[0];
    int nano = PyObject_IsTrue(args[4]);
    Py_ssize_t budget = nargs > 5 ? PyLong_AsSsize_t(args[5]) : -1;
    if (nano < 0 || PyErr_Occurred()) return NULL;
    PyObject *out = args[3];
    Py_ssize_t base = PyByteArray_GET_SIZE(out), pos = 0, room = 0, j;
    uint8_t *o0 = NULL;
    for (j = start; j < stop; j++) {
        if (budget >= 0 && pos > budget) break;
        Rec r;
        make_rec(b, b->offs[j], &r);
        if ((o0 = reserve(out, base, pos, 16 + (Py_ssize_t)r.caplen, &room)) == NULL) return NULL;
        uint8_t *o = o0 + pos;
        uint64_t sec = r.ts_ns / 1000000000ull, frac = r.ts_ns % 1000000000ull;
        wr32(o, (uint32_t)sec);
        wr32(o + 4, (uint32_t)(nano ? frac : frac / 1000));
        wr32(o + 8, r.caplen);
        wr32(o + 12, r.wire);
        pos = put_data(b, &r, o + 16) - o0;
    }
    if (PyByteArray_Resize(out, base + pos) < 0) return NULL;
    return PyLong_FromSsize_t(j);
}

/* pcapng_records(batch, start, stop, out, iface_ids, nanosecond, budget=-1) -> first index not written */
static PyObject *k_pcapng_records(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    Py_ssize_t start, stop;
    if (records_args(args, nargs, 6, 7, "pcapng_records", &start, &stop) < 0) return NULL;
    BatchObject *b = (BatchObject *)args[0];
    PyObject *ids = args[4];
    if (!PyDict_Check(ids)) { PyErr_SetString(PyExc_TypeError, "pcapng_records(): iface_ids must be a dict"); return NULL; }
    int nano = PyObject_IsTrue(args[5]);
    Py_ssize_t budget = nargs > 6 ? PyLong_AsSsize_t(args[6]) : -1;
    if (nano < 0 || PyErr_Occurred()) return NULL;
    PyObject *out = args[3];
    Py_ssize_t base = PyByteArray_GET_SIZE(out), pos = 0, room = 0, j;
    int32_t last_if = 0;
    uint32_t iid = 0;
    int have_last = 0;
    uint8_t *o0 = NULL;
    for (j = start; j < stop; j++) {
        if (budget >= 0 && pos > budget) break;
        Rec r;
        make_rec(b, b->offs[j], &r);
        if (!have_last || r.ifindex != last_if) {
            PyObject *key = PyLong_FromLong(r.ifindex);
            if (key == NULL) goto fail;
            PyObject *v = PyDict_GetItemWithError(ids, key);
            Py_DECREF(key);
            if (v == NULL) {
                if (PyErr_Occurred()) goto fail;
                break; /* an interface not described yet: the caller adds it */
            }
            unsigned long long id = PyLong_AsUnsignedLongLongMask(v);
            if (PyErr_Occurred()) goto fail;
            last_if = r.ifindex;
            iid = (uint32_t)id;
            have_last = 1;
        }
        uint64_t ticks = nano ? r.ts_ns : r.ts_ns / 1000;
        uint32_t pad = (4 - (r.caplen & 3)) & 3;
        uint32_t tot = EPB_FIXED_FLAGS + r.caplen + pad;
        if ((o0 = reserve(out, base, pos, tot, &room)) == NULL) return NULL;
        uint8_t *o = o0 + pos;
        wr32(o, EPB_TYPE); wr32(o + 4, tot); wr32(o + 8, iid);
        wr32(o + 12, (uint32_t)(ticks >> 32)); wr32(o + 16, (uint32_t)ticks);
        wr32(o + 20, r.caplen); wr32(o + 24, r.wire);
        o = put_data(b, &r, o + 28);
        memset(o, 0, pad);
        o += pad;
        wr16(o, 2); wr16(o + 2, 4); wr32(o + 4, EPB_FLAGS[r.pkttype]); /* epb_flags */
        wr32(o + 8, 0);                                                 /* opt_endofopt */
        wr32(o + 12, tot);
        pos = (o + 16) - o0;
    }
    if (PyByteArray_Resize(out, base + pos) < 0) return NULL;
    return PyLong_FromSsize_t(j);
fail:
    PyByteArray_Resize(out, base + pos);
    return NULL;
}

/* fill_columns(batch, ts_ns, caplen, wire_len, vlan_tci, rxhash, pkttype, ifindex) */
static PyObject *k_fill_columns(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    static const Py_ssize_t sizes[7] = {8, 4, 4, 2, 4, 1, 4};
    if (nargs_is(nargs, 8, 8, "fill_columns") < 0 || check_batch(args[0], "fill_columns") < 0) return NULL;
    BatchObject *b = (BatchObject *)args[0];
    Py_buffer cols[7];
    int got = 0;
    for (; got < 7; got++) {
        if (PyObject_GetBuffer(args[got + 1], &cols[got], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) goto done;
        if (cols[got].len < b->count * sizes[got]) {
            PyErr_Format(PyExc_ValueError, "fill_columns(): column %d holds %zd bytes, needs %zd", got,
                         cols[got].len, b->count * sizes[got]);
            got++;
            goto done;
        }
    }
    const uint8_t *base = b->buf.buf;
    const Params *p = &b->p;
    for (Py_ssize_t i = 0; i < b->count; i++) {
        Py_ssize_t h = b->offs[i], s, e;
        span(b, h, &s, &e);
        uint64_t ts = ts_ns(b, base, h);
        memcpy((uint8_t *)cols[0].buf + 8 * i, &ts, 8);
        wr32((uint8_t *)cols[1].buf + 4 * i, (uint32_t)(e - s));
        wr32((uint8_t *)cols[2].buf + 4 * i, rd32(base + h + p->off_len));
        wr16((uint8_t *)cols[3].buf + 2 * i, p->off_tci >= 0 ? rd16(base + h + p->off_tci) : 0);
        wr32((uint8_t *)cols[4].buf + 4 * i, p->off_rxhash >= 0 ? rd32(base + h + p->off_rxhash) : 0);
        ((uint8_t *)cols[5].buf)[i] = base[h + p->sll_off + 10];
        memcpy((uint8_t *)cols[6].buf + 4 * i, base + h + p->sll_off + 4, 4);
    }
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&cols[i]);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* ======================================== transmit ============================================= */
/* tx_fill(map, offsets, head, frames, first, room, data_offset, min_len, max_len, params) -> (n, bytes) */
static PyObject *k_tx_fill(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs_is(nargs, 10, 10, "tx_fill") < 0) return NULL;
    PyObject *offsets = args[1], *frames = args[3], *params = args[9];
    if (!PyList_Check(offsets) || !(PyList_Check(frames) || PyTuple_Check(frames)) || !PyTuple_Check(params)
        || PyTuple_GET_SIZE(params) != 6) {
        PyErr_SetString(PyExc_TypeError, "tx_fill(): offsets a list, frames a list or tuple, params a 6-tuple");
        return NULL;
    }
    Py_ssize_t head = PyLong_AsSsize_t(args[2]), first = PyLong_AsSsize_t(args[4]), room = PyLong_AsSsize_t(args[5]);
    Py_ssize_t doff = PyLong_AsSsize_t(args[6]), minl = PyLong_AsSsize_t(args[7]), maxl = PyLong_AsSsize_t(args[8]);
    long prm[6];
    for (int i = 0; i < 6; i++) prm[i] = PyLong_AsLong(PyTuple_GET_ITEM(params, i));
    if (PyErr_Occurred()) return NULL;
    long off_st = prm[1], off_len = prm[2], off_snap = prm[3], off_mac = prm[4], off_net = prm[5];
    Py_ssize_t nslots = PyList_GET_SIZE(offsets);
    Py_ssize_t nframes = PySequence_Fast_GET_SIZE(frames);
    PyObject **items = PySequence_Fast_ITEMS(frames);
    if (nslots == 0 || head < 0 || head >= nslots || first < 0) {
        PyErr_SetString(PyExc_ValueError, "tx_fill(): head or first out of range");
        return NULL;
    }
    Py_buffer map;
    if (PyObject_GetBuffer(args[0], &map, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    uint8_t *base = map.buf;
    Py_ssize_t done = 0, nbytes = 0, i = head;
    Py_ssize_t last = first + room < nframes ? first + room : nframes;
    for (Py_ssize_t j = first; j < last; j++) {
        PyObject *f = items[j];
        const char *data;
        Py_ssize_t ln;
        Py_buffer fb;
        int has_fb = 0;
        if (PyBytes_CheckExact(f)) {
            data = PyBytes_AS_STRING(f);
            ln = PyBytes_GET_SIZE(f);
        } else {
            if (PyObject_GetBuffer(f, &fb, PyBUF_C_CONTIGUOUS) < 0) break;
            has_fb = 1;
            data = fb.buf;
            ln = fb.len;
        }
        Py_ssize_t off = PyLong_AsSsize_t(PyList_GET_ITEM(offsets, i));
        int stop = ln < minl || ln > maxl;
        if (!stop && (off < 0 || (off & 3) || off + doff + ln > map.len || off + off_st + 4 > map.len)) {
            PyErr_Format(PyExc_ValueError, "TX slot offset %zd outside the ring", off);
            stop = 1;
        }
        if (!stop && (load_acquire(base + off + off_st) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING | TP_STATUS_WRONG_FORMAT)))
            stop = 1;
        if (!stop) {
            memcpy(base + off + doff, data, (size_t)ln);
            wr32(base + off + off_len, (uint32_t)ln);
            wr32(base + off + off_snap, (uint32_t)ln);
            wr16(base + off + off_mac, (uint16_t)doff);
            wr16(base + off + off_net, (uint16_t)doff);
            store_release(base + off + off_st, TP_STATUS_SEND_REQUEST);
        }
        if (has_fb) PyBuffer_Release(&fb);
        if (stop) break;
        if (++i == nslots) i = 0;
        done++;
        nbytes += ln;
    }
    PyBuffer_Release(&map);
    if (PyErr_Occurred()) return NULL;
    return Py_BuildValue("(nn)", done, nbytes);
}

/* ======================================== module =============================================== */
/* ---- async_stream: `async for` over the walk without a coroutine per packet ------------------------
 *
 * An AsyncStream is its own async iterator, awaitable and awaitable's iterator, with an am_send slot:
 * `async for` calls am_anext (self), am_await (self), then am_send, which hands back the next packet of
 * the batch in hand (state.rest, the iterator the walk yields from) as PYGEN_RETURN -- no coroutine,
 * no StopIteration object. When that iterator is missing or spent, or every `check` packets (so the
 * slow path can look at the clock and let other tasks run), it calls slow() and runs the coroutine it
 * returns as a delegate: what the delegate yields (futures) goes up to the task, what it returns is the
 * next packet, and throw()/close() go down to it, so a cancellation reaches the await it is in. So at
 * most check - 1 packets in a row come from state.rest. The pure-Python kernel's async_stream is an
 * async generator with the same steps. */
typedef struct {
    PyObject_HEAD
    PyObject *state;    /* has .rest: the iterator of the batch in hand, or None */
    PyObject *slow;     /* slow() -> coroutine returning the next packet (or raising StopAsyncIteration) */
    PyObject *delegate; /* the slow coroutine being run, or NULL */
    long check, budget;
    int fresh;          /* an __anext__ began and nothing was sent yet */
} StreamObject;

static PyObject *str_rest, *str_throw, *str_close;

static int Stream_traverse(StreamObject *s, visitproc visit, void *arg) {
    Py_VISIT(s->state);
    Py_VISIT(s->slow);
    Py_VISIT(s->delegate);
    return 0;
}

static int Stream_clear(StreamObject *s) {
    Py_CLEAR(s->state);
    Py_CLEAR(s->slow);
    Py_CLEAR(s->delegate);
    return 0;
}

static void Stream_dealloc(StreamObject *s) {
    PyObject_GC_UnTrack(s);
    Stream_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *Stream_self(PyObject *s) {
    Py_INCREF(s);
    return s;
}

static PyObject *Stream_anext(StreamObject *s) {
    s->fresh = 1;
    Py_INCREF(s);
    return (PyObject *)s;
}

/* Run the delegate one step with `arg`; a finished delegate is dropped. */
static PySendResult stream_step(StreamObject *s, PyObject *arg, PyObject **result) {
    PySendResult r = PyIter_Send(s->delegate, arg, result);
    if (r != PYGEN_NEXT) Py_CLEAR(s->delegate);
    return r;
}

static PySendResult Stream_am_send(StreamObject *s, PyObject *arg, PyObject **result) {
    int fresh = s->fresh;
    s->fresh = 0;
    *result = NULL;
    if (s->delegate != NULL) {
        if (fresh) {
            PyErr_SetString(PyExc_RuntimeError,
                            "anext(): the capture's packet stream is already being awaited by another task");
            return PYGEN_ERROR;
        }
        return stream_step(s, arg, result);
    }
    if (--s->budget > 0) {
        PyObject *rest = PyObject_GetAttr(s->state, str_rest);
        if (rest == NULL) return PYGEN_ERROR;
        if (rest != Py_None) {
            iternextfunc next = Py_TYPE(rest)->tp_iternext;
            PyObject *item = next != NULL ? next(rest) : NULL;
            Py_DECREF(rest);
            if (item != NULL) {
                *result = item;
                return PYGEN_RETURN;
            }
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return PYGEN_ERROR;
                PyErr_Clear();
            }
        } else {
            Py_DECREF(rest);
        }
    }
    s->budget = s->check;
    s->delegate = PyObject_CallNoArgs(s->slow);
    if (s->delegate == NULL) return PYGEN_ERROR;
    return stream_step(s, Py_None, result);
}

/* The same step for callers without am_send (a tracing interpreter uses send() and __next__). */
static PyObject *stream_call(StreamObject *s, PyObject *arg) {
    PyObject *result;
    PySendResult r = Stream_am_send(s, arg, &result);
    if (r == PYGEN_NEXT) return result;
    if (r == PYGEN_RETURN) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *Stream_iternext(StreamObject *s) { return stream_call(s, Py_None); }

static PyObject *Stream_send(StreamObject *s, PyObject *arg) { return stream_call(s, arg); }

static PyObject *Stream_throw(StreamObject *s, PyObject *const *args, Py_ssize_t nargs) {
    s->fresh = 0;
    if (s->delegate == NULL) {
        /* Nothing awaited: raise it here, as a finished coroutine's throw() does. */
        if (nargs < 1) {
            PyErr_SetString(PyExc_TypeError, "throw expected at least 1 argument");
            return NULL;
        }
        PyObject *exc = args[0];
        if (PyExceptionClass_Check(exc)) {
            exc = nargs > 1 && args[1] != Py_None ? PyObject_CallOneArg(exc, args[1]) : PyObject_CallNoArgs(exc);
            if (exc == NULL) return NULL;
        } else {
            Py_INCREF(exc);
        }
        if (!PyExceptionInstance_Check(exc)) {
            Py_DECREF(exc);
            PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    PyObject *meth = PyObject_GetAttr(s->delegate, str_throw);
    if (meth == NULL) return NULL;
    PyObject *r = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
    Py_DECREF(meth);
    if (r == NULL) Py_CLEAR(s->delegate); /* it returned (StopIteration) or raised: either way it is over */
    return r;
}

static PyObject *Stream_close(StreamObject *s, PyObject *Py_UNUSED(ignored)) {
    s->fresh = 0;
    PyObject *d = s->delegate;
    if (d == NULL) Py_RETURN_NONE;
    s->delegate = NULL;
    PyObject *r = PyObject_CallMethodNoArgs(d, str_close);
    Py_DECREF(d);
    return r;
}

static PyMethodDef Stream_methods[] = {
    {"send", (PyCFunction)Stream_send, METH_O, "Step the stream (for interpreters that do not use am_send)."},
    {"throw", (PyCFunction)(void (*)(void))Stream_throw, METH_FASTCALL, "Raise inside the awaited slow path."},
    {"close", (PyCFunction)Stream_close, METH_NOARGS, "Close the awaited slow path, if any."},
    {NULL}
};

static PyAsyncMethods Stream_async = {
    .am_await = (unaryfunc)Stream_self,
    .am_aiter = (unaryfunc)Stream_self,
    .am_anext = (unaryfunc)Stream_anext,
    .am_send = (sendfunc)Stream_am_send,
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "afpacket.ring._kernels.AsyncStream",
    .tp_basicsize = sizeof(StreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "async for over a walk's batch in hand, with a slow path for waiting (see async_stream).",
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_as_async = &Stream_async,
    .tp_iter = (getiterfunc)Stream_self,
    .tp_iternext = (iternextfunc)Stream_iternext,
    .tp_methods = Stream_methods,
};

static PyObject *k_async_stream(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "async_stream(state, slow, check) takes 3 arguments");
        return NULL;
    }
    if (!PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "async_stream(): slow must be callable");
        return NULL;
    }
    long check = PyLong_AsLong(args[2]);
    if (check == -1 && PyErr_Occurred()) return NULL;
    if (check < 1) {
        PyErr_SetString(PyExc_ValueError, "async_stream(): check must be at least 1");
        return NULL;
    }
    StreamObject *s = PyObject_GC_New(StreamObject, &StreamType);
    if (s == NULL) return NULL;
    Py_INCREF(args[0]);
    Py_INCREF(args[1]);
    s->state = args[0];
    s->slow = args[1];
    s->delegate = NULL;
    s->check = s->budget = check;
    s->fresh = 0;
    PyObject_GC_Track(s);
    return (PyObject *)s;
}

static PyMethodDef module_methods[] = {
    {"packets", (PyCFunction)(void (*)(void))k_packets, METH_FASTCALL, "One packet object per header of the batch."},
    {"new_pool", (PyCFunction)k_new_pool, METH_O, "An (unused) pool: the C core allocates per batch."},
    {"ready_frames", (PyCFunction)(void (*)(void))k_ready_frames, METH_FASTCALL,
     "V1/V2: offsets of the consecutive user-owned frames from index start on."},
    {"block_ready", (PyCFunction)(void (*)(void))k_block_ready, METH_FASTCALL, "V3: the block is the user's."},
    {"block_info", (PyCFunction)(void (*)(void))k_block_info, METH_FASTCALL,
     "V3: (block_status, num_pkts, offset_to_first_pkt, seq_num)."},
    {"release_frames", (PyCFunction)(void (*)(void))k_release_frames, METH_FASTCALL, "Hand V1/V2 frames back."},
    {"release_block", (PyCFunction)(void (*)(void))k_release_block, METH_FASTCALL, "Hand a V3 block back."},
    {"block_headers", (PyCFunction)(void (*)(void))k_block_headers, METH_FASTCALL,
     "V3: header offsets along tp_next_offset, bounds-checked."},
    {"block_batch", (PyCFunction)(void (*)(void))k_block_batch, METH_FASTCALL,
     "V3: Batch(ring, block_headers(ring, first, count, end), end, block), without the list."},
    {"frame_bytes", (PyCFunction)k_frame_bytes, METH_O, "The bytes of every packet of the batch."},
    {"async_stream", (PyCFunction)(void (*)(void))k_async_stream, METH_FASTCALL,
     "An async iterator over state.rest, calling slow() for the next packet when it has none."},
    {"wire_bytes", (PyCFunction)k_wire_bytes, METH_O, "The sum of the batch's wire lengths (tp_len)."},
    {"pcap_records", (PyCFunction)(void (*)(void))k_pcap_records, METH_FASTCALL, "Append pcap records."},
    {"pcapng_records", (PyCFunction)(void (*)(void))k_pcapng_records, METH_FASTCALL, "Append pcapng EPBs."},
    {"fill_columns", (PyCFunction)(void (*)(void))k_fill_columns, METH_FASTCALL, "Per-packet metadata into arrays."},
    {"tx_fill", (PyCFunction)(void (*)(void))k_tx_fill, METH_FASTCALL, "Fill free TX slots and request sending."},
    {NULL}
};

extern int afp_flowtable_register(PyObject *module); /* flows/_table.c */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "afpacket.ring._kernels", "The ring kernels in C (see _kernels_py.py).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *errors = PyImport_ImportModule("afpacket.errors");
    if (errors == NULL) return NULL;
    PacketExpiredError = PyObject_GetAttrString(errors, "PacketExpiredError");
    str_release = PyUnicode_InternFromString("release");
    str_rest = PyUnicode_InternFromString("rest");
    str_throw = PyUnicode_InternFromString("throw");
    str_close = PyUnicode_InternFromString("close");
    if (str_release == NULL || str_rest == NULL || str_throw == NULL || str_close == NULL) return NULL;
    Py_DECREF(errors);
    if (PacketExpiredError == NULL) return NULL;
    /* Linux pkttype -> epb_flags: inbound|unicast, broadcast, multicast, promiscuous; outbound */
    memset(EPB_FLAGS, 0, sizeof(EPB_FLAGS));
    EPB_FLAGS[0] = 1u | (1u << 2);
    EPB_FLAGS[1] = 1u | (3u << 2);
    EPB_FLAGS[2] = 1u | (2u << 2);
    EPB_FLAGS[3] = 1u | (4u << 2);
    EPB_FLAGS[4] = 2u;
    if (PyType_Ready(&BatchType) < 0 || PyType_Ready(&PacketType) < 0 || PyType_Ready(&StreamType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    Py_INCREF(&BatchType);
    Py_INCREF(&PacketType);
    if (PyModule_AddObject(mod, "Batch", (PyObject *)&BatchType) < 0
        || PyModule_AddObject(mod, "PacketBase", (PyObject *)&PacketType) < 0
        || PyModule_AddStringConstant(mod, "IMPLEMENTATION", "c") < 0
        || PyModule_AddStringConstant(mod, "EXPIRED", EXPIRED) < 0
        || afp_flowtable_register(mod) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
