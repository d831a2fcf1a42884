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
//
// Before raising, the boundary puts back PostgreSQL's error stack as it was
// when the guarded call began: PG_exception_stack (where an ERROR longjmps to)
// and error_context_stack (the callbacks that add CONTEXT lines). A C++
// exception that unwound out of a PG_TRY block, or past an error context
// callback it had pushed, left them pointing into frames that no longer
// exist; raising with them would jump into, or call through, a dead stack.
// (Such an exception is a bug: its PG_CATCH never ran. The ERROR says so in
// its DETAIL.) CurrentMemoryContext is not touched: error recovery (the
// catching PG_CATCH, or the transaction's abort) chooses its own.
//
// The ERROR carries the source location of the guarded call: the file, line
// and function of the OUTBOX_SQL_FUNCTION declaration, or of the caller of
// guarded_entry() / cpp_call() (shown by \set VERBOSITY verbose and
// log_error_verbosity = verbose, as for any ereport). Its SQLSTATE is XX000
// (internal_error) for a C++ failure, 53200 (out_of_memory) for
// std::bad_alloc.
#pragma once

#include "outbox/pg.hpp"

#include <exception>
#include <new>

namespace outbox {

// Where a guarded call is written, for the ERROR's file, line and function.
// OUTBOX_HERE names the line it is written on (the trampoline's). As a default
// argument, call_site::current() names the call that used the default, so
// `outbox::cpp_call(fn)` and `outbox::guarded_entry(fn)` report their caller
// with no macro in the way (C++20's std::source_location::current() does the
// same; GCC and Clang provide the builtins it rests on in C++17).
struct call_site {
    const char *file;
    int line;
    const char *function;

    static constexpr call_site
    current(const char *file = __builtin_FILE(), int line = __builtin_LINE(),
            const char *function = __builtin_FUNCTION()) noexcept
    {
        return call_site{file, line, function};
    }
};

#define OUTBOX_HERE (::outbox::call_site{__FILE__, __LINE__, __func__})

// PostgreSQL's error stack at the start of a guarded call (two pointers,
// read on every call; written back only on the way to an ERROR).
struct pg_error_stack {
    sigjmp_buf *exception_stack;
    ErrorContextCallback *context_stack;

    static pg_error_stack
    now() noexcept
    {
        return pg_error_stack{PG_exception_stack, error_context_stack};
    }
};

// What kind of C++ failure save_cpp_error() kept.
enum class cpp_error { internal, out_of_memory };

// Save the kind and message of the exception being handled (call only in a
// catch block: it calls nothing of PostgreSQL, it copies into a static buffer).
void save_cpp_error(cpp_error kind, const char *what) noexcept;

// Raise the ERROR for the C++ exception save_cpp_error() kept, located at
// file:line in function, after restoring PostgreSQL's error stack to `entry`.
// Call outside any catch block. (The location goes in as scalars: constants
// at the call site, loaded on the cold path only, so a trampoline's fast
// path stays two loads and a call.)
[[noreturn]] pg_attribute_cold void raise_cpp_error(pg_error_stack entry, const char *file, int line, const char *function);

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
    } catch (const std::bad_alloc &e) {
        save_cpp_error(cpp_error::out_of_memory, e.what());
    } catch (const std::exception &e) {
        save_cpp_error(cpp_error::internal, e.what());
    } catch (...) {
        save_cpp_error(cpp_error::internal, "unknown C++ exception");
    }
    return true;
}

// The boundary itself: fn() returns normally, raises a PostgreSQL ERROR of
// its own (which longjmps over this frame: it holds only trivial objects), or
// throws, and then the ERROR is raised here, for `site`, with the error stack
// of this frame's start.
template <typename Fn>
inline void
run_guarded(Fn &&fn, call_site site)
{
    const pg_error_stack entry = pg_error_stack::now();
    if (caught_cpp_exception(fn))
        raise_cpp_error(entry, site.file, site.line, site.function);
}

// A SQL-callable function's body, behind the boundary (OUTBOX_SQL_FUNCTION's
// trampoline).
template <typename Fn>
inline Datum
guarded(Fn body, FunctionCallInfo fcinfo, call_site site = call_site::current())
{
    Datum result = (Datum) 0;
    run_guarded([&] { result = body(fcinfo); }, site);
    return result;
}

// Run pure C++ code (which may throw) from PostgreSQL-facing code. The
// callable must not call PostgreSQL. Returns normally or raises ERROR, naming
// the caller's file, line and function.
template <typename Fn>
inline void
cpp_call(Fn &&fn, call_site site = call_site::current())
{
    run_guarded(fn, site);
}

// The same boundary for entry points that return nothing (_PG_init, hooks,
// the background workers' main functions): a C++ exception becomes an ERROR
// (for a background worker: it exits and is restarted), naming the caller's
// file, line and function.
template <typename Fn>
inline void
guarded_entry(Fn body, call_site site = call_site::current())
{
    run_guarded(body, site);
}

} // namespace outbox

// Declare a SQL-callable function NAME whose body is `static Datum NAME_impl(PG_FUNCTION_ARGS)`.
// An ERROR for a C++ exception thrown by the body names this line and NAME.
#define OUTBOX_SQL_FUNCTION(name)                                          \
    static Datum name##_impl(PG_FUNCTION_ARGS);                            \
    extern "C" {                                                           \
    PG_FUNCTION_INFO_V1(name);                                             \
    PGDLLEXPORT Datum name(PG_FUNCTION_ARGS) { return outbox::guarded(name##_impl, fcinfo, OUTBOX_HERE); } \
    }                                                                      \
    static Datum name##_impl(PG_FUNCTION_ARGS)
