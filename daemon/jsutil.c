/* What the JetStream modules (store_js, workq) share: names, streams and buckets, a hand-over to the loop. */
#include "jsutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"

int jsu_stream_name(char *buf, size_t len, const char *bot_name, const char *what)
{
	int n = snprintf(buf, len, "TGRUN_%s_%s", bot_name, what);

	if (n < 0 || (size_t)n >= len)
		return -1;
	/* Stream names may not hold '.', '*', '>', '/', '\' or white space. */
	for (char *p = buf; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			*p = '_';
	return 0;
}

int jsu_subject(char *buf, size_t len, const char *bot_name, const char *what)
{
	int n = snprintf(buf, len, "tgrun.%s.%s", bot_name, what);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

void jsu_errf(char *err, size_t errlen, const char *call, const char *what,
    natsStatus s, jsErrCode jerr)
{
	const char *last = nats_GetLastError(NULL);

	if (jerr != 0)
		snprintf(err, errlen, "%s(%s): %s (JetStream error %d)", call, what,
		    natsStatus_GetText(s), (int)jerr);
	else if (last != NULL && *last != '\0')
		snprintf(err, errlen, "%s(%s): %s", call, what, last);
	else
		snprintf(err, errlen, "%s(%s): %s", call, what, natsStatus_GetText(s));
}

int jsu_stream(jsCtx *js, jsStreamConfig *cfg, char *err, size_t errlen)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	s = js_GetStreamInfo(&si, js, cfg->Name, NULL, &jerr);
	if (s == NATS_OK) {
		if (si->Config != NULL && si->Config->Replicas != cfg->Replicas)
			log_warn("cluster: stream %s has %lld replicas, not %lld as "
			    "configured; kept as it is", cfg->Name,
			    (long long)si->Config->Replicas, (long long)cfg->Replicas);
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND) {
		jsu_errf(err, errlen, "js_GetStreamInfo", cfg->Name, s, jerr);
		return -1;
	}
	jerr = 0;
	s = js_AddStream(&si, js, cfg, NULL, &jerr);
	if (s != NATS_OK) {
		jsu_errf(err, errlen, "js_AddStream", cfg->Name, s, jerr);
		return -1;
	}
	jsStreamInfo_Destroy(si);
	return 0;
}

int jsu_journal_stream(jsCtx *js, const char *bot_name, int replicas, char *err,
    size_t errlen)
{
	char name[JSU_NAME_MAX], subj[JSU_NAME_MAX];
	const char *subjects[1] = { subj };
	jsStreamConfig sc;

	if (jsu_stream_name(name, sizeof(name), bot_name, "JOURNAL") == -1 ||
	    jsu_subject(subj, sizeof(subj), bot_name, "journal.>") == -1) {
		snprintf(err, errlen, "bot name too long for a stream name");
		return -1;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = replicas;
	return jsu_stream(js, &sc, err, errlen);
}

kvStore *jsu_dead_bucket(jsCtx *js, const char *bot_name, int replicas, char *err,
    size_t errlen)
{
	char name[JSU_NAME_MAX];
	kvStore *kv = NULL;
	kvConfig kc;
	natsStatus s;

	if (jsu_stream_name(name, sizeof(name), bot_name, "DEAD") == -1) {
		snprintf(err, errlen, "bot name too long for a bucket name");
		return NULL;
	}
	s = js_KeyValue(&kv, js, name);
	if (s == NATS_OK)
		return kv;
	if (s != NATS_NOT_FOUND) {
		jsu_errf(err, errlen, "js_KeyValue", name, s, 0);
		return NULL;
	}
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	kc.Replicas = replicas;
	s = js_CreateKeyValue(&kv, js, &kc);
	if (s != NATS_OK) {
		jsu_errf(err, errlen, "js_CreateKeyValue", name, s, 0);
		return NULL;
	}
	return kv;
}

int jsu_dead_put(kvStore *kv, int64_t update_id, int attempts, const char *error,
    const char *body, size_t len, char *err, size_t errlen)
{
	char key[24], *val;
	json_t *o;
	natsStatus s;

	o = json_pack("{s:i, s:s, s:I, s:s%}", "attempts", attempts, "error",
	    error != NULL ? error : "", "died_at", (json_int_t)time(NULL), "body",
	    body, len);
	val = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (val == NULL) {
		snprintf(err, errlen, "dead letter %lld: cannot encode it (is the "
		    "body UTF-8?)", (long long)update_id);
		return -1;
	}
	snprintf(key, sizeof(key), "%lld", (long long)update_id);
	s = kvStore_PutString(NULL, kv, key, val);
	free(val);
	if (s != NATS_OK) {
		jsu_errf(err, errlen, "kvStore_Put", "dead letter", s, 0);
		return -1;
	}
	return 0;
}

/* A KV entry's message that is a delete or purge marker. */
static int kv_deleted(natsMsg *m)
{
	const char *op = NULL;

	return natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op != NULL &&
	    (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
}

int jsu_kv_get(jsCtx *js, const char *bucket, const char *key, natsMsg **out, char *err,
    size_t errlen)
{
	char stream[JSU_NAME_MAX], subj[JSU_NAME_MAX];
	jsErrCode jerr = 0;
	natsMsg *m = NULL;
	natsStatus st;

	snprintf(stream, sizeof(stream), "KV_%s", bucket);
	snprintf(subj, sizeof(subj), "$KV.%s.%s", bucket, key);
	st = js_GetLastMsg(&m, js, stream, subj, NULL, &jerr);
	if (st == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
		return 0;
	if (st != NATS_OK) {
		jsu_errf(err, errlen, "js_GetLastMsg", subj, st, jerr);
		return -1;
	}
	if (kv_deleted(m)) {
		natsMsg_Destroy(m);
		return 0;
	}
	*out = m;
	return 1;
}

int jsu_kv_keys(jsCtx *js, const char *bucket, int64_t idle_ms,
    int (*cb)(void *arg, const char *key), void *arg, char *err, size_t errlen)
{
	char stream[JSU_NAME_MAX], subj[JSU_NAME_MAX];
	natsSubscription *sub = NULL;
	jsMsgMetaData *meta = NULL;
	jsStreamState state;
	jsErrCode jerr = 0;
	jsSubOptions so;
	natsMsg *m = NULL;
	uint64_t pending = 1;
	size_t plen;
	natsStatus st;
	int r = 0;

	snprintf(stream, sizeof(stream), "KV_%s", bucket);
	plen = (size_t)snprintf(subj, sizeof(subj), "$KV.%s.", bucket);
	if (jsu_stream_state(js, stream, &state, err, errlen) == -1)
		return -1;
	if (state.Msgs == 0)
		return 0;
	snprintf(subj + plen, sizeof(subj) - plen, ">");
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	so.Config.HeadersOnly = true;
	st = js_SubscribeSync(&sub, js, subj, NULL, &so, &jerr);
	if (st != NATS_OK) {
		jsu_errf(err, errlen, "js_SubscribeSync", stream, st, jerr);
		return -1;
	}
	while (pending > 0 && r == 0) {
		st = natsSubscription_NextMsg(&m, sub, idle_ms);
		if (st != NATS_OK)
			break;
		st = natsMsg_GetMetaData(&meta, m);
		if (st != NATS_OK) {
			natsMsg_Destroy(m);
			break;
		}
		pending = meta->NumPending;
		jsMsgMetaData_Destroy(meta);
		if (!kv_deleted(m) && strlen(natsMsg_GetSubject(m)) > plen)
			r = cb(arg, natsMsg_GetSubject(m) + plen);
		natsMsg_Destroy(m);
	}
	jsu_sub_end(sub, idle_ms);
	if (st != NATS_OK) {
		jsu_errf(err, errlen, "reading the bucket", stream, st, 0);
		return -1;
	}
	return r;
}

int jsu_stream_state(jsCtx *js, const char *stream, jsStreamState *out, char *err,
    size_t errlen)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (s != NATS_OK) {
		jsu_errf(err, errlen, "js_GetStreamInfo", stream, s, jerr);
		return -1;
	}
	*out = si->State;
	/* The pointers in it belong to `si`. */
	out->Subjects = NULL;
	out->Deleted = NULL;
	out->DeletedLen = 0;
	out->Lost = NULL;
	jsStreamInfo_Destroy(si);
	return 0;
}

/* ---- the hand-over to the loop ---- */

struct jsq {
	pthread_mutex_t mu;
	struct jsq_node *head, **tail;
	int efd;
	struct event *ev;
	void (*fn)(void *arg, struct jsq_node *list);
	void *arg;
};

static void jsq_ready(evutil_socket_t fd, short what, void *arg)
{
	struct jsq *q = arg;
	struct jsq_node *list;
	uint64_t v;

	if (read(q->efd, &v, sizeof(v)) == -1 && errno != EAGAIN)
		log_warn("cluster: read(eventfd): %s", strerror(errno));
	pthread_mutex_lock(&q->mu);
	list = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);
	q->fn(q->arg, list);
}

struct jsq *jsq_new(struct event_base *base, void (*fn)(void *arg, struct jsq_node *list),
    void *arg)
{
	struct jsq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd == -1) {
		free(q);
		return NULL;
	}
	q->ev = event_new(base, q->efd, EV_READ | EV_PERSIST, jsq_ready, q);
	if (q->ev == NULL || event_add(q->ev, NULL) == -1) {
		if (q->ev != NULL)
			event_free(q->ev);
		close(q->efd);
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	q->tail = &q->head;
	q->fn = fn;
	q->arg = arg;
	return q;
}

void jsq_kick(struct jsq *q)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so the loop wakes anyway. */
	if (write(q->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("cluster: write(eventfd): %s", strerror(errno));
}

void jsq_push(struct jsq *q, struct jsq_node *n)
{
	n->next = NULL;
	pthread_mutex_lock(&q->mu);
	*q->tail = n;
	q->tail = &n->next;
	pthread_mutex_unlock(&q->mu);
	jsq_kick(q);
}

struct jsq_node *jsq_free(struct jsq *q)
{
	struct jsq_node *list;

	if (q == NULL)
		return NULL;
	event_free(q->ev);
	close(q->efd);
	list = q->head;
	pthread_mutex_destroy(&q->mu);
	free(q);
	return list;
}

/* ---- closures that outlive their owner ------------------------------------------ */

struct jsu_sink {
	pthread_mutex_t mu;
	void *owner;			/* NULL once retired */
	jsPubAckHandler fn;		/* the owner's ack handler */
	int published;			/* atomic: the context published once */
	int late;			/* atomic: a reply may still come (see jsu_async_free) */
	pthread_mutex_t pub_mu;		/* held through each js_PublishMsgAsync */
	struct jsu_sink *next;		/* on `retired` */
};

/* Retired sinks, kept reachable (a leak checker must not report them). */
static struct jsu_sink *retired;
static pthread_mutex_t retired_mu = PTHREAD_MUTEX_INITIALIZER;

static struct jsu_sink *jsu_sink_new(void *owner, jsPubAckHandler fn)
{
	struct jsu_sink *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	pthread_mutex_init(&k->mu, NULL);
	pthread_mutex_init(&k->pub_mu, NULL);
	k->owner = owner;
	k->fn = fn;
	return k;
}

void *jsu_sink_enter(struct jsu_sink *k)
{
	pthread_mutex_lock(&k->mu);
	return k->owner;
}

void jsu_sink_leave(struct jsu_sink *k)
{
	pthread_mutex_unlock(&k->mu);
}

/*
 * libnats 3.4 arms a publish's MaxWait timer before it writes the message: a
 * caller stopped (or starved) in between sees the timeout handed to on_ack on
 * another thread, with the message it is still writing. The message is
 * freed only once no publish is under way (jsu_msg_free).
 */
natsStatus jsu_publish(struct jsu_sink *k, jsCtx *js, natsMsg **m, jsPubOptions *po)
{
	natsStatus st;

	__atomic_store_n(&k->published, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&k->pub_mu);
	st = js_PublishMsgAsync(js, m, po);
	pthread_mutex_unlock(&k->pub_mu);
	return st;
}

void jsu_msg_free(struct jsu_sink *k, natsMsg *m)
{
	pthread_mutex_lock(&k->pub_mu);
	pthread_mutex_unlock(&k->pub_mu);
	natsMsg_Destroy(m);
}

static int jsu_sink_has_published(struct jsu_sink *k)
{
	return __atomic_load_n(&k->published, __ATOMIC_ACQUIRE);
}

static void jsu_sink_retire(struct jsu_sink *k)
{
	pthread_mutex_lock(&k->mu);	/* waits for a callback under way */
	k->owner = NULL;
	pthread_mutex_unlock(&k->mu);
	pthread_mutex_lock(&retired_mu);
	k->next = retired;
	retired = k;
	pthread_mutex_unlock(&retired_mu);
}

/*
 * libnats' thread: every ack or ack timeout passes here first. A publish that
 * timed out may still be answered, at any later time.
 */
static void sink_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
    void *closure)
{
	struct jsu_sink *k = closure;

	if (pa == NULL && pae != NULL && pae->Err == NATS_TIMEOUT)
		__atomic_store_n(&k->late, 1, __ATOMIC_RELAXED);
	k->fn(js, msg, pa, pae, k);
}

/* Async publishes in flight before js_PublishMsgAsync stalls its caller. */
#define ASYNC_MAX_PENDING 65536

int jsu_async_ctx(natsConnection *nc, int64_t wait_ms, jsPubAckHandler on_ack,
    void *owner, const char *what, jsCtx **js, struct jsu_sink **sink, char *err,
    size_t errlen)
{
	jsOptions o;
	natsStatus st;

	if ((*sink = jsu_sink_new(owner, on_ack)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	jsOptions_Init(&o);
	o.Wait = wait_ms;
	o.PublishAsync.AckHandler = sink_on_ack;
	o.PublishAsync.AckHandlerClosure = *sink;
	o.PublishAsync.MaxPending = ASYNC_MAX_PENDING;
	st = natsConnection_JetStream(js, nc, &o);
	if (st != NATS_OK) {
		jsu_errf(err, errlen, "natsConnection_JetStream", what, st, 0);
		return -1;
	}
	return 0;
}

void jsu_async_drop_pending(jsCtx *js, struct jsu_sink *sink)
{
	natsMsgList left;

	/* libnats 3.4 crashes listing the pending publishes of a context that never published. */
	if (!jsu_sink_has_published(sink))
		return;
	__atomic_store_n(&sink->late, 1, __ATOMIC_RELAXED);
	if (js_PublishAsyncGetPendingList(&left, js) == NATS_OK)
		natsMsgList_Destroy(&left);
}

void jsu_async_settle(jsCtx *js, struct jsu_sink *sink, int64_t wait_ms)
{
	jsPubOptions po;

	if (sink == NULL)
		return;
	if (js != NULL && jsu_sink_has_published(sink)) {
		jsPubOptions_Init(&po);
		po.MaxWait = wait_ms;
		if (js_PublishAsyncComplete(js, &po) != NATS_OK)
			jsu_async_drop_pending(js, sink);
	}
	jsu_sink_retire(sink);
}

/* ---- teardown that waits for the connection -------------------------------------- */

/*
 * libnats 3.4 looks a subscription up for an inbound message and then locks
 * it without holding a reference (fixed upstream in 3.10): removing a
 * subscription while a message for it is being read frees memory under the
 * reader thread. So a subscription is drained before it goes (the server
 * confirms that nothing more is coming), and a context whose async-publish
 * inbox may still be answered waits for the connection to close.
 */
struct deferred {
	jsCtx *js;
	struct deferred *next;
};

static struct deferred *deferred;
static pthread_mutex_t deferred_mu = PTHREAD_MUTEX_INITIALIZER;

void jsu_async_free(jsCtx *js, struct jsu_sink *sink)
{
	struct deferred *d;

	if (js == NULL)
		return;
	if (sink == NULL || !__atomic_load_n(&sink->late, __ATOMIC_RELAXED) ||
	    (d = malloc(sizeof(*d))) == NULL) {
		jsCtx_Destroy(js);
		return;
	}
	d->js = js;
	pthread_mutex_lock(&deferred_mu);
	d->next = deferred;
	deferred = d;
	pthread_mutex_unlock(&deferred_mu);
}

void jsu_deferred_free(void)
{
	struct deferred *d, *next;

	pthread_mutex_lock(&deferred_mu);
	d = deferred;
	deferred = NULL;
	pthread_mutex_unlock(&deferred_mu);
	for (; d != NULL; d = next) {
		next = d->next;
		jsCtx_Destroy(d->js);
		free(d);
	}
}

void jsu_sub_end(natsSubscription *sub, int64_t wait_ms)
{
	natsMsg *m = NULL;

	if (sub == NULL)
		return;
	if (natsSubscription_DrainTimeout(sub, wait_ms) == NATS_OK) {
		/* A synchronous subscription's drain completes when its queue is read empty. */
		while (natsSubscription_NextMsg(&m, sub, wait_ms) == NATS_OK)
			natsMsg_Destroy(m);
		natsSubscription_WaitForDrainCompletion(sub, wait_ms);
	}
	/* Drained, or the connection is closed: nothing reads for it any more. */
	natsSubscription_Destroy(sub);
}
