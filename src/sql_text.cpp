// Rendering a statement's text (pure C++, see sql_text.hpp).
#include "outbox/pure.hpp"
#include "outbox/sql_text.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace outbox {

std::size_t
render_sql(const char *name, const char *text, const char *schema_quoted, const char *undispatched, char *out,
           std::size_t cap)
{
    const std::string_view schema(kSchemaPlaceholder);
    const std::string_view filter(kUndispatchedPlaceholder);
    std::string_view rest(text);
    fmt::memory_buffer buf;
    for (;;) {
        std::size_t a = rest.find(schema);
        std::size_t b = rest.find(filter);
        if (a == std::string_view::npos && b == std::string_view::npos)
            break;
        bool is_schema = b == std::string_view::npos || (a != std::string_view::npos && a < b);
        std::size_t at = is_schema ? a : b;
        fmt::format_to(std::back_inserter(buf), "{}{}", rest.substr(0, at), is_schema ? schema_quoted : undispatched);
        rest.remove_prefix(at + (is_schema ? schema.size() : filter.size()));
    }
    fmt::format_to(std::back_inserter(buf), "{}", rest);
    if (buf.size() >= cap)
        throw std::length_error(fmt::format("statement \"{}\" needs {} bytes, more than its {}", name, buf.size() + 1, cap));
    std::memcpy(out, buf.data(), buf.size());
    out[buf.size()] = '\0';
    return buf.size();
}

} // namespace outbox
