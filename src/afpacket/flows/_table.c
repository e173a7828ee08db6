/* afpacket.ring._kernels.FlowTable: the flow table in C.
 *
 * Same names and behaviour as afpacket/flows/_table_py.py (the specification; its docstrings state the
 * rules) and afpacket/flows/packet.py (flow_fields: which bytes make a packet's flow fields). Tests feed
 * both the same packets and compare every finished flow and the counters.
 *
 * Why C: the offline target is a multiple of NFStream's packets/s, and the pure table pays a tuple, two
 * bytes objects and a dict probe per packet. Here a packet is a parse over its bytes, a keyed 64-bit hash
 * of a fixed 40-byte key and an open-addressing probe; add_pcap walks a file's records with no Python
 * object per record.
 *
 * Layout: entries live in one array (slots reused through a free list), chained in creation order by a
 * doubly-linked list (the Python dict's order: eviction ends the oldest created, sweeps walk oldest
 * first); the hash table is linear probing over (tag, slot) pairs with backward-shift deletion, grown to
 * keep its load at most one half. Finished flows are copied to a C array until take() turns them into
 * tuples, so the object holds no Python objects (nothing for the garbage collector to traverse). The table
 * never holds more than max_flows entries. Every read of packet bytes is checked against its length: a
 * read Python would answer with IndexError makes the packet "not IP" here too.
 *
 * Times are int64 nanoseconds; sums of a time and a timeout are compared in 128 bits, so no timeout or
 * time stamp can overflow (a timeout beyond int64 is taken as INT64_MAX).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#define NS_PER_S 1000000000LL
#define P_ICMP 1
#define P_TCP 6
#define P_UDP 17
#define P_ICMP6 58
#define P_SCTP 132
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10
#define S_OFIN 1
#define S_RFIN 2
#define NIL UINT32_MAX

/* end reasons; 0: still open (not closed by TCP) */
enum { W_NONE, W_IDLE, W_ACTIVE, W_FIN, W_RST, W_EVICTED, W_END, W_COUNT };
static const char *const WHY_TEXT[W_COUNT] = {"", "idle", "active", "fin", "rst", "evicted", "end"};
static PyObject *why_str[W_COUNT];

typedef __int128 wide;

/* ---- one packet's flow fields (packet.flow_fields) ---------------------------------------------- */
typedef struct {
    int vlan, proto, alen; /* alen: 4 or 16 */
    const uint8_t *src, *dst;
    int sport, dport, flags;
    int64_t ip_len, payload;
} Fields;

static inline int be16(const uint8_t *p) { return p[0] << 8 | p[1]; }
static inline int64_t clamp0(int64_t v) { return v > 0 ? v : 0; }

static int ff_transport(const uint8_t *d, size_t n, size_t t, Fields *f, int64_t left) {
    left = clamp0(left);
    f->sport = f->dport = f->flags = 0;
    f->payload = left;
    if (n < t + 4) return 1;
    switch (f->proto) {
    case P_TCP:
        f->sport = be16(d + t);
        f->dport = be16(d + t + 2);
        if (n < t + 14) return 1;
        f->payload = clamp0(left - (int64_t)((d[t + 12] >> 4) * 4));
        f->flags = d[t + 13];
        return 1;
    case P_UDP:
        f->sport = be16(d + t);
        f->dport = be16(d + t + 2);
        f->payload = clamp0(left - 8);
        return 1;
    case P_ICMP:
    case P_ICMP6:
        f->sport = d[t];
        f->dport = d[t + 1];
        f->payload = clamp0(left - 8);
        return 1;
    case P_SCTP:
        f->sport = be16(d + t);
        f->dport = be16(d + t + 2);
        f->payload = clamp0(left - 12);
        return 1;
    default:
        return 1;
    }
}

static int ff_ipv4(const uint8_t *d, size_t n, size_t o, Fields *f) {
    if (o >= n || d[o] >> 4 != 4 || n < o + 20) return 0;
    size_t ihl = (size_t)(d[o] & 15) * 4;
    if (ihl < 20) return 0; /* a header length below 5 words: not a valid IPv4 header */
    int64_t total = be16(d + o + 2);
    f->proto = d[o + 9];
    f->src = d + o + 12;
    f->dst = d + o + 16;
    f->alen = 4;
    f->ip_len = total;
    if ((d[o + 6] & 0x1F) | d[o + 7]) { /* a fragment after the first: no transport header here */
        f->sport = f->dport = f->flags = 0;
        f->payload = clamp0(total - (int64_t)ihl);
        return 1;
    }
    return ff_transport(d, n, o + ihl, f, total - (int64_t)ihl);
}

