// The SQL statements the C++ fast paths run through SPI: one row each in
// statements.cpp (name, text, argument types, plan choice), run by name with
// spi.hpp's run().
//
// Every statement names the extension's objects through @extschema@ (as an
// extension script does), replaced by the extension's quoted schema when the
// statement is prepared; it runs with the search path pinned to pg_catalog,
// so every operator and function in it resolves there.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

enum class Stmt : int {
    Publish,            // $1 id, $2 type, $3 payload, $4 headers, $5 ordering_key, $6 available_at
    PublishIdCheck,     // $1 id -> 0 none, 1 in outbox_events, 2 in archive
    // The three claims take their common parameters in the same order:
    // $1 batch, $2 LIKE patterns of types (NULL = all), $3 patterns to leave
    // alone (NULL = none), $4 ids to skip (held by this transaction's claims;
    // NULL = none), $5 lease token (NULL = a new one; not for DispatchClaim).
    Claim,              // + $6 lease secs, $7 owner, $8 max_retries
                        //   -> claim columns + handed_out
    ClaimXact,          // -> claim columns + expired (an active event: reclaim it first)
    DispatchClaim,      // + $5 subscriptions -> id, type, expired, keyed (has an ordering key),
                        //   blocked (an earlier delivery of its key unsettled), whole row
    Dispatch,           // $1 event ids, $2 delivery event ids, $3 delivery subscriptions
    SqlDeliveryClaim,   // $1 limit, $2 subscriptions -> event_id, subscription, attempts,
                        //   last_error, next_retry_at, whole event row (composite)
    ArchiveDelivered,   // $1 event ids, $2 delivery event ids, $3 delivery subscriptions, $4 started_on
    CompleteDeliveries, // $1 event ids, $2 subscriptions, $3 started_on
    FailDelivery,       // $1 event id, $2 subscription, $3 status, $4 error, $5 available_at,
                        //   $6 next_retry_at
    LockDelivery,       // $1 event id, $2 subscription -> attempts (a due SQL delivery)
    SinkSubscriptions,  // -> subscription, kind, endpoint, url, headers[], timeout_ms, max_in_flight,
                        //   state, breaker (0 closed, 1 open, 2 half-open), paused, secrets
    SinkClaim,          // $1 subscription, $2 limit, $3 lease secs -> event_id, attempts, token, body, keyed
    SinkDelivered,      // $1 events[], $2 subscriptions[], $3 tokens[], $4 status codes[] -> event_id,
                        //   subscription of those settled (their lease held)
    SinkFailed,         // $1 event, $2 subscription, $3 token, $4 status code, $5 error, $6 status,
                        //   $7 available_at, $8 uncharge -> event_id if held
    SinkEndpointResult, // $1 endpoint, $2 success, $3 error, $4 breaker failures, $5 disable after s,
                        //   $6 gone -> state, disabled_reason
    SinkReclaim,        // $1 max_retries, $2 subscriptions, $3 all -> became failed
    SinkNextDue,        // $1 subscriptions -> earliest available_at ahead
    SinkArchiveLock,    // $1 event ids (locked, in id order)
    SinkArchive,        // $1 event ids (locked) -> those moved to the archive
    SweepSettled,       // $1 limit -> how many settled events left behind moved to the archive
    ArchiveSettled,     // $1 event ids -> how many moved to the archive
    ReclaimXact,        // $1 max_retries, $2 ids (expired, locked by this transaction)
                        // -> position in $2 (from 1), handed_out, attempt, whole row
    Heartbeat,          // $1 ids, $2 token, $3 lease secs (NULL = keep)
    Complete,           // $1 ids, $2 token
    CompleteXact,       // $1 ids, $2 started_on, $3 lease_owner (of the transaction's claim)
    FailLockXact,       // $1 id -> retry_count
    Release,            // $1 ids, $2 token
    FailLock,           // $1 id, $2 token -> retry_count
    Fail,               // $1 id, $2 status, $3 error, $4 available_at, $5 next_retry_at
    LeaseCheck,         // $1 id -> status, lease_token
    ArchiveCheck,       // $1 id -> status
    Subscriptions,      // -> name, event_type, handler oid (NULL: external), owner oid, paused, external
    ReclaimExpired,     // $1 max_retries, $2 limit -> became_failed per event
    ArchiveMaintain,    // $1 retention minutes -> actions taken
    NextDue,            // $1 SQL subscriptions -> earliest available_at still ahead (retry,
                        //   delivery time, lease end)
    Subscribe,          // $1 name, $2 event_type, $3 handler oid, $4 owner oid -> name (none on conflict)
    ChargeAbandoned,    // $1 max_retries, $2 ids (of a transaction claim whose session ended), $3 error
    BacklogAge,         // -> seconds the oldest due event or delivery has waited (NULL: none)
    EventsWaiting,      // -> whether an event not handed over is due (for consumers, or a lease expired)
    Count_
};

constexpr int kStatementCount = static_cast<int>(Stmt::Count_);
constexpr int kMaxStatementArgs = 8;

// How a statement is planned.
enum class PlanChoice {
    Default,  // PostgreSQL's plan cache decides (custom plans first)
    Generic,  // one generic plan, rebuilt when outbox_events has grown a lot (spi.cpp)
    Custom,   // planned for its arguments at every execution: statements on
              // outbox_deliveries, a queue table that grows from empty without
              // any invalidation (a generic plan made then scans it whole)
    GenericDeliveries,  // one generic plan, rebuilt when outbox_deliveries has
                        // grown a lot (spi.cpp): for statements written so that
                        // their generic plan reaches it only through an index
};

struct Statement {
    Stmt id;                          // its place in the table (checked when built)
    const char *name;                 // for error messages
    const char *text;                 // SQL, with @extschema@
    int nargs;                        // $1 .. $nargs (checked against the text when built)
    Oid argtypes[kMaxStatementArgs];
    PlanChoice plan;
};

// The row of statement `which`.
const Statement &statement(Stmt which);

} // namespace outbox
