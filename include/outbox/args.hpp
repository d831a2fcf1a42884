// Checks of the arguments the SQL functions share (the lease, the token, the
// ids, a time offset): a clear ERROR for bad input, before anything changes.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "utils/array.h"
}

namespace outbox {

// A lease in whole seconds (rounded up), between 1 second and 24 hours;
// `what` names the argument in the error.
int lease_seconds_arg(Interval *lease, const char *what);

// The lease argument `argno` in seconds, or the default
// (outbox.processing_timeout) when it is NULL.
int lease_arg(FunctionCallInfo fcinfo, int argno);

// The lease_token argument; NULL is an error.
int64 token_arg(FunctionCallInfo fcinfo, int argno);

// The ids argument, checked (non-NULL, one-dimensional, no NULL element, not
// empty, at most kMaxPublishBatch) and deduplicated (sorted); *n is the
// number of distinct ids.
ArrayType *ids_arg(FunctionCallInfo fcinfo, int argno, int *n);
ArrayType *distinct_uuid_array(ArrayType *ids, int *n_out);

// `base` + `interval` for argument `what` (delay, retry_in): 22008 naming the
// argument when the result would be out of timestamp range.
TimestampTz timestamp_plus_arg(TimestampTz base, Interval *interval, const char *what);

} // namespace outbox
