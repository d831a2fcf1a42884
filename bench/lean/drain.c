/*
 * W2lean: drain a backlog with a lean client (libpq, C), so that what is
 * measured is the database's cost per batch, not the client's.
 *
 *   lean-drain --system raw|outbox|xact|pgq|worker --events N --consumers C
 *              [--batch B] [--timeout SECONDS] [--reset-stats-after-publish 1]
 *
 * Publishes N events (untimed, the same statements as bench/lib/drain.mjs),
 * then starts C threads, each with its own connection and its statements
 * prepared before the clock starts, and times from their start until every
 * one of them found its queue empty. Each consumer loops: one round trip per
 * statement (PQexecPrepared, text results), no JSON parsing: the "handler"
 * only reads the event number n from the payload's text (jsonb prints its
 * shortest key first: {"n": 123, ...}) into a bitmap, so the run is checked
 * for exactly-once on the client too. Afterwards the database is checked as
 * drain.mjs checks it (queue empty, archive holds every event once).
 *
 *   raw     the floor: the same DELETE ... RETURNING statement as W2
 *   outbox  outbox_claim, then outbox_complete: two transactions per batch
 *   xact    BEGIN, outbox_claim_xact, outbox_complete, COMMIT
 *   pgq     pgq.next_batch, pgq.get_batch_events, pgq.finish_batch; one
 *           queue per consumer, the publisher ticks every B events (as W2)
 *   worker  the relay (background worker) to a no-op SQL subscription, no
 *           client at all: the clock runs from the subscription until
 *           outbox_events is empty (as drain.mjs --system worker)
 *
 * Connection: libpq's environment (PGHOST, PGPORT, PGDATABASE, PGUSER).
 * Prints one JSON line (workload "W2lean") on stdout; exit 0 when the run
 * delivered every event exactly once.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *sys_name;
static long events = 1000;
static int consumers = 1;
static int batch = 100;
static double timeout_s = 600;
static int reset_stats = 0;   /* pg_stat_statements_reset() once published (bench/lean/profile.sh) */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(PGconn *c, const char *what)
{
    fprintf(stderr, "lean-drain %s: %s: %s\n", sys_name, what, c ? PQerrorMessage(c) : "");
    exit(2);
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb("");
    if (PQstatus(c) != CONNECTION_OK) die(c, "connect");
    return c;
}

/* A statement whose result is not needed. */
static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "lean-drain %s: %s\n  in: %s\n", sys_name, PQerrorMessage(c), sql);
        exit(2);
    }
    PQclear(r);
}

static void execf(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    exec_ok(c, sql);
}

