// The relay: one batch of events dispatched to the SQL subscriptions.
//
// One transaction per batch. The claim (restricted to the event types of
// active subscriptions, never those of a paused one) is a claim of the batch's
// transaction, as outbox_claim_xact() makes: it locks the events and writes
// nothing (a lease would die with the transaction anyway), and returns their
// whole rows, the handlers' argument. The handlers then run, every matching
// one for each event in claim order, as the subscription's owner, under
// outbox.handler_timeout, in one subtransaction for as long as they succeed.
// The events whose handlers all succeeded move to the archive with one
// statement at the end of the batch, in the batch's transaction: the
// handlers' writes and the archive move commit together, or not at all
// (exactly-once effect). A handler error rolls back the subtransaction; the
// events before the failing one run again, one subtransaction each, so that
// each keeps its own effects and a failure among them is its own. The
// failure is recorded with backoff (failed after the maximum), that event is
// left out of the archive move, and the batch goes on with the next events in
// a new subtransaction. The claim's row locks last until the batch commits,
// so nobody else can touch the batch's events meanwhile.
#include "outbox/pg.hpp"
#include "outbox/claim.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/inflight.hpp"
#include "outbox/log_limit.hpp"
#include "outbox/patterns.hpp"
#include "outbox/relay.hpp"
#include "outbox/settings.hpp"
#include "outbox/settle.hpp"
#include "outbox/shmem.hpp"
#include "outbox/spi.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
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
#include "utils/uuid.h"
}

#include <cstring>

namespace outbox {

namespace {

constexpr const char *kRelayConsumer = "outbox relay";
constexpr int kReclaimLimit = 1000;

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
    Oid handler;
    Oid owner;
    bool paused;
};

struct Event {
    pg_uuid_t id;
    char *type;
    text *type_text;  // the same, for type_matches()
    Datum row;  // the whole outbox_events row, as the handlers' argument
};

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
    }
    MemoryContextSwitchTo(old);
    *n_out = n;
    return subs;
}

// The LIKE patterns of the active (paused = false) or paused subscriptions;
// null when there are none.
ArrayType *
claim_patterns(const Subscription *subs, int n, bool paused)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (subs[i].paused == paused)
            elems[k++] = CStringGetTextDatum(subs[i].pattern);
    if (k == 0)
        return nullptr;
    return type_patterns_arg(construct_array(elems, k, TEXTOID, -1, false, TYPALIGN_INT));
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

