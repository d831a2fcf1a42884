// The sink worker: the external deliveries of one database (HTTP webhooks
// and Kafka topics), next to its relay, started by the launcher while the database has a
// subscription with an external sink.
//
// A loop on one wait: the latch, postmaster death and every sink kind's fd
// (sink.hpp), with the nearest timer as its timeout. Each turn:
//   1. results: each kind works on what is ready; the attempts that ended are
//      settled in one short transaction, each only if its lease token still
//      holds the delivery (a stale one is refused); the events whose
//      deliveries are all settled move to the archive; the endpoint's
//      breaker and state follow the outcome.
//   2. claims: while there is room (outbox.webhook_max_in_flight, each
//      endpoint's max_in_flight, one probe through a half-open breaker), due
//      deliveries are leased in one short transaction (the attempt counted
//      now), which commits before anything is sent: no transaction is open
//      while the network is waited on. Per-key order: the claim takes only the
//      earliest unsettled delivery of a key.
//   3. upkeep: leases that ran out are taken back (at start: all of them).
// SIGTERM ends it at once (die): what was in flight stays leased and is sent
// again once the lease is taken back, with the same webhook-id.
#include "outbox/pg.hpp"
#include "outbox/deliveries.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/log_limit.hpp"
#include "outbox/metrics.hpp"
#include "outbox/relay.hpp"
#include "outbox/settings.hpp"
#include "outbox/settle.hpp"
#include "outbox/shmem.hpp"
#include "outbox/sink.hpp"
#include "outbox/spi.hpp"
#include "outbox/worker.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>