static int ff_ipv6(const uint8_t *d, size_t n, size_t o, Fields *f) {
    if (o >= n || d[o] >> 4 != 6 || n < o + 40) return 0;
    int64_t left = be16(d + o + 4);
    int nxt = d[o + 6];
    f->src = d + o + 8;
    f->dst = d + o + 24;
    f->alen = 16;
    f->ip_len = left + 40;
    size_t at = o + 40;
    for (;;) {
        size_t len;
        if (nxt == 0 || nxt == 43 || nxt == 60) { /* hop-by-hop, routing, destination options */
            if (n < at + 2) return 0;
            len = ((size_t)d[at + 1] + 1) * 8;
        } else if (nxt == 51) { /* AH: (len + 2) 32-bit words */
            if (n < at + 2) return 0;
            len = ((size_t)d[at + 1] + 2) * 4;
        } else if (nxt == 44) { /* fragment: a fragment after the first has no transport header */
            if (n < at + 4) return 0;
            if (be16(d + at + 2) & 0xFFF8) {
                f->proto = d[at];
                f->sport = f->dport = f->flags = 0;
                f->payload = clamp0(left - 8);
                return 1;
            }
            len = 8;
        } else {
            break;
        }
        nxt = d[at];
        at += len;
        left -= (int64_t)len;
    }
    f->proto = nxt;
    return ff_transport(d, n, at, f, left);
}

static inline int ff_ip(const uint8_t *d, size_t n, size_t off, int et, Fields *f) {
    if (et == 0x0800) return ff_ipv4(d, n, off, f);
    if (et == 0x86DD) return ff_ipv6(d, n, off, f);
    return 0;
}

