// Delivery metrics: counters and a commit-to-delivery lag histogram per
// subscription and per consumer name, in shared memory (metrics.cpp), read
// by outbox_metrics().
//
// What a transaction counts is kept in the backend until it commits, then
// added to shared memory (a subtransaction's counts go to its parent when it
// commits and are dropped when it aborts; so are a whole transaction's when
// it aborts): a delivery rolled back is not counted. Each database has its
// own entries, plus a total per database. Shared memory holds
// outbox.metrics_max_names entries of names, and one total per served
// database (outbox.max_databases); counts for a name beyond them reach only
// the total (outbox_metrics() says how many were dropped). The counters live
// as long as the server: a reload keeps them, a restart starts them from
// zero, outbox_metrics_reset() clears a database's, and a dropped database's
// go when outbox_metrics() or the reset next runs.
//
// Exists only when the library is preloaded; otherwise recording does
// nothing.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

namespace outbox {

enum class MetricKind : int { Subscription = 0, Consumer = 1, Total = 2 };
enum class MetricCount : int { Delivered = 0, Failed = 1, Retried = 2, Reclaimed = 3 };
constexpr int kMetricCounts = 4;

// Shared memory, from shmem.cpp's request and startup hooks.
Size metrics_shmem_size();
void metrics_shmem_request();
void metrics_shmem_startup();  // under AddinShmemInitLock

// From _PG_init: the transaction callbacks that apply or drop the counts.
void register_metrics_callbacks();

// Count `n` of `what` for `name` (a subscription, or a consumer: NULL for
// one that claims without a name) in the current transaction.
void metric_count(MetricKind kind, const char *name, MetricCount what, int n = 1);
// A lag: from `due` (when the event could first be delivered: published, or
// the time it was published for) to `at`, added to the histogram.
void metric_lag(MetricKind kind, const char *name, TimestampTz due, TimestampTz at);
// A delivery made at `at` of an event due at `due`: counted as delivered,
// with its lag.
void metric_delivered(MetricKind kind, const char *name, TimestampTz due, TimestampTz at);

} // namespace outbox
