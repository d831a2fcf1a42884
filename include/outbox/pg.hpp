// The PostgreSQL headers every PostgreSQL-facing C++ file (src/*.cpp) needs.
//
// postgres.h first, inside extern "C", and fmgr.h (Datum, the function call
// interface). Everything else a file uses it includes itself, also inside
// extern "C". Pure C++ files include "outbox/pure.hpp" instead and must never
// see these headers (see that file).
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
}
