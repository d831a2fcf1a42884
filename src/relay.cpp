// The relay: one batch of events handed to the subscriptions, and one batch
// of deliveries to the SQL subscriptions.
//
// One transaction per batch. First the relay hands the due events whose type
// a subscription's pattern matches to those subscriptions (dispatch): a
// delivery row for each (event, subscription), paused subscriptions too, and
// the event is marked dispatched (claimed by nobody else from then on; it
// waits in outbox_events, active, until all its deliveries are settled).
// Then it claims the due deliveries of the active SQL subscriptions, locked
// for the batch's transaction, with each event's whole row (the handler's
// argument), and runs the handlers in claim order, as the subscription's
// owner, under outbox.handler_timeout, in one subtransaction for as long as
// they succeed. The deliveries made are marked completed at the end of the
// batch, and the events whose deliveries are all settled move to the
// archive, in the batch's transaction: a handler's writes and its delivery's
// completion commit together, or not at all (exactly-once effect). A handler
// error rolls back the subtransaction; the deliveries before the failing one
// run again, one subtransaction each, so that each keeps its own effects and
// a failure among them is its own. The failure is recorded on that delivery
// alone, with backoff (failed after the maximum): the event's other
// deliveries are not touched, and the batch goes on with the next delivery
// in a new subtransaction. The claim's row locks last until the batch
// commits, so nobody else can touch the batch's deliveries meanwhile.
#include "outbox/pg.hpp"
#include "outbox/metrics.hpp"
#include "outbox/claim.hpp"
#include "outbox/deliveries.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/inflight.hpp"
#include "outbox/limits.hpp"
#include "outbox/log_limit.hpp"
#include "outbox/patterns.hpp"
#include "outbox/relay.hpp"
#include "outbox/settings.hpp"
#include "outbox/settle.hpp"
#include "outbox/shmem.hpp"
#include "outbox/spi.hpp"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/pmsignal.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"
}

#include <cstring>

namespace outbox {

namespace {

constexpr int kReclaimLimit = 1000;
constexpr int kHandOverBatch = 1000;  // events a batch that runs no handler hands over

// The transaction of the batch being delivered (for the in-flight note).
TransactionId batch_xid = InvalidTransactionId;

// Final failures and retries are logged once, then at most every few minutes
// with a count of the others (outbox_worker_stats() counts them all).
LogLimit failed_log = {};
LogLimit retried_log = {};

// Between units of work: a cancel or SIGTERM ends the batch, and so does the
// death of the postmaster (WaitLatch notices it only while the worker sleeps,
// and a draining relay may not sleep for a long time).
void
check_interrupts_and_postmaster()
{
    CHECK_FOR_INTERRUPTS();
    if (!PostmasterIsAlive())
        proc_exit(1);
}

struct Subscription {
    char *name;
    char *pattern;
    text *like;  // the pattern as the claim matches it (patterns.hpp)
    Oid handler;   // InvalidOid for an external sink
    Oid owner;
    bool paused;
    bool external; // delivered by the sink worker, not here
};

// One delivery of the batch: event `id` to subscription `sub`.
struct Delivery {
    pg_uuid_t id;
    int sub;       // index in the batch's subscriptions
    int attempts;  // attempts made before this batch's
    char *type;
    Datum row;     // the event's outbox_events row, as the handler's argument
    int direct;    // its event's index in the batch's direct events; -1: it has a delivery row
    bool keyed;    // its event has an ordering key (a delivery row's: the next of the key waits for it)
};

// An event the batch claimed whose subscriptions are all SQL ones, active,
// with nothing earlier of its ordering key still being delivered: the batch
// delivers it to them itself, without handing it over first (no delivery
// rows written), and archives it when all succeed. If one fails, or is left
// unsettled, the event is handed over after all (its delivery rows made),
// and settles as a handed-over event does.
struct DirectEvent {
    pg_uuid_t id;
    int first;         // its deliveries: first .. first + count - 1 among the batch's direct ones
    int count;
    bool handed_over;  // its delivery rows exist now
};

// What dispatch() took: events handed over, and events to deliver directly
// with their deliveries (in the caller's context; room for the batch's
// events, and for each of them a delivery per active SQL subscription).
struct Taken {
    int events;            // handed over or taken directly
    DirectEvent *direct;
    int ndirect;
    Delivery *ds;          // the direct events' deliveries, event after event
    int nds;
    bool direct_keyed;     // a direct event has an ordering key: the next of the key may wait
};

void hand_over_direct(Taken *taken, const int *which, int n, const Subscription *subs);

char *
column_cstring(HeapTuple tup, TupleDesc desc, int col)
{
    bool isnull;
    Datum d = SPI_getbinval(tup, desc, col, &isnull);
    return isnull ? pstrdup("") : TextDatumGetCString(d);
}

// Subscriptions in name order (between spi_begin and spi_end), copied into cxt.
Subscription *
load_subscriptions(MemoryContext cxt, int *n_out)
{
    run(Stmt::Subscriptions, nullptr, nullptr, true, 0);
    int n = static_cast<int>(SPI_processed);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    Subscription *subs = static_cast<Subscription *>(palloc0(sizeof(Subscription) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) {
        HeapTuple tup = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        subs[i].name = column_cstring(tup, desc, 1);
        subs[i].pattern = column_cstring(tup, desc, 2);
        subs[i].like = like_pattern(subs[i].pattern, static_cast<int>(strlen(subs[i].pattern)));
        subs[i].handler = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
        subs[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
        subs[i].paused = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
        subs[i].external = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
        if (subs[i].external)
            subs[i].handler = InvalidOid;
    }
    MemoryContextSwitchTo(old);
    *n_out = n;
    return subs;
}

// The LIKE patterns of all subscriptions (paused ones too: their deliveries
// wait), for the dispatch claim; null when there are none.
ArrayType *
dispatch_patterns(const Subscription *subs, int n)
{
    if (n == 0)
        return nullptr;
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    for (int i = 0; i < n; i++)
        elems[i] = CStringGetTextDatum(subs[i].pattern);
    return type_patterns_arg(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

// The names of the subscriptions: all of them, or (`active_sql`) the SQL
// ones whose deliveries the relay makes now (not paused); null when there
// are none.
ArrayType *
subscription_names(const Subscription *subs, int n, bool active_sql)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!active_sql || (!subs[i].paused && !subs[i].external))
            elems[k++] = CStringGetTextDatum(subs[i].name);
    return k == 0 ? nullptr : construct_array(elems, k, TEXTOID, -1, false, TYPALIGN_INT);
}

// Run one handler on one event as the subscription's owner, with the
// handler timeout. Raises ERROR if the handler does (or cannot be run).
// `flinfo` is the subscription's, for the whole batch: looked up on first use
// (fn_oid invalid), in its fn_mcxt. A SQL-language handler keeps its parsed
// and planned body in it for as long as the subtransaction lasts.
void
call_handler(const Subscription *sub, FmgrInfo *flinfo, Datum row)
{
    if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(sub->owner)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("the owner (role %u) of subscription \"%s\" no longer exists", sub->owner, sub->name),
                        errhint("Drop the subscription with outbox_unsubscribe() and subscribe again.")));
    if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(sub->handler)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                        errmsg("the handler (function %u) of subscription \"%s\" no longer exists",
                               sub->handler, sub->name),
                        errhint("Drop the subscription with outbox_unsubscribe() and subscribe again.")));
    if (pg_proc_aclcheck(sub->handler, sub->owner, ACL_EXECUTE) != ACLCHECK_OK)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("role \"%s\" may not execute %s, the handler of subscription \"%s\"",
                               GetUserNameFromId(sub->owner, false),
                               format_procedure(sub->handler), sub->name)));

    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    SetUserIdAndSecContext(sub->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    // Settings the handler changes (SET, SET LOCAL, set_config) end with it:
    // rolled back after the call, as core does around index functions
    // (commands/vacuum.c), so that no handler runs with another's settings.
    int nest = NewGUCNestLevel();
    if (guc_handler_timeout_ms > 0)
        enable_timeout_after(STATEMENT_TIMEOUT, guc_handler_timeout_ms);

    if (!OidIsValid(flinfo->fn_oid))
        fmgr_info_cxt(sub->handler, flinfo, flinfo->fn_mcxt);
    LOCAL_FCINFO(fcinfo, 1);
    InitFunctionCallInfoData(*fcinfo, flinfo, 1, InvalidOid, nullptr, nullptr);
    fcinfo->args[0].value = row;
    fcinfo->args[0].isnull = false;
    (void) FunctionCallInvoke(fcinfo);

    if (guc_handler_timeout_ms > 0)
        disable_timeout(STATEMENT_TIMEOUT, false);
    AtEOXact_GUC(false, nest);
    SetUserIdAndSecContext(save_user, save_sec);
}

