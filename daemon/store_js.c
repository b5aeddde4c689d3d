/* The cluster's journal: fetched updates, completions and the offset on a JetStream stream (store.h). */
#include "store_js.h"
#include "store_js_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "jsutil.h"
#include "log.h"
#include "u64map.h"

/* Purge the stream below the oldest unfinished update at most this often. */
#define PURGE_EVERY_MS 1000
/* A stopped follow subscription drains on libnats' threads for at most this long. */
#define FOLLOW_DRAIN_MS 5000

static const struct store_ops sjs_ops;

static void note_jerr(struct sjs *s, jsErrCode jerr);
static void fold(struct sjs *s, natsMsg *m, uint64_t seq);
static int catch_up(struct sjs *s) __attribute__((warn_unused_result));
static void maybe_purge(struct sjs *s);

void sjs_seterr(struct sjs *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
	sjs_warn(s);
}

void sjs_warn(struct sjs *s)
{
	unsigned long held;

	/* The master retries a blocked write every second: a line now and then says it. */
	if (log_rate_pass(&s->warned, 10000, &held))
		log_warn("journal stream %s: %s%s", s->stream, s->errmsg,
		    held > 0 ? " (and earlier failures not logged)" : "");
}

static void note_jerr(struct sjs *s, jsErrCode jerr)
{
	s->full = jerr == JSStorageResourcesExceededErr || jerr == JSInsufficientResourcesErr;
}

void sjs_clear_ok(struct sjs *s)
{
	s->errmsg[0] = '\0';
	s->full = 0;
}

/* libnats' thread: the outcome of one async publish. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct jsu_sink *sink = closure;
	struct sjs *s = jsu_sink_enter(sink);
	const char *mid = NULL;
	struct ack *a;

	if (s == NULL) {
		/* The store is closed: an ack (or its timeout) that came late. */
		jsu_sink_leave(sink);
		jsu_msg_free(sink, msg);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (strcmp(natsMsg_GetSubject(msg), s->subj_off) == 0) {
		/* An offset note (sjs_add_batch): lost, it costs a new leader a re-fetch. */
		if (pa != NULL && pa->Sequence > s->off_note_seq)
			s->off_note_seq = pa->Sequence;
	} else if (pa != NULL && natsMsgHeader_Get(msg, "Nats-Msg-Id", &mid) == NATS_OK &&
	    mid != NULL) {
		if (s->nacks == s->acks_cap) {
			size_t cap = s->acks_cap ? s->acks_cap * 2 : 128;

			a = realloc(s->acks, cap * sizeof(*a));
			if (a == NULL) {
				s->nerr++;
				snprintf(s->ack_err, sizeof(s->ack_err), "out of memory");
				goto out;
			}
			s->acks = a;
			s->acks_cap = cap;
		}
		s->acks[s->nacks++] = (struct ack){ strtoll(mid, NULL, 10), pa->Sequence,
		    pa->Duplicate };
	} else if (pa == NULL && pae != NULL) {
		if (s->nerr++ == 0) {
			snprintf(s->ack_err, sizeof(s->ack_err), "%s",
			    pae->ErrText != NULL ? pae->ErrText : natsStatus_GetText(pae->Err));
			s->ack_jerr = pae->ErrCode;
		}
	}
out:
	pthread_mutex_unlock(&s->mu);
	jsu_sink_leave(sink);
	jsu_msg_free(sink, msg);
}