/* 1 and *f filled, or 0: not IPv4/IPv6 or too short (flow_fields() returning None). */
static int flow_fields(const uint8_t *d, size_t n, long long linktype, long long vlan_tci, Fields *f) {
    f->vlan = (int)(vlan_tci & 0xFFF);
    switch (linktype) {
    case 1: { /* Ethernet, with 802.1Q / 802.1ad tags */
        if (n < 14) return 0;
        int et = be16(d + 12);
        size_t off = 14;
        while (et == 0x8100 || et == 0x88A8) {
            if (n < off + 4) return 0;
            f->vlan = be16(d + off) & 0xFFF;
            et = be16(d + off + 2);
            off += 4;
        }
        return ff_ip(d, n, off, et, f);
    }
    case 113: /* Linux cooked v1 */
        if (n < 16) return 0;
        return ff_ip(d, n, 16, be16(d + 14), f);
    case 276: /* Linux cooked v2 */
        if (n < 2) return 0;
        return ff_ip(d, n, 20, be16(d), f);
    case 101: case 228: case 229: /* raw IP */
        if (n < 1) return 0;
        if (d[0] >> 4 == 4) return ff_ipv4(d, n, 0, f);
        if (d[0] >> 4 == 6) return ff_ipv6(d, n, 0, f);
        return 0;
    case 0: case 108: { /* NULL: the writer's byte order (its non-zero byte tells); LOOP: network order */
        if (n < 5) return 0; /* every shorter packet ends as None in the Python too */
        uint32_t family = linktype == 0 && d[0] ? (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16
                                                  | (uint32_t)d[3] << 24
                                                : (uint32_t)d[3] | (uint32_t)d[2] << 8 | (uint32_t)d[1] << 16
                                                  | (uint32_t)d[0] << 24;
        if (family == 2) return ff_ipv4(d, n, 4, f);
        if (family == 24 || family == 28 || family == 30) return ff_ipv6(d, n, 4, f);
        return 0;
    }
    default:
        return 0;
    }
}

/* ---- the table ----------------------------------------------------------------------------------- */
typedef struct {
    uint8_t lo[18], hi[18]; /* the endpoints (address + 2 port bytes), lo <= hi; zero-padded */
    uint16_t vlan;
    uint8_t proto, elen;    /* elen: endpoint length, 6 or 18 */
} Key;                      /* 40 bytes, hashed and compared whole */
_Static_assert(sizeof(Key) == 40, "Key is hashed as five 64-bit words");

typedef struct {
    Key k;
    uint64_t hash;
    int64_t ts, last, close_at; /* close_at: the time of the closing FIN/RST (why is W_FIN/W_RST) */
    int64_t pkts[2], ip[2], pl[2]; /* [0] originator, [1] responder */
    int64_t ifindex;
    uint32_t prev, next;    /* creation order; next is also the free list's link */
    uint16_t sport, dport;
    uint8_t orig_lo, state, why, hlen;
    char hist[12];
} Entry;

typedef struct {
    uint32_t tag;           /* a 32-bit fold of the hash; its low bits are the home bucket */
    uint32_t slot;          /* entry index + 1; 0: empty */
} Bucket;

typedef struct {
    PyObject_HEAD
    long long idle_ns, active_ns, grace_ns, max_flows;
    Entry *e;
    uint32_t cap, used, free_head, head, tail; /* used: slots ever handed out (<= cap) */
    Bucket *b;
    size_t nb;              /* buckets, a power of two */
    size_t live;
    Entry *done;
    size_t ndone, cap_done;
    uint64_t seed[6];
    wide next_sweep;
    long long packets, not_ip, flows, records, evicted;
} FlowTableObject;

static inline uint64_t fold(uint64_t a, uint64_t b) {
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A keyed hash of the 40 key bytes: each 16 bytes xored with the key's secret words, multiplied 64x64 into
 * 128 bits and folded; the seed is random per table, so crafted traffic cannot aim at one bucket. */
static inline uint64_t key_hash(const FlowTableObject *t, const Key *k) {
    uint64_t w[5];
    memcpy(w, k, sizeof w);
    const uint64_t *s = t->seed;
    uint64_t h = fold(w[0] ^ s[0], w[1] ^ s[1]);
    h ^= fold(w[2] ^ s[2], w[3] ^ s[3]);
    return fold(h ^ s[4], w[4] ^ s[5]);
}

static inline uint32_t tag_of(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

/* The entry with key k, or NIL. */
static inline uint32_t lookup(const FlowTableObject *t, const Key *k, uint64_t h) {
    size_t mask = t->nb - 1, i = tag_of(h) & mask;
    uint32_t tag = tag_of(h);
    for (;;) {
        const Bucket *b = &t->b[i];
        if (b->slot == 0) return NIL;
        if (b->tag == tag && memcmp(&t->e[b->slot - 1].k, k, sizeof(Key)) == 0) return b->slot - 1;
        i = (i + 1) & mask;
    }
}

static inline void bucket_put(Bucket *bs, size_t nb, uint64_t h, uint32_t slot) {
    size_t mask = nb - 1, i = tag_of(h) & mask;
    while (bs[i].slot != 0) i = (i + 1) & mask;
    bs[i].tag = tag_of(h);
    bs[i].slot = slot + 1;
}

static void bucket_remove(FlowTableObject *t, uint64_t h, uint32_t slot) {
    size_t mask = t->nb - 1, i = tag_of(h) & mask;
    Bucket *bs = t->b;
    while (bs[i].slot != slot + 1) i = (i + 1) & mask;
    /* backward shift: move up every later member of the run that may sit in the hole */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (bs[j].slot == 0) break;
        size_t home = bs[j].tag & mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            bs[i] = bs[j];
            i = j;
        }
    }
    bs[i].slot = 0;
}

/* Room for one more live entry: a free slot and buckets for a load of at most one half. */
static int reserve(FlowTableObject *t) {
    if ((t->live + 1) * 2 > t->nb) {
        size_t nb = t->nb * 2;
        if (nb > ((size_t)1 << 32)) { PyErr_NoMemory(); return -1; }
        Bucket *bs = PyMem_Calloc(nb, sizeof(Bucket));
        if (bs == NULL) { PyErr_NoMemory(); return -1; }
        for (uint32_t s = t->head; s != NIL; s = t->e[s].next) bucket_put(bs, nb, t->e[s].hash, s);
        PyMem_Free(t->b);
        t->b = bs;
        t->nb = nb;
    }
    if (t->free_head == NIL && t->used == t->cap) {
        uint64_t cap = (uint64_t)t->cap * 2;
        if (cap > (uint64_t)t->max_flows) cap = (uint64_t)t->max_flows;
        if (cap <= t->cap) cap = (uint64_t)t->cap + 1;
        if (cap >= NIL) { PyErr_NoMemory(); return -1; }
        Entry *e = PyMem_Realloc(t->e, (size_t)cap * sizeof(Entry));
        if (e == NULL) { PyErr_NoMemory(); return -1; }
        t->e = e;
        t->cap = (uint32_t)cap;
    }
    return 0;
}

static int done_room(FlowTableObject *t) {
    if (t->ndone < t->cap_done) return 0;
    size_t cap = t->cap_done ? t->cap_done * 2 : 64;
    Entry *d = PyMem_Realloc(t->done, cap * sizeof(Entry));
    if (d == NULL) { PyErr_NoMemory(); return -1; }
    t->done = d;
    t->cap_done = cap;
    return 0;
}

/* End entry s for reason why: out of the hash and the order, its record kept for take(). */
static int end_entry(FlowTableObject *t, uint32_t s, int why) {
    if (done_room(t) < 0) return -1;
    Entry *e = &t->e[s];
    bucket_remove(t, e->hash, s);
    if (e->prev != NIL) t->e[e->prev].next = e->next; else t->head = e->next;
    if (e->next != NIL) t->e[e->next].prev = e->prev; else t->tail = e->prev;
    Entry *d = &t->done[t->ndone++];
    *d = *e;
    d->why = (uint8_t)why;
    e->next = t->free_head;
    t->free_head = s;
    t->live--;
    t->records++;
    return 0;
}

/* FlowTable._tcp: Zeek's history letters (each once per direction, in order of first occurrence) and the end. */
static void tcp_update(Entry *e, int orig, int flags, int64_t payload, int64_t ts) {
    char letters[4];
    int n = 0;
    if (flags & F_SYN) letters[n++] = flags & F_ACK ? 'H' : 'S';
    if (flags & F_FIN) letters[n++] = 'F';
    if (flags & F_RST) letters[n++] = 'R';
    if (payload) letters[n++] = 'D';
    else if ((flags & F_ACK) && !(flags & (F_SYN | F_FIN | F_RST))) letters[n++] = 'A';
    for (int i = 0; i < n; i++) {
        char c = orig ? letters[i] : (char)(letters[i] + ('a' - 'A'));
        if (memchr(e->hist, c, e->hlen) == NULL && e->hlen < sizeof e->hist) e->hist[e->hlen++] = c;
    }
    if ((flags & (F_FIN | F_RST)) && e->why == W_NONE) {
        if (flags & F_FIN) e->state |= orig ? S_OFIN : S_RFIN;
        if ((flags & F_RST) || e->state == (S_OFIN | S_RFIN)) {
            e->close_at = ts;
            e->why = flags & F_RST ? W_RST : W_FIN;
        }
    }
}

static inline int closed_by(const FlowTableObject *t, const Entry *e, int64_t now) {
    return (wide)now - e->close_at >= t->grace_ns;
}

/* FlowTable._count: one packet with its fields into its flow. */
static int count(FlowTableObject *t, int64_t ts, const Fields *f, int64_t ifindex) {
    uint8_t a[18], b[18];
    int alen = f->alen, elen = alen + 2;
    memcpy(a, f->src, (size_t)alen);
    memcpy(b, f->dst, (size_t)alen);
    if (f->proto == P_ICMP || f->proto == P_ICMP6) {
        a[alen] = a[alen + 1] = b[alen] = b[alen + 1] = 0;
    } else {
        a[alen] = (uint8_t)(f->sport >> 8); a[alen + 1] = (uint8_t)f->sport;
        b[alen] = (uint8_t)(f->dport >> 8); b[alen + 1] = (uint8_t)f->dport;
    }
    int a_lo = memcmp(a, b, (size_t)elen) <= 0;
    Key k;
    memset(&k, 0, sizeof k);
    memcpy(k.lo, a_lo ? a : b, (size_t)elen);
    memcpy(k.hi, a_lo ? b : a, (size_t)elen);
    k.vlan = (uint16_t)f->vlan;
    k.proto = (uint8_t)f->proto;
    k.elen = (uint8_t)elen;
    uint64_t h = key_hash(t, &k);
    uint32_t s = lookup(t, &k, h);
    if (s != NIL) {
        Entry *e = &t->e[s];
        int why = W_NONE;
        /* a TCP flow already closed ends by its FIN/RST (past its grace, idle, or at a new SYN); then idle, active */
        int idle = (wide)ts - e->last >= t->idle_ns;
        if (e->why != W_NONE && (idle || closed_by(t, e, ts) || (f->flags & (F_SYN | F_ACK)) == F_SYN)) why = e->why;
        else if (idle) why = W_IDLE;
        else if ((wide)ts - e->ts >= t->active_ns) why = W_ACTIVE;
        if (why != W_NONE) {
            if (end_entry(t, s, why) < 0) return -1;
            s = NIL;
        }
    }
    if (s == NIL) {
        if ((long long)t->live >= t->max_flows) {
            if (end_entry(t, t->head, W_EVICTED) < 0) return -1;
            t->evicted++;
        }
        if (reserve(t) < 0) return -1;
        if (t->free_head != NIL) {
            s = t->free_head;
            t->free_head = t->e[s].next;
        } else {
            s = t->used++;
        }
        Entry *e = &t->e[s];
        memset(e, 0, sizeof *e);
        e->k = k;
        e->hash = h;
        e->ts = e->last = ts;
        e->orig_lo = (uint8_t)a_lo;
        e->ifindex = ifindex;
        e->sport = (uint16_t)f->sport;
        e->dport = (uint16_t)f->dport;
        e->prev = t->tail;
        e->next = NIL;
        if (t->tail != NIL) t->e[t->tail].next = s; else t->head = s;
        t->tail = s;
        bucket_put(t->b, t->nb, h, s);
        t->live++;
        t->flows++;
    }
    Entry *e = &t->e[s];
    e->last = ts;
    /* the packet's source is the originator exactly when its order matches the first packet's (a == b
     * makes a_lo 1 for every packet of the flow: all are the originator's, as Python's e[_ORIG] == a says) */
    int orig = a_lo == e->orig_lo;
    int side = orig ? 0 : 1;
    e->pkts[side]++;
    e->ip[side] += f->ip_len;
    e->pl[side] += f->payload;
    if (f->proto == P_TCP) tcp_update(e, orig, f->flags, f->payload, ts);
    return 0;
}

static int expire(FlowTableObject *t, int64_t now) {
    t->next_sweep = (wide)now + NS_PER_S;
    for (uint32_t s = t->head; s != NIL;) {
        Entry *e = &t->e[s];
        uint32_t next = e->next;
        int why = W_NONE;
        int idle = (wide)now - e->last >= t->idle_ns;
        if (e->why != W_NONE && (idle || closed_by(t, e, now))) why = e->why;
        else if (idle) why = W_IDLE;
        else if ((wide)now - e->ts >= t->active_ns) why = W_ACTIVE;
        if (why != W_NONE && end_entry(t, s, why) < 0) return -1;
        s = next;
    }
    return 0;
}

/* FlowTable.add for bytes already in hand. */
static inline int add_one(FlowTableObject *t, int64_t ts, const uint8_t *d, size_t n, long long linktype,
                          long long vlan_tci, int64_t ifindex) {
    Fields f;
    t->packets++;
    if (flow_fields(d, n, linktype, vlan_tci, &f)) {
        if (count(t, ts, &f, ifindex) < 0) return -1;
    } else {
        t->not_ip++;
    }
    if ((wide)ts >= t->next_sweep) return expire(t, ts);
    return 0;
}

/* ---- arguments ----------------------------------------------------------------------------------- */
/* Positional and keyword arguments of a METH_FASTCALL|METH_KEYWORDS method into out[] (NULL: not given). */
static int bind_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                const char *const *names, Py_ssize_t nreq, Py_ssize_t nmax, PyObject **out) {
    for (Py_ssize_t i = 0; i < nmax; i++) out[i] = NULL;
    if (nargs > nmax) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fn, nmax, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        Py_ssize_t i = 0;
        while (i < nmax && PyUnicode_CompareWithASCIIString(name, names[i]) != 0) i++;
        if (i == nmax) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, name);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
            return -1;
        }
        out[i] = args[nargs + j];
    }
    for (Py_ssize_t i = 0; i < nreq; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[i]);
            return -1;
        }
    }
    return 0;
}