/* One value of a one-row query, as text (static buffer). */
static const char *scalar(PGconn *c, const char *sql)
{
    static char buf[1024];
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "lean-drain %s: %s\n  in: %s\n", sys_name, PQerrorMessage(c), sql);
        exit(2);
    }
    snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static void prepare(PGconn *c, const char *name, const char *sql)
{
    PGresult *r = PQprepare(c, name, sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die(c, name);
    PQclear(r);
}

static PGresult *run(PGconn *c, const char *name, int n, const char *const *vals, ExecStatusType want)
{
    PGresult *r = PQexecPrepared(c, name, n, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != want) die(c, name);
    return r;
}

/* --- exactly-once bookkeeping (the no-op handler) ----------------------- */

static unsigned char *seen;
static long delivered, duplicates, strays;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

/* The event number of a payload's text: jsonb puts its shortest key first. */
static long event_n(const char *p)
{
    const char *k = p + 6;
    if (strncmp(p, "{\"n\": ", 6) != 0) {
        k = strstr(p, "\"n\": ");
        if (k == NULL) return -1;
        k += 5;
    }
    return strtol(k, NULL, 10);
}

/* Handle rows [0, n) of column col: record each event's number. */
static void handle(PGresult *r, int col)
{
    int i, n = PQntuples(r);
    long d = 0, dup = 0, bad = 0;
    pthread_mutex_lock(&seen_lock);
    for (i = 0; i < n; i++) {
        long e = event_n(PQgetvalue(r, i, col));
        if (e < 1 || e > events) bad++;
        else if (seen[e]) dup++;
        else { seen[e] = 1; d++; }
    }
    delivered += d; duplicates += dup; strays += bad;
    pthread_mutex_unlock(&seen_lock);
}

/* --- the consumers ------------------------------------------------------ */

typedef struct {
    int k;
    PGconn *c;
    pthread_t thread;
    long batches, short_batches, empty_polls;
    double slowest_ms;
} consumer_t;

static pthread_barrier_t start_line;
static double t_start;

static const char *raw_take =
    "WITH c AS (SELECT id FROM raw_events ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED),"
    "     d AS (DELETE FROM raw_events r USING c WHERE r.id = c.id RETURNING r.*)"
    " INSERT INTO raw_events_archive (id, seq, type, payload, headers, ordering_key, status,"
    "                                 occurred_at, created_on, retry_count, last_error, started_on, lease_owner)"
    " SELECT id, seq, type, payload, headers, ordering_key, 'completed',"
    "        occurred_at, created_on, retry_count, last_error, started_on, lease_owner FROM d"
    " RETURNING id, payload";

static void prepare_consumer(consumer_t *w)
{
    if (strcmp(sys_name, "raw") == 0) {
        prepare(w->c, "take", raw_take);
        prepare(w->c, "left", "SELECT EXISTS (SELECT FROM raw_events)");
    } else if (strcmp(sys_name, "outbox") == 0) {
        prepare(w->c, "claim", "SELECT id, payload, lease_token FROM outbox_claim($1, NULL, $2)");
        prepare(w->c, "complete", "SELECT outbox_complete($1::uuid[], $2)");
        prepare(w->c, "left", "SELECT EXISTS (SELECT FROM outbox_events)");
    } else if (strcmp(sys_name, "xact") == 0) {
        prepare(w->c, "begin", "BEGIN");
        prepare(w->c, "commit", "COMMIT");
        prepare(w->c, "claim", "SELECT id, payload, lease_token FROM outbox_claim_xact($1, $2)");
        prepare(w->c, "complete", "SELECT outbox_complete($1::uuid[], $2)");
        prepare(w->c, "left", "SELECT EXISTS (SELECT FROM outbox_events)");
    } else if (strcmp(sys_name, "pgq") == 0) {
        prepare(w->c, "next", "SELECT pgq.next_batch($1, 'bench')");
        prepare(w->c, "events", "SELECT ev_id, ev_data FROM pgq.get_batch_events($1)");
        prepare(w->c, "finish", "SELECT pgq.finish_batch($1)");
    }
}

/* "{id,id,...}" of the rows whose token (column 2) is tok; marks them done. */
static void ids_of_token(PGresult *r, const char *tok, char *done, char *out)
{
    int i, n = PQntuples(r);
    char *o = out;
    *o++ = '{';
    for (i = 0; i < n; i++) {
        if (done[i] || strcmp(PQgetvalue(r, i, 2), tok) != 0) continue;
        done[i] = 1;
        if (o != out + 1) *o++ = ',';
        o += sprintf(o, "%s", PQgetvalue(r, i, 0));
    }
    *o++ = '}';
    *o = '\0';
}

/* Settle a claim's rows with outbox_complete, one call per lease token. */
static void complete_rows(consumer_t *w, PGresult *r)
{
    int i, n = PQntuples(r);
    char *done = calloc(n, 1);
    char *ids = malloc((size_t)n * 40 + 3);
    for (i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *tok = PQgetvalue(r, i, 2);
        ids_of_token(r, tok, done, ids);
        const char *v[2] = {ids, tok};
        PQclear(run(w->c, "complete", 2, v, PGRES_TUPLES_OK));
    }
    free(done);
    free(ids);
}

/* One batch; returns the number of events it handled, 0 if none was due. */
static int step(consumer_t *w)
{
    char bs[16], who[32], bid[32];
    const char *v[2] = {bs, who};
    PGresult *r;
    int n;
    snprintf(bs, sizeof bs, "%d", batch);
    snprintf(who, sizeof who, "bench-%d", w->k);
    if (strcmp(sys_name, "raw") == 0) {
        r = run(w->c, "take", 1, v, PGRES_TUPLES_OK);
        n = PQntuples(r);
        handle(r, 1);
        PQclear(r);
        return n;
    }
    if (strcmp(sys_name, "outbox") == 0) {
        r = run(w->c, "claim", 2, v, PGRES_TUPLES_OK);
        n = PQntuples(r);
        handle(r, 1);
        complete_rows(w, r);
        PQclear(r);
        return n;
    }
    if (strcmp(sys_name, "xact") == 0) {
        PQclear(run(w->c, "begin", 0, NULL, PGRES_COMMAND_OK));
        r = run(w->c, "claim", 2, v, PGRES_TUPLES_OK);
        n = PQntuples(r);
        handle(r, 1);
        complete_rows(w, r);
        PQclear(r);
        PQclear(run(w->c, "commit", 0, NULL, PGRES_COMMAND_OK));
        return n;
    }
    /* pgq: this consumer's own queue */
    {
        char q[32];
        const char *qv[1] = {q};
        snprintf(q, sizeof q, "bench_q%d", w->k);
        r = run(w->c, "next", 1, qv, PGRES_TUPLES_OK);
        if (PQgetisnull(r, 0, 0)) { PQclear(r); return 0; }
        snprintf(bid, sizeof bid, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        const char *bv[1] = {bid};
        r = run(w->c, "events", 1, bv, PGRES_TUPLES_OK);
        n = PQntuples(r);
        handle(r, 1);
        PQclear(r);
        PQclear(run(w->c, "finish", 1, bv, PGRES_TUPLES_OK));
        return n > 0 ? n : 1;   /* an empty batch is still a batch */
    }
}

/* Is this consumer's queue empty? (SKIP LOCKED: a claim can come back empty
 * while other consumers still hold the last events; wait for them.) */
static int queue_empty(consumer_t *w)
{
    if (strcmp(sys_name, "pgq") == 0) return 1;   /* all ticks were made before the start */
    PGresult *r = run(w->c, "left", 0, NULL, PGRES_TUPLES_OK);
    int empty = strcmp(PQgetvalue(r, 0, 0), "f") == 0;
    PQclear(r);
    return empty;
}

static void *consume(void *arg)
{
    consumer_t *w = arg;
    pthread_barrier_wait(&start_line);
    double deadline = t_start + timeout_s;
    for (;;) {
        double t0 = now();
        int got = step(w);
        double ms = (now() - t0) * 1000;
        if (ms > w->slowest_ms) w->slowest_ms = ms;
        if (got > 0) {
            w->batches++;
            if (got < batch) w->short_batches++;
        } else {
            w->empty_polls++;
            if (queue_empty(w)) break;
            usleep(1000);
        }
        if (now() > deadline) { fprintf(stderr, "lean-drain %s: consumer %d timed out\n", sys_name, w->k); break; }
    }
    return NULL;
}

/* --- publish and check, per system (as drain.mjs) ---------------------- */

static void publish_chunks(PGconn *db, const char *fmt)
{
    long a;
    for (a = 1; a <= events; a += 10000) execf(db, fmt, a, a + 9999 < events ? a + 9999 : events);
}

static void reset_and_publish(PGconn *db)
{
    int k;
    if (strcmp(sys_name, "raw") == 0) {
        exec_ok(db, "TRUNCATE raw_events, raw_events_archive");
        publish_chunks(db, "INSERT INTO raw_events (id, type, payload)"
                           " SELECT gen_random_uuid(), 'bench.event', bench_payload(i)"
                           " FROM generate_series(%ld, %ld) i");
    } else if (strcmp(sys_name, "pgq") == 0) {
        PGresult *r = PQexec(db, "SELECT queue_name FROM pgq.queue WHERE queue_name LIKE 'bench\\_q%'");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die(db, "list queues");
        for (k = 0; k < PQntuples(r); k++) {
            const char *q = PQgetvalue(r, k, 0);
            execf(db, "SELECT pgq.unregister_consumer('%s', consumer_name) FROM pgq.get_consumer_info('%s')", q, q);
            execf(db, "SELECT pgq.drop_queue('%s')", q);
        }
        PQclear(r);
        for (k = 0; k < consumers; k++) {
            execf(db, "SELECT pgq.create_queue('bench_q%d')", k);
            execf(db, "SELECT pgq.set_queue_config('bench_q%d', 'ticker_max_count', '1')", k);
            execf(db, "SELECT pgq.register_consumer('bench_q%d', 'bench')", k);
        }
        long a;
        k = 0;
        for (a = 1; a <= events; a += batch) {
            long b = a + batch - 1 < events ? a + batch - 1 : events;
            int q = k++ % consumers;
            execf(db, "SELECT count(pgq.insert_event('bench_q%d', 'bench.event', bench_payload(i)::text))"
                      " FROM generate_series(%ld, %ld) i", q, a, b);
            execf(db, "SELECT pgq.ticker('bench_q%d')", q);
        }
        for (k = 0; k < consumers; k++) execf(db, "SELECT pgq.ticker('bench_q%d')", k);
    } else {
        if (strcmp(sys_name, "worker") == 0) {
            exec_ok(db, "ALTER SYSTEM SET outbox.enabled = on");
            exec_ok(db, "SELECT pg_reload_conf()");
            double until = now() + 20;
            while (now() < until &&
                   atoi(scalar(db, "SELECT count(*) FROM outbox_worker_stats()"
                                   " WHERE database = current_database() AND pid IS NOT NULL")) == 0)
                usleep(50000);
            exec_ok(db, "DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'");
        }
        exec_ok(db, "TRUNCATE outbox_events, outbox_events_archive");
        publish_chunks(db, "SELECT count(outbox_publish('bench.event', bench_payload(i)))"
                           " FROM generate_series(%ld, %ld) i");
    }
    exec_ok(db, "CHECKPOINT");
}

static long relay_counted(PGconn *db)
{
    return atol(scalar(db, "SELECT coalesce(sum(delivered), 0) FROM outbox_worker_stats()"));
}

/* The relay: subscribe, then wait until outbox_events is empty. The wait
 * polls the relay's delivered counter (shared memory, cheap) every 5 ms and
 * looks at the table only once the counter says all were delivered: polling
 * NOT EXISTS (SELECT FROM outbox_events) every 5 ms, as drain.mjs does, reads
 * the dead rows at the table's head each time (2,500 buffers, ~0.8 ms per call
 * late in a drain), CPU the relay would have on a 2-core machine. */
static long drain_by_relay(PGconn *db)
{
    long before = relay_counted(db);
    PGresult *r;
    prepare(db, "empty", "SELECT NOT EXISTS (SELECT FROM outbox_events)");
    prepare(db, "counted", "SELECT coalesce(sum(delivered), 0) FROM outbox_worker_stats()");
    t_start = now();
    exec_ok(db, "SELECT outbox_subscribe('bench_noop', 'bench.*', 'bench_noop')");
    for (;;) {
        r = run(db, "counted", 0, NULL, PGRES_TUPLES_OK);
        long counted = atol(PQgetvalue(r, 0, 0)) - before;
        PQclear(r);
        if (counted >= events) {
            r = run(db, "empty", 0, NULL, PGRES_TUPLES_OK);
            int empty = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            if (empty) break;
        }
        if (now() > t_start + timeout_s) break;
        usleep(5000);
    }
    return relay_counted(db) - before;
}

/* The database's side of exactly-once; returns 1 if it holds. */
static int check_db(PGconn *db, long relay_handled, char *detail, size_t len)
{
    if (strcmp(sys_name, "pgq") == 0) {
        long pending = atol(scalar(db, "SELECT coalesce(sum(pending_events), 0) FROM pgq.get_consumer_info()"
                                       " WHERE queue_name LIKE 'bench\\_q%'"));
        snprintf(detail, len, "pending events %ld", pending);
        return pending == 0;
    }
    const char *q = strcmp(sys_name, "raw") == 0
        ? "SELECT (SELECT count(*) FROM raw_events) || ' ' || count(*) || ' ' || count(DISTINCT (payload->>'n')::bigint)"
          " FROM raw_events_archive"
        : "SELECT (SELECT count(*) FROM outbox_events) || ' ' || count(*) || ' ' || count(DISTINCT (payload->>'n')::bigint)"
          " FROM outbox_events_archive WHERE status = 'completed'";
    long left = -1, archived = -1, distinct_n = -1;
    sscanf(scalar(db, q), "%ld %ld %ld", &left, &archived, &distinct_n);
    const char *table = strcmp(sys_name, "raw") == 0 ? "raw_events" : "outbox_events";
    if (strcmp(sys_name, "worker") == 0) {
        exec_ok(db, "DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'");
        exec_ok(db, "ALTER SYSTEM SET outbox.enabled = off");
        exec_ok(db, "SELECT pg_reload_conf()");
        snprintf(detail, len, "%s %ld, archive %ld (%ld distinct), relay counted %ld delivered",
                 table, left, archived, distinct_n, relay_handled);
        /* the handler is a no-op: the archive is what was delivered */
        delivered = distinct_n;
        duplicates = archived - distinct_n;
        return left == 0 && archived == events && distinct_n == events && relay_handled == events;
    }
    snprintf(detail, len, "%s %ld, archive %ld (%ld distinct)", table, left, archived, distinct_n);
    return left == 0 && archived == events && distinct_n == events;
}

int main(int argc, char **argv)
{
    int i;
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--system") == 0) sys_name = argv[i + 1];
        else if (strcmp(argv[i], "--events") == 0) events = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--consumers") == 0) consumers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0) batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--timeout") == 0) timeout_s = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--reset-stats-after-publish") == 0) reset_stats = atoi(argv[i + 1]);
        else { fprintf(stderr, "lean-drain: unknown option %s\n", argv[i]); return 2; }
    }
    if (sys_name == NULL || (strcmp(sys_name, "raw") && strcmp(sys_name, "outbox") && strcmp(sys_name, "xact") &&
                             strcmp(sys_name, "pgq") && strcmp(sys_name, "worker"))) {
        fprintf(stderr, "usage: lean-drain --system raw|outbox|xact|pgq|worker --events N --consumers C [--batch B] [--timeout S]\n");
        return 2;
    }
    if (strcmp(sys_name, "worker") == 0) consumers = 1;   /* one relay per database */
    seen = calloc(events + 1, 1);

    PGconn *db = connect_db();
    exec_ok(db, "SET client_min_messages = warning");
    exec_ok(db, "SET outbox.require_transaction = off");
    reset_and_publish(db);
    if (reset_stats) exec_ok(db, "SELECT pg_stat_statements_reset()");

    consumer_t *w = calloc(consumers, sizeof *w);
    long relay_handled = -1;
    double seconds;
    if (strcmp(sys_name, "worker") == 0) {
        relay_handled = drain_by_relay(db);
        seconds = now() - t_start;
    } else {
        for (i = 0; i < consumers; i++) {
            w[i].k = i;
            w[i].c = connect_db();
            prepare_consumer(&w[i]);
        }
        pthread_barrier_init(&start_line, NULL, consumers + 1);
        for (i = 0; i < consumers; i++) pthread_create(&w[i].thread, NULL, consume, &w[i]);
        t_start = now();
        pthread_barrier_wait(&start_line);
        for (i = 0; i < consumers; i++) pthread_join(w[i].thread, NULL);
        seconds = now() - t_start;
        for (i = 0; i < consumers; i++) PQfinish(w[i].c);
    }

    char detail[512];
    int db_ok = check_db(db, relay_handled, detail, sizeof detail);
    PQfinish(db);
    long batches = 0, short_batches = 0, empty_polls = 0;
    double slowest = 0;
    for (i = 0; i < consumers; i++) {
        batches += w[i].batches;
        short_batches += w[i].short_batches;
        empty_polls += w[i].empty_polls;
        if (w[i].slowest_ms > slowest) slowest = w[i].slowest_ms;
    }
    long missing = events - delivered;
    int ok = db_ok && missing == 0 && duplicates == 0 && strays == 0;
    printf("{\"workload\":\"W2lean\",\"client\":\"libpq\",\"system\":\"%s\",\"consumers\":%d,\"events\":%ld,\"batch\":%d,"
           "\"seconds\":%.3f,\"rate\":%.1f,\"batches\":%ld,\"short_batches\":%ld,\"empty_polls\":%ld,\"slowest_step_ms\":%.1f,"
           "\"delivered\":%ld,\"duplicates\":%ld,\"missing\":%ld,\"strays\":%ld,\"db_check\":\"%s\",\"ok\":%s}\n",
           sys_name, consumers, events, batch, seconds, delivered / seconds, batches, short_batches, empty_polls,
           slowest, delivered, duplicates, missing, strays, detail, ok ? "true" : "false");
    return ok ? 0 : 1;
}
