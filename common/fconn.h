/* A frame connection: a socket read into and written from evbuffers with as few system calls as the loop allows. */
#ifndef TGRUN_FCONN_H
#define TGRUN_FCONN_H

#include <event2/buffer.h>
#include <event2/event.h>

/*
 * Why not a bufferevent: a socket bufferevent asks the kernel how much is
 * readable (FIONREAD) before every read, and registers for writability
 * (epoll_ctl) every time its output goes from empty to not empty and back.
 * Here output is written at the end of the loop turn that queued it, and
 * writability is watched only while the socket's buffer is full.
 */
struct fconn;

/* Bytes arrived (in `in`); or the peer closed / the socket failed (`in` NULL). */
typedef void (*fconn_cb)(struct fconn *c, struct evbuffer *in, void *arg);

/* Watch `fd` (made non-blocking); closed by fconn_free(). NULL when out of memory. */
struct fconn *fconn_new(struct event_base *base, int fd, fconn_cb cb, void *arg);
void fconn_free(struct fconn *c);
int fconn_fd(const struct fconn *c);
struct evbuffer *fconn_input(struct fconn *c);
/* Queue frames here, then fconn_kick(): they go out at the end of this turn. */
struct evbuffer *fconn_output(struct fconn *c);
void fconn_kick(struct fconn *c);
/* Stop reading (what is queued is still written). */
void fconn_stop_reading(struct fconn *c);
/*
 * Read what the socket still holds into the input, without waiting (the
 * peer has exited). Returns the bytes read, or -1 on an error.
 */
ssize_t fconn_drain_socket(struct fconn *c);
/* Write what is queued with blocking writes (the process is about to exit). */
void fconn_flush_blocking(struct fconn *c);

#endif
