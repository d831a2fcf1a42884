// The boundary between PostgreSQL and C++ errors.
//
// Every function PostgreSQL calls is declared with OUTBOX_SQL_FUNCTION: an
// extern "C" one-line trampoline into a static C++ body. The trampoline
// catches every C++ exception, copies its message into a static buffer (no
// PostgreSQL call inside the catch block), leaves the catch block, and only
// then raises ereport(ERROR). The bodies themselves hold no object with a
// non-trivial destructor, because an ereport(ERROR) inside them longjmps
// over their frames.
//
// Pure C++ code (std::string, fmt, containers) is reached only through
// outbox::cpp_call(), which runs a callable inside try/catch and reports
// failure the same way.
#pragma once

#include "outbox/pg.hpp"

#include <exception>
#include <new>

namespace outbox {

// Raise the ERROR for a C++ exception whose message save_cpp_error() kept.
[[noreturn]] void raise_cpp_error();
// Save the message of the exception being handled (call only in a catch block).
void save_cpp_error(const char *what) noexcept;

// Run fn() and catch every C++ exception: its message is saved (no
// PostgreSQL call inside the catch blocks) and true is returned; the caller
// then raises it with raise_cpp_error(), outside any catch block.
template <typename Fn>
inline bool
caught_cpp_exception(Fn &&fn)
{
    try {
        fn();
        return false;
    } catch (const std::bad_alloc &) {
        save_cpp_error("out of memory in C++ code");
    } catch (const std::exception &e) {
        save_cpp_error(e.what());
    } catch (...) {
        save_cpp_error("unknown C++ exception");
    }
    return true;
}

// A SQL-callable function's body, behind the boundary.
template <typename Fn>
inline Datum
guarded(Fn body, FunctionCallInfo fcinfo)
{
    Datum result = (Datum) 0;
    if (caught_cpp_exception([&] { result = body(fcinfo); }))
        raise_cpp_error();
    return result;
}

// Run pure C++ code (which may throw) from PostgreSQL-facing code. The
// callable must not call PostgreSQL. Returns normally or raises ERROR.
template <typename Fn>
inline void
cpp_call(Fn &&fn)
{
    if (caught_cpp_exception(fn))
        raise_cpp_error();
}

// The same boundary for entry points that return nothing (_PG_init, the
// background workers' main functions): a C++ exception becomes an ERROR (for a
// background worker: it exits and is restarted).
template <typename Fn>
inline void
guarded_entry(Fn body)
{
    if (caught_cpp_exception(body))
        raise_cpp_error();
}

} // namespace outbox

// Declare a SQL-callable function NAME whose body is `static Datum NAME_impl(PG_FUNCTION_ARGS)`.
#define OUTBOX_SQL_FUNCTION(name)                                          \
    static Datum name##_impl(PG_FUNCTION_ARGS);                            \
    extern "C" {                                                           \
    PG_FUNCTION_INFO_V1(name);                                             \
    PGDLLEXPORT Datum name(PG_FUNCTION_ARGS) { return outbox::guarded(name##_impl, fcinfo); } \
    }                                                                      \
    static Datum name##_impl(PG_FUNCTION_ARGS)