int sjs_publish(struct sjs *s, const char *subj, const char *msgid, int64_t offset,
    const char *body, size_t len)
{
	natsMsg *m = NULL;
	jsPubOptions po;
	char off[24];
	natsStatus st;

	/* Out of reach: fail now rather than after the timeout (the master retries). */
	if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
		s->full = 0;
		sjs_seterr(s, "not connected to NATS");
		return -1;
	}
	st = natsMsg_Create(&m, subj, NULL, body, (int)len);
	if (st == NATS_OK && msgid != NULL)
		st = natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
	if (st == NATS_OK && offset > 0) {
		snprintf(off, sizeof(off), "%lld", (long long)offset);
		st = natsMsgHeader_Set(m, JSU_HDR_OFFSET, off);
	}
	if (st == NATS_OK && strcmp(subj, s->subj_done) == 0)
		st = natsMsgHeader_Set(m, JSU_HDR_ORIGIN, s->origin);
	if (st == NATS_OK) {
		jsPubOptions_Init(&po);
		po.MaxWait = s->timeout_ms;
		st = jsu_publish(s->sink, s->js, &m, &po);
	}
	natsMsg_Destroy(m);
	if (st != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "js_PublishMsgAsync", subj, st, 0);
		sjs_warn(s);
		return -1;
	}
	return 0;
}

/* Wait for the acks of everything published; any failure fails the lot. */
int sjs_publish_wait(struct sjs *s, const char *what)
{
	jsPubOptions po;
	natsStatus st;
	int nerr;

	jsPubOptions_Init(&po);
	po.MaxWait = s->timeout_ms;
	st = js_PublishAsyncComplete(s->js, &po);
	if (st != NATS_OK) {
		/* Take them back: their acks, if any come, are not for the next batch. */
		jsu_async_drop_pending(s->js, s->sink);
		s->full = 0;
		sjs_seterr(s, "%s: no ack from JetStream within %lld ms (%s)", what,
		    (long long)s->timeout_ms, natsStatus_GetText(st));
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	nerr = s->nerr;
	s->nerr = 0;
	note_jerr(s, s->ack_jerr);
	s->ack_jerr = 0;
	pthread_mutex_unlock(&s->mu);
	if (nerr > 0) {
		sjs_seterr(s, "%s: %d publishes failed: %s", what, nerr, s->ack_err);
		return -1;
	}
	return 0;
}

void sjs_reset_acks(struct sjs *s)
{
	pthread_mutex_lock(&s->mu);
	s->nacks = 0;
	s->nerr = 0;
	s->ack_jerr = 0;
	pthread_mutex_unlock(&s->mu);
}

const struct ack *sjs_find_ack(const struct sjs *s, int64_t id, size_t hint)
{
	if (hint < s->nacks && s->acks[hint].id == id)
		return &s->acks[hint];
	for (size_t i = 0; i < s->nacks; i++)
		if (s->acks[i].id == id)
			return &s->acks[i];
	return NULL;
}

int sjs_add_entry(struct sjs *s, int64_t id, uint64_t seq, const char *body, size_t len)
{
	struct entry *e = malloc(sizeof(*e) + len + 1);

	if (e == NULL)
		return -1;
	e->seq = seq;
	e->attempt = 0;
	e->len = len;
	memcpy(e->body, body, len);
	e->body[len] = '\0';
	if (u64map_put(&s->pend, (uint64_t)id, e) == -1) {
		free(e);
		return -1;
	}
	return 0;
}

void sjs_drop_entry(struct sjs *s, int64_t id)
{
	free(u64map_del(&s->pend, (uint64_t)id));
}

static void note_offset(struct sjs *s, int64_t off, uint64_t seq)
{
	if (off > s->offset)
		s->offset = off;
	if (seq > s->offset_seq)
		s->offset_seq = seq;
}

/* ---- the stream, folded ---- */

static int64_t header_int(natsMsg *m, const char *key, int64_t dflt)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == NULL)
		return dflt;
	return strtoll(v, NULL, 10);
}

static void push_note(struct sjs *s, int64_t id, int dead)
{
	struct note *n;

	if (s->nnotes == s->notes_cap) {
		size_t cap = s->notes_cap ? s->notes_cap * 2 : 64;

		n = realloc(s->notes, cap * sizeof(*n));
		if (n == NULL) {
			log_err("journal stream %s: out of memory; completion of update "
			    "%lld not delivered", s->stream, (long long)id);
			return;
		}
		s->notes = n;
		s->notes_cap = cap;
	}
	s->notes[s->nnotes++] = (struct note){ id, dead };
}

