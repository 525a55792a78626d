/*
 * reference-relay.c — the "near-limit reference" for Switchboard's load tests.
 *
 * A minimal plain-C libwebsockets 4.1.6 server on a libev foreign loop that implements the subset of
 * the Switchboard WebSocket protocol the load generator exercises:
 *
 *   on connect      -> {"type":"welcome","session":"s..","resume":"x","heartbeat":10,"user":null}
 *   join            -> joined (to the joiner), peer-joined (to the others),
 *                      call (to everybody, when the room becomes active with its second member)
 *   signal          -> {"type":"signal","from":"<sender>","data":<data copied byte for byte>}
 *   leave / close   -> peer-left (reason "left")
 *   ref             -> copied into ack / error / joined
 *   errors          -> bad_request, not_in_room, not_found, conflict, room_full, too_large, rate_limited
 *
 * It does what the Swift server does on the hot path (JSON scan of every request, per-connection rate
 * limit, bounded per-connection write queue, one lws_write per WRITEABLE with LWS_PRE headroom) and
 * nothing else (no store, no auth, no chat persistence), so it shows how close the Swift server gets to
 * what libwebsockets itself allows on this machine.
 *
 * Build:  cc -O2 -o reference-relay reference-relay.c $(pkg-config --cflags --libs libwebsockets) -lev
 * Run:    ./reference-relay PORT [--rate-limit N] [--heartbeat S]
 *         PORT 0 picks a free port; prints "listening on http://127.0.0.1:PORT" on stdout.
 *         --rate-limit: messages per second per connection, bursts of twice that (default 100, 0 = off).
 *         --heartbeat: seconds of silence before a ping; silent for two heartbeats -> closed (default 10).
 * Stop:   SIGINT or SIGTERM: every WebSocket is closed with 1001, exit status 0.
 */

#define EV_COMPAT3 0
#include <ev.h>
#include <libwebsockets.h>

#include <ctype.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MESSAGE_BYTES   (64 * 1024)          /* larger messages: too_large */
#define MAX_FRAME_BYTES     (4 * MAX_MESSAGE_BYTES) /* larger: close 1009 */
#define MAX_QUEUE_MSGS      1024
#define MAX_QUEUE_BYTES     (1024 * 1024)
#define MAX_ROOM_PEERS      50
#define ERROR_BUDGET        30
#define ROOM_BUCKETS        65536

/* ------------------------------------------------------------------------------------------------ */
/* Data                                                                                               */

struct qmsg {
	struct qmsg *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE headroom, then the payload */
};

struct room;

struct pss { /* lws per-session memory, zeroed by lws; valid until LWS_CALLBACK_CLOSED returns */
	struct lws *wsi;
	struct pss *prev_conn, *next_conn; /* list of all connections (for shutdown) */
	uint64_t serial;
	char peer[24];           /* "p<serial>" */
	int peer_len;
	char *name;              /* raw JSON string token, quotes included */
	size_t name_len;
	struct room *room;
	struct qmsg *qhead, *qtail;
	size_t qcount, qbytes;
	char *rx;                /* reassembly buffer for fragmented messages */
	size_t rxlen, rxcap;
	int rx_discard;          /* current message is over the limit: drop the rest of it */
	double tokens;           /* rate limit bucket */
	double err_tokens;       /* error budget */
	double last_refill;
	int closing;             /* 1001 going away (shutdown) */
	int kill_status;         /* close with this status at the next WRITEABLE (1008) */
	int established;
};

struct room {
	struct room *next;       /* hash chain */
	char key[65];            /* upper case, no dashes */
	char code[65];           /* upper case, as given */
	size_t code_len;
	uint64_t serial;
	char started_at[32];     /* "" = not started */
	int n;
	struct pss *members[MAX_ROOM_PEERS];
};

static struct lws_context *context;
static struct ev_loop *loop;
static struct room *rooms[ROOM_BUCKETS];
static struct pss *conns;
static size_t conn_count;
static uint64_t next_serial = 1, next_room_serial = 1;
static double rate_limit = 100.0;
static int heartbeat = 10;
static int shutting_down;
static double shutdown_deadline;
static ev_timer kick_timer, drain_timer;
static ev_signal sigint_w, sigterm_w;

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                      */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sb { char *p; size_t len, cap; };

static void sb_put(struct sb *b, const void *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) { perror("realloc"); exit(1); }
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}
static void sb_str(struct sb *b, const char *s) { sb_put(b, s, strlen(s)); }
static struct sb scratch; /* reused for every outgoing message (single-threaded) */