namespace outbox {

namespace {

constexpr int kNameLen = 256;             // subscription and endpoint names: at most 255 bytes
constexpr int kMaxFlights = 10000;        // outbox.webhook_max_in_flight's maximum
constexpr int kLeaseMarginS = 30;         // a lease outlasts the request's timeout by this
constexpr int kReclaimIntervalMs = 5000;
constexpr int kPollMs = 10000;            // looked for due deliveries at least this often
constexpr int kMissingExtensionRecheckMs = 10000;
// Results are settled together: a turn waits up to this long for more of the
// attempts in flight to end, unless half of them (or all) have.
constexpr int kCoalesceMs = 2;
// The subscriptions and endpoints are read again when a change to them
// commits (sink_config_generation), at least this often (what the sink itself
// changed: breaker, state), and after an error.
constexpr int kTargetsTtlMs = 1000;
// An endpoint's last success is recorded at most this often while it keeps
// succeeding (the first success after a failure at once).
constexpr int kSuccessRecordMs = 1000;

// One attempt in flight.
struct Flight {
    bool used;
    pg_uuid_t id;
    char subscription[kNameLen];
    char endpoint[kNameLen];
    int64 token;
    int attempts;  // counted at claim, this one included
    TimestampTz due;  // when the event became due, for the lag metric
    bool keyed;    // the event has an ordering key
};

// A sink kind of this worker, made on first use.
struct KindSink {
    const char *kind;
    Sink *sink;
};

char my_dbname[NAMEDATALEN];
int my_slot = -1;
// Events settled by the turn's transaction, handed to the relay to archive
// once it commits (slot_archive_push).
pg_uuid_t to_archive[kArchiveQueueLen];
int nto_archive = 0;
Flight *flights = nullptr;  // kMaxFlights, in TopMemoryContext
int in_flight = 0;
KindSink kinds[4] = {{"http", nullptr}, {"kafka", nullptr}};
constexpr int kKinds = 2;
int wait_fd = -1;  // an epoll fd over every kind's fd
LogLimit stale_log = {};
// The targets as last read (in targets_cxt), and when.
MemoryContext targets_cxt = nullptr;
struct Target *cached_targets = nullptr;
int ncached_targets = 0;
TimestampTz targets_read_at = 0;
uint64 targets_generation = 0;  // sink_config_generation() when they were read
// Endpoints whose success this worker recorded recently, with no failure since.
struct RecentSuccess {
    char endpoint[kNameLen];
    TimestampTz at;
};
constexpr int kRecentSuccesses = 64;
RecentSuccess recent_successes[kRecentSuccesses];
LogLimit secret_log = {};
LogLimit library_log = {};  // what the kinds' libraries log (librdkafka)

void
sink_exit(int code, Datum arg)
{
    if (wait_fd < 0 && flights == nullptr) {
        slot_sink_detach(DatumGetInt32(arg));
        return;
    }
    for (int k = 0; k < kKinds; k++)
        if (kinds[k].sink != nullptr) {
            kinds[k].sink->abandon_all();
            delete kinds[k].sink;
            kinds[k].sink = nullptr;
        }
    if (wait_fd >= 0)
        close(wait_fd);
    slot_sink_detach(DatumGetInt32(arg));
    ereport(LOG, (errmsg("outbox sink stopped for database \"%s\"", my_dbname)));
}

Sink *
sink_of(const char *kind)
{
    for (int k = 0; k < kKinds; k++) {
        if (strcmp(kinds[k].kind, kind) != 0)
            continue;
        if (kinds[k].sink == nullptr) {
            char why[256] = "";
            kinds[k].sink = make_sink(kind, guc_webhook_max_in_flight, why, sizeof why);
            if (kinds[k].sink == nullptr)
                ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                                errmsg("outbox sink: cannot start the %s sink: %s", kind, why)));
            int fd = kinds[k].sink->fd();
            if (fd >= 0) {
                struct epoll_event ev;
                memset(&ev, 0, sizeof ev);
                ev.events = EPOLLIN;
                ev.data.fd = fd;
                if (epoll_ctl(wait_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
                    ereport(ERROR, (errcode_for_socket_access(), errmsg("outbox sink: epoll_ctl: %m")));
            }
        }
        return kinds[k].sink;
    }
    return nullptr;
}

// How many attempts have ended, after letting each kind work on what is
// ready; what the kinds' libraries logged meanwhile goes to the server log
// (at every turn of the loop: a line waits for nothing else).
int
results_waiting()
{
    int n = 0;
    for (int k = 0; k < kKinds; k++)
        if (kinds[k].sink != nullptr) {
            Sink *sink = kinds[k].sink;
            sink->turn();
            n += static_cast<int>(sink->results_waiting());
            int level;
            char line[512];
            while (sink->pop_log(level, line, sizeof line)) {
                uint64 others;
                if (level >= 6)
                    ereport(DEBUG1, (errmsg("outbox sink: %s", line)));
                else if (log_limit_allows(&library_log, &others))
                    ereport(LOG, (errmsg("outbox sink: %s", line)));
            }
        }
    return n;
}

int
flights_to(const char *endpoint)
{
    int n = 0;
    for (int i = 0; i < kMaxFlights && n < in_flight; i++)
        if (flights[i].used && strcmp(flights[i].endpoint, endpoint) == 0)
            n++;
    return n;
}

int
free_flight()
{
    for (int i = 0; i < kMaxFlights; i++)
        if (!flights[i].used)
            return i;
    return -1;
}

char *
text_col(HeapTuple tup, TupleDesc desc, int col)
{
    bool isnull;
    Datum d = SPI_getbinval(tup, desc, col, &isnull);
    return isnull ? nullptr : TextDatumGetCString(d);
}

// One subscription with its endpoint, as the claim round read it.
struct Target {
    char *subscription;
    char *kind;
    char *endpoint;
    char *url;
    char **headers;
    int nheaders;
    int timeout_ms;
    int max_in_flight;
    bool enabled;
    int breaker;  // 0 closed, 1 open, 2 half-open
    bool paused;
    char *secrets;
    // kafka:
    char *bootstrap_servers;
    char *topic;
    char **properties;  // name, value, ...
    int nproperties;    // pairs
    // The last claim found all that is due now: it was not claimable (paused,
    // disabled, breaker open, no secret), or its claim came back short. False
    // when the claim was skipped for want of room (its slots were taken) or
    // took all it asked for: settling its results may let a claim find more.
    bool drained;
};

// A text[] column as C strings (a NULL element: nullptr), in the current
// memory context.
char **
text_array_col(HeapTuple tup, TupleDesc desc, int col, int *n)
{
    bool isnull;
    Datum d = SPI_getbinval(tup, desc, col, &isnull);
    *n = 0;
    if (isnull)
        return nullptr;
    Datum *elems;
    bool *nulls;
    deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
    char **out = static_cast<char **>(palloc(sizeof(char *) * (*n > 0 ? *n : 1)));
    for (int i = 0; i < *n; i++)
        out[i] = nulls[i] ? nullptr : TextDatumGetCString(elems[i]);
    return out;
}

Target *
load_targets(MemoryContext cxt, int *n_out)
{
    run(Stmt::SinkSubscriptions, nullptr, nullptr, true, 0);
    int n = static_cast<int>(SPI_processed);
    Target *ts = static_cast<Target *>(MemoryContextAllocZero(cxt, sizeof(Target) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) {
        HeapTuple tup = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        Target &t = ts[i];
        MemoryContext old = MemoryContextSwitchTo(cxt);
        t.subscription = text_col(tup, desc, 1);
        t.kind = text_col(tup, desc, 2);
        t.endpoint = text_col(tup, desc, 3);
        t.url = text_col(tup, desc, 4);
        Datum *elems;
        bool *nulls;
        deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)), TEXTOID, -1, false,
                          TYPALIGN_INT, &elems, &nulls, &t.nheaders);
        t.headers = static_cast<char **>(palloc(sizeof(char *) * (t.nheaders > 0 ? t.nheaders : 1)));
        for (int h = 0; h < t.nheaders; h++)
            t.headers[h] = TextDatumGetCString(elems[h]);
        t.timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
        t.max_in_flight = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
        char *state = text_col(tup, desc, 8);
        t.enabled = state != nullptr && strcmp(state, "enabled") == 0;
        t.breaker = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
        t.paused = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
        t.secrets = text_col(tup, desc, 11);
        t.bootstrap_servers = text_col(tup, desc, 12);
        t.topic = text_col(tup, desc, 13);
        t.properties = text_array_col(tup, desc, 14, &t.nproperties);
        t.nproperties /= 2;
        MemoryContextSwitchTo(old);
    }
    *n_out = n;
    return ts;
}

ArrayType *
subscription_names(const Target *ts, int n)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++)
        elems[i] = CStringGetTextDatum(ts[i].subscription);
    return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

// A message claimed, to send once the claim has committed.
struct Outgoing {
    int target;
    int flight;
    char *event_id;
    char *body;
    // kafka:
    char *payload;
    char *type;
    char *key;
    char **headers;  // name, value, ...
    int nheaders;    // pairs
    int64 occurred_ms;
};

