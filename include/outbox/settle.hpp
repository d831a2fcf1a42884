// Settling claimed events: outbox_heartbeat(), outbox_release(),
// outbox_complete() and outbox_fail(), for a lease (outbox_claim) or a claim
// of the caller's transaction (outbox_claim_xact, and the relay's).
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/uuid.h"
}

namespace outbox {

// An error message as last_error keeps it: at most kMaxErrorBytes, cut at a
// character boundary.
text *clip_error(text *error);
// When the retry after `failures_before` failed attempts (and this one) is
// due: the backoff (outbox.base_backoff, outbox.max_backoff) with full jitter.
TimestampTz retry_time(TimestampTz now, int failures_before);
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

} // namespace outbox