/* Apply one journal message; each sequence once, in order. */
static void fold(struct sjs *s, natsMsg *m, uint64_t seq)
{
	const char *subj = natsMsg_GetSubject(m), *data = natsMsg_GetData(m), *origin = NULL;
	int len = natsMsg_GetDataLength(m);
	char buf[48], *end;
	int64_t id;
	struct entry *e;

	if (seq <= s->read_seq)
		return;
	s->read_seq = seq;
	if (strcmp(subj, s->subj_upd) == 0) {
		id = header_int(m, "Nats-Msg-Id", -1);
		if (id < 0)
			return;
		note_offset(s, header_int(m, JSU_HDR_OFFSET, 0), seq);
		e = u64map_get(&s->pend, (uint64_t)id);
		if (e != NULL) {
			if (e->seq == 0)
				e->seq = seq;
		} else if (sjs_add_entry(s, id, seq, data != NULL ? data : "", (size_t)len) == -1) {
			log_err("journal stream %s: out of memory for update %lld",
			    s->stream, (long long)id);
		}
		return;
	}
	snprintf(buf, sizeof(buf), "%.*s", len < 47 ? len : 47, data != NULL ? data : "");
	id = strtoll(buf, &end, 10);
	if (end == buf)
		return;
	if (strcmp(subj, s->subj_done) == 0) {
		sjs_drop_entry(s, id);
		if (s->on_done != NULL && (natsMsgHeader_Get(m, JSU_HDR_ORIGIN, &origin)
		    != NATS_OK || origin == NULL || strcmp(origin, s->origin) != 0))
			push_note(s, id, strcmp(end, " dead") == 0);
	} else if (strcmp(subj, s->subj_off) == 0) {
		note_offset(s, id, seq);
	}
}

static void forget_all(struct sjs *s)
{
	size_t it = 0;
	uint64_t k;
	void *v;

	while (u64map_next(&s->pend, &it, &k, &v))
		free(v);
	u64map_free(&s->pend);
	u64map_init(&s->pend);
}

/* Fold what the stream holds beyond read_seq; an ordered consumer reads it in one go. */
static int catch_up(struct sjs *s)
{
	natsSubscription *sub = NULL;
	jsMsgMetaData *meta = NULL;
	jsErrCode jerr = 0;
	jsSubOptions so;
	natsMsg *m = NULL;
	uint64_t last, seq;
	natsStatus st;

	if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
		sjs_seterr(s, "not connected to NATS");
		return -1;
	}
	if (jsu_stream_state(s->js, s->stream, &s->st, s->errmsg, sizeof(s->errmsg)) == -1) {
		sjs_warn(s);
		return -1;
	}
	last = s->st.LastSeq;
	if (last <= s->read_seq || s->st.Msgs == 0) {
		if (last > s->read_seq)
			s->read_seq = last;
		return 0;
	}
	/* Purged past what we folded (by another leader): fold it all again. */
	if (s->read_seq > 0 && s->st.FirstSeq > s->read_seq + 1) {
		forget_all(s);
		s->read_seq = 0;
	}
	jsSubOptions_Init(&so);
	so.Stream = s->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = s->read_seq + 1 > s->st.FirstSeq ? s->read_seq + 1 :
	    s->st.FirstSeq;
	st = js_SubscribeSync(&sub, s->js, s->subj_all, NULL, &so, &jerr);
	if (st != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "js_SubscribeSync", s->stream, st, jerr);
		sjs_warn(s);
		return -1;
	}
	natsSubscription_SetPendingLimits(sub, -1, -1);
	for (seq = s->read_seq; seq < last;) {
		/* An idle limit, not a total one: a long stream takes what it takes. */
		st = natsSubscription_NextMsg(&m, sub, s->timeout_ms);
		if (st != NATS_OK)
			break;
		st = natsMsg_GetMetaData(&meta, m);
		if (st != NATS_OK) {
			natsMsg_Destroy(m);
			break;
		}
		seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
		fold(s, m, seq);
		natsMsg_Destroy(m);
	}
	jsu_sub_end(sub, s->timeout_ms);
	if (st != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "reading the stream", s->stream, st, 0);
		log_warn("journal stream %s: %s (at sequence %llu of %llu)", s->stream,
		    s->errmsg, (unsigned long long)seq, (unsigned long long)last);
		return -1;
	}
	return 0;
}