// End the subtransaction a relay step opened, back in `cxt` under `owner`.
void
commit_subxact(MemoryContext cxt, ResourceOwner owner)
{
    ReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
}

// In a PG_CATCH: take the error (the caller frees it with FreeErrorData) and
// roll the subtransaction back, back in `cxt` under `owner`.
ErrorData *
rollback_subxact(MemoryContext cxt, ResourceOwner owner)
{
    MemoryContextSwitchTo(cxt);
    ErrorData *edata = CopyErrorData();
    FlushErrorState();
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    return edata;
}

// The deliveries ds[from..n-1], in order, in one subtransaction, until
// `deadline` has passed (checked after each delivery but the first). Returns
// the index of the first delivery not made: the group committed with the
// deliveries before it (n, or less at the deadline), *error stays null. Or,
// if a handler failed, the index of its delivery: the subtransaction rolled
// back (no delivery of the group took effect), and *error gets the message.
int
deliver_group(const Delivery *ds, int from, int n, const Subscription *subs, FmgrInfo *handlers,
              MemoryContext cxt, TimestampTz deadline, char **error)
{
    volatile int current = -1;
    volatile int at = from;
    ResourceOwner owner = CurrentResourceOwner;

    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        int d = from;
        for (; d < n; d++) {
            if (d > from && GetCurrentTimestamp() >= deadline)
                break;
            at = d;
            current = ds[d].sub;
            inflight_set(batch_xid, &ds[d].id, subs[current].name);
            call_handler(&subs[current], &handlers[current], ds[d].row);
            current = -1;
        }
        commit_subxact(cxt, owner);
        at = d;
    }
    PG_CATCH();
    {
        disable_timeout(STATEMENT_TIMEOUT, false);
        ErrorData *edata = rollback_subxact(cxt, owner);
        int i = current;
        if (i >= 0)
            *error = psprintf("subscription \"%s\" (%s): %s", subs[i].name, subs[i].pattern,
                              edata->message ? edata->message : "unknown error");
        else
            *error = psprintf("%s", edata->message ? edata->message : "unknown error");
        FreeErrorData(edata);
    }
    PG_END_TRY();
    return at;
}

