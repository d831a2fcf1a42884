// The SQLSTATEs of our own.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "utils/elog.h"
}

// OB001: the caller's lease on an event is gone (it expired and the event
// was reclaimed, completed, released or failed by someone else), or a claim
// of the caller's transaction does not hold the event.
#define ERRCODE_OUTBOX_LEASE_LOST MAKE_SQLSTATE('O', 'B', '0', '0', '1')