/*
 * Below the oldest unfinished update everything is finished: purge it, now
 * and then. Never past what we folded (another leader may have written it),
 * nor the newest message that tells the offset.
 */
static void maybe_purge(struct sjs *s)
{
	uint64_t upto = s->read_seq + 1, k;
	int64_t now = clock_ms();
	jsErrCode jerr = 0;
	jsOptions o;
	natsStatus st;
	size_t it = 0;
	void *v;

	if (now - s->purged_at < PURGE_EVERY_MS)
		return;
	s->purged_at = now;
	pthread_mutex_lock(&s->mu);
	if (s->off_note_seq > s->offset_seq)
		s->offset_seq = s->off_note_seq;
	pthread_mutex_unlock(&s->mu);
	if (s->offset_seq > 0 && s->offset_seq < upto)
		upto = s->offset_seq;
	while (u64map_next(&s->pend, &it, &k, &v)) {
		const struct entry *e = v;

		if (e->seq > 0 && e->seq < upto)
			upto = e->seq;
	}
	/* Sequence 0 would purge it all. */
	if (upto <= 1 || upto <= s->st.FirstSeq)
		return;
	jsOptions_Init(&o);
	o.Wait = s->timeout_ms;
	o.Stream.Purge.Sequence = upto;
	st = js_PurgeStream(s->js, s->stream, &o, &jerr);
	if (st != NATS_OK) {
		char e[200];

		jsu_errf(e, sizeof(e), "js_PurgeStream", s->stream, st, jerr);
		log_warn("journal stream %s: %s", s->stream, e);
		return;
	}
	s->st.FirstSeq = upto;
}

/* ---- store.h ---- */

static int sjs_add_batch(struct store *st, const struct store_rec *r, size_t n, int64_t off)
{
	struct sjs *s = S(st);
	const struct ack *a;
	jsPubAck *pa = NULL;
	jsPubOptions po;
	natsMsg *m = NULL;
	char buf[24];
	natsStatus ns;
	jsErrCode jerr = 0;
	int fresh = 0;
	size_t i;

	if (n == 0) {
		/* The offset alone: its own message, acked before we return. */
		snprintf(buf, sizeof(buf), "%lld", (long long)off);
		jsPubOptions_Init(&po);
		po.MaxWait = s->timeout_ms;
		ns = natsMsg_Create(&m, s->subj_off, NULL, buf, (int)strlen(buf));
		if (ns == NATS_OK)
			ns = js_PublishMsg(&pa, s->js, m, &po, &jerr);
		natsMsg_Destroy(m);
		if (ns != NATS_OK) {
			note_jerr(s, jerr);
			jsu_errf(s->errmsg, sizeof(s->errmsg), "js_PublishMsg", s->subj_off, ns, jerr);
			sjs_warn(s);
			return -1;
		}
		note_offset(s, off, pa->Sequence);
		jsPubAck_Destroy(pa);
		sjs_clear_ok(s);
		return 0;
	}
	/*
	 * Each message tells the offset before this batch: the batch before was
	 * stored whole. This one's own offset follows as a note once every ack
	 * is in. A batch cut short (its leader stopped mid-publish) is fetched
	 * again by the next leader, and none of it is confirmed to Telegram first.
	 */
	sjs_reset_acks(s);
	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%lld", (long long)r[i].update_id);
		if (sjs_publish(s, s->subj_upd, buf, s->offset, r[i].body, r[i].len) == -1) {
			sjs_publish_wait(s, "store a batch");
			return -1;
		}
	}
	if (sjs_publish_wait(s, "store a batch") == -1)
		return -1;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < n; i++) {
		a = sjs_find_ack(s, r[i].update_id, i);
		/*
		 * A duplicate was stored before (a batch fetched again): the master
		 * runs it all the same, so it is unfinished until its completion.
		 */
		if (u64map_get(&s->pend, (uint64_t)r[i].update_id))
			continue;
		if (sjs_add_entry(s, r[i].update_id, a != NULL ? a->seq : 0, r[i].body,
		    r[i].len) == -1) {
			/* Stored all the same: a replay finds it. */
			log_err("journal stream %s: out of memory for update %lld",
			    s->stream, (long long)r[i].update_id);
			continue;
		}
		fresh += a == NULL || !a->dup;
	}
	pthread_mutex_unlock(&s->mu);
	note_offset(s, off, 0);
	snprintf(buf, sizeof(buf), "%lld", (long long)off);
	if (sjs_publish(s, s->subj_off, NULL, 0, buf, strlen(buf)) == -1)
		log_debug("journal stream %s: no offset note for this batch; a new "
		    "leader would fetch it again", s->stream);
	sjs_clear_ok(s);
	return fresh;
}

