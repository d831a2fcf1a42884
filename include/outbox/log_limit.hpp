// One log line per condition, repeated at most every few minutes, with a
// count of the occurrences it did not log (the relay's per-event messages,
// the launcher's warnings). Backend-local: each process limits its own lines.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

namespace outbox {

constexpr int kLogRepeatMs = 5 * 60 * 1000;

struct LogLimit {
    TimestampTz last;  // when the condition was last logged; 0: never
    uint64 others;     // occurrences since then that were not logged
};

// Whether this occurrence may be logged now; if so, *others gets the number
// left unlogged since the last line (and the count restarts).
bool log_limit_allows(LogLimit *limit, uint64 *others);

} // namespace outbox