// Whether the sink of `kind` takes more now (a kind not made yet does).
bool
kind_has_room(const char *kind)
{
    for (int k = 0; k < kKinds; k++)
        if (strcmp(kinds[k].kind, kind) == 0)
            return kinds[k].sink == nullptr || kinds[k].sink->has_room();
    return true;
}

// What one claim round found.
struct ClaimRound {
    bool extension_missing;
    bool filled;           // a claim took all it asked for: more may be due
    TimestampTz next_due;  // 0: none known
};

// What a claim leaves to send once its transaction has committed.
struct Claimed {
    Target *targets;
    Outgoing *outgoing;
    int nout;
};

// Claim what there is room for (between spi_begin and spi_end, in the turn's
// transaction; `cxt` outlives it): the messages go out once it commits.
// `reclaim`: take back leases that ran out first (`all`: every lease).
ClaimRound
claim_in_txn(MemoryContext cxt, bool reclaim, bool all, Claimed *claimed)
{
    ClaimRound out = {false, false, 0};
    TimestampTz now = GetCurrentTimestamp();
    uint64 generation = sink_config_generation();
    if (targets_read_at == 0 || generation != targets_generation ||
        TimestampDifferenceExceeds(targets_read_at, now, kTargetsTtlMs)) {
        MemoryContextReset(targets_cxt);
        cached_targets = load_targets(targets_cxt, &ncached_targets);
        targets_read_at = now;
        targets_generation = generation;
    }
    int n = ncached_targets;
    Target *ts = cached_targets;
    bool filled = false;  // a claim took all it asked for: more is due now
    Outgoing *outgoing = nullptr;
    int nout = 0;
    if (n > 0) {
        ArrayType *names = subscription_names(ts, n);
        if (reclaim) {
            Datum args[3] = {Int32GetDatum(guc_max_retries), PointerGetDatum(names), BoolGetDatum(all)};
            run(Stmt::SinkReclaim, args, nullptr);
            for (uint64 r = 0; r < SPI_processed; r++) {
                bool isnull;
                bool failed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
                char *sub = text_col(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
                metric_count(MetricKind::Subscription, sub, MetricCount::Reclaimed);
                if (failed)
                    metric_count(MetricKind::Subscription, sub, MetricCount::Failed);
            }
            if (SPI_processed > 0)
                ereport(LOG, (errmsg("outbox sink: took back %llu deliveries whose attempt was not settled",
                                     static_cast<unsigned long long>(SPI_processed))));
        }
        int room = guc_webhook_max_in_flight - in_flight;
        outgoing = static_cast<Outgoing *>(MemoryContextAlloc(cxt, sizeof(Outgoing) * (room > 0 ? room : 1)));
        for (int i = 0; i < n; i++)
            ts[i].drained = false;
        for (int i = 0; i < n && room > 0; i++) {
            Target &t = ts[i];
            t.drained = true;
            if (t.paused || !t.enabled || t.breaker == 1 || !kind_has_room(t.kind))
                continue;
            if (t.secrets == nullptr && strcmp(t.kind, "http") == 0) {
                uint64 others;
                if (log_limit_allows(&secret_log, &others))
                    ereport(WARNING, (errmsg("outbox sink: endpoint \"%s\" has no signing secret: its deliveries wait",
                                             t.endpoint),
                                      errhint("Give it one with outbox_rotate_endpoint_secret() (secrets are not "
                                              "carried by pg_dump).")));
                continue;
            }
            int busy = flights_to(t.endpoint);
            int limit = t.max_in_flight - busy;
            if (t.breaker == 2)
                limit = busy == 0 ? 1 : 0;  // half-open: one probe
            if (limit > room)
                limit = room;
            if (limit <= 0) {
                t.drained = false;  // no room now: its slots may free up
                continue;
            }
            double lease_s = t.timeout_ms / 1000.0 + kLeaseMarginS;
            bool kafka = strcmp(t.kind, "kafka") == 0;
            Datum args[4] = {CStringGetTextDatum(t.subscription), Int32GetDatum(limit), Float8GetDatum(lease_s),
                             BoolGetDatum(kafka)};
            run(Stmt::SinkClaim, args, nullptr);
            if (SPI_processed == static_cast<uint64>(limit)) {
                filled = true;
                t.drained = false;
            }
            for (uint64 r = 0; r < SPI_processed; r++) {
                HeapTuple tup = SPI_tuptable->vals[r];
                TupleDesc desc = SPI_tuptable->tupdesc;
                bool isnull;
                int f = free_flight();
                if (f < 0)
                    break;  // cannot be: room bounds it
                Flight &fl = flights[f];
                memset(&fl, 0, sizeof fl);
                fl.used = true;
                memcpy(&fl.id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
                strlcpy(fl.subscription, t.subscription, kNameLen);
                strlcpy(fl.endpoint, t.endpoint, kNameLen);
                fl.attempts = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
                fl.token = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
                fl.due = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
                fl.keyed = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
                in_flight++;
                room--;
                MemoryContext old = MemoryContextSwitchTo(cxt);
                Outgoing &o = outgoing[nout++];
                o.target = i;
                o.flight = f;
                o.event_id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&fl.id)));
                o.body = text_col(tup, desc, 4);
                o.payload = text_col(tup, desc, 6);
                o.type = text_col(tup, desc, 7);
                o.key = text_col(tup, desc, 8);
                o.headers = text_array_col(tup, desc, 9, &o.nheaders);
                o.nheaders /= 2;
                o.occurred_ms = DatumGetInt64(SPI_getbinval(tup, desc, 10, &isnull));
                MemoryContextSwitchTo(old);
            }
        }
        out.filled = filled;
        if (filled) {
            out.next_due = now;
        } else {
            Datum arg = PointerGetDatum(names);
            run(Stmt::SinkNextDue, &arg, nullptr, false, 1);
            bool isnull = true;
            Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
            out.next_due = isnull ? 0 : DatumGetTimestampTz(d);
        }
    }
    claimed->targets = ts;
    claimed->outgoing = outgoing;
    claimed->nout = nout;
    return out;
}