// Record a failed attempt of a delivery (own subtransaction: if even that
// fails, the delivery is left as it was, due again when the batch commits,
// the attempt not counted).
// A delivery taken directly (d->direct >= 0) is handed over first, with the
// event's other deliveries, so that it has a row to record it on.
void
record_failure(const Delivery *d, const Subscription *subs, Taken *taken, const char *error, MemoryContext cxt,
               BatchResult *out)
{
    const Subscription *sub = &subs[d->sub];
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool recorded = false;
    volatile bool failed = false;
    volatile TimestampTz next = 0;
    bool hand = d->direct >= 0 && !taken->direct[d->direct].handed_over;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        TimestampTz when = 0;
        spi_begin();
        if (hand)
            hand_over_direct(taken, &d->direct, 1, subs);
        const char *status = fail_delivery(&d->id, sub->name, d->attempts, error, &when);
        failed = strcmp(status, "failed") == 0;
        next = when;
        spi_end();
        commit_subxact(cxt, owner);
        recorded = true;
    }
    PG_CATCH();
    {
        ErrorData *edata = rollback_subxact(cxt, owner);
        ereport(WARNING, (errmsg("outbox relay: could not record the failure of a delivery: %s", edata->message),
                          errdetail("%s", error)));
        FreeErrorData(edata);
    }
    PG_END_TRY();
    // Outside the subtransaction's PG_TRY: an error here is the batch's.
    if (!recorded)
        return;
    if (hand)
        taken->direct[d->direct].handed_over = true;
    metric_count(MetricKind::Subscription, sub->name, failed ? MetricCount::Failed : MetricCount::Retried);
    char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(&d->id))));
    copy_message(out->last_error, kLastErrorLen, psprintf("event %s (%s): %s", id, d->type, error));
    uint64 others;
    if (failed) {
        out->failed++;
        if (log_limit_allows(&failed_log, &others))
            ereport(WARNING, (errmsg("outbox relay: the delivery of event %s (%s) to subscription \"%s\" failed for good",
                                     id, d->type, sub->name),
                              errdetail("%s", error),
                              others > 0 ? errhint("%llu more deliveries failed for good since the last such message; "
                                                   "outbox_failed_deliveries() lists them, outbox_retry_deliveries() "
                                                   "queues them again.",
                                                   static_cast<unsigned long long>(others))
                                         : errhint("outbox_failed_deliveries() lists it; outbox_retry_deliveries() "
                                                   "queues it again.")));
    } else {
        out->retried++;
        if (log_limit_allows(&retried_log, &others))
            ereport(LOG, (errmsg("outbox relay: the delivery of event %s (%s) to subscription \"%s\" will be retried at %s",
                                 id, d->type, sub->name, timestamptz_to_str(next)),
                          others > 0 ? errdetail("%s (%llu more failed attempts were scheduled for a retry since "
                                                 "the last such message)",
                                                 error, static_cast<unsigned long long>(others))
                                     : errdetail("%s", error)));
    }
}

// Settle the deliveries made (done[i]) in the batch's transaction. Those
// with a row: marked completed, with one statement, and the events whose
// deliveries are all settled move to the archive. A direct event all of
// whose deliveries were made moves to the archive at once; one with only
// some made is handed over now, those made completed, the others due again.
void
settle_delivered(const Delivery *ds, const bool *done, int n, const Subscription *subs, Taken *taken,
                 TimestampTz started)
{
    int size = n > 0 ? n : 1;
    pg_uuid_t *ids = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t) * size));
    const char **names = static_cast<const char **>(palloc(sizeof(char *) * size));
    int k = 0;
    int nd = taken->ndirect > 0 ? taken->ndirect : 1;
    int *made = static_cast<int *>(palloc0(sizeof(int) * nd));
    for (int i = 0; i < n; i++)
        if (done[i] && ds[i].direct >= 0)
            made[ds[i].direct]++;
    int *partly = static_cast<int *>(palloc(sizeof(int) * nd));
    int npartly = 0;
    Datum *whole = static_cast<Datum *>(palloc(sizeof(Datum) * nd));
    int nwhole = 0;
    Datum *pair_ids = static_cast<Datum *>(palloc(sizeof(Datum) * size));
    Datum *pair_subs = static_cast<Datum *>(palloc(sizeof(Datum) * size));
    int pairs = 0;
    for (int e = 0; e < taken->ndirect; e++) {
        DirectEvent *ev = &taken->direct[e];
        if (ev->handed_over || made[e] == 0)
            continue;
        if (made[e] < ev->count) {
            partly[npartly++] = e;
            continue;
        }
        whole[nwhole++] = UUIDPGetDatum(&ev->id);
    }
    for (int i = 0; i < n; i++) {
        if (!done[i])
            continue;
        int e = ds[i].direct;
        if (e >= 0 && !taken->direct[e].handed_over && made[e] == taken->direct[e].count) {
            pair_ids[pairs] = UUIDPGetDatum(const_cast<pg_uuid_t *>(&ds[i].id));
            pair_subs[pairs++] = CStringGetTextDatum(subs[ds[i].sub].name);
            continue;
        }
        ids[k] = ds[i].id;
        names[k++] = subs[ds[i].sub].name;
    }
    if (k == 0 && nwhole == 0)
        return;
    spi_begin();
    hand_over_direct(taken, partly, npartly, subs);
    (void) complete_deliveries(ids, names, k, started);
    if (nwhole > 0) {
        Datum args[4] = {PointerGetDatum(construct_array(whole, nwhole, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
                         PointerGetDatum(construct_array(pair_ids, pairs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
                         PointerGetDatum(construct_array(pair_subs, pairs, TEXTOID, -1, false, TYPALIGN_INT)),
                         TimestampTzGetDatum(started)};
        run(Stmt::ArchiveDelivered, args, nullptr);
        if (SPI_processed != static_cast<uint64>(nwhole))
            elog(ERROR, "outbox relay: %d of %d events delivered in the batch are gone",
                 nwhole - static_cast<int>(SPI_processed), nwhole);
    }
    spi_end();
    // Counted when the batch commits.
    TimestampTz now = GetCurrentTimestamp();
    for (int i = 0; i < n; i++) {
        if (!done[i])
            continue;
        // Due since it was published, or since the time it was published for.
        bool isnull;
        HeapTupleHeader th = DatumGetHeapTupleHeader(ds[i].row);
        Datum created = GetAttributeByName(th, "created_on", &isnull);
        TimestampTz due = isnull ? now : DatumGetTimestampTz(created);
        Datum available = GetAttributeByName(th, "available_at", &isnull);
        if (!isnull && DatumGetTimestampTz(available) > due)
            due = DatumGetTimestampTz(available);
        metric_delivered(MetricKind::Subscription, subs[ds[i].sub].name, due, now);
    }
}

// The event row as the handler sees it, with the delivery's own state:
// retry_count counts the event's failed attempts before it was handed over
// (expired leases of consumers) and this delivery's so far; last_error is
// the delivery's last error, if it has one; next_retry_at the delivery's.
// Allocated in the current context.
Datum
row_for_delivery(Datum row, int attempts, Datum last_error, bool last_error_null, Datum next_retry,
                 bool next_retry_null)
{
    HeapTupleHeader th = DatumGetHeapTupleHeader(row);
    TupleDesc desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(th), HeapTupleHeaderGetTypMod(th));
    int cols[3] = {0, 0, 0};
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped)
            continue;
        if (strcmp(NameStr(att->attname), "retry_count") == 0)
            cols[0] = i + 1;
        else if (strcmp(NameStr(att->attname), "next_retry_at") == 0)
            cols[1] = i + 1;
        else if (strcmp(NameStr(att->attname), "last_error") == 0)
            cols[2] = i + 1;
    }
    if (cols[0] == 0 || cols[1] == 0 || cols[2] == 0) {
        ReleaseTupleDesc(desc);
        elog(ERROR, "outbox relay: outbox_events has no column retry_count, next_retry_at or last_error");
    }
    HeapTupleData tmp;
    tmp.t_len = HeapTupleHeaderGetDatumLength(th);
    ItemPointerSetInvalid(&tmp.t_self);
    tmp.t_tableOid = InvalidOid;
    tmp.t_data = th;
    bool isnull;
    Datum before = heap_getattr(&tmp, cols[0], desc, &isnull);
    int retry_count = (isnull ? 0 : DatumGetInt32(before)) + attempts;
    int ncols = last_error_null ? 2 : 3;  // no error of its own: the event's stays
    Datum values[3] = {Int32GetDatum(retry_count), next_retry, last_error_null ? (Datum) 0 : datumCopy(last_error, false, -1)};
    bool nulls[3] = {false, next_retry_null, false};
    HeapTuple changed = heap_modify_tuple_by_cols(&tmp, desc, ncols, cols, values, nulls);
    ReleaseTupleDesc(desc);
    return HeapTupleGetDatum(changed);
}