static int as_i64(PyObject *o, int64_t *v) {
    long long x = PyLong_AsLongLong(o);
    if (x == -1 && PyErr_Occurred()) return -1;
    *v = x;
    return 0;
}

/* A link type: any int; one beyond 64 bits is no link type this table knows. */
static int as_linktype(PyObject *o, long long *v) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    *v = overflow ? -1 : x;
    return 0;
}

/* ---- methods ------------------------------------------------------------------------------------- */
static PyObject *FT_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"idle_ns", "active_ns", "grace_ns", "max_flows", NULL};
    PyObject *o[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:FlowTable", kwlist, &o[0], &o[1], &o[2], &o[3])) return NULL;
    long long v[4];
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        int overflow;
        v[i] = PyLong_AsLongLongAndOverflow(o[i], &overflow);
        if (v[i] == -1 && PyErr_Occurred()) return NULL;
        if (overflow) v[i] = overflow > 0 ? LLONG_MAX : -1;
        if (i == 2 ? v[i] < 0 : v[i] <= 0) bad = 1;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "FlowTable(): timeouts and max_flows must be positive");
        return NULL;
    }
    FlowTableObject *t = (FlowTableObject *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    t->idle_ns = v[0]; t->active_ns = v[1]; t->grace_ns = v[2]; t->max_flows = v[3];
    t->free_head = t->head = t->tail = NIL;
    t->nb = 16;
    t->cap = (uint32_t)(t->max_flows < 8 ? t->max_flows : 8);
    t->b = PyMem_Calloc(t->nb, sizeof(Bucket));
    t->e = PyMem_Malloc(t->cap * sizeof(Entry));
    if (t->b == NULL || t->e == NULL) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    if (getrandom(t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed) {
        /* no entropy yet (early boot): the clock and the address still differ per table and run */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t x = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^ (uint64_t)(uintptr_t)t;
        for (int i = 0; i < 6; i++) {
            x = fold(x ^ 0x9E3779B97F4A7C15ULL, 0xD6E8FEB86659FD93ULL + (uint64_t)i);
            t->seed[i] = x;
        }
    }
    for (int i = 0; i < 6; i++) t->seed[i] |= 1; /* no zero multiplier */
    t->next_sweep = 0;
    return (PyObject *)t;
}

static void FT_dealloc(FlowTableObject *t) {
    PyMem_Free(t->e);
    PyMem_Free(t->b);
    PyMem_Free(t->done);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *FT_add(FlowTableObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"ts_ns", "data", "linktype", "vlan_tci", "ifindex"};
    PyObject *o[5];
    if (bind_args("add", args, nargs, kwnames, names, 3, 5, o) < 0) return NULL;
    int64_t ts, tci = 0, ifindex = 0;
    long long linktype;
    if (as_i64(o[0], &ts) < 0 || as_linktype(o[2], &linktype) < 0) return NULL;
    if (o[3] != NULL && as_i64(o[3], &tci) < 0) return NULL;
    if (o[4] != NULL && as_i64(o[4], &ifindex) < 0) return NULL;
    int r;
    if (PyBytes_CheckExact(o[1])) {
        r = add_one(t, ts, (const uint8_t *)PyBytes_AS_STRING(o[1]), (size_t)PyBytes_GET_SIZE(o[1]), linktype, tci,
                    ifindex);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(o[1], &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
        r = add_one(t, ts, view.buf, (size_t)view.len, linktype, tci, ifindex);
        PyBuffer_Release(&view);
    }
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

/* One of add_frames' integer columns: an array/buffer of native integers read in place, else a sequence. */
typedef struct {
    Py_buffer view;
    int has_view;
    char code;              /* struct format letter of the buffer */
    PyObject *seq;          /* PySequence_Fast, when not a buffer */
    Py_ssize_t len;
} Column;

static int column_open(Column *c, PyObject *o, const char *name) {
    c->has_view = 0;
    c->seq = NULL;
    if (PyObject_CheckBuffer(o) && !PyBytes_Check(o) && !PyByteArray_Check(o)) {
        if (PyObject_GetBuffer(o, &c->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
        const char *fmt = c->view.format ? c->view.format : "B";
        if (*fmt == '@' || *fmt == '=') fmt++;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        else if (*fmt == '<') fmt++;
#endif
        int ok = fmt[0] != 0 && fmt[1] == 0 && strchr("bBhHiIlLqQnN", fmt[0]) != NULL && c->view.ndim <= 1;
        if (ok) {
            c->has_view = 1;
            c->code = fmt[0];
            c->len = c->view.len / c->view.itemsize;
            return 0;
        }
        PyBuffer_Release(&c->view);
    }
    c->seq = PySequence_Fast(o, name);
    if (c->seq == NULL) return -1;
    c->len = PySequence_Fast_GET_SIZE(c->seq);
    return 0;
}

static void column_close(Column *c) {
    if (c->has_view) PyBuffer_Release(&c->view);
    c->has_view = 0;
    Py_CLEAR(c->seq);
}

static int column_get(const Column *c, Py_ssize_t i, int64_t *v) {
    if (c->seq != NULL) return as_i64(PySequence_Fast_GET_ITEM(c->seq, i), v);
    const char *p = (const char *)c->view.buf + i * c->view.itemsize;
    switch (c->code) {
    case 'b': { signed char x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'B': { unsigned char x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'h': { short x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'H': { unsigned short x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'i': { int x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'I': { unsigned int x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'l': { long x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'q': { long long x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    case 'n': { Py_ssize_t x; memcpy(&x, p, sizeof x); *v = x; return 0; }
    default: { /* L, Q, N: unsigned, as wide as int64 */
        unsigned long long x = 0;
        memcpy(&x, p, (size_t)c->view.itemsize < sizeof x ? (size_t)c->view.itemsize : sizeof x);
        if (x > (unsigned long long)INT64_MAX) {
            PyErr_SetString(PyExc_OverflowError, "FlowTable.add_frames(): a value does not fit in 64 bits");
            return -1;
        }
        *v = (int64_t)x;
        return 0;
    }
    }
}

static PyObject *FT_add_frames(FlowTableObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"frames", "ts_ns", "vlan_tci", "ifindex", "linktype"};
    PyObject *o[5];
    if (bind_args("add_frames", args, nargs, kwnames, names, 5, 5, o) < 0) return NULL;
    long long linktype;
    if (as_linktype(o[4], &linktype) < 0) return NULL;
    PyObject *frames = PySequence_Fast(o[0], "add_frames(): frames must be a sequence");
    if (frames == NULL) return NULL;
    Column col[3] = {{.seq = NULL}, {.seq = NULL}, {.seq = NULL}};
    PyObject *result = NULL;
    int opened = 0;
    for (; opened < 3; opened++) {
        if (column_open(&col[opened], o[opened + 1], "add_frames(): columns must be sequences") < 0) goto done;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(frames), lens[4] = {n, col[0].len, col[1].len, col[2].len};
    for (int i = 1; i < 4; i++) if (lens[i] < n) n = lens[i];
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t ts, tci, ifindex;
        if (column_get(&col[0], i, &ts) < 0 || column_get(&col[1], i, &tci) < 0
            || column_get(&col[2], i, &ifindex) < 0) goto done;
        PyObject *fr = PySequence_Fast_GET_ITEM(frames, i);
        int r;
        if (PyBytes_CheckExact(fr)) {
            r = add_one(t, ts, (const uint8_t *)PyBytes_AS_STRING(fr), (size_t)PyBytes_GET_SIZE(fr), linktype, tci,
                        ifindex);
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(fr, &view, PyBUF_C_CONTIGUOUS) < 0) goto done;
            r = add_one(t, ts, view.buf, (size_t)view.len, linktype, tci, ifindex);
            PyBuffer_Release(&view);
        }
        if (r < 0) goto done;
    }
    for (int i = 1; i < 4; i++) {
        if (lens[i] != lens[0]) { /* zip(strict=True): the common part is counted, then the error */
            PyErr_Format(PyExc_ValueError, "add_frames(): %s has %zd entries, frames %zd", names[i], lens[i], lens[0]);
            goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int i = 0; i < opened; i++) column_close(&col[i]);
    Py_DECREF(frames);
    return result;
}

static PyObject *FT_add_pcap(FlowTableObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"buf", "start", "linktype", "frac_ns", "big_endian", "limit"};
    PyObject *o[6];
    if (bind_args("add_pcap", args, nargs, kwnames, names, 5, 6, o) < 0) return NULL;
    int64_t start, frac_ns, limit = -1;
    long long linktype;
    if (as_i64(o[1], &start) < 0 || as_linktype(o[2], &linktype) < 0 || as_i64(o[3], &frac_ns) < 0) return NULL;
    if (o[5] != NULL && as_i64(o[5], &limit) < 0) return NULL;
    int big = PyObject_IsTrue(o[4]);
    if (big < 0) return NULL;
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "add_pcap(): start must not be negative");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(o[0], &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    const uint8_t *base = view.buf;
    size_t end = (size_t)view.len, off = (size_t)start;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    int swap = big;
#else
    int swap = !big;
#endif
    int64_t n = 0;
    int failed = 0;
    while ((limit < 0 || n < limit) && off <= end && end - off >= 16) {
        uint32_t w[4];
        memcpy(w, base + off, sizeof w);
        if (swap) for (int i = 0; i < 4; i++) w[i] = __builtin_bswap32(w[i]);
        size_t caplen = w[2];
        if (end - off - 16 < caplen) break;
        wide ts = (wide)w[0] * NS_PER_S + (wide)w[1] * frac_ns;
        if (ts > INT64_MAX || ts < INT64_MIN) {
            PyErr_Format(PyExc_OverflowError, "add_pcap(): the time stamp at byte %zu does not fit in 64 bits", off);
            failed = 1;
            break;
        }
        if (add_one(t, (int64_t)ts, base + off + 16, caplen, linktype, 0, 0) < 0) {
            failed = 1;
            break;
        }
        off += 16 + caplen;
        n++;
    }
    PyBuffer_Release(&view);
    if (failed) return NULL;
    return Py_BuildValue("(nL)", (Py_ssize_t)off, (long long)n);
}

static PyObject *FT_expire(FlowTableObject *t, PyObject *arg) {
    int64_t now;
    if (as_i64(arg, &now) < 0) return NULL;
    if (expire(t, now) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *FT_finish(FlowTableObject *t, PyObject *Py_UNUSED(ignored)) {
    for (uint32_t s = t->head; s != NIL;) {
        uint32_t next = t->e[s].next;
        int why = t->e[s].why;
        if (end_entry(t, s, why != W_NONE ? why : W_END) < 0) return NULL;
        s = next;
    }
    Py_RETURN_NONE;
}

static PyObject *record_tuple(const Entry *d) {
    const uint8_t *orig = d->orig_lo ? d->k.lo : d->k.hi, *resp = d->orig_lo ? d->k.hi : d->k.lo;
    return Py_BuildValue("(iiy#y#iiLLLLLLLLs#LO)", (int)d->k.vlan, (int)d->k.proto, (const char *)orig,
                         (Py_ssize_t)d->k.elen, (const char *)resp, (Py_ssize_t)d->k.elen, (int)d->sport,
                         (int)d->dport, (long long)d->ts, (long long)d->last, (long long)d->pkts[0],
                         (long long)d->pkts[1], (long long)d->ip[0], (long long)d->ip[1], (long long)d->pl[0],
                         (long long)d->pl[1], d->hist, (Py_ssize_t)d->hlen, (long long)d->ifindex, why_str[d->why]);
}

static PyObject *FT_take(FlowTableObject *t, PyObject *Py_UNUSED(ignored)) {
    PyObject *list = PyList_New((Py_ssize_t)t->ndone);
    if (list == NULL) return NULL;
    for (size_t i = 0; i < t->ndone; i++) {
        PyObject *r = record_tuple(&t->done[i]);
        if (r == NULL) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    t->ndone = 0;
    if (t->cap_done > 4096) { /* a finish() of a big table: give the memory back */
        PyMem_Free(t->done);
        t->done = NULL;
        t->cap_done = 0;
    }
    return list;
}

static PyObject *FT_stats(FlowTableObject *t, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("(LLLLLn)", t->packets, t->not_ip, t->flows, t->records, t->evicted, (Py_ssize_t)t->live);
}

static PyMethodDef FT_methods[] = {
    {"add", (PyCFunction)(void (*)(void))FT_add, METH_FASTCALL | METH_KEYWORDS,
     "add(ts_ns, data, linktype, vlan_tci=0, ifindex=0): count one packet (data from its link header on)."},
    {"add_frames", (PyCFunction)(void (*)(void))FT_add_frames, METH_FASTCALL | METH_KEYWORDS,
     "add_frames(frames, ts_ns, vlan_tci, ifindex, linktype): count a batch, one entry per frame in each."},
    {"add_pcap", (PyCFunction)(void (*)(void))FT_add_pcap, METH_FASTCALL | METH_KEYWORDS,
     "add_pcap(buf, start, linktype, frac_ns, big_endian, limit=-1) -> (offset, count): pcap records from buf."},
    {"expire", (PyCFunction)FT_expire, METH_O, "End the flows idle, open too long or closed past their grace."},
    {"finish", (PyCFunction)FT_finish, METH_NOARGS, "End every open flow."},
    {"take", (PyCFunction)FT_take, METH_NOARGS, "The flows finished since the last call, in the order they ended."},
    {"stats", (PyCFunction)FT_stats, METH_NOARGS, "(packets, not_ip, flows started, flows finished, evicted, open)."},
    {NULL}
};

static PyMemberDef FT_members[] = {
    {"idle_ns", T_LONGLONG, offsetof(FlowTableObject, idle_ns), READONLY, "idle timeout (ns)"},
    {"active_ns", T_LONGLONG, offsetof(FlowTableObject, active_ns), READONLY, "active timeout (ns)"},
    {"grace_ns", T_LONGLONG, offsetof(FlowTableObject, grace_ns), READONLY, "TCP close grace (ns)"},
    {"max_flows", T_LONGLONG, offsetof(FlowTableObject, max_flows), READONLY, "most flows open at once"},
    {NULL}
};

static PyTypeObject FlowTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "afpacket.ring._kernels.FlowTable",
    .tp_basicsize = sizeof(FlowTableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FlowTable(idle_ns, active_ns, grace_ns, max_flows): flows keyed by (VLAN, protocol, endpoints), "
              "ended by the timeouts, TCP's FIN/RST plus grace_ns, and eviction of the oldest "
              "(see afpacket.flows._table_py).",
    .tp_new = FT_new,
    .tp_dealloc = (destructor)FT_dealloc,
    .tp_methods = FT_methods,
    .tp_members = FT_members,
};

/* Called from PyInit__kernels: adds FlowTable to the module. */
int afp_flowtable_register(PyObject *module) {
    for (int i = 0; i < W_COUNT; i++) {
        if (why_str[i] == NULL && (why_str[i] = PyUnicode_InternFromString(WHY_TEXT[i])) == NULL) return -1;
    }
    if (PyType_Ready(&FlowTableType) < 0) return -1;
    PyObject *impl = PyUnicode_InternFromString("c");
    if (impl == NULL) return -1;
    int r = PyDict_SetItemString(FlowTableType.tp_dict, "IMPLEMENTATION", impl);
    Py_DECREF(impl);
    if (r < 0) return -1;
    PyType_Modified(&FlowTableType);
    Py_INCREF(&FlowTableType);
    if (PyModule_AddObject(module, "FlowTable", (PyObject *)&FlowTableType) < 0) {
        Py_DECREF(&FlowTableType);
        return -1;
    }
    return 0;
}