// Send what a committed claim leased.
void
send_claimed(const Claimed &c)
{
    const Target *ts = c.targets;
    const Outgoing *outgoing = c.outgoing;
    int nout = c.nout;
    for (int i = 0; i < nout; i++) {
        const Target &t = ts[outgoing[i].target];
        Sink *sink = sink_of(t.kind);
        const Outgoing &o = outgoing[i];
        bool kafka = strcmp(t.kind, "kafka") == 0;
        SinkTarget target = {t.endpoint, t.url, t.headers, t.nheaders, t.timeout_ms, t.secrets,
                             guc_webhook_allow_private};
        SinkMessage message = {static_cast<uint64_t>(o.flight), o.event_id, o.body,
                               o.body != nullptr ? strlen(o.body) : 0};
        if (kafka) {
            // The record: key = ordering key, value = the payload's JSON text,
            // headers id, type and the event's, timestamp = occurred_at.
            target.bootstrap_servers = t.bootstrap_servers;
            target.topic = t.topic;
            target.properties = t.properties;
            target.nproperties = t.nproperties;
            target.credentials_file = guc_kafka_credentials_file;
            message.body = o.payload;
            message.body_len = strlen(o.payload);
            message.event_type = o.type;
            message.key = o.key;
            message.key_len = o.key != nullptr ? strlen(o.key) : 0;
            message.event_headers = o.headers;
            message.nevent_headers = o.nheaders;
            message.timestamp_ms = o.occurred_ms;
        }
        if (sink == nullptr || !sink->send(target, message)) {
            // Not even queued: the lease runs out and the attempt is retried.
            Flight &fl = flights[o.flight];
            fl.used = false;
            in_flight--;
        }
    }
    // Let each kind start what was just queued (curl connects and writes the
    // request in its next turn): not one more pass through the loop's wait.
    if (nout > 0)
        for (int k = 0; k < kKinds; k++)
            if (kinds[k].sink != nullptr)
                kinds[k].sink->turn();
    if (nout > 0) {
        char activity[64];
        snprintf(activity, sizeof activity, "delivering (%d in flight)", in_flight);
        slot_sink_set_activity(my_slot, activity);
    }
}

// Whether a success of `endpoint` needs recording now (false: one was
// recorded within kSuccessRecordMs, with no failure since); a failure
// forgets the endpoint's last success.
bool
success_to_record(const char *endpoint, bool ok, TimestampTz now)
{
    int free_entry = -1;
    for (int i = 0; i < kRecentSuccesses; i++) {
        RecentSuccess &r = recent_successes[i];
        if (r.endpoint[0] == '\0') {
            if (free_entry < 0)
                free_entry = i;
            continue;
        }
        if (strcmp(r.endpoint, endpoint) != 0)
            continue;
        if (!ok) {
            r.endpoint[0] = '\0';
            return true;
        }
        if (!TimestampDifferenceExceeds(r.at, now, kSuccessRecordMs))
            return false;
        r.at = now;
        return true;
    }
    if (ok && free_entry >= 0) {
        strlcpy(recent_successes[free_entry].endpoint, endpoint, kNameLen);
        recent_successes[free_entry].at = now;
    }
    return true;
}

// An attempt's outcome for its endpoint: breaker, state, last success or
// error (between spi_begin and spi_end).
void
endpoint_result(const char *endpoint, bool ok, bool gone, const char *error)
{
    if (!success_to_record(endpoint, ok, GetCurrentTimestamp()))
        return;
    if (!ok)
        targets_read_at = 0;  // its breaker or state may change: read the targets again
    Datum args[6] = {CStringGetTextDatum(endpoint), BoolGetDatum(ok), CStringGetTextDatum(error),
                     Int32GetDatum(guc_webhook_breaker_failures),
                     Float8GetDatum(static_cast<double>(guc_webhook_disable_after_s)), BoolGetDatum(gone)};
    run(Stmt::SinkEndpointResult, args, nullptr);
    if (ok || SPI_processed != 1)
        return;
    char *state = text_col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    char *reason = text_col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
    bool isnull;
    Datum just = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
    // Said once: when this result disabled it (not at each later answer of an attempt already in flight).
    if (state != nullptr && strcmp(state, "disabled") == 0 && !isnull && DatumGetBool(just))
        ereport(WARNING, (errmsg("outbox sink: endpoint \"%s\" is disabled: %s", endpoint, reason ? reason : "failing"),
                          errhint("Its deliveries wait; outbox_resume_endpoint() enables it again.")));
}

