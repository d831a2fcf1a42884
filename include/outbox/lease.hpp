// Argument helpers shared by the claim and lease functions.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// Lease length in seconds from interval argument argno, or the default
// (outbox.processing_timeout) when it is NULL.
int lease_arg(FunctionCallInfo fcinfo, int argno);

// The lease_token argument; NULL is an error.
int64 token_arg(FunctionCallInfo fcinfo, int argno);

// The ids argument, checked (non-NULL, no NULL element, not empty) and
// deduplicated; *n is the number of distinct ids.
ArrayType *ids_arg(FunctionCallInfo fcinfo, int argno, int *n);

// The types argument of a claim: event type patterns ('user.created',
// 'user.*', '*') turned into LIKE patterns, checked (no NULL, not empty).
ArrayType *type_patterns_arg(ArrayType *types);

// Record a failed attempt of event `id` held with lease `token` (between
// spi_begin and spi_end): schedule a retry after retry_in (or the backoff),
// or mark it failed when not retryable or out of attempts. Returns the new
// status ("created" or "failed"); *next_out (if given) gets the retry time,
// 0 when failed. Raises OB001/P0002 if the lease is not held.
const char *fail_leased(pg_uuid_t *id, int64 token, text *error, Interval *retry_in, bool retryable,
                        TimestampTz *next_out);

// If `token` is a claim of the current transaction (outbox_claim_xact, or the
// relay's claim), move its events `ids` (distinct) to the archive (between
// spi_begin and spi_end) and return true; raises OB001 if the claim does not
// hold them all. False, doing nothing, for any other token (a lease).
bool complete_xact(ArrayType *ids, int n, int64 token);

// Columns of a "reclaim xact" row (from 1).
constexpr int kReclaimAttemptCol = 3;
constexpr int kReclaimRowCol = 4;  // the whole outbox_events row, as it is now

// What reclaim_met_expired() did: rows[i] is the "reclaim xact" row of row i
// of the claim if that event was an expired lease and is handed out again;
// NULL otherwise (not expired, or out of attempts and now failed). rows is
// NULL when the claim met no expired lease.
struct ReclaimedRows {
    HeapTuple *rows;
    TupleDesc desc;
};

// A transaction claim (`claim`, n rows, between spi_begin and spi_end) met
// expired leases where its boolean column `expired_col` is true: reclaim them
// (the attempt counts; out of attempts, failed). The claim's own rows stay
// valid.
ReclaimedRows reclaim_met_expired(SPITupleTable *claim, int n, int expired_col);

} // namespace outbox
