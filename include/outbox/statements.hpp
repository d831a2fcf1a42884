// The SQL statements the C++ fast paths run through SPI, by name.
//
// Pure C++ (see outbox/pure.hpp): the text of each statement is rendered with
// fmt from a template in which {s} stands for the extension's schema, already
// quoted. Every statement names the extension's objects by schema; the caller
// runs them with the search path pinned to pg_catalog, so every operator and
// function in them resolves there.
#pragma once

#include <cstddef>

namespace outbox {

enum class Stmt : int {
    PublishInsert,   // $1 id, $2 type, $3 payload, $4 headers, $5 ordering_key, $6 available_at
    PublishExists,   // $1 id -> 0 none, 1 in outbox_events, 2 in archive
    Claim,           // $1 batch, $2 lease secs, $3 owner, $4 LIKE patterns of types (NULL = all), $5 max_retries,
                     // $6 lease token (NULL = a new one)
                     // $7 LIKE patterns of types to leave alone (NULL = none),
                     // $8 ids to skip (held by this transaction's outbox_claim_xact; NULL = none)
    ClaimXact,       // $1 batch, $2 LIKE patterns of types, $3 patterns to leave alone, $4 token (NULL = a new
                     // one), $5 ids to skip -> claim columns + expired (an active event: reclaim it first)
    RelayClaim,      // as ClaimXact -> id, type, expired, token, whole row (composite)
    ReclaimXact,     // $1 max_retries, $2 ids (expired, locked by this transaction)
                     // -> position in $2 (from 1), handed_out, attempt, whole row
    Heartbeat,       // $1 ids, $2 token, $3 lease secs (NULL = keep)
    Complete,        // $1 ids, $2 token
    CompleteXact,    // $1 ids, $2 started_on, $3 lease_owner (of the transaction's claim)
    FailLockXact,    // $1 id -> retry_count
    Release,         // $1 ids, $2 token
    FailLock,        // $1 id, $2 token -> retry_count
    FailUpdate,      // $1 id, $2 status, $3 error, $4 available_at, $5 next_retry_at
    DiagnoseOutbox,  // $1 id -> status, lease_token
    DiagnoseArchive, // $1 id -> status
    Subscriptions,   // -> name, event_type, handler oid, owner oid, paused
    ReclaimExpired,  // $1 max_retries, $2 limit -> became_failed per event
    ArchiveMaintain, // $1 retention minutes -> actions taken
    NextDue,         // -> earliest available_at still ahead (retry, delivery time, lease end)
    SubscriptionInsert, // $1 name, $2 event_type, $3 handler oid, $4 owner oid -> name (none on conflict)
    ChargeAbandoned, // $1 max_retries, $2 ids (of a transaction claim whose session ended), $3 error
    Count_
};

constexpr int kStatementCount = static_cast<int>(Stmt::Count_);

// Render statement `which` for schema `schema_quoted` into out (NUL-terminated).
// Returns the length written; throws std::length_error if cap is too small.
std::size_t render_statement(Stmt which, const char *schema_quoted, char *out, std::size_t cap);

// Name of a statement, for error messages.
const char *statement_name(Stmt which) noexcept;

} // namespace outbox