/* ------------------------------------------------------------------------------------------------ */
/* A JSON scan: finds the raw tokens of the top-level members we need, validating structure loosely.  */

struct tok { const char *p; size_t n; };
struct req { struct tok type, room, name, to, data, ref; };

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at '"': returns the position after the closing quote, or NULL */
static const char *skip_string(const char *p, const char *e)
{
	p++;
	while (p < e) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c == '\\') {
			if (p + 1 >= e)
				return NULL;
			p += 2;
			continue;
		}
		if (c < 0x20)
			return NULL;
		p++;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *e, int depth)
{
	if (p >= e || depth > 32)
		return NULL;
	switch (*p) {
	case '"':
		return skip_string(p, e);
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		int obj = *p == '{';
		p = skip_ws(p + 1, e);
		if (p < e && *p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				if (p >= e || *p != '"' || !(p = skip_string(p, e)))
					return NULL;
				p = skip_ws(p, e);
				if (p >= e || *p != ':')
					return NULL;
				p = skip_ws(p + 1, e);
			}
			if (!(p = skip_value(p, e, depth + 1)))
				return NULL;
			p = skip_ws(p, e);
			if (p >= e)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p = skip_ws(p + 1, e);
		}
	}
	default: {
		const char *s = p;
		while (p < e && (isalnum((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.'))
			p++;
		if (p == s)
			return NULL;
		return p;
	}
	}
}

#define KEYIS(k, n, lit) ((n) == sizeof(lit) - 1 && !memcmp((k), (lit), sizeof(lit) - 1))

static int scan_request(const char *p, size_t len, struct req *r)
{
	const char *e = p + len;
	memset(r, 0, sizeof(*r));
	p = skip_ws(p, e);
	if (p >= e || *p != '{')
		return -1;
	p = skip_ws(p + 1, e);
	if (p < e && *p == '}')
		return skip_ws(p + 1, e) == e ? 0 : -1;
	for (;;) {
		const char *k, *v;
		size_t kn;
		if (p >= e || *p != '"')
			return -1;
		k = p + 1;
		if (!(p = skip_string(p, e)))
			return -1;
		kn = (size_t)(p - 1 - k);
		p = skip_ws(p, e);
		if (p >= e || *p != ':')
			return -1;
		p = skip_ws(p + 1, e);
		v = p;
		if (!(p = skip_value(p, e, 1)))
			return -1;
		struct tok t = { v, (size_t)(p - v) };
		if (KEYIS(k, kn, "type")) r->type = t;
		else if (KEYIS(k, kn, "room")) r->room = t;
		else if (KEYIS(k, kn, "name")) r->name = t;
		else if (KEYIS(k, kn, "to")) r->to = t;
		else if (KEYIS(k, kn, "data")) r->data = t;
		else if (KEYIS(k, kn, "ref")) r->ref = t;
		p = skip_ws(p, e);
		if (p >= e)
			return -1;
		if (*p == '}')
			return skip_ws(p + 1, e) == e ? 0 : -1;
		if (*p != ',')
			return -1;
		p = skip_ws(p + 1, e);
	}
}

static int is_string(struct tok t) { return t.n >= 2 && t.p[0] == '"'; }
static int tok_is(struct tok t, const char *lit) { size_t n = strlen(lit); return t.n == n && !memcmp(t.p, lit, n); }

/* ------------------------------------------------------------------------------------------------ */
/* Output queue                                                                                       */

static void kill_conn(struct pss *c, int status)
{
	if (c->kill_status || c->closing)
		return;
	c->kill_status = status;
	lws_callback_on_writable(c->wsi);
	/* a consumer that never becomes writable again is dropped anyway */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
}

static void send_raw(struct pss *c, const char *data, size_t len)
{
	struct qmsg *m;
	if (c->closing || c->kill_status || !c->established)
		return;
	if (c->qcount >= MAX_QUEUE_MSGS || c->qbytes + len > MAX_QUEUE_BYTES) {
		kill_conn(c, LWS_CLOSE_STATUS_POLICY_VIOLATION); /* slow consumer */
		return;
	}
	m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m) { perror("malloc"); exit(1); }
	m->next = NULL;
	m->len = len;
	memcpy(m->buf + LWS_PRE, data, len);
	if (c->qtail)
		c->qtail->next = m;
	else
		c->qhead = m;
	c->qtail = m;
	c->qbytes += len;
	if (c->qcount++ == 0)
		lws_callback_on_writable(c->wsi);
}

static void send_sb(struct pss *c, struct sb *b) { send_raw(c, b->p, b->len); }

static void free_queue(struct pss *c)
{
	struct qmsg *m = c->qhead, *n;
	while (m) { n = m->next; free(m); m = n; }
	c->qhead = c->qtail = NULL;
	c->qcount = c->qbytes = 0;
}

static void send_error(struct pss *c, const char *code, const char *message, struct tok ref)
{
	struct sb *b = &scratch;
	b->len = 0;
	sb_str(b, "{\"type\":\"error\",\"code\":\"");
	sb_str(b, code);
	sb_str(b, "\",\"message\":\"");
	sb_str(b, message);
	sb_str(b, "\"");
	if (is_string(ref)) { sb_str(b, ",\"ref\":"); sb_put(b, ref.p, ref.n); }
	sb_str(b, "}");
	send_sb(c, b);
	c->err_tokens -= 1;
	if (c->err_tokens < 0)
		kill_conn(c, LWS_CLOSE_STATUS_POLICY_VIOLATION);
}

static void send_ack(struct pss *c, struct tok ref)
{
	struct sb *b = &scratch;
	if (!is_string(ref))
		return;
	b->len = 0;
	sb_str(b, "{\"type\":\"ack\",\"ref\":");
	sb_put(b, ref.p, ref.n);
	sb_str(b, "}");
	send_sb(c, b);
}

/* ------------------------------------------------------------------------------------------------ */
/* Rooms                                                                                              */

static uint32_t hash_key(const char *k)
{
	uint32_t h = 2166136261u;
	while (*k) { h ^= (unsigned char)*k++; h *= 16777619u; }
	return h & (ROOM_BUCKETS - 1);
}

static void call_object(struct sb *b, struct room *r)
{
	char tmp[160];
	snprintf(tmp, sizeof tmp, "{\"id\":\"r%llu\",\"code\":\"", (unsigned long long)r->serial);
	sb_str(b, tmp);
	sb_put(b, r->code, r->code_len);
	sb_str(b, "\",\"status\":\"");
	sb_str(b, r->started_at[0] ? "active" : "waiting");
	sb_str(b, "\",\"started_at\":");
	if (r->started_at[0]) { sb_str(b, "\""); sb_str(b, r->started_at); sb_str(b, "\""); }
	else sb_str(b, "null");
	snprintf(tmp, sizeof tmp, ",\"ended_at\":null,\"participants\":%d,\"recording\":false,\"locked\":false}", r->n);
	sb_str(b, tmp);
}

static void leave_room(struct pss *c, int notify)
{
	struct room *r = c->room;
	int i, j;
	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		if (r->members[i] == c)
			break;
	for (j = i; j + 1 < r->n; j++)
		r->members[j] = r->members[j + 1];
	if (i < r->n)
		r->n--;
	c->room = NULL;
	if (notify && r->n) {
		struct sb *b = &scratch;
		b->len = 0;
		sb_str(b, "{\"type\":\"peer-left\",\"peer\":\"");
		sb_put(b, c->peer, (size_t)c->peer_len);
		sb_str(b, "\",\"reason\":\"left\"}");
		for (i = 0; i < r->n; i++)
			send_sb(r->members[i], b);
	}
	if (!r->n) { /* open rooms live while they have members */
		struct room **pp = &rooms[hash_key(r->key)];
		while (*pp && *pp != r)
			pp = &(*pp)->next;
		if (*pp)
			*pp = r->next;
		free(r);
	}
}

static void do_join(struct pss *c, struct req *q)
{
	char key[65], code[65];
	size_t i, kn = 0, cn = 0, rn;
	const char *rp;
	struct room *r;
	struct sb *b = &scratch;
	int k;

	if (!is_string(q->room) || !is_string(q->name) || q->name.n < 3 || q->name.n > 66 + 64 * 5) {
		send_error(c, "bad_request", "join needs room and name", q->ref);
		return;
	}
	rp = q->room.p + 1;
	rn = q->room.n - 2;
	if (rn < 1 || rn > 64) {
		send_error(c, "bad_request", "invalid room code", q->ref);
		return;
	}
	for (i = 0; i < rn; i++) {
		char ch = rp[i];
		if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_')) {
			send_error(c, "bad_request", "invalid room code", q->ref);
			return;
		}
		ch = (char)toupper((unsigned char)ch);
		code[cn++] = ch;
		if (ch != '-')
			key[kn++] = ch;
	}
	key[kn] = 0;
	code[cn] = 0;
	if (c->room) {
		send_error(c, "conflict", "already in a room: leave first", q->ref);
		return;
	}
	uint32_t h = hash_key(key);
	for (r = rooms[h]; r; r = r->next)
		if (!strcmp(r->key, key))
			break;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) { perror("calloc"); exit(1); }
		memcpy(r->key, key, kn + 1);
		memcpy(r->code, code, cn + 1);
		r->code_len = cn;
		r->serial = next_room_serial++;
		r->next = rooms[h];
		rooms[h] = r;
	}
	if (r->n >= MAX_ROOM_PEERS) {
		send_error(c, "room_full", "the room is full", q->ref);
		return;
	}
	free(c->name);
	c->name = malloc(q->name.n);
	memcpy(c->name, q->name.p, q->name.n);
	c->name_len = q->name.n;
	r->members[r->n++] = c;
	c->room = r;
	int activated = 0;
	if (r->n == 2 && !r->started_at[0]) {
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(r->started_at, sizeof r->started_at, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
		activated = 1;
	}

	/* joined, to the joiner */
	b->len = 0;
	sb_str(b, "{\"type\":\"joined\",\"room\":\"");
	sb_put(b, r->code, r->code_len);
	sb_str(b, "\",\"peer\":\"");
	sb_put(b, c->peer, (size_t)c->peer_len);
	sb_str(b, "\",\"role\":\"guest\",\"peers\":[");
	for (k = 0; k < r->n - 1; k++) {
		struct pss *o = r->members[k];
		if (k)
			sb_str(b, ",");
		sb_str(b, "{\"peer\":\"");
		sb_put(b, o->peer, (size_t)o->peer_len);
		sb_str(b, "\",\"name\":");
		sb_put(b, o->name, o->name_len);
		sb_str(b, ",\"role\":\"guest\"}");
	}
	sb_str(b, "],\"chat\":[],\"call\":");
	call_object(b, r);
	if (is_string(q->ref)) { sb_str(b, ",\"ref\":"); sb_put(b, q->ref.p, q->ref.n); }
	sb_str(b, "}");
	send_sb(c, b);

	/* peer-joined, to the others */
	b->len = 0;
	sb_str(b, "{\"type\":\"peer-joined\",\"peer\":\"");
	sb_put(b, c->peer, (size_t)c->peer_len);
	sb_str(b, "\",\"name\":");
	sb_put(b, c->name, c->name_len);
	sb_str(b, ",\"role\":\"guest\"}");
	for (k = 0; k < r->n - 1; k++)
		send_sb(r->members[k], b);

	/* call, to everybody, when the room becomes active */
	if (activated) {
		b->len = 0;
		sb_str(b, "{\"type\":\"call\",\"call\":");
		call_object(b, r);
		sb_str(b, "}");
		for (k = 0; k < r->n; k++)
			send_sb(r->members[k], b);
	}
}