// When the next event or delivery of the SQL subscriptions `names` becomes
// due (between spi_begin and spi_end). Not read-only: it must see the retry
// times this batch's failures just wrote, which its starting snapshot does not.
TimestampTz
next_due(ArrayType *names)
{
    Datum arg = PointerGetDatum(names);
    char nulls[2] = {names ? ' ' : 'n', '\0'};
    run(Stmt::NextDue, &arg, nulls, false, 1);
    bool isnull = true;
    Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
    return isnull ? 0 : DatumGetTimestampTz(d);
}

// Hand the events `ids` to their subscriptions: a delivery row for each pair
// (pair_ids[i], pair_subs[i]), the events marked dispatched.
void
hand_over(Datum *ids, int n, Datum *pair_ids, Datum *pair_subs, int pairs)
{
    Datum args[3] = {PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
                     PointerGetDatum(construct_array(pair_ids, pairs, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
                     PointerGetDatum(construct_array(pair_subs, pairs, TEXTOID, -1, false, TYPALIGN_INT))};
    run(Stmt::Dispatch, args, nullptr);
    if (SPI_processed != static_cast<uint64>(pairs))
        elog(ERROR, "outbox relay: %d deliveries made for %d (event, subscription) pairs",
             static_cast<int>(SPI_processed), pairs);
}

// Hand the direct events `which` (indexes into taken->direct) over after all:
// their delivery rows made, due at once (between spi_begin and spi_end).
void
hand_over_direct(Taken *taken, const int *which, int n, const Subscription *subs)
{
    if (n == 0)
        return;
    int pairs = 0;
    for (int i = 0; i < n; i++)
        pairs += taken->direct[which[i]].count;
    Datum *ids = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *pair_ids = static_cast<Datum *>(palloc(sizeof(Datum) * pairs));
    Datum *pair_subs = static_cast<Datum *>(palloc(sizeof(Datum) * pairs));
    int k = 0;
    for (int i = 0; i < n; i++) {
        DirectEvent *ev = &taken->direct[which[i]];
        ids[i] = UUIDPGetDatum(&ev->id);
        for (int j = ev->first; j < ev->first + ev->count; j++) {
            pair_ids[k] = UUIDPGetDatum(&taken->ds[j].id);
            pair_subs[k++] = CStringGetTextDatum(subs[taken->ds[j].sub].name);
        }
    }
    hand_over(ids, n, pair_ids, pair_subs, pairs);
}

// Hand the due events the subscriptions match to them, at most batch_size
// (between spi_begin and spi_end); returns in *taken how many were taken. An
// expired lease of a consumer met is reclaimed first (one out of attempts is
// failed instead: counted in out->failed). With `direct` (the caller's
// context; null: hand every event over), an event whose subscriptions are
// all active SQL ones and whose ordering key has no delivery unsettled is
// not handed over but taken to be delivered directly by the batch. A claim
// takes the first event of each ordering key only (a later one waits for the
// earlier to be handed over): claims follow each other, each seeing what the
// one before handed over, until one finds nothing more or the batch is full.
// Only a claim that handed a keyed event over can have held a later one
// back: the next claim runs only then (or when the batch was full), not after
// every batch.
int dispatch_once(const Subscription *subs, int nsubs, int batch_size, BatchResult *out, bool *keyed,
                  MemoryContext direct, Taken *taken);

// Claims again for the next events of the ordering keys it took while it
// has taken fewer than keyed_limit events: each such claim walks the keys'
// events handed over already (their index entries are not dead while the
// batch runs), so a batch enlarged for a hand-over does not repeat it 1,000
// times for one key.
void
dispatch(const Subscription *subs, int nsubs, int batch_size, int keyed_limit, BatchResult *out, MemoryContext direct,
         Taken *taken)
{
    memset(taken, 0, sizeof *taken);
    int active = 0;
    for (int i = 0; i < nsubs; i++)
        if (!subs[i].paused && !subs[i].external)
            active++;
    if (direct != nullptr && active > 0) {
        taken->direct = static_cast<DirectEvent *>(MemoryContextAllocZero(direct, sizeof(DirectEvent) * batch_size));
        taken->ds = static_cast<Delivery *>(
            MemoryContextAllocZero(direct, sizeof(Delivery) * static_cast<Size>(batch_size) * active));
    } else {
        direct = nullptr;
    }
    while (taken->events < batch_size) {
        bool keyed = false;
        int n = dispatch_once(subs, nsubs, batch_size - taken->events, out, &keyed, direct, taken);
        taken->events += n;
        if (n == 0 || !keyed)
            break;
        if (taken->events >= keyed_limit) {
            out->more = true;  // the keys' next events: in the next batch, at once
            break;
        }
    }
}

int
dispatch_once(const Subscription *subs, int nsubs, int batch_size, BatchResult *out, bool *keyed,
              MemoryContext direct, Taken *taken)
{
    ArrayType *patterns = dispatch_patterns(subs, nsubs);
    if (patterns == nullptr)
        return 0;
    // The events this batch took directly are still undispatched, and its
    // own row locks do not make SKIP LOCKED skip them: a later claim of the
    // batch skips them by id.
    Datum skip = (Datum) 0;
    if (taken->ndirect > 0) {
        Datum *ids = static_cast<Datum *>(palloc(sizeof(Datum) * taken->ndirect));
        for (int i = 0; i < taken->ndirect; i++)
            ids[i] = UUIDPGetDatum(&taken->direct[i].id);
        skip = PointerGetDatum(construct_array(ids, taken->ndirect, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
    }
    Datum values[6] = {Int32GetDatum(batch_size), PointerGetDatum(patterns), (Datum) 0, skip,
                       PointerGetDatum(subscription_names(subs, nsubs, false)), BoolGetDatum(direct != nullptr)};
    char nulls[7] = {' ', ' ', 'n', skip == (Datum) 0 ? 'n' : ' ', ' ', ' ', '\0'};  // nothing to leave alone
    run(Stmt::DispatchClaim, values, nulls);
    int claimed = static_cast<int>(SPI_processed);
    if (claimed == 0)
        return 0;
    SPITupleTable *tt = SPI_tuptable;
    if (tt->tupdesc->natts != 6)
        elog(ERROR, "outbox relay: its dispatch claim returned %d columns, not 6", tt->tupdesc->natts);
    ReclaimedRows reclaimed = reclaim_met_expired(tt, claimed, 3);
    Datum *events = static_cast<Datum *>(palloc(sizeof(Datum) * claimed));
    Datum *pair_ids = static_cast<Datum *>(palloc(sizeof(Datum) * claimed * nsubs));
    Datum *pair_subs = static_cast<Datum *>(palloc(sizeof(Datum) * claimed * nsubs));
    int *matches = static_cast<int *>(palloc(sizeof(int) * (nsubs > 0 ? nsubs : 1)));
    int n = 0;
    int pairs = 0;
    int direct_taken = 0;
    for (int i = 0; i < claimed; i++) {
        HeapTuple tup = tt->vals[i];
        TupleDesc desc = tt->tupdesc;
        bool isnull;
        bool expired = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
        if (expired && (reclaimed.rows == nullptr || reclaimed.rows[i] == nullptr)) {
            out->failed++;  // an expired lease out of attempts: failed, not handed over
            continue;
        }
        Datum id = SPI_getbinval(tup, desc, 1, &isnull);
        text *type = DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull));
        bool is_keyed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
        bool blocked = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
        int matched = 0;
        bool all_direct = direct != nullptr && !expired && !blocked;
        for (int s = 0; s < nsubs; s++)
            if (type_matches(type, subs[s].like)) {
                matches[matched++] = s;
                if (subs[s].paused || subs[s].external)
                    all_direct = false;
            }
        if (matched == 0)
            continue;
        if (all_direct) {
            MemoryContext old = MemoryContextSwitchTo(direct);
            DirectEvent *ev = &taken->direct[taken->ndirect];
            memcpy(&ev->id, DatumGetUUIDP(id), sizeof(pg_uuid_t));
            ev->first = taken->nds;
            ev->count = matched;
            Datum row = SPI_getbinval(tup, desc, 6, &isnull);
            Datum arg = row_for_delivery(row, 0, (Datum) 0, true, (Datum) 0, true);
            char *type_name = text_to_cstring(type);
            for (int m = 0; m < matched; m++) {
                Delivery *d = &taken->ds[taken->nds++];
                d->id = ev->id;
                d->sub = matches[m];
                d->attempts = 0;
                d->type = type_name;
                d->row = arg;
                d->direct = taken->ndirect;
                d->keyed = is_keyed;
            }
            taken->ndirect++;
            if (is_keyed)
                taken->direct_keyed = true;
            MemoryContextSwitchTo(old);
            direct_taken++;
            continue;
        }
        if (is_keyed)
            *keyed = true;
        for (int m = 0; m < matched; m++) {
            pair_ids[pairs] = id;
            pair_subs[pairs++] = CStringGetTextDatum(subs[matches[m]].name);
            if (subs[matches[m]].external)
                out->dispatched_external = true;
        }
        events[n++] = id;
    }
    if (n > 0)
        hand_over(events, n, pair_ids, pair_subs, pairs);
    return n + direct_taken;
}

// The upkeep asked for, in the batch's transaction (between spi_begin and
// spi_end), before anything else: an error here rolls back no handler's
// work. The backlog first, in the transaction's snapshot (read only).
void
run_upkeep(const Upkeep *upkeep, BatchResult *out)
{
    out->backlog_age = -1;
    if (upkeep->backlog && guc_backlog_warning_age_s > 0) {
        run(Stmt::BacklogAge, nullptr, nullptr, true, 1);
        bool isnull = true;
        if (SPI_processed == 1) {
            Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
            if (!isnull)
                out->backlog_age = DatumGetFloat8(d);
        }
        out->backlog_checked = true;
    }
    // Expired leases of consumers that did not come back: the events are due
    // again, and the claims of this batch see them.
    if (upkeep->reclaim) {
        Datum values[2] = {Int32GetDatum(guc_max_retries), Int32GetDatum(kReclaimLimit)};
        run(Stmt::ReclaimExpired, values, nullptr);
        int n = static_cast<int>(SPI_processed);
        for (int i = 0; i < n; i++) {
            bool isnull;
            bool failed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
            Datum owner = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
            const char *consumer = isnull ? nullptr : TextDatumGetCString(owner);
            metric_count(MetricKind::Consumer, consumer, MetricCount::Reclaimed);  // counted at commit
            if (failed) {
                metric_count(MetricKind::Consumer, consumer, MetricCount::Failed);
                out->reclaimed_failed++;
            }
        }
        out->reclaimed = n;
    }
    if (upkeep->sweep) {
        Datum arg = Int32GetDatum(kReclaimLimit);
        run(Stmt::SweepSettled, &arg, nullptr, false, 1);
        bool isnull = true;
        Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
        out->swept = isnull ? 0 : DatumGetInt32(d);
        // After a crash, the events the relay had not archived for the
        // sink yet (its queue is in shared memory) are all here.
        out->sweep_more = out->swept >= kReclaimLimit;
    }
}

// Whether an event not handed over is due (between spi_begin and spi_end).
// Not read-only: it must not see the events this batch just handed over as
// still waiting.
bool
events_waiting()
{
    run(Stmt::EventsWaiting, nullptr, nullptr, false, 1);
    bool isnull = true;
    Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
    return !isnull && DatumGetBool(d);
}

// What a batch that came back short leaves: the next due time of the SQL
// subscriptions `names` and whether events wait (between spi_begin and spi_end).
void
look_at_what_is_left(ArrayType *names, BatchResult *out)
{
    out->next_due = next_due(names);
    out->waiting = events_waiting();
    out->looked = true;
}

// The subscription of `name` among subs, or -1.
int
find_subscription(const Subscription *subs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(subs[i].name, name) == 0)
            return i;
    return -1;
}


} // namespace