static int last_offset(struct sjs *s, const char *subj, int64_t *best)
{
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus st;
	char buf[24];
	int len;

	st = js_GetLastMsg(&m, s->js, s->stream, subj, NULL, &jerr);
	if (st == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
		return 0;
	if (st != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "js_GetLastMsg", subj, st, jerr);
		sjs_warn(s);
		return -1;
	}
	if (strcmp(subj, s->subj_upd) == 0) {
		int64_t v = header_int(m, JSU_HDR_OFFSET, 0);

		if (v > *best)
			*best = v;
	} else {
		len = natsMsg_GetDataLength(m);
		snprintf(buf, sizeof(buf), "%.*s", len < 23 ? len : 23, natsMsg_GetData(m));
		if (strtoll(buf, NULL, 10) > *best)
			*best = strtoll(buf, NULL, 10);
	}
	natsMsg_Destroy(m);
	return 0;
}

int sjs_offset(struct store *st, int64_t *out)
{
	struct sjs *s = S(st);
	int64_t best = s->offset;

	/* Another leader may have stored batches since: ask the stream. */
	if (last_offset(s, s->subj_upd, &best) == -1 || last_offset(s, s->subj_off, &best) == -1)
		return -1;
	s->offset = best;
	*out = best;
	sjs_clear_ok(s);
	return 0;
}

static int sjs_done(struct store *st, int64_t id)
{
	struct sjs *s = S(st);
	int64_t *p;

	if (s->ndone == s->done_cap) {
		size_t cap = s->done_cap ? s->done_cap * 2 : 256;

		p = realloc(s->done, cap * sizeof(*p));
		if (p == NULL) {
			errno = ENOMEM;
			return -1;
		}
		s->done = p;
		s->done_cap = cap;
	}
	s->done[s->ndone++] = id;
	return 0;
}

static size_t sjs_done_pending(const struct store *st)
{
	return ((const struct sjs *)st)->ndone;
}

static int sjs_flush(struct store *st)
{
	struct sjs *s = S(st);
	char buf[24];
	size_t i;

	if (s->ndone == 0)
		return 0;
	sjs_reset_acks(s);
	for (i = 0; i < s->ndone; i++) {
		snprintf(buf, sizeof(buf), "%lld", (long long)s->done[i]);
		if (sjs_publish(s, s->subj_done, NULL, 0, buf, strlen(buf)) == -1) {
			sjs_publish_wait(s, "store completions");
			return -1;
		}
	}
	if (sjs_publish_wait(s, "store completions") == -1)
		return -1;
	for (i = 0; i < s->ndone; i++)
		sjs_drop_entry(s, s->done[i]);
	s->ndone = 0;
	maybe_purge(s);
	sjs_clear_ok(s);
	return 0;
}