// The handlers of events[from..n-1], in order, in one subtransaction, until
// `deadline` has passed (checked after each event but the first). Returns the
// index of the first event not run: the group committed with the events
// before it (n, or less at the deadline), *error stays null. Or, if a handler
// failed, the index of its event: the subtransaction rolled back (no event of
// the group took effect), and *error gets the message.
int
deliver_group(const Event *events, int from, int n, const Subscription *subs, FmgrInfo *handlers, int nsubs,
              MemoryContext cxt, TimestampTz deadline, char **error)
{
    volatile int current = -1;
    volatile int at = from;
    ResourceOwner owner = CurrentResourceOwner;

    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        int e = from;
        for (; e < n; e++) {
            if (e > from && GetCurrentTimestamp() >= deadline)
                break;
            at = e;
            for (int i = 0; i < nsubs; i++) {
                if (subs[i].paused || !type_matches(events[e].type_text, subs[i].like))
                    continue;
                current = i;
                inflight_set(batch_xid, &events[e].id, subs[i].name);
                call_handler(&subs[i], &handlers[i], events[e].row);
            }
            current = -1;
        }
        commit_subxact(cxt, owner);
        at = e;
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

// Record a failed attempt (own subtransaction: if even that fails, the event
// is left as it was, due again when the batch commits, the attempt not counted).
void
record_failure(const Event *ev, int64 token, const char *error, MemoryContext cxt, BatchResult *out)
{
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool recorded = false;
    volatile bool failed = false;
    volatile TimestampTz next = 0;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        TimestampTz when = 0;
        spi_begin();
        const char *status = fail_leased(const_cast<pg_uuid_t *>(&ev->id), token, cstring_to_text(error),
                                         nullptr, true, &when);
        failed = strcmp(status, "failed") == 0;
        next = when;
        spi_end();
        commit_subxact(cxt, owner);
        recorded = true;
    }
    PG_CATCH();
    {
        ErrorData *edata = rollback_subxact(cxt, owner);
        ereport(WARNING, (errmsg("outbox relay: could not record the failure of an event: %s", edata->message),
                          errdetail("%s", error)));
        FreeErrorData(edata);
    }
    PG_END_TRY();
    // Outside the subtransaction's PG_TRY: an error here is the batch's.
    if (!recorded)
        return;
    char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(&ev->id))));
    copy_message(out->last_error, kLastErrorLen, psprintf("event %s (%s): %s", id, ev->type, error));
    uint64 others;
    if (failed) {
        out->failed++;
        if (log_limit_allows(&failed_log, &others))
            ereport(WARNING, (errmsg("outbox relay: event %s (%s) failed for good", id, ev->type),
                              errdetail("%s", error),
                              others > 0 ? errhint("%llu more events failed for good since the last such message; "
                                                   "outbox_failed_events() lists them, outbox_retry() queues them again.",
                                                   static_cast<unsigned long long>(others))
                                         : errhint("outbox_failed_events() lists it; outbox_retry() queues it again.")));
    } else {
        out->retried++;
        if (log_limit_allows(&retried_log, &others))
            ereport(LOG, (errmsg("outbox relay: event %s (%s) will be retried at %s", id, ev->type,
                                 timestamptz_to_str(next)),
                          others > 0 ? errdetail("%s (%llu more failed attempts were scheduled for a retry since "
                                                 "the last such message)",
                                                 error, static_cast<unsigned long long>(others))
                                     : errdetail("%s", error)));
    }
}

// Move the delivered events (done[i]) to the archive with one statement, in
// the batch's transaction.
void
archive_delivered(const Event *events, const bool *done, int n, int64 token)
{
    Datum *ids = static_cast<Datum *>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (done[i])
            ids[k++] = UUIDPGetDatum(const_cast<pg_uuid_t *>(&events[i].id));
    if (k == 0)
        return;
    spi_begin();
    if (!complete_xact(construct_array(ids, k, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR), k, token))
        elog(ERROR, "outbox relay: claim " INT64_FORMAT " of this batch is not known", token);
    spi_end();
}

// Start a transaction for relay work; false (and nothing open) when the
// database has no outbox extension.
bool
begin_work(Oid *save_user, int *save_sec)
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

// When the next event becomes due (between spi_begin and spi_end). Not
// read-only: it must see the retry times this batch's failures just wrote,
// which its starting snapshot does not.
TimestampTz
next_due()
{
    run(Stmt::NextDue, nullptr, nullptr, false, 1);
    bool isnull = true;
    Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
    return isnull ? 0 : DatumGetTimestampTz(d);
}

void
end_work(Oid save_user, int save_sec)
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

} // namespace