// Start a transaction for relay work; false (and nothing open) when the
// database has no outbox extension.
bool
begin_relay_work(Oid *save_user, int *save_sec)
{
    MemoryContext cxt = CurrentMemoryContext;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    MemoryContextSwitchTo(cxt);
    // DROP EXTENSION locks the extension before anything of it: holding it
    // (shared) for the whole unit of work makes a DROP wait for the relay,
    // instead of the two taking the tables' locks in opposite orders and
    // deadlocking. Looked up again once locked: a DROP may have just committed.
    Oid ext = get_extension_oid("outbox", true);
    if (OidIsValid(ext)) {
        LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
        if (get_extension_oid("outbox", true) != ext)
            ext = InvalidOid;
    }
    if (!OidIsValid(ext)) {
        CommitTransactionCommand();
        MemoryContextSwitchTo(cxt);
        return false;
    }
    PushActiveSnapshot(GetTransactionSnapshot());
    MemoryContextSwitchTo(cxt);
    // The relay's own statements run as the extension's owner, as the
    // SECURITY DEFINER functions do: outbox.role needs no rights on the tables.
    Oid owner = extension_owner_oid();
    GetUserIdAndSecContext(save_user, save_sec);
    SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
    return true;
}

void
end_relay_work(Oid save_user, int save_sec)
{
    MemoryContext cxt = CurrentMemoryContext;
    SetUserIdAndSecContext(save_user, save_sec);
    PopActiveSnapshot();
    CommitTransactionCommand();
    MemoryContextSwitchTo(cxt);
    // A worker that writes tables reports its statistics (n_tup_del, ...),
    // or autovacuum and analyze decide on numbers that never moved. At most
    // once a second; the worker flushes what is left before it sleeps.
    (void) pgstat_report_stat(false);
}