static int sjs_set_attempt(struct store *st, int64_t id, int attempt)
{
	struct entry *e = u64map_get(&S(st)->pend, (uint64_t)id);

	if (e != NULL)
		e->attempt = attempt;
	return 0;
}

int sjs_cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int sjs_replay(struct store *st, store_update_cb cb, void *arg)
{
	struct sjs *s = S(st);
	size_t it = 0, n = 0, i;
	int64_t *ids;
	struct entry *e;
	uint64_t k;
	void *v;
	int r = 0;

	/* Unflushed completions are finished work: store them, else skip them. */
	if (s->ndone > 0 && sjs_flush(st) == -1)
		qsort(s->done, s->ndone, sizeof(*s->done), sjs_cmp_id);
	if (catch_up(s) == -1)
		return -1;
	ids = malloc((s->pend.count + 1) * sizeof(*ids));
	if (ids == NULL) {
		sjs_seterr(s, "replay: out of memory");
		return -1;
	}
	while (u64map_next(&s->pend, &it, &k, &v))
		ids[n++] = (int64_t)k;
	qsort(ids, n, sizeof(*ids), sjs_cmp_id);
	for (i = 0; i < n && r == 0; i++) {
		if (s->ndone > 0 && bsearch(&ids[i], s->done, s->ndone, sizeof(*s->done),
		    sjs_cmp_id) != NULL)
			continue;
		e = u64map_get(&s->pend, (uint64_t)ids[i]);
		if (e != NULL)
			r = cb(arg, ids[i], e->body, e->len, e->attempt);
	}
	free(ids);
	/* Completions the catch-up folded go out from the loop, not from in here. */
	if (s->nnotes > 0 && s->q != NULL)
		jsq_kick(s->q);
	sjs_clear_ok(s);
	return r;
}

static const char *sjs_errmsg(const struct store *st)
{
	return ((const struct sjs *)st)->errmsg;
}

static bool sjs_disk_full(const struct store *st)
{
	return ((const struct sjs *)st)->full;
}

/* The last state seen: metrics must not wait for a request. */
static int64_t sjs_size_bytes(const struct store *st)
{
	const struct sjs *s = (const struct sjs *)st;

	return s->st.LastSeq > 0 ? (int64_t)s->st.Bytes : -1;
}

/* ---- following the completions ---- */

static void follow_unref(struct follow *fl)
{
	int last;

	pthread_mutex_lock(&fl->mu);
	last = --fl->refs == 0;
	pthread_mutex_unlock(&fl->mu);
	if (last) {
		pthread_mutex_destroy(&fl->mu);
		free(fl);
	}
}

/* libnats: the subscription is closed and its handler runs no more. */
static void on_sub_complete(void *closure)
{
	struct follow *fl = closure;
	natsSubscription *sub;

	pthread_mutex_lock(&fl->mu);
	fl->completed = 1;
	sub = fl->sub;
	fl->sub = NULL;
	pthread_mutex_unlock(&fl->mu);
	natsSubscription_Destroy(sub);
	follow_unref(fl);
}