void
log_stale(const Flight &fl)
{
    uint64 others;
    if (log_limit_allows(&stale_log, &others))
        ereport(LOG, (errmsg("outbox sink: an attempt's result was refused: its lease (token " INT64_FORMAT
                             ") no longer holds the delivery to subscription \"%s\"",
                             fl.token, fl.subscription)));
}

// A failed attempt (between spi_begin and spi_end): retried after the
// backoff (at least Retry-After when throttled), failed once out of
// attempts; a 410 leaves the delivery waiting, uncharged. False if the lease
// no longer holds it.
bool
settle_failure(const SinkResult &r, const Flight &fl, TimestampTz now)
{
    bool gone = r.outcome == SinkOutcome::Gone;
    // Busy (the kind's queue was full): sent again soon; neither the
    // endpoint's breaker nor the failure metrics hear of it.
    bool busy = r.outcome == SinkOutcome::Busy;
    bool give_up = !gone && !busy && fl.attempts >= 1 + guc_max_retries;
    TimestampTz next = now;
    if (busy) {
        next = now + USECS_PER_SEC;
    } else if (!gone && !give_up) {
        next = retry_time(now, fl.attempts - 1);
        if (r.outcome == SinkOutcome::Throttled && r.retry_after_s > 0) {
            long wait_s = r.retry_after_s < guc_webhook_max_retry_after_s ? r.retry_after_s
                                                                          : guc_webhook_max_retry_after_s;
            TimestampTz after = now + static_cast<int64>(wait_s) * USECS_PER_SEC;
            if (after > next)
                next = after;
        }
    }
    const char *error = r.error[0] != '\0' ? r.error : "failed";
    Datum args[8] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(&fl.id)), CStringGetTextDatum(fl.subscription),
                     Int64GetDatum(fl.token), Int32GetDatum(r.status),
                     PointerGetDatum(clip_error(cstring_to_text(error))),
                     CStringGetTextDatum(give_up ? "failed" : "created"), TimestampTzGetDatum(next),
                     BoolGetDatum(gone || busy)};  // neither was the delivery's failure: uncharged
    char nulls[9] = {' ', ' ', ' ', r.status > 0 ? ' ' : 'n', ' ', ' ', ' ', ' ', '\0'};
    run(Stmt::SinkFailed, args, nulls);
    if (SPI_processed != 1)
        return false;
    if (!gone && !busy)  // a 410 charges nothing: the delivery waits for the endpoint
        metric_count(MetricKind::Subscription, fl.subscription, give_up ? MetricCount::Failed : MetricCount::Retried);
    if (give_up) {
        char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(&fl.id))));
        ereport(WARNING, (errmsg("outbox sink: the delivery of event %s to subscription \"%s\" failed for good", id,
                                 fl.subscription),
                          errdetail("%s", error),
                          errhint("outbox_failed_deliveries() lists it; outbox_retry_deliveries() queues it again.")));
    }
    if (!busy)
        endpoint_result(fl.endpoint, false, gone, error);
    return true;
}

// Settle the attempts that ended (their own transaction). Returns how many.
// The acknowledged ones with one statement; the failures one by one, in
// order; each endpoint with a success gets one success update, before its
// failures if its last result of the turn was one, after them otherwise.
// The attempts that ended, from every kind (no transaction needed), as the
// loop's results_waiting() left them (it turned each kind just before).
SinkResult *
collect_results(int *n_out)
{
    SinkResult *results = nullptr;
    int n = 0;
    int cap = 0;
    for (int k = 0; k < kKinds; k++) {
        Sink *sink = kinds[k].sink;
        if (sink == nullptr)
            continue;
        SinkResult r;
        while (sink->pop_result(r)) {
            if (r.tag >= static_cast<uint64_t>(kMaxFlights) || !flights[r.tag].used)
                continue;
            if (n == cap) {
                cap = cap == 0 ? 64 : cap * 2;
                results = static_cast<SinkResult *>(results == nullptr ? palloc(sizeof(SinkResult) * cap)
                                                                       : repalloc(results, sizeof(SinkResult) * cap));
            }
            results[n++] = r;
        }
    }
    *n_out = n;
    return results;
}

void
forget_results(const SinkResult *results, int n)
{
    for (int i = 0; i < n; i++)
        flights[results[i].tag].used = false;
    in_flight -= n;
}

