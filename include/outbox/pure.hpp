// The fence around pure C++ code.
//
// A pure C++ file (no PostgreSQL calls, free to use std::string, fmt and
// exceptions) includes this header. Including a PostgreSQL header in such a
// file is a compile-time error: PostgreSQL's longjmp-based errors must never
// cross C++ frames that hold objects with destructors.
#pragma once

#ifdef POSTGRES_H
#error "pure C++ code must not include PostgreSQL headers (include outbox/pg.hpp only in src/*.cpp PostgreSQL-facing files)"
#endif

#include <cstddef>
#include <cstdint>