/* libnats' thread: hand the message to the loop. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct follow *fl = closure;
	struct fmsg *f;

	pthread_mutex_lock(&fl->mu);
	if (fl->closed || (f = malloc(sizeof(*f))) == NULL) {
		if (!fl->closed)
			log_err("journal stream: out of memory; a journal message is "
			    "lost until the next replay");
		pthread_mutex_unlock(&fl->mu);
		natsMsg_Destroy(msg);
		return;
	}
	f->msg = msg;
	jsq_push(fl->q, &f->node);
	pthread_mutex_unlock(&fl->mu);
}

/* Stop following without waiting for the server (it may be out of reach). */
static void follow_stop(struct sjs *s)
{
	struct follow *fl = s->fl;
	struct jsq_node *left, *next;
	int own = 1;

	if (fl != NULL) {
		pthread_mutex_lock(&fl->mu);
		fl->closed = 1;
		pthread_mutex_unlock(&fl->mu);
		/*
		 * Drained on libnats' threads, then destroyed by on_sub_complete():
		 * destroyed now, it could go while libnats reads a message for it
		 * (jsutil.h, jsu_sub_end). Not while disconnected: nothing is read
		 * then, and a drain across the reconnection corrupted the heap
		 * inside libnats 3.4 (a leader cut off from NATS, in CI).
		 */
		if (s->sub != NULL &&
		    natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED &&
		    natsSubscription_DrainTimeout(s->sub, FOLLOW_DRAIN_MS) == NATS_OK) {
			pthread_mutex_lock(&fl->mu);
			if (!fl->completed && fl->refs > 1) {	/* its callback is set */
				fl->sub = s->sub;
				own = 0;
			}
			pthread_mutex_unlock(&fl->mu);
		}
		follow_unref(fl);
		s->fl = NULL;
	}
	if (own)
		natsSubscription_Destroy(s->sub);
	s->sub = NULL;
	for (left = jsq_free(s->q); left != NULL; left = next) {
		next = left->next;
		natsMsg_Destroy(((struct fmsg *)left)->msg);
		free(left);
	}
	s->q = NULL;
	s->on_done = NULL;
}

static void on_follow(void *arg, struct jsq_node *list)
{
	struct sjs *s = arg;
	jsMsgMetaData *meta = NULL;
	struct jsq_node *next;
	struct note *notes;
	size_t n;

	for (; list != NULL; list = next) {
		struct fmsg *f = (struct fmsg *)list;

		next = list->next;
		if (natsMsg_GetMetaData(&meta, f->msg) == NATS_OK) {
			fold(s, f->msg, meta->Sequence.Stream);
			jsMsgMetaData_Destroy(meta);
		}
		natsMsg_Destroy(f->msg);
		free(f);
	}
	/* on_done may call back into the store: hand it a list of its own. */
	notes = s->notes;
	n = s->nnotes;
	s->notes = NULL;
	s->nnotes = s->notes_cap = 0;
	for (size_t i = 0; i < n; i++)
		s->on_done(s->arg, notes[i].id, notes[i].dead);
	free(notes);
}

int store_js_follow(struct store *st, struct event_base *base,
    void (*on_done)(void *arg, int64_t update_id, int dead), void *arg)
{
	struct sjs *s = S(st);
	jsErrCode jerr = 0;
	jsSubOptions so;
	natsStatus ns;

	if (s->q != NULL) {
		snprintf(s->errmsg, sizeof(s->errmsg), "already following");
		return -1;
	}
	s->q = jsq_new(base, on_follow, s);
	if (s->q == NULL) {
		snprintf(s->errmsg, sizeof(s->errmsg), "follow: %s", strerror(errno));
		return -1;
	}
	s->fl = calloc(1, sizeof(*s->fl));
	if (s->fl == NULL) {
		free(jsq_free(s->q));
		s->q = NULL;
		snprintf(s->errmsg, sizeof(s->errmsg), "follow: out of memory");
		return -1;
	}
	pthread_mutex_init(&s->fl->mu, NULL);
	s->fl->refs = 1;
	s->fl->q = s->q;
	s->on_done = on_done;
	s->arg = arg;
	jsSubOptions_Init(&so);
	so.Stream = s->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = s->read_seq + 1;
	ns = js_Subscribe(&s->sub, s->js, s->subj_all, on_msg, s->fl, NULL, &so, &jerr);
	if (ns == NATS_OK)
		ns = natsSubscription_SetPendingLimits(s->sub, -1, -1);
	if (ns == NATS_OK) {
		ns = natsSubscription_SetOnCompleteCB(s->sub, on_sub_complete, s->fl);
		if (ns == NATS_OK)
			s->fl->refs++;
	}
	if (ns != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "js_Subscribe", s->subj_all, ns, jerr);
		sjs_warn(s);
		follow_stop(s);
		return -1;
	}
	return 0;
}

