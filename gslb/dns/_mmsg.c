/* The UDP batch loop's system calls and per-datagram copies, in C (gslb/dns/mmsg.py).
 *
 * A Batch owns the preallocated buffers of one socket: `receive` reads up to `size`
 * datagrams with one recvmmsg(2), `answer_cached` runs the cached-answer callable over
 * them and queues the replies it gives, `queue` queues any other reply, and `send` sends
 * what is queued with one sendmmsg(2). Everything else (the peer's address as text, the
 * full path, rate limiting, logging) stays in Python; mmsg.py's ctypes class of the same
 * methods is this module's pure-Python twin, and tests hold the two byte for byte equal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __linux__
/* (Python.h defines _GNU_SOURCE, which declares recvmmsg and sendmmsg.) */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define NAME_SIZE ((socklen_t)sizeof(struct sockaddr_in6))

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned int size;      /* datagrams per call */
    Py_ssize_t max_query;   /* bytes kept of each datagram (longer ones are cut) */
    Py_ssize_t max_reply;   /* bytes of each reply slot */
    unsigned int received;  /* datagrams of the last receive */
    char *ready;            /* per datagram: its reply is queued (in its own slot) */
    char *inbox, *outbox;
    struct sockaddr_in6 *names;
    struct iovec *in_iov, *out_iov;
    struct mmsghdr *in_msgs, *out_msgs;
} Batch;

static void Batch_dealloc(Batch *self) {
    PyMem_Free(self->ready);
    PyMem_Free(self->inbox);
    PyMem_Free(self->outbox);
    PyMem_Free(self->names);
    PyMem_Free(self->in_iov);
    PyMem_Free(self->out_iov);
    PyMem_Free(self->in_msgs);
    PyMem_Free(self->out_msgs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Batch_init(Batch *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"fd", "size", "max_query", "max_reply", NULL};
    int fd;
    unsigned int size;
    Py_ssize_t max_query, max_reply;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iInn", keywords, &fd, &size, &max_query,
                                     &max_reply))
        return -1;
    if (size == 0 || size > 1024 || max_query <= 0 || max_reply <= 0) {
        PyErr_SetString(PyExc_ValueError, "size 1..1024, buffer sizes positive");
        return -1;
    }
    if (self->inbox != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Batch is initialised once");
        return -1;
    }
    self->fd = fd;
    self->size = size;
    self->max_query = max_query;
    self->max_reply = max_reply;
    self->ready = PyMem_Calloc(size, 1);
    self->inbox = PyMem_Calloc(size, (size_t)max_query);
    self->outbox = PyMem_Calloc(size, (size_t)max_reply);
    self->names = PyMem_Calloc(size, sizeof(struct sockaddr_in6));
    self->in_iov = PyMem_Calloc(size, sizeof(struct iovec));
    self->out_iov = PyMem_Calloc(size, sizeof(struct iovec));
    self->in_msgs = PyMem_Calloc(size, sizeof(struct mmsghdr));
    self->out_msgs = PyMem_Calloc(size, sizeof(struct mmsghdr));
    if (!self->ready || !self->inbox || !self->outbox || !self->names || !self->in_iov || !self->out_iov ||
        !self->in_msgs || !self->out_msgs) {
        PyErr_NoMemory();
        return -1;
    }
    for (unsigned int i = 0; i < size; i++) {
        self->in_iov[i].iov_base = self->inbox + (size_t)i * max_query;
        self->in_iov[i].iov_len = (size_t)max_query;
        self->out_iov[i].iov_base = self->outbox + (size_t)i * max_reply;
        self->in_msgs[i].msg_hdr.msg_name = &self->names[i];
        self->in_msgs[i].msg_hdr.msg_iov = &self->in_iov[i];
        self->in_msgs[i].msg_hdr.msg_iovlen = 1;
        self->out_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    return 0;
}

static int check_index(Batch *self, Py_ssize_t i) {
    if (i < 0 || i >= (Py_ssize_t)self->received) {
        PyErr_SetString(PyExc_IndexError, "no such datagram in this batch");
        return -1;
    }
    return 0;
}

static PyObject *Batch_receive(Batch *self, PyObject *unused) {
    int count;
    for (unsigned int i = 0; i < self->size; i++)
        self->in_msgs[i].msg_hdr.msg_namelen = NAME_SIZE;
    memset(self->ready, 0, self->received);
    self->received = 0;
    Py_BEGIN_ALLOW_THREADS
    count = recvmmsg(self->fd, self->in_msgs, self->size, MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    if (count < 0)
        return PyLong_FromLong(-(long)errno);
    self->received = (unsigned int)count;
    return PyLong_FromLong(count);
}

static PyObject *wire_of(Batch *self, Py_ssize_t i) {
    return PyBytes_FromStringAndSize(self->inbox + i * self->max_query,
                                     (Py_ssize_t)self->in_msgs[i].msg_len);
}

static PyObject *Batch_wire(Batch *self, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i) < 0)
        return NULL;
    return wire_of(self, i);
}

static PyObject *Batch_name(Batch *self, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i) < 0)
        return NULL;
    socklen_t length = self->in_msgs[i].msg_hdr.msg_namelen;
    if (length > NAME_SIZE)
        length = NAME_SIZE;
    return PyBytes_FromStringAndSize((const char *)&self->names[i], (Py_ssize_t)length);
}