// Settle `results` (between spi_begin and spi_end, in the turn's transaction).
void
settle_in_txn(const SinkResult *results, int n)
{
    TimestampTz now = GetCurrentStatementStartTimestamp();

    // Each endpoint's last result of this turn: a success?
    char (*endpoints)[kNameLen] = static_cast<char (*)[kNameLen]>(palloc(sizeof(char[kNameLen]) * n));
    bool *had_success = static_cast<bool *>(palloc0(sizeof(bool) * n));
    bool *last_success = static_cast<bool *>(palloc0(sizeof(bool) * n));
    int nendpoints = 0;
    auto endpoint_index = [&](const char *name) {
        for (int e = 0; e < nendpoints; e++)
            if (strcmp(endpoints[e], name) == 0)
                return e;
        strlcpy(endpoints[nendpoints], name, kNameLen);
        return nendpoints++;
    };
    Datum *ok_ids = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *ok_subs = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *ok_tokens = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *ok_codes = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    int nok = 0;
    for (int i = 0; i < n; i++) {
        const SinkResult &r = results[i];
        Flight &fl = flights[r.tag];
        int e = endpoint_index(fl.endpoint);
        bool ok = r.outcome == SinkOutcome::Delivered;
        last_success[e] = ok;
        if (ok) {
            had_success[e] = true;
            ok_ids[nok] = UUIDPGetDatum(&fl.id);
            ok_subs[nok] = CStringGetTextDatum(fl.subscription);
            ok_tokens[nok] = Int64GetDatum(fl.token);
            ok_codes[nok++] = Int32GetDatum(r.status);
        }
    }
    for (int e = 0; e < nendpoints; e++)
        if (had_success[e] && !last_success[e])
            endpoint_result(endpoints[e], true, false, "");
    for (int i = 0; i < n; i++) {
        const SinkResult &r = results[i];
        if (r.outcome != SinkOutcome::Delivered && !settle_failure(r, flights[r.tag], now))
            log_stale(flights[r.tag]);
    }
    if (nok > 0) {
        Datum args[4] = {
            PointerGetDatum(construct_array(ok_ids, nok, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
            PointerGetDatum(construct_array(ok_subs, nok, TEXTOID, -1, false, TYPALIGN_INT)),
            PointerGetDatum(construct_array(ok_tokens, nok, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
            PointerGetDatum(construct_array(ok_codes, nok, INT4OID, sizeof(int32), true, TYPALIGN_INT))};
        run(Stmt::SinkDelivered, args, nullptr);
        bool all_held = SPI_processed == static_cast<uint64>(nok);
        TimestampTz at = GetCurrentTimestamp();
        for (int i = 0; i < n; i++) {
            const Flight &fl = flights[results[i].tag];
            if (results[i].outcome != SinkOutcome::Delivered)
                continue;
            // Some leases may no longer hold their delivery: say which (rare).
            bool held = all_held;
            for (uint64 t = 0; t < SPI_processed && !held; t++) {
                bool isnull;
                Datum id = SPI_getbinval(SPI_tuptable->vals[t], SPI_tuptable->tupdesc, 1, &isnull);
                char *sub = text_col(SPI_tuptable->vals[t], SPI_tuptable->tupdesc, 2);
                held = memcmp(DatumGetUUIDP(id), &fl.id, UUID_LEN) == 0 && strcmp(sub, fl.subscription) == 0;
            }
            if (held)
                metric_delivered(MetricKind::Subscription, fl.subscription, fl.due, at);
            else
                log_stale(fl);
        }
        if (SPI_processed > 0) {
            Datum *done = static_cast<Datum *>(palloc(sizeof(Datum) * SPI_processed));
            int ndone = 0;
            for (uint64 t = 0; t < SPI_processed; t++) {
                bool isnull;
                done[ndone++] = SPI_getbinval(SPI_tuptable->vals[t], SPI_tuptable->tupdesc, 1, &isnull);
            }
            // The relay archives them once this commits, if it has caught up
            // (fewer than these wait in its queue): the archive is the
            // costlier half of a settlement, and the relay idles while a
            // backlog goes to sinks. Else (the relay is busy, or does not
            // run) they are archived here: whichever is less busy does it.
            int room = slot_archive_room(my_slot);
            if (nto_archive + ndone <= room && kArchiveQueueLen - room < ndone) {
                for (int d = 0; d < ndone; d++)
                    to_archive[nto_archive++] = *DatumGetUUIDP(done[d]);
            } else {
                Datum arg = PointerGetDatum(construct_array(done, ndone, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
                run(Stmt::SinkArchiveLock, &arg, nullptr);
                run(Stmt::SinkArchive, &arg, nullptr);
            }
        }
    }
    for (int e = 0; e < nendpoints; e++)
        if (had_success[e] && last_success[e])
            endpoint_result(endpoints[e], true, false, "");
}

// Whether a claim would find room without the slots of the attempts that
// ended (they stay taken until settled), by the targets as last read. False
// when they are not known yet (or are stale): the claim then follows the
// settlement, in its transaction.
bool
room_before_settling()
{
    if (targets_read_at == 0 || targets_generation != sink_config_generation() ||
        in_flight >= guc_webhook_max_in_flight ||
        TimestampDifferenceExceeds(targets_read_at, GetCurrentTimestamp(), kTargetsTtlMs))
        return false;
    for (int i = 0; i < ncached_targets; i++) {
        const Target &t = cached_targets[i];
        if (t.paused || !t.enabled || t.breaker != 0 || t.secrets == nullptr)
            continue;
        if (flights_to(t.endpoint) < t.max_in_flight)
            return true;
    }
    return false;
}

// Whether the last claim found all that is due now for `subscription` (see
// Target::drained); false if it is not among the targets.
bool
subscription_drained(const char *subscription)
{
    for (int i = 0; i < ncached_targets; i++)
        if (strcmp(cached_targets[i].subscription, subscription) == 0)
            return cached_targets[i].drained;
    return false;
}

// One short transaction: settle `results` (n of them), then (if `claim`)
// lease more; commit; then send what was leased. `round` gets what the
// claim found (untouched without one, but for extension_missing).
void
txn_work(const SinkResult *results, int n, bool claim, bool reclaim, bool all, ClaimRound *round)
{
    MemoryContext cxt = CurrentMemoryContext;
    Oid save_user;
    int save_sec;
    if (!begin_relay_work(&save_user, &save_sec)) {
        forget_results(results, n);  // the extension is gone, and with it the deliveries
        round->extension_missing = true;
        return;
    }
    if (!extension_has_deliveries()) {
        end_relay_work(save_user, save_sec);
        forget_results(results, n);
        round->extension_missing = true;  // the schema is older than 0.2.0
        return;
    }
    spi_begin();
    if (n > 0)
        settle_in_txn(results, n);
    // Their slots are free for the claim (if the transaction fails, the
    // error path drops every slot and takes every lease back).
    forget_results(results, n);
    Claimed claimed = {nullptr, nullptr, 0};
    if (claim)
        *round = claim_in_txn(cxt, reclaim, all, &claimed);
    spi_end();
    end_relay_work(save_user, save_sec);
    // Committed: the relay may archive them now (those it has no room for
    // after all, its process gone meanwhile, are left to its sweep).
    if (nto_archive > 0) {
        (void) slot_archive_push(my_slot, to_archive, nto_archive);
        nto_archive = 0;
    }
    // The new leases (and the attempts they count) on disk before anything
    // is sent: a request that crashes the server is charged all the same.
    if (claimed.nout > 0)
        XLogFlush(XactLastCommitEnd);
    send_claimed(claimed);
}

// One turn's database work: settle the attempts that ended and (if `claim`)
// lease more, then send what was leased. Returns how many results were
// settled.
//
// When there is room to claim without the slots of the attempts that ended
// (the relay handed events over while others were in flight), the claim
// goes first, in a transaction of its own, and its requests go out before
// the settlement (whose archive is the costly part of a turn) begins: a new
// event does not wait for the last ones to be settled. The settlement then
// claims again only if that could find more: a claim took all it asked for
// (room freed by the settlement), a result belongs to a subscription the
// first claim did not find drained (it had no room: its slots were held by
// the very attempts being settled), an ordering key was settled (the key's
// next delivery may go now), or an attempt failed (its retry's due time is
// read again). Without the second of these a full endpoint's due deliveries
// waited for the next wake-up after their room was freed: in a turn whose
// claim went first because another endpoint had room, they waited for the
// next timeout of a stalled endpoint (TAP 041, in the assert-enabled build).
int
turn_work(bool claim, bool reclaim, bool all, ClaimRound *round)
{
    memset(round, 0, sizeof *round);
    int n;
    SinkResult *results = collect_results(&n);
    if (n == 0 && !claim)
        return 0;
    if (!(claim && n > 0 && room_before_settling())) {
        txn_work(results, n, claim, reclaim, all, round);
        return n;
    }
    txn_work(nullptr, 0, true, reclaim, all, round);
    if (round->extension_missing) {
        forget_results(results, n);
        return n;
    }
    bool again = round->filled;
    for (int i = 0; i < n && !again; i++) {
        const Flight &fl = flights[results[i].tag];
        again = results[i].outcome != SinkOutcome::Delivered || fl.keyed || !subscription_drained(fl.subscription);
    }
    if (!again) {
        txn_work(results, n, false, false, false, round);
        return n;
    }
    ClaimRound second;
    memset(&second, 0, sizeof second);
    txn_work(results, n, true, false, false, &second);
    *round = second;
    return n;
}

long
ms_until(TimestampTz t)
{
    long ms = static_cast<long>((t - GetCurrentTimestamp()) / 1000) + 1;
    return ms < 0 ? 0 : ms;
}

void
sink_loop()
{
    MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "outbox sink", ALLOCSET_DEFAULT_SIZES);
    volatile bool woken = true;
    volatile bool first = true;
    volatile TimestampTz next_reclaim = 0;
    volatile TimestampTz next_claim = 0;
    volatile int error_backoff_ms = 0;
    volatile TimestampTz first_result_at = 0;  // when results began to wait for this turn
    for (;;) {
        start_round(cxt);
        if (slot_asked_to_leave(my_slot)) {
            ereport(LOG, (errmsg("outbox sink: leaving database \"%s\": it is being dropped", my_dbname)));
            proc_exit(0);
        }
        volatile long sleep_ms = kPollMs;
        if (!guc_enabled || RecoveryInProgress()) {
            slot_sink_set_activity(my_slot, guc_enabled ? "standby: not delivering" : "disabled");
        } else {
            PG_TRY();
            {
                TimestampTz now = GetCurrentTimestamp();
                bool reclaim = now >= next_reclaim;
                if (reclaim)
                    next_reclaim = TimestampTzPlusMilliseconds(now, kReclaimIntervalMs);
                // Settle when half the attempts in flight (or all) have ended,
                // or the first of them has waited kCoalesceMs: a transaction
                // per handful of results, not per result.
                int ended = results_waiting();
                if (ended > 0 && first_result_at == 0)
                    first_result_at = now;
                bool settle = ended > 0 && (2 * ended >= in_flight ||
                                            TimestampDifferenceExceeds(first_result_at, now, kCoalesceMs));
                // Claim when there is room and a reason: a wake-up, attempts
                // that ended (room, and maybe the next of a key), a due time.
                bool claim = in_flight < guc_webhook_max_in_flight && (woken || reclaim || now >= next_claim || settle);
                ClaimRound c;
                memset(&c, 0, sizeof c);
                if (claim || settle) {
                    (void) turn_work(claim, reclaim, first, &c);
                    first_result_at = 0;
                    // Results that came in while it sent (its last turn of
                    // the kinds) wait like any others, not for the next fd
                    // event.
                    for (int k = 0; k < kKinds; k++)
                        if (kinds[k].sink != nullptr && kinds[k].sink->results_waiting() > 0)
                            sleep_ms = kCoalesceMs;
                } else if (ended > 0) {
                    // More results may come meanwhile; settle when the first
                    // has waited kCoalesceMs.
                    long waited = static_cast<long>((now - first_result_at) / 1000);
                    sleep_ms = waited >= kCoalesceMs ? 0 : kCoalesceMs - waited;
                }
                if (claim) {
                    first = false;
                    if (c.extension_missing) {
                        slot_sink_set_activity(my_slot, "waiting for CREATE EXTENSION outbox");
                        sleep_ms = kMissingExtensionRecheckMs;
                        first = true;
                    }
                    next_claim = TimestampTzPlusMilliseconds(now, kPollMs);
                    if (c.next_due != 0 && c.next_due < next_claim)
                        next_claim = c.next_due;
                }
                if (in_flight == 0)
                    slot_sink_set_activity(my_slot, "idle");
                long queued = -1;  // the producers' own queues, for outbox_worker_stats()
                for (int k = 0; k < kKinds; k++)
                    if (kinds[k].sink != nullptr && kinds[k].sink->queue_length() >= 0)
                        queued = (queued < 0 ? 0 : queued) + kinds[k].sink->queue_length();
                slot_sink_set_queue(my_slot, queued);
                long until = ms_until(next_claim);
                if (until < sleep_ms)
                    sleep_ms = until;
                until = ms_until(next_reclaim);
                if (until < sleep_ms)
                    sleep_ms = until;
                for (int k = 0; k < kKinds; k++)
                    if (kinds[k].sink != nullptr) {
                        long t = kinds[k].sink->next_timeout_ms();
                        if (t >= 0 && t < sleep_ms)
                            sleep_ms = t;
                    }
                error_backoff_ms = 0;
            }
            PG_CATCH();
            {
                HOLD_INTERRUPTS();
                MemoryContextSwitchTo(cxt);
                EmitErrorReport();
                FlushErrorState();
                AbortOutOfAnyTransaction();
                // What was in flight, claimed or collected may be half
                // recorded: drop it all, and take every lease back at the
                // next claim (sent again with the same webhook-id).
                for (int k = 0; k < kKinds; k++)
                    if (kinds[k].sink != nullptr) {
                        kinds[k].sink->abandon_all();
                        SinkResult stale;
                        while (kinds[k].sink->pop_result(stale)) {
                        }
                    }
                memset(flights, 0, sizeof(Flight) * kMaxFlights);
                in_flight = 0;
                nto_archive = 0;  // their settlement rolled back
                first = true;
                targets_read_at = 0;  // read them again
                memset(recent_successes, 0, sizeof recent_successes);
                RESUME_INTERRUPTS();
                MemoryContextSwitchTo(cxt);
                slot_sink_set_activity(my_slot, "error backoff");
                error_backoff_ms = error_backoff_ms == 0 ? 1000 : error_backoff_ms * 2;
                if (error_backoff_ms > guc_max_error_backoff_ms)
                    error_backoff_ms = guc_max_error_backoff_ms;
                sleep_ms = error_backoff_ms;
                pgstat_report_activity(STATE_IDLE, nullptr);
            }
            PG_END_TRY();
        }
        long stats_ms = pgstat_report_stat(false);
        if (stats_ms > 0 && stats_ms < sleep_ms)
            sleep_ms = stats_ms;
        int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                   wait_fd, sleep_ms, PG_WAIT_EXTENSION);
        woken = (rc & WL_LATCH_SET) != 0;
        ResetLatch(MyLatch);
    }
}

void
sink_main(Datum arg)
{
    int idx = DatumGetInt32(arg);
    WorkerArgs args = worker_connect();
    if (idx < 0 || idx >= relay_slot_count() || !slot_sink_attach(idx, args.dboid, my_dbname))
        proc_exit(0);
    // At once: whatever fails from here on must give the slot back.
    before_shmem_exit(sink_exit, Int32GetDatum(idx));
    my_slot = idx;
    targets_cxt = AllocSetContextCreate(TopMemoryContext, "outbox sink targets", ALLOCSET_DEFAULT_SIZES);
    flights = static_cast<Flight *>(MemoryContextAllocZero(TopMemoryContext, sizeof(Flight) * kMaxFlights));
    wait_fd = epoll_create1(EPOLL_CLOEXEC);
    if (wait_fd < 0)
        ereport(ERROR, (errcode_for_socket_access(), errmsg("outbox sink: epoll_create1: %m")));

    worker_session("outbox sink");
    // Its commits do not wait for the WAL to reach disk, except before it
    // sends what it claimed (turn_work): a crash of the server can forget
    // the last few hundred milliseconds of its settlements, and those
    // deliveries are sent again (the same webhook-id), which at-least-once
    // delivery allows; a claim, with the attempt it counts, is on disk before
    // its request goes out.
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    ereport(LOG, (errmsg("outbox sink started for database \"%s\"", my_dbname)));
    sink_loop();
}

} // namespace

} // namespace outbox

extern "C" void
outbox_sink_main(Datum arg)
{
    outbox::guarded_entry([arg] { outbox::sink_main(arg); });
}