void
relay_batch(int batch_size, BatchResult *out)
{
    memset(out, 0, sizeof *out);
    batch_xid = InvalidTransactionId;
    MemoryContext cxt = CurrentMemoryContext;
    Oid save_user;
    int save_sec;
    if (!begin_work(&save_user, &save_sec)) {
        out->extension_missing = true;
        return;
    }

    spi_begin();
    int nsubs;
    Subscription *subs = load_subscriptions(cxt, &nsubs);
    ArrayType *active = claim_patterns(subs, nsubs, false);
    if (active == nullptr) {
        spi_end();
        end_work(save_user, save_sec);
        return;
    }
    ArrayType *paused = claim_patterns(subs, nsubs, true);

    pgstat_report_activity(STATE_RUNNING, "outbox relay: claiming");
    Datum values[5] = {Int32GetDatum(batch_size), PointerGetDatum(active), PointerGetDatum(paused), (Datum) 0,
                       (Datum) 0};
    char nulls[6] = {' ', ' ', paused ? ' ' : 'n', 'n', 'n', '\0'};  // no ids to skip, a new token
    run(Stmt::RelayClaim, values, nulls);
    int claimed = static_cast<int>(SPI_processed);
    out->claimed = claimed;
    if (claimed == 0) {
        out->next_due = next_due();
        spi_end();
        end_work(save_user, save_sec);
        pgstat_report_activity(STATE_IDLE, nullptr);
        return;
    }
    // Columns: 1 id, 2 type, 3 expired, 4 token, 5 the whole row. An expired
    // lease (of an outside consumer) is reclaimed first; one that ran out of
    // attempts is failed instead of handed out.
    SPITupleTable *tt = SPI_tuptable;
    if (tt->tupdesc->natts != 5)
        elog(ERROR, "outbox relay: its claim returned %d columns, not 5", tt->tupdesc->natts);
    ReclaimedRows reclaimed = reclaim_met_expired(tt, claimed, 3);
    Event *events = static_cast<Event *>(MemoryContextAllocZero(cxt, sizeof(Event) * claimed));
    int n = 0;
    int64 token = 0;
    int claim = -1;
    for (int i = 0; i < claimed; i++) {
        HeapTuple tup = tt->vals[i];
        TupleDesc desc = tt->tupdesc;
        bool isnull;
        Datum row = SPI_getbinval(tup, desc, 5, &isnull);
        if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull))) {
            HeapTuple re = reclaimed.rows != nullptr ? reclaimed.rows[i] : nullptr;
            if (re == nullptr) {
                out->failed++;  // out of attempts: failed, not handed out
                continue;
            }
            row = SPI_getbinval(re, reclaimed.desc, kReclaimRowCol, &isnull);
        }
        if (claim < 0) {
            token = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
            claim = xact_claim_open(token, cstring_to_text(kRelayConsumer));
            batch_xid = GetTopTransactionId();  // the claim's row locks gave it one
        }
        Event *ev = &events[n++];
        memcpy(&ev->id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
        xact_claim_add(claim, &ev->id);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        ev->type = column_cstring(tup, desc, 2);
        ev->type_text = cstring_to_text(ev->type);
        ev->row = datumCopy(row, false, -1);
        MemoryContextSwitchTo(old);
    }
    spi_end();

    char activity[96];
    snprintf(activity, sizeof activity, "outbox relay: delivering %d events", n);
    pgstat_report_activity(STATE_RUNNING, activity);
    // The events run in one subtransaction for as long as their handlers
    // succeed. When one fails, the group rolls back: the events before it
    // run again, one subtransaction each (so that each keeps its own
    // effects), its failure is recorded, and the next group starts after it.
    // Only an event's own first run of the batch can charge it an attempt:
    // one whose handlers succeeded and then fail when run again (a handler
    // that calls out, or is not deterministic) is left unsettled, due again
    // at once, no attempt counted. The batch ends at outbox.max_batch_duration
    // (checked between events): the events not run yet are left unsettled too,
    // and the transaction commits, so that it never holds its locks and the
    // xmin horizon for long.
    bool *done = static_cast<bool *>(palloc0(sizeof(bool) * (n > 0 ? n : 1)));
    FmgrInfo *handlers =
        static_cast<FmgrInfo *>(MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * (nsubs > 0 ? nsubs : 1)));
    for (int i = 0; i < nsubs; i++)
        handlers[i].fn_mcxt = cxt;
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), guc_max_batch_duration_ms);
    for (int from = 0; from < n;) {
        // Outside any subtransaction: a cancel ends the batch, no event is blamed.
        check_interrupts_and_postmaster();
        if (from > 0 && GetCurrentTimestamp() >= deadline) {
            out->cut_short = true;
            break;
        }
        char *error = nullptr;
        int at = deliver_group(events, from, n, subs, handlers, nsubs, cxt, deadline, &error);
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
                deliver_group(events, i, i + 1, subs, handlers, nsubs, cxt, deadline, &again) == i + 1 &&
                again == nullptr) {
                done[i] = true;
                out->delivered++;
            } else {
                out->requeued++;  // not its own failure (or out of time): due again, uncharged
                out->cut_short = true;
            }
        }
        record_failure(&events[at], token, error, cxt, out);
        from = at + 1;
    }
    pgstat_report_activity(STATE_RUNNING, "outbox relay: archiving");
    archive_delivered(events, done, n, token);
    if (claimed < batch_size) {
        spi_begin();
        out->next_due = next_due();
        spi_end();
    }
    end_work(save_user, save_sec);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