/* Queue `size` bytes at `data` as the reply to datagram `i`: 0, or -1 when too large. */
static int put(Batch *self, Py_ssize_t i, const char *data, Py_ssize_t size) {
    if (size > self->max_reply)
        return -1;
    memcpy(self->out_iov[i].iov_base, data, (size_t)size);
    self->out_iov[i].iov_len = (size_t)size;
    self->ready[i] = 1;
    return 0;
}

static PyObject *Batch_queue(Batch *self, PyObject *args) {
    Py_ssize_t i;
    Py_buffer reply;
    if (!PyArg_ParseTuple(args, "ny*", &i, &reply))
        return NULL;
    PyObject *result = NULL;
    if (check_index(self, i) == 0)
        result = PyBool_FromLong(put(self, i, reply.buf, reply.len) == 0);
    PyBuffer_Release(&reply);
    return result;
}

/* cached(wire) for every datagram; the replies it gives are queued. Returns the indexes
 * of the rest for Python to answer: i where cached gave None, -1 - i where it raised or
 * gave what cannot be sent (Python asks it again, to log what goes wrong). */
static PyObject *Batch_answer_cached(Batch *self, PyObject *cached) {
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)self->received; i++) {
        PyObject *wire = wire_of(self, i);
        if (wire == NULL)
            goto fail;
        PyObject *reply = PyObject_CallOneArg(cached, wire);
        Py_DECREF(wire);
        Py_ssize_t left = -1 - i;
        if (reply == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                goto fail; /* KeyboardInterrupt, SystemExit: not ours to swallow */
            PyErr_Clear();
        } else {
            if (reply == Py_None)
                left = i;
            else if (PyBytes_CheckExact(reply) &&
                     put(self, i, PyBytes_AS_STRING(reply), PyBytes_GET_SIZE(reply)) == 0)
                left = PY_SSIZE_T_MAX; /* answered */
            Py_DECREF(reply);
            if (left == PY_SSIZE_T_MAX)
                continue;
        }
        PyObject *index = PyLong_FromSsize_t(left);
        if (index == NULL || PyList_Append(rest, index) < 0) {
            Py_XDECREF(index);
            goto fail;
        }
        Py_DECREF(index);
    }
    return rest;
fail:
    Py_DECREF(rest);
    return NULL;
}

/* Send what is queued. A full send buffer drops the rest (the clients ask again); any
 * other error (an ICMP error reported for that peer) skips one reply. */
static PyObject *Batch_send(Batch *self, PyObject *unused) {
    unsigned int sent = 0, queued = 0;
    long skipped = 0, dropped = 0;
    /* In the order of the datagrams, each reply to the address its query came from. */
    for (unsigned int i = 0; i < self->received; i++) {
        if (!self->ready[i])
            continue;
        struct msghdr *out = &self->out_msgs[queued++].msg_hdr;
        out->msg_iov = &self->out_iov[i];
        out->msg_name = &self->names[i];
        out->msg_namelen = self->in_msgs[i].msg_hdr.msg_namelen;
    }
    while (sent < queued) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = sendmmsg(self->fd, self->out_msgs + sent, queued - sent, MSG_DONTWAIT);
        Py_END_ALLOW_THREADS
        if (done > 0) {
            sent += (unsigned int)done;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            dropped = queued - sent;
            break;
        } else if (errno != EINTR) {
            sent++;
            skipped++;
        }
    }
    memset(self->ready, 0, self->received);
    return Py_BuildValue("(ll)", skipped, dropped);
}

static PyMethodDef Batch_methods[] = {
    {"receive", (PyCFunction)Batch_receive, METH_NOARGS,
     "Read a batch: the number of datagrams, or -errno (EAGAIN: none waiting)."},
    {"wire", (PyCFunction)Batch_wire, METH_O, "Datagram i of the batch, as received."},
    {"name", (PyCFunction)Batch_name, METH_O, "The raw sockaddr datagram i came from."},
    {"queue", (PyCFunction)Batch_queue, METH_VARARGS,
     "queue(i, reply): send reply to datagram i's sender; False when it does not fit."},
    {"answer_cached", (PyCFunction)Batch_answer_cached, METH_O,
     "answer_cached(cached): queue cached(wire) of each datagram; the indexes left over."},
    {"send", (PyCFunction)Batch_send, METH_NOARGS,
     "Send the queued replies: (skipped for errors, dropped for a full buffer)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gslb.dns._mmsg.Batch",
    .tp_doc = "Batch(fd, size, max_query, max_reply): recvmmsg/sendmmsg buffers of a socket.",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Batch_init,
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_methods = Batch_methods,
};
#endif /* __linux__ */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mmsg", "recvmmsg/sendmmsg batches for gslb's UDP loop (Linux).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__mmsg(void) {
#ifdef __linux__
    if (PyType_Ready(&BatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&BatchType);
    if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(&BatchType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
#else
    PyErr_SetString(PyExc_ImportError, "gslb.dns._mmsg needs Linux (recvmmsg/sendmmsg)");
    return NULL;
#endif
}
