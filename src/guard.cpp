// The raising half of the C++ error boundary (see outbox/guard.hpp).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"

#include <cstring>

namespace outbox {

namespace {
// The message of the last C++ exception, copied here inside the catch block
// (no PostgreSQL call there), read after it by raise_cpp_error().
char cpp_error_message[1024];
} // namespace

void
save_cpp_error(const char *what) noexcept
{
    if (what == nullptr)
        what = "unknown C++ exception";
    std::strncpy(cpp_error_message, what, sizeof cpp_error_message - 1);
    cpp_error_message[sizeof cpp_error_message - 1] = '\0';
}

void
raise_cpp_error()
{
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("outbox: %s", cpp_error_message)));
    pg_unreachable();
}

} // namespace outbox
