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
#include "outbox/guard.hpp"
#include "outbox/state.hpp"
#include "outbox/lease.hpp"
#include "outbox/relay.hpp"
#include "outbox/worker.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
}

#include <cstring>

namespace outbox {

namespace {

constexpr const char *kRelayConsumer = "outbox relay";
constexpr int kReclaimLimit = 1000;

struct Subscription {
    char *name;
    char *pattern;
    Oid handler;
    Oid owner;
    bool paused;
};

struct Event {
    pg_uuid_t id;
    char *type;
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
    // Settings the handler changes (SET LOCAL, set_config) end with it.
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
    AtEOXact_GUC(true, nest);
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

// The handlers of events[from..n-1], in order, in one subtransaction.
// Returns n if it committed; otherwise the index of the event whose handler
// failed (the subtransaction rolled back: no event of the group took effect),
// and *error gets the message.
int
deliver_group(const Event *events, int from, int n, const Subscription *subs, FmgrInfo *handlers, int nsubs,
              MemoryContext cxt, char **error)
{
    volatile int current = -1;
    volatile int at = from;
    ResourceOwner owner = CurrentResourceOwner;

    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        for (int e = from; e < n; e++) {
            at = e;
            for (int i = 0; i < nsubs; i++) {
                if (subs[i].paused || !type_matches(subs[i].pattern, events[e].type))
                    continue;
                current = i;
                call_handler(&subs[i], &handlers[i], events[e].row);
            }
            current = -1;
        }
        commit_subxact(cxt, owner);
        at = n;
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
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cxt);
    PG_TRY();
    {
        TimestampTz next = 0;
        spi_begin();
        const char *status = fail_leased(const_cast<pg_uuid_t *>(&ev->id), token, cstring_to_text(error),
                                         nullptr, true, &next);
        spi_end();
        commit_subxact(cxt, owner);
        char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(&ev->id))));
        copy_message(out->last_error, kLastErrorLen, psprintf("event %s (%s): %s", id, ev->type, error));
        if (strcmp(status, "failed") == 0) {
            out->failed++;
            ereport(WARNING, (errmsg("outbox relay: event %s (%s) failed for good", id, ev->type),
                              errdetail("%s", error),
                              errhint("outbox_failed_events() lists it; outbox_retry() queues it again.")));
        } else {
            out->retried++;
            ereport(LOG, (errmsg("outbox relay: event %s (%s) will be retried at %s", id, ev->type,
                                 timestamptz_to_str(next)),
                          errdetail("%s", error)));
        }
    }
    PG_CATCH();
    {
        ErrorData *edata = rollback_subxact(cxt, owner);
        ereport(WARNING, (errmsg("outbox relay: could not record the failure of an event: %s", edata->message),
                          errdetail("%s", error)));
        FreeErrorData(edata);
    }
    PG_END_TRY();
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
    PushActiveSnapshot(GetTransactionSnapshot());
    MemoryContextSwitchTo(cxt);
    if (!OidIsValid(get_extension_oid("outbox", true))) {
        PopActiveSnapshot();
        CommitTransactionCommand();
        MemoryContextSwitchTo(cxt);
        return false;
    }
    // The relay's own statements run as the extension's owner, as the
    // SECURITY DEFINER functions do: outbox.role needs no rights on the tables.
    Oid owner = extension_owner_oid();
    GetUserIdAndSecContext(save_user, save_sec);
    SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
    return true;
}

// When the next event becomes due (between spi_begin and spi_end).
TimestampTz
next_due()
{
    run(Stmt::NextDue, nullptr, nullptr, true, 1);
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
}

} // namespace

bool
type_matches(const char *p, const char *s)
{
    const char *star = nullptr;
    const char *resume = nullptr;
    while (*s != '\0') {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star != nullptr) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

void
relay_batch(int batch_size, BatchResult *out)
{
    memset(out, 0, sizeof *out);
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
    char nulls[6] = {' ', ' ', paused ? ' ' : 'n', 'n', 'n', '\0'};  // a new token, no ids to skip
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
        }
        Event *ev = &events[n++];
        memcpy(&ev->id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
        xact_claim_add(claim, &ev->id);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        ev->type = column_cstring(tup, desc, 2);
        ev->row = datumCopy(row, false, -1);
        MemoryContextSwitchTo(old);
    }
    spi_end();

    char activity[96];
    snprintf(activity, sizeof activity, "outbox relay: delivering %d events", n);
    pgstat_report_activity(STATE_RUNNING, activity);
    // The events run in one subtransaction for as long as their handlers
    // succeed. When one fails, the group rolls back: the events before it
    // run again, one subtransaction each (so that a failure among them is
    // that event's alone), its failure is recorded, and the next group starts
    // after it.
    bool *done = static_cast<bool *>(palloc0(sizeof(bool) * (n > 0 ? n : 1)));
    FmgrInfo *handlers =
        static_cast<FmgrInfo *>(MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * (nsubs > 0 ? nsubs : 1)));
    for (int i = 0; i < nsubs; i++)
        handlers[i].fn_mcxt = cxt;
    for (int from = 0; from < n;) {
        CHECK_FOR_INTERRUPTS();  // outside any subtransaction: a cancel ends the batch, no event is blamed
        char *error = nullptr;
        int at = deliver_group(events, from, n, subs, handlers, nsubs, cxt, &error);
        for (int i = from; i < at; i++) {
            // Committed with the group, or (the group failed at `at`) run again on its own.
            if (at < n)
                CHECK_FOR_INTERRUPTS();
            char *again = nullptr;
            if (at == n || deliver_group(events, i, i + 1, subs, handlers, nsubs, cxt, &again) == i + 1) {
                done[i] = true;
                out->delivered++;
            } else {
                record_failure(&events[i], token, again, cxt, out);
            }
        }
        if (at < n)
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
