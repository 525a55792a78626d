// What Swift cannot import from libwebsockets and libev directly: constants and macros.
#ifndef SWITCHBOARD_LWS_SHIM_H
#define SWITCHBOARD_LWS_SHIM_H

#define EV_COMPAT3 0
#include <ev.h>
#include <libwebsockets.h>

/// Headroom lws needs before a buffer passed to lws_write().
enum { SB_LWS_PRE = LWS_PRE };

static inline void sb_lws_log_error(const char *msg) { _lws_log(LLL_ERR, "%s\n", msg); }

/// Create a libev loop that does not touch the process signal mask.
static inline struct ev_loop *sb_ev_loop_new(void) {
    return ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
}

typedef void (*sb_ev_async_cb)(struct ev_loop *, ev_async *, int);
typedef void (*sb_ev_timer_cb)(struct ev_loop *, ev_timer *, int);
typedef void (*sb_ev_signal_cb)(struct ev_loop *, ev_signal *, int);

static inline void sb_ev_async_init(ev_async *w, sb_ev_async_cb cb) { ev_async_init(w, cb); }
static inline void sb_ev_timer_init(ev_timer *w, sb_ev_timer_cb cb, double after, double repeat) {
    ev_timer_init(w, cb, after, repeat);
}
static inline void sb_ev_signal_init(ev_signal *w, sb_ev_signal_cb cb, int signum) {
    ev_signal_init(w, cb, signum);
}
static inline void sb_ev_break_all(struct ev_loop *loop) { ev_break(loop, EVBREAK_ALL); }
static inline void sb_ev_run_nowait(struct ev_loop *loop) { ev_run(loop, EVRUN_NOWAIT); }
static inline double sb_ev_now(struct ev_loop *loop) { return ev_now(loop); }

#endif
