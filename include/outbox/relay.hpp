// The relay: claim a batch for the SQL subscriptions and dispatch it, each
// event in its own subtransaction, the whole batch in one transaction.
#pragma once

#include "outbox/pg.hpp"
#include "outbox/inflight.hpp"
#include "outbox/shmem.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

namespace outbox {

// What one batch did.
struct BatchResult {
    bool extension_missing;  // the database has no outbox extension (yet)
    bool schema_outdated;    // its schema is older than 0.2.0: waiting for ALTER EXTENSION outbox UPDATE
    int batch_size;          // the most it could claim (larger than asked for a hand-over)
    int claimed;             // events claimed (0: nothing due for any subscription)
    int delivered;
    int retried;
    int failed;
    int requeued;            // left unsettled, due again at once, no attempt counted
    bool cut_short;          // events claimed but not run (time budget): claim again at once
    bool more;               // events of an ordering key delivered: the next of the key is due, claim again at once
    bool has_external;       // a subscription has an external sink (the sink worker's)
    bool dispatched_external;// deliveries were made for such a subscription
    TimestampTz next_due;    // when the next event becomes due (a retry, a delivery
                             // time, the end of a lease); 0: none known
    bool looked;             // the batch looked at what is left: waiting (and next_due) say
    bool waiting;            // an event not handed over is due: for consumers, or
                             // its lease expired (known when the batch came back short)
    char last_error[kLastErrorLen]; // the last handler failure of the batch ("" if none)
    // The upkeep done in the batch's transaction (Upkeep).
    int reclaimed;           // expired leases of external consumers taken back
    int reclaimed_failed;    // of those, events out of attempts: failed
    int swept;               // settled events left behind moved to the archive
    bool sweep_more;         // the sweep took as many as it may: sweep again at once
    bool backlog_checked;
    double backlog_age;      // seconds the oldest due event or delivery has waited; < 0: none due
};

// Upkeep a batch does first, in its own transaction (a failure rolls back
// the batch before any handler ran).
struct Upkeep {
    bool reclaim;  // take back expired leases of external consumers
    bool sweep;    // archive events handed over whose deliveries are all settled, left behind
    bool backlog;  // measure the age of the oldest due event or delivery
};

// Start a transaction for relay (or sink) work, with a snapshot, as the
// extension's owner, holding the extension's lock (shared); false (and
// nothing open) when the database has no outbox extension.
bool begin_relay_work(Oid *save_user, int *save_sec);
// Commit it, back as the worker's role; report table statistics.
void end_relay_work(Oid save_user, int save_sec);

// Run one batch of at most `batch_size` events in its own transaction,
// after the upkeep asked for. Raises ERROR on a failure outside the handlers
// (the caller aborts).
void relay_batch(int batch_size, const Upkeep *upkeep, BatchResult *out);
// After the batch committed: log what its upkeep found (leases taken back,
// settled events archived; once when the oldest due event or delivery of the
// database gets older than outbox.backlog_warning_age, and once when it is
// back under it).
void report_upkeep(const char *dbname, const BatchResult *r);

// A previous worker left `note` (inflight.hpp): if that batch did not
// commit, charge its event one failed attempt (own transaction).
void charge_interrupted_delivery(const InflightNote *note);

// Run outbox_archive_maintain(retention) (own transaction).
void maintain_archive(int retention_minutes);

// Archive the events the sink worker of slot `idx` settled (shmem.hpp,
// slot_archive_push), kArchiveTake per transaction, at most a queue's length
// of them; returns how many ids it took. Raises ERROR on a failure (the ids
// of that transaction are left to the sweep).
constexpr int kArchiveTake = 1024;
int archive_sink_settled(int idx);

} // namespace outbox