int store_js_info(struct store *st, struct store_js_info *out)
{
	struct sjs *s = S(st);

	if (jsu_stream_state(s->js, s->stream, &s->st, s->errmsg, sizeof(s->errmsg)) == -1)
		return -1;
	out->messages = s->st.Msgs;
	out->bytes = s->st.Bytes;
	out->first_seq = s->st.FirstSeq;
	out->last_seq = s->st.LastSeq;
	return 0;
}

/* ---- open and close ---- */

static void sjs_close(struct store *st)
{
	struct sjs *s = S(st);

	if (s->ndone > 0 && sjs_flush(st) == -1)
		log_warn("journal stream %s: %zu completions not stored; those updates "
		    "will run again", s->stream, s->ndone);
	follow_stop(s);
	/* Acks and ack timeouts may still come: they find the sink retired. */
	jsu_async_settle(s->js, s->sink, s->timeout_ms);
	jsu_async_free(s->js, s->sink);
	kvStore_Destroy(s->dead);
	forget_all(s);
	u64map_free(&s->pend);
	pthread_mutex_destroy(&s->mu);
	free(s->acks);
	free(s->notes);
	free(s->done);
	free(s);
}

static const struct store_ops sjs_ops = {
	.add_batch = sjs_add_batch, .offset = sjs_offset, .done = sjs_done,
	.done_pending = sjs_done_pending, .flush = sjs_flush,
	.set_attempt = sjs_set_attempt, .replay = sjs_replay,
	.dead_letter = sjs_dead_letter, .dead_list = sjs_dead_list,
	.dead_get = sjs_dead_get, .dead_retry = sjs_dead_retry,
	.dead_drop = sjs_dead_drop, .dead_count = sjs_dead_count,
	.errmsg = sjs_errmsg, .disk_full = sjs_disk_full,
	.size_bytes = sjs_size_bytes, .close = sjs_close,
};

struct store *store_js_open(natsConnection *nc, jsCtx *js, const char *bot_name, int replicas,
    int64_t timeout_ms, char *err, size_t errlen)
{
	struct sjs *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "journal stream: out of memory");
		return NULL;
	}
	s->store.ops = &sjs_ops;
	s->nc = nc;
	s->timeout_ms = timeout_ms;
	u64map_init(&s->pend);
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->origin, sizeof(s->origin), "%ld-%llx", (long)getpid(),
	    (unsigned long long)clock_us() ^ (unsigned long long)(uintptr_t)s);
	if (jsu_stream_name(s->stream, sizeof(s->stream), bot_name, "JOURNAL") == -1 ||
	    jsu_stream_name(s->bucket, sizeof(s->bucket), bot_name, "DEAD") == -1 ||
	    jsu_subject(s->subj_all, sizeof(s->subj_all), bot_name, "journal.>") == -1 ||
	    jsu_subject(s->subj_upd, sizeof(s->subj_upd), bot_name, "journal.upd") == -1 ||
	    jsu_subject(s->subj_done, sizeof(s->subj_done), bot_name, "journal.done") == -1 ||
	    jsu_subject(s->subj_off, sizeof(s->subj_off), bot_name, "journal.offset") == -1) {
		snprintf(err, errlen, "journal stream: bot name too long");
		goto fail;
	}
	if (jsu_async_ctx(nc, timeout_ms, on_ack, s, s->stream, &s->js, &s->sink, err,
	    errlen) != 0)
		goto fail;
	if (jsu_journal_stream(s->js, bot_name, replicas, err, errlen) == -1)
		goto fail;
	s->dead = jsu_dead_bucket(s->js, bot_name, replicas, err, errlen);
	if (s->dead == NULL)
		goto fail;
	return &s->store;
fail:
	sjs_close(&s->store);
	return NULL;
}