void
relay_batch(int batch_size, const Upkeep *upkeep, BatchResult *out)
{
    memset(out, 0, sizeof *out);
    out->backlog_age = -1;
    out->batch_size = batch_size;
    batch_xid = InvalidTransactionId;
    MemoryContext cxt = CurrentMemoryContext;
    Oid save_user;
    int save_sec;
    if (!begin_relay_work(&save_user, &save_sec)) {
        out->extension_missing = true;
        return;
    }
    if (!extension_has_deliveries()) {
        out->schema_outdated = true;  // until ALTER EXTENSION outbox UPDATE
        end_relay_work(save_user, save_sec);
        return;
    }

    spi_begin();
    run_upkeep(upkeep, out);
    int nsubs;
    Subscription *subs = load_subscriptions(cxt, &nsubs);
    bool sql_active = false;
    for (int i = 0; i < nsubs; i++) {
        out->has_external = out->has_external || subs[i].external;
        sql_active = sql_active || (!subs[i].external && !subs[i].paused);
    }
    // No SQL handler can run in this batch: it only hands events over (or
    // leaves them to a paused subscription), a few statements whatever its
    // size, and runs no code of the users. A bigger batch: per 1,000 events
    // one transaction instead of 20 (the relay's share of a drain to a sink).
    int keyed_limit = batch_size;
    if (!sql_active && batch_size >= guc_relay_batch_size && batch_size < kHandOverBatch)
        batch_size = kHandOverBatch;
    out->batch_size = batch_size;
    if (nsubs == 0) {
        out->waiting = events_waiting();
        out->looked = true;
        spi_end();
        end_relay_work(save_user, save_sec);
        return;
    }
    pgstat_report_activity(STATE_RUNNING, "outbox relay: dispatching");
    Taken taken;
    dispatch(subs, nsubs, batch_size, keyed_limit, out, cxt, &taken);
    int dispatched = taken.events;
    out->claimed = dispatched;
    // A later event of a direct event's ordering key becomes claimable once
    // this batch commits: claim again at once.
    out->more = out->more || taken.direct_keyed;

    // Used after spi_end too (next_due): in the caller's context, not SPI's.
    MemoryContext caller = MemoryContextSwitchTo(cxt);
    ArrayType *names = subscription_names(subs, nsubs, true);
    MemoryContextSwitchTo(caller);
    int claimed = 0;
    if (names != nullptr) {
        pgstat_report_activity(STATE_RUNNING, "outbox relay: claiming");
        Datum values[2] = {Int32GetDatum(batch_size), PointerGetDatum(names)};
        run(Stmt::SqlDeliveryClaim, values, nullptr);
        claimed = static_cast<int>(SPI_processed);
    }
    if (claimed > out->claimed)
        out->claimed = claimed;
    if (claimed == 0 && taken.nds == 0) {
        // A full batch is followed by the next one at once: what is left is
        // looked at when a batch comes back short (an outbox of handed-over
        // events made this look, once per batch, the drain's main cost).
        if (dispatched < batch_size)
            look_at_what_is_left(names, out);
        spi_end();
        // A batch that only handed events over need not wait for its commit
        // to reach disk: lost in a crash, it is made again (the events are
        // the publishers', on disk), and the sink worker flushes the WAL
        // before it sends anything it claimed, this commit included. One
        // flush less between a commit and its webhook.
        if (dispatched > 0)
            (void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                     false);
        end_relay_work(save_user, save_sec);
        pgstat_report_activity(STATE_IDLE, nullptr);
        return;
    }
    batch_xid = GetTopTransactionId();  // the claims' row locks gave it one
    // The deliveries with a row first (due earlier: retries, events handed
    // over before), then those taken directly, in claim order.
    Delivery *ds = static_cast<Delivery *>(MemoryContextAllocZero(cxt, sizeof(Delivery) * (claimed + taken.nds + 1)));
    int n = 0;
    if (claimed > 0) {
        // Columns: 1 event id, 2 subscription, 3 attempts, 4 last_error, 5
        // next_retry_at, 6 the event's whole row.
        SPITupleTable *tt = SPI_tuptable;
        if (tt->tupdesc->natts != 6)
            elog(ERROR, "outbox relay: its delivery claim returned %d columns, not 6", tt->tupdesc->natts);
        for (int i = 0; i < claimed; i++) {
            HeapTuple tup = tt->vals[i];
            TupleDesc desc = tt->tupdesc;
            bool isnull;
            char *sub_name = column_cstring(tup, desc, 2);
            int sub = find_subscription(subs, nsubs, sub_name);
            if (sub < 0)
                continue;  // cannot be: the claim took the names of subs
            Delivery *d = &ds[n++];
            memcpy(&d->id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
            d->sub = sub;
            d->direct = -1;
            d->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
            bool error_null;
            Datum last_error = SPI_getbinval(tup, desc, 4, &error_null);
            bool retry_null;
            Datum next_retry = SPI_getbinval(tup, desc, 5, &retry_null);
            Datum row = SPI_getbinval(tup, desc, 6, &isnull);
            MemoryContext old = MemoryContextSwitchTo(cxt);
            d->row = row_for_delivery(row, d->attempts, last_error, error_null, next_retry, retry_null);
            MemoryContextSwitchTo(old);
        }
        // The event types, for messages (the rows are in cxt now), and
        // whether they have an ordering key.
        for (int i = 0; i < n; i++) {
            HeapTupleHeader th = DatumGetHeapTupleHeader(ds[i].row);
            bool isnull;
            Datum type = GetAttributeByName(th, "type", &isnull);
            MemoryContext old = MemoryContextSwitchTo(cxt);
            ds[i].type = isnull ? pstrdup("") : TextDatumGetCString(type);
            MemoryContextSwitchTo(old);
            (void) GetAttributeByName(th, "ordering_key", &isnull);
            ds[i].keyed = !isnull;
        }
    }
    spi_end();
    // The direct events' deliveries refer to their first one's place.
    for (int e = 0; e < taken.ndirect; e++)
        taken.direct[e].first += n;
    if (taken.nds > 0)
        memcpy(&ds[n], taken.ds, sizeof(Delivery) * taken.nds);
    n += taken.nds;
    taken.ds = ds;

    char activity[96];
    snprintf(activity, sizeof activity, "outbox relay: delivering %d events", n);
    pgstat_report_activity(STATE_RUNNING, activity);
    // The deliveries run in one subtransaction for as long as their handlers
    // succeed. When one fails, the group rolls back: the deliveries before
    // it run again, one subtransaction each (so that each keeps its own
    // effects), its failure is recorded, and the next group starts after it.
    // Only a delivery's own first run of the batch can charge it an attempt:
    // one whose handler succeeded and then fails when run again (a handler
    // that calls out, or is not deterministic) is left unsettled, due again
    // at once, no attempt counted. The batch ends at outbox.max_batch_duration
    // (checked between deliveries): those not run yet are left unsettled
    // too, and the transaction commits, so that it never holds its locks and
    // the xmin horizon for long.
    TimestampTz started = GetCurrentTimestamp();
    bool *done = static_cast<bool *>(palloc0(sizeof(bool) * (n > 0 ? n : 1)));
    FmgrInfo *handlers = static_cast<FmgrInfo *>(MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * nsubs));
    for (int i = 0; i < nsubs; i++)
        handlers[i].fn_mcxt = cxt;
    TimestampTz deadline = TimestampTzPlusMilliseconds(started, guc_max_batch_duration_ms);
    for (int from = 0; from < n;) {
        // Outside any subtransaction: a cancel ends the batch, no delivery is blamed.
        check_interrupts_and_postmaster();
        if (from > 0 && GetCurrentTimestamp() >= deadline) {
            out->cut_short = true;
            break;
        }
        char *error = nullptr;
        int at = deliver_group(ds, from, n, subs, handlers, cxt, deadline, &error);
        if (error == nullptr) {
            for (int i = from; i < at; i++)
                done[i] = true;
            out->delivered += at - from;
            from = at;
            continue;
        }
        for (int i = from; i < at; i++) {
            check_interrupts_and_postmaster();
            char *again = nullptr;
            if (GetCurrentTimestamp() < deadline &&
                deliver_group(ds, i, i + 1, subs, handlers, cxt, deadline, &again) == i + 1 && again == nullptr) {
                done[i] = true;
                out->delivered++;
            } else {
                out->requeued++;  // not its own failure (or out of time): due again, uncharged
                out->cut_short = true;
            }
        }
        record_failure(&ds[at], subs, &taken, error, cxt, out);
        from = at + 1;
    }
    pgstat_report_activity(STATE_RUNNING, "outbox relay: archiving");
    settle_delivered(ds, done, n, subs, &taken, started);
    // A keyed delivery row made: the next delivery of its key to that
    // subscription becomes claimable once this batch commits (the claim takes
    // one per key): claim again at once, not at the next poll.
    for (int i = 0; i < n && !out->more; i++)
        out->more = done[i] && ds[i].direct < 0 && ds[i].keyed;
    if (dispatched < batch_size && claimed < batch_size) {
        spi_begin();
        look_at_what_is_left(names, out);
        spi_end();
    }
    end_relay_work(save_user, save_sec);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

void
charge_interrupted_delivery(const InflightNote *note)
{
    Oid save_user;
    int save_sec;
    if (!TransactionIdIsNormal(note->xid) || !begin_relay_work(&save_user, &save_sec))
        return;
    if (!extension_has_deliveries()) {  // a note of a relay older than the schema's update: nothing to charge
        end_relay_work(save_user, save_sec);
        return;
    }
    // The batch committed after all (the process ended between its commit and
    // the note's clearing), or is too old to tell: nothing to charge.
    if (TransactionIdPrecedes(note->xid, ShmemVariableCache->oldestClogXid) || TransactionIdDidCommit(note->xid)) {
        end_relay_work(save_user, save_sec);
        return;
    }
    pg_uuid_t id = note->event;
    char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&id)));
    char *error = psprintf("the relay's process ended while subscription \"%s\" handled this event "
                           "(a handler that ends its own session, a FATAL error or a crash)",
                           note->subscription);
    const char *status = nullptr;
    TimestampTz next = 0;
    MemoryContext cxt = CurrentMemoryContext;
    spi_begin();
    // The batch that died had handed its events to their subscriptions in
    // its own transaction: hand them over again (committed with the charge),
    // so that the delivery exists to be charged.
    int nsubs;
    Subscription *subs = load_subscriptions(cxt, &nsubs);
    BatchResult ignored;
    memset(&ignored, 0, sizeof ignored);
    Taken taken;
    dispatch(subs, nsubs, kMaxBatch, kMaxBatch, &ignored, nullptr, &taken);
    // Still as the batch left it (due), locked: record the failed attempt as
    // a handler failure is.
    Datum key[2] = {UUIDPGetDatum(&id), CStringGetTextDatum(note->subscription)};
    run(Stmt::LockDelivery, key, nullptr, false, 1);
    if (SPI_processed == 1) {
        bool isnull;
        int attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        status = fail_delivery(&id, note->subscription, attempts, error, &next);
        metric_count(MetricKind::Subscription, note->subscription, MetricCount::Reclaimed);
        metric_count(MetricKind::Subscription, note->subscription,
                     strcmp(status, "failed") == 0 ? MetricCount::Failed : MetricCount::Retried);
    }
    spi_end();
    end_relay_work(save_user, save_sec);
    if (status == nullptr)
        return;
    if (strcmp(status, "failed") == 0)
        ereport(WARNING, (errmsg("outbox relay: the delivery of event %s to subscription \"%s\" failed for good: "
                                 "the relay's process ended while it was handled, once too often",
                                 id_text, note->subscription),
                          errhint("outbox_failed_deliveries() lists it; outbox_retry_deliveries() queues it again.")));
    else
        ereport(LOG, (errmsg("outbox relay: event %s was being handled by subscription \"%s\" when the relay's "
                             "process ended: counted as a failed attempt, retry at %s",
                             id_text, note->subscription, timestamptz_to_str(next))));
}

