/* The stream layer's per-loop state: the read buffer every stream reads
 * into, the free lists of write records and of chunks of copied bytes, the
 * spare descriptor for accepting when out of descriptors, and the lists of
 * streams, listeners and connects that freeing the loop ends. Attached to
 * the loop through core's hooks on first use. */
#include "stream_int.h"

#include <fcntl.h>
#include <unistd.h>

static void streams_close(mo_loop_t *loop, void *state);
static void streams_free(mo_loop_t *loop, void *state);

static const struct mo__hooks streams_hooks = {"stream", 3, streams_close, streams_free};

static void list_init(struct mo__snode *head)
{
    head->next = head->prev = head;
}

int mo__streams_get(mo_loop_t *loop, struct mo__streams **cp)
{
    struct mo__streams *c = mo__loop_state(loop, &streams_hooks);
    if (c) {
        *cp = c;
        return c->closing ? MO_ESHUTDOWN : 0;
    }
    if (loop->closed) return MO_ESHUTDOWN;
    c = mo__calloc(1, sizeof *c);
    if (!c) return MO_ENOMEM;
    c->loop = loop;
    c->spare_fd = -1;
    list_init(&c->streams);
    list_init(&c->listeners);
    list_init(&c->connects);
    int err = mo__loop_attach(loop, &streams_hooks, c);
    if (err) {
        mo__free(c);
        return err;
    }
    *cp = c;
    return 0;
}

char *mo__streams_rbuf(struct mo__streams *c)
{
    if (!c->rbuf) c->rbuf = mo__malloc(MO__READ_SIZE);
    return c->rbuf;
}

struct mo__wrec *mo__wrec_get(struct mo__streams *c)
{
    if (!c->free_rec) {
        struct mo__wslab *slab = mo__malloc(sizeof *slab);
        if (!slab) return NULL;
        slab->next = c->slabs;
        c->slabs = slab;
        for (unsigned i = 0; i < MO__WREC_SLAB; i++) {
            slab->recs[i].next = c->free_rec;
            c->free_rec = &slab->recs[i];
        }
    }
    struct mo__wrec *r = c->free_rec;
    c->free_rec = r->next;
    r->next = NULL;
    return r;
}

void mo__wrec_put(struct mo__streams *c, struct mo__wrec *r)
{
    r->next = c->free_rec;
    c->free_rec = r;
}

struct mo__sbuf *mo__sbuf_get(struct mo__streams *c)
{
    struct mo__sbuf *b = c->free_sbuf;
    if (b) {
        c->free_sbuf = b->next;
        c->nfree_sbuf--;
    } else if (!(b = mo__malloc(sizeof *b + MO__SBUF_SIZE))) {
        return NULL;
    }
    b->next = NULL;
    b->ctx = c;
    b->used = 0;
    b->refs = 0; /* one per record that points into it */
    return b;
}

void mo__sbuf_release(void *sbuf)
{
    struct mo__sbuf *b = sbuf;
    if (--b->refs) return;
    struct mo__streams *c = b->ctx;
    if (c->nfree_sbuf >= MO__SBUF_KEEP) {
        mo__free(b);
        return;
    }
    b->next = c->free_sbuf;
    c->free_sbuf = b;
    c->nfree_sbuf++;
}

int mo__streams_spare(struct mo__streams *c)
{
    if (c->spare_fd >= 0) return 0;
    c->spare_fd = open("/", O_RDONLY | O_CLOEXEC);
    return c->spare_fd >= 0 ? 0 : mo__errno();
}

/* mo_loop_close(): refuse new connects; the resolver's jobs finish in the
 * work layer's close, and their connects then give up. */
static void streams_close(mo_loop_t *loop, void *state)
{
    (void)loop;
    struct mo__streams *c = state;
    c->closing = true;
}

/* mo_loop_free(): ends everything still open, then frees the state. */
static void streams_free(mo_loop_t *loop, void *state)
{
    (void)loop;
    struct mo__streams *c = state;
    /* The user's callbacks run here (errbacks, on_lost) and may end other
     * streams or close their listeners: listeners go last. */
    while (c->connects.next != &c->connects)
        mo__connect_free_now((struct mo__connect *)(void *)c->connects.next);
    while (c->streams.next != &c->streams)
        mo__stream_free_now((mo_stream_t *)(void *)c->streams.next);
    while (c->listeners.next != &c->listeners)
        mo__listener_free_now((mo_listener_t *)(void *)c->listeners.next);
    while (c->slabs) {
        struct mo__wslab *s = c->slabs;
        c->slabs = s->next;
        mo__free(s);
    }
    while (c->free_sbuf) {
        struct mo__sbuf *b = c->free_sbuf;
        c->free_sbuf = b->next;
        mo__free(b);
    }
    if (c->spare_fd >= 0) close(c->spare_fd);
    mo__free(c->rbuf);
    mo__free(c);
}
