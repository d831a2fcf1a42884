// Rendering a statement's text for the installed schema. Implemented in pure
// C++ (src/sql_text.cpp, see outbox/pure.hpp); this interface is plain C++ that
// both sides may include.
#pragma once

#include <cstddef>

namespace outbox {

// The placeholder of the extension's schema in statement texts, as in
// extension scripts.
constexpr const char *kSchemaPlaceholder = "@extschema@";

// The placeholder of the claims' filter that leaves out events handed to
// subscriptions: "AND e.dispatched_at IS NULL", or nothing while the database
// has a schema older than 0.2.0 (no such column: the library serves it until
// ALTER EXTENSION outbox UPDATE).
constexpr const char *kUndispatchedPlaceholder = "@undispatched@";

// Write `text` into out (NUL-terminated), every @extschema@ replaced by
// `schema_quoted` and every @undispatched@ by `undispatched`. Returns the
// length written; throws std::length_error naming `name` if cap is too small.
std::size_t render_sql(const char *name, const char *text, const char *schema_quoted, const char *undispatched,
                       char *out, std::size_t cap);

// The highest parameter number ($n) in `text`, 0 if none: the statement
// table checks its argument counts with it when it is compiled.
constexpr int
highest_parameter(const char *text)
{
    int highest = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '$' || p[1] < '0' || p[1] > '9')
            continue;
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            n = n * 10 + (*p - '0');
        if (n > highest)
            highest = n;
        p--;
    }
    return highest;
}

} // namespace outbox