namespace {
bool backlog_warned = false;  // the last check found the backlog too old
}

void
report_upkeep(const char *dbname, const BatchResult *r)
{
    if (r->reclaimed > 0)
        ereport(LOG, (errmsg("outbox relay: took back %d events whose lease expired (%d of them failed for good)",
                             r->reclaimed, r->reclaimed_failed)));
    if (r->swept > 0)
        ereport(LOG, (errmsg("outbox relay: moved %d events whose deliveries were all settled to the archive",
                             r->swept)));
    if (guc_backlog_warning_age_s <= 0) {
        backlog_warned = false;
        return;
    }
    if (!r->backlog_checked)
        return;
    double age = r->backlog_age;
    bool old = age > guc_backlog_warning_age_s;
    if (old && !backlog_warned)
        ereport(WARNING, (errmsg("outbox relay: the oldest pending event of database \"%s\" has waited %.0f s, "
                                 "longer than outbox.backlog_warning_age (%d s)",
                                 dbname, age, guc_backlog_warning_age_s),
                          errhint("outbox_metrics() shows which subscription or consumer is behind, and "
                                  "outbox_endpoint_stats() which endpoint is failing.")));
    else if (!old && backlog_warned)
        ereport(LOG, (errmsg("outbox relay: the backlog of database \"%s\" is back under "
                             "outbox.backlog_warning_age (%d s)",
                             dbname, guc_backlog_warning_age_s)));
    backlog_warned = old;
}

