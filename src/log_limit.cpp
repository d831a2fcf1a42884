// Rate-limited log lines (see log_limit.hpp).
#include "outbox/pg.hpp"
#include "outbox/log_limit.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace outbox {

bool
log_limit_allows(LogLimit *limit, uint64 *others)
{
    TimestampTz now = GetCurrentTimestamp();
    if (limit->last != 0 && !TimestampDifferenceExceeds(limit->last, now, kLogRepeatMs)) {
        limit->others++;
        return false;
    }
    *others = limit->others;
    limit->others = 0;
    limit->last = now;
    return true;
}

} // namespace outbox
