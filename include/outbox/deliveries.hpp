// Deliveries: the state of each (event, subscription) the relay handed an
// event to (outbox_deliveries). Their attempts, backoff and failed state are
// their own; an event moves to the archive once all its deliveries are
// settled (_outbox_archive_settled in the install script).
#pragma once
#include "outbox/pg.hpp"
extern "C" {
#include "datatype/timestamp.h"
#include "utils/uuid.h"
}

namespace outbox {

// Record a failed attempt of delivery (id, subscription) that had made
// `attempts_before` attempts (between spi_begin and spi_end): due again
// after the backoff, or failed once out of attempts (1 + outbox.max_retries).
// Returns the new status ("created" or "failed"); *next_out (if given) gets
// the retry time, 0 when failed.
const char *fail_delivery(const pg_uuid_t *id, const char *subscription, int attempts_before, const char *error,
                          TimestampTz *next_out);

// The deliveries (ids[i], subscriptions[i]) were made, started at `started`
// (between spi_begin and spi_end); the events among them whose deliveries
// are now all settled move to the archive. Returns how many moved.
int complete_deliveries(const pg_uuid_t *ids, const char *const *subscriptions, int n, TimestampTz started);

} // namespace outbox