void
maintain_archive(int retention_minutes)
{
    Oid save_user;
    int save_sec;
    if (!begin_relay_work(&save_user, &save_sec))
        return;
    pgstat_report_activity(STATE_RUNNING, "outbox relay: archive maintenance");
    spi_begin();
    Datum arg = Int32GetDatum(retention_minutes);
    run(Stmt::ArchiveMaintain, &arg, nullptr);
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull)
            ereport(LOG, (errmsg("outbox relay: archive maintenance: %s", TextDatumGetCString(d))));
    }
    spi_end();
    end_relay_work(save_user, save_sec);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

int
archive_sink_settled(int idx)
{
    static pg_uuid_t ids[kArchiveTake];
    int total = 0;
    // At most the queue's length at a time: the sink may fill it again
    // meanwhile, and the relay's own batch waits.
    for (int rounds = 0; rounds < kArchiveQueueLen / kArchiveTake; rounds++) {
        int n = slot_archive_take(idx, ids, kArchiveTake);
        if (n == 0)
            break;
        total += n;
        Oid save_user;
        int save_sec;
        if (!begin_relay_work(&save_user, &save_sec))
            break;  // the extension is gone, and its events with it
        if (!extension_has_deliveries()) {
            end_relay_work(save_user, save_sec);
            break;
        }
        pgstat_report_activity(STATE_RUNNING, "outbox relay: archive of events the sink settled");
        spi_begin();
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * n));
        for (int k = 0; k < n; k++)
            elems[k] = UUIDPGetDatum(&ids[k]);
        Datum arg = PointerGetDatum(construct_array(elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
        run(Stmt::SinkArchiveLock, &arg, nullptr);
        run(Stmt::SinkArchive, &arg, nullptr);
        spi_end();
        // As the sink worker's own commits: the events are delivered, and
        // an archive a crash forgets is done again by the sweep. Not waiting
        // for the WAL to reach disk (a flush per 1,024 events that queued
        // behind the kernel's writeback of the backlog).
        (void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                 false);
        end_relay_work(save_user, save_sec);
        pgstat_report_activity(STATE_IDLE, nullptr);
    }
    return total;
}

} // namespace outbox
