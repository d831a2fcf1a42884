// The raising half of the C++ error boundary (see outbox/guard.hpp).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"

#include <cstring>

namespace outbox {

namespace {
// The last C++ exception, copied here inside the catch block (no PostgreSQL
// call there), read after it by raise_cpp_error(). Nothing runs between the
// two that could catch another exception.
cpp_error cpp_error_kind = cpp_error::internal;
char cpp_error_message[1024];
} // namespace

void
save_cpp_error(cpp_error kind, const char *what) noexcept
{
    if (what == nullptr)
        what = "unknown C++ exception";
    cpp_error_kind = kind;
    std::strncpy(cpp_error_message, what, sizeof cpp_error_message - 1);
    cpp_error_message[sizeof cpp_error_message - 1] = '\0';
}

void
raise_cpp_error(pg_error_stack entry, const char *file, int line, const char *function)
{
    // What PG_CATCH does on its way in: the ERROR must longjmp to the
    // handler that was current when the guarded call began, and run only
    // the error context callbacks of frames that still exist.
    const bool left_behind =
        PG_exception_stack != entry.exception_stack || error_context_stack != entry.context_stack;
    PG_exception_stack = entry.exception_stack;
    error_context_stack = entry.context_stack;
    const char *note = left_behind ? "The C++ exception unwound out of a PG_TRY block or past an error context "
                                     "callback (a bug in outbox: its PG_CATCH or cleanup did not run); "
                                     "PostgreSQL's error stack was restored to that of the guarded call."
                                   : nullptr;

    // ereport(ERROR, ...) with the guarded call's file, line and function.
    if (errstart_cold(ERROR, TEXTDOMAIN)) {
        if (cpp_error_kind == cpp_error::out_of_memory) {
            errcode(ERRCODE_OUT_OF_MEMORY);
            errmsg("out of memory");
            if (note != nullptr)
                errdetail_internal("A C++ allocation failed (%s). %s", cpp_error_message, note);
            else
                errdetail_internal("A C++ allocation failed (%s).", cpp_error_message);
        } else {
            errcode(ERRCODE_INTERNAL_ERROR);
            errmsg_internal("outbox: %s", cpp_error_message);
            if (note != nullptr)
                errdetail_internal("%s", note);
        }
        errfinish(file, line, function);
    }
    pg_unreachable();
}

} // namespace outbox
