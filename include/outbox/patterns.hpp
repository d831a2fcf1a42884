// Event type patterns: 'user.created', 'user.*', '*'. A '*' matches any run
// of characters (none included); every other character matches itself.
//
// One definition: a pattern becomes a LIKE pattern (like_pattern), and every
// match is PostgreSQL's LIKE of it, both in the claims (`type LIKE ANY`, in
// SQL) and in the relay's choice of the handlers an event goes to
// (type_matches, in C++).
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "utils/array.h"
}

namespace outbox {

// The LIKE pattern of type pattern `pattern` (len bytes): '*' becomes '%',
// and LIKE's own '%', '_' and '\' are escaped.
text *like_pattern(const char *pattern, int len);

// The types argument of a claim (or the relay's subscriptions): type
// patterns checked (one-dimensional, not empty, no NULL, each 1 to
// kMaxNameBytes bytes) and turned into LIKE patterns.
ArrayType *type_patterns_arg(ArrayType *types);

// Does event type `type` match `like`, a like_pattern()? As the claims'
// `e.type LIKE ...` does (the column's default collation).
bool type_matches(text *type, text *like);

} // namespace outbox