void
charge_interrupted_delivery(const InflightNote *note)
{
    Oid save_user;
    int save_sec;
    if (!TransactionIdIsNormal(note->xid) || !begin_work(&save_user, &save_sec))
        return;
    // The batch committed after all (the process ended between its commit and
    // the note's clearing), or is too old to tell: nothing to charge.
    if (TransactionIdPrecedes(note->xid, ShmemVariableCache->oldestClogXid) || TransactionIdDidCommit(note->xid)) {
        end_work(save_user, save_sec);
        return;
    }
    pg_uuid_t id = note->event;
    char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&id)));
    char *error = psprintf("the relay's process ended while subscription \"%s\" handled this event "
                           "(a handler that ends its own session, a FATAL error or a crash)",
                           note->subscription);
    const char *status = nullptr;
    TimestampTz next = 0;
    spi_begin();
    // Still as the batch left it (created, due): hold it as a claim of this
    // transaction and record the failed attempt as a handler failure is.
    Datum key = UUIDPGetDatum(&id);
    run(Stmt::FailLockXact, &key, nullptr, false, 1);
    if (SPI_processed == 1) {
        constexpr int64 kChargeToken = -1;  // never drawn from outbox_lease_token_seq
        int claim = xact_claim_open(kChargeToken, cstring_to_text(kRelayConsumer));
        xact_claim_add(claim, &id);
        status = fail_leased(&id, kChargeToken, cstring_to_text(error), nullptr, true, &next);
    }
    spi_end();
    end_work(save_user, save_sec);
    if (status == nullptr)
        return;
    if (strcmp(status, "failed") == 0)
        ereport(WARNING, (errmsg("outbox relay: event %s failed for good: the relay's process ended while "
                                 "subscription \"%s\" handled it, once too often", id_text, note->subscription),
                          errhint("outbox_failed_events() lists it; outbox_retry() queues it again.")));
    else
        ereport(LOG, (errmsg("outbox relay: event %s was being handled by subscription \"%s\" when the relay's "
                             "process ended: counted as a failed attempt, retry at %s",
                             id_text, note->subscription, timestamptz_to_str(next))));
}

int
reclaim_expired(int *failed_out)
{
    *failed_out = 0;
    Oid save_user;
    int save_sec;
    if (!begin_work(&save_user, &save_sec))
        return 0;
    spi_begin();
    Datum values[2] = {Int32GetDatum(guc_max_retries), Int32GetDatum(kReclaimLimit)};
    run(Stmt::ReclaimExpired, values, nullptr);
    int n = static_cast<int>(SPI_processed);
    for (int i = 0; i < n; i++) {
        bool isnull;
        if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)))
            (*failed_out)++;
    }
    spi_end();
    end_work(save_user, save_sec);
    if (n > 0)
        ereport(LOG, (errmsg("outbox relay: took back %d events whose lease expired (%d of them failed for good)",
                             n, *failed_out)));
    return n;
}

void
maintain_archive(int retention_minutes)
{
    Oid save_user;
    int save_sec;
    if (!begin_work(&save_user, &save_sec))
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
    end_work(save_user, save_sec);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

} // namespace outbox