static void do_signal(struct pss *c, struct req *q)
{
	struct room *r = c->room;
	struct pss *t = NULL;
	struct sb *b = &scratch;
	int k;

	if (!is_string(q->to) || !q->data.n) {
		send_error(c, "bad_request", "signal needs to and data", q->ref);
		return;
	}
	if (!r) {
		send_error(c, "not_in_room", "join a room first", q->ref);
		return;
	}
	for (k = 0; k < r->n; k++) {
		struct pss *o = r->members[k];
		if ((size_t)o->peer_len == q->to.n - 2 && !memcmp(o->peer, q->to.p + 1, q->to.n - 2)) {
			t = o;
			break;
		}
	}
	if (!t) {
		send_error(c, "not_found", "no such peer in this room", q->ref);
		return;
	}
	if (t == c) {
		send_error(c, "bad_request", "cannot signal oneself", q->ref);
		return;
	}
	b->len = 0;
	sb_str(b, "{\"type\":\"signal\",\"from\":\"");
	sb_put(b, c->peer, (size_t)c->peer_len);
	sb_str(b, "\",\"data\":");
	sb_put(b, q->data.p, q->data.n);
	sb_str(b, "}");
	send_sb(t, b);
	send_ack(c, q->ref);
}

static void handle_message(struct pss *c, const char *msg, size_t len)
{
	struct req q;
	double now = now_s();
	double dt = now - c->last_refill;
	c->last_refill = now;
	if (rate_limit > 0) {
		c->tokens += dt * rate_limit;
		if (c->tokens > 2 * rate_limit)
			c->tokens = 2 * rate_limit;
	}
	c->err_tokens += dt;
	if (c->err_tokens > ERROR_BUDGET)
		c->err_tokens = ERROR_BUDGET;

	if (scan_request(msg, len, &q) || !is_string(q.type)) {
		send_error(c, "bad_request", "not a JSON object with a type", q.ref);
		return;
	}
	if (rate_limit > 0) {
		if (c->tokens < 1) {
			send_error(c, "rate_limited", "too many messages", q.ref);
			return;
		}
		c->tokens -= 1;
	}
	if (tok_is(q.type, "\"signal\""))
		do_signal(c, &q);
	else if (tok_is(q.type, "\"join\""))
		do_join(c, &q);
	else if (tok_is(q.type, "\"leave\"")) {
		if (!c->room)
			send_error(c, "not_in_room", "not in a room", q.ref);
		else {
			leave_room(c, 1);
			send_ack(c, q.ref);
		}
	} else
		send_error(c, "bad_request", "unsupported message type", q.ref);
}

/* ------------------------------------------------------------------------------------------------ */
/* lws                                                                                                */

static int callback_switchboard(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
				size_t len)
{
	struct pss *c = (struct pss *)user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		char uri[128];
		if (shutting_down)
			return 1;
		if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0)
			return 1;
		if (strcmp(uri, "/ws") && strcmp(uri, "/ws/"))
			return 1;
		return 0;
	}

	case LWS_CALLBACK_ESTABLISHED: {
		char tmp[200];
		c->wsi = wsi;
		c->serial = next_serial++;
		c->peer_len = snprintf(c->peer, sizeof c->peer, "p%llu", (unsigned long long)c->serial);
		c->tokens = 2 * rate_limit;
		c->err_tokens = ERROR_BUDGET;
		c->last_refill = now_s();
		c->established = 1;
		c->next_conn = conns;
		if (conns)
			conns->prev_conn = c;
		conns = c;
		conn_count++;
		int n = snprintf(tmp, sizeof tmp,
				 "{\"type\":\"welcome\",\"session\":\"s%llx%08x\",\"resume\":\"x\",\"heartbeat\":%d,"
				 "\"user\":null}",
				 (unsigned long long)c->serial, (unsigned)rand(), heartbeat);
		send_raw(c, tmp, (size_t)n);
		break;
	}

	case LWS_CALLBACK_RECEIVE: {
		int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
		if (!c || !c->established)
			break;
		if (lws_frame_is_binary(wsi)) {
			if (final) {
				struct tok none = { 0 };
				send_error(c, "bad_request", "binary frames are not supported", none);
			}
			break;
		}
		if (first) {
			c->rxlen = 0;
			c->rx_discard = 0;
			if (final && !lws_remaining_packet_payload(wsi)) { /* the common case: one piece */
				if (len > MAX_MESSAGE_BYTES) {
					struct tok none = { 0 };
					send_error(c, "too_large", "message too large", none);
				} else
					handle_message(c, (const char *)in, len);
				break;
			}
		}
		if (!c->rx_discard) {
			if (c->rxlen + len > MAX_MESSAGE_BYTES) {
				c->rx_discard = 1;
				c->rxlen = 0;
			} else {
				if (c->rxlen + len > c->rxcap) {
					size_t cap = c->rxcap ? c->rxcap : 4096;
					while (cap < c->rxlen + len)
						cap *= 2;
					c->rx = realloc(c->rx, cap);
					c->rxcap = cap;
				}
				memcpy(c->rx + c->rxlen, in, len);
				c->rxlen += len;
			}
		}
		if (c->rx_discard && lws_remaining_packet_payload(wsi) > MAX_FRAME_BYTES) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
			return -1;
		}
		if (final && !lws_remaining_packet_payload(wsi)) {
			if (c->rx_discard) {
				struct tok none = { 0 };
				send_error(c, "too_large", "message too large", none);
			} else
				handle_message(c, c->rx, c->rxlen);
			c->rxlen = 0;
			c->rx_discard = 0;
		}
		break;
	}

	case LWS_CALLBACK_SERVER_WRITEABLE: {
		struct qmsg *m;
		if (!c)
			break;
		if (c->closing) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"server shutdown", 15);
			return -1;
		}
		if (c->kill_status) {
			lws_close_reason(wsi, (enum lws_close_status)c->kill_status, (unsigned char *)"slow consumer", 13);
			return -1;
		}
		m = c->qhead;
		if (!m)
			break;
		if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		c->qhead = m->next;
		if (!c->qhead)
			c->qtail = NULL;
		c->qcount--;
		c->qbytes -= m->len;
		free(m);
		if (c->qhead)
			lws_callback_on_writable(wsi);
		break;
	}

	case LWS_CALLBACK_CLOSED:
		if (!c || !c->established)
			break;
		leave_room(c, !shutting_down);
		free_queue(c);
		free(c->rx);
		free(c->name);
		c->rx = c->name = NULL;
		if (c->prev_conn)
			c->prev_conn->next_conn = c->next_conn;
		else
			conns = c->next_conn;
		if (c->next_conn)
			c->next_conn->prev_conn = c->prev_conn;
		c->established = 0;
		conn_count--;
		break;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[] = {
	{ "switchboard", callback_switchboard, sizeof(struct pss), 16384, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ------------------------------------------------------------------------------------------------ */
/* libev: timer workaround, signals, shutdown                                                         */

/* The 4.1.6 libev plugin may fail to re-arm its own timer: make lws look at its timers every 250 ms. */
static void kick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l; (void)w; (void)revents;
	if (context)
		lws_cancel_service(context);
}

static void drain_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w; (void)revents;
	if (conn_count && now_s() < shutdown_deadline)
		return;
	ev_timer_stop(l, &drain_timer);
	ev_timer_stop(l, &kick_timer);
	ev_signal_stop(l, &sigint_w);
	ev_signal_stop(l, &sigterm_w);
	lws_context_destroy(context); /* from a timer callback, never from inside an lws callback */
	context = NULL;
	ev_break(l, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	struct pss *c;
	(void)w; (void)revents;
	if (shutting_down)
		return;
	shutting_down = 1;
	for (c = conns; c; c = c->next_conn) {
		c->closing = 1;
		lws_callback_on_writable(c->wsi);
	}
	shutdown_deadline = now_s() + 0.5; /* clients that never become writable are hard-closed then */
	ev_timer_init(&drain_timer, drain_cb, 0.005, 0.005);
	ev_timer_start(l, &drain_timer);
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_context *pcontext_slot = NULL;
	void *foreign_loops[1];
	static lws_retry_bo_t retry;
	struct lws_vhost *vh;
	int port, i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT [--rate-limit N] [--heartbeat S]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	for (i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rate-limit"))
			rate_limit = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--heartbeat"))
			heartbeat = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (heartbeat < 1)
		heartbeat = 1;
	signal(SIGPIPE, SIG_IGN);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	lws_set_log_level(LLL_ERR | LLL_WARN | LLL_USER, NULL);

	loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!loop) {
		fprintf(stderr, "ev_loop_new failed\n");
		return 1;
	}
	foreign_loops[0] = loop;

	retry.secs_since_valid_ping = (uint16_t)heartbeat;
	retry.secs_since_valid_hangup = (uint16_t)(2 * heartbeat);

	memset(&info, 0, sizeof info);
	info.port = port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = foreign_loops;
	info.pcontext = &pcontext_slot;
	info.retry_and_idle_policy = &retry;
	info.timeout_secs = 10;

	context = lws_create_context(&info);
	if (!context) {
		fprintf(stderr, "lws_create_context failed\n");
		return 1;
	}
	pcontext_slot = context;
	vh = lws_get_vhost_by_name(context, "default");
	if (!vh) {
		fprintf(stderr, "no default vhost\n");
		return 1;
	}
	printf("listening on http://127.0.0.1:%d\n", lws_get_vhost_listen_port(vh));
	fflush(stdout);

	ev_timer_init(&kick_timer, kick_cb, 0.25, 0.25);
	ev_timer_start(loop, &kick_timer);
	ev_signal_init(&sigint_w, signal_cb, SIGINT);
	ev_signal_start(loop, &sigint_w);
	ev_signal_init(&sigterm_w, signal_cb, SIGTERM);
	ev_signal_start(loop, &sigterm_w);

	ev_run(loop, 0);

	if (context) { /* the loop ended some other way */
		lws_context_destroy(context);
		context = NULL;
	}
	ev_run(loop, EVRUN_NOWAIT);
	ev_loop_destroy(loop);
	return 0;
}
