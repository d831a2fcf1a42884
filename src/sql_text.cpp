// Rendering a statement's text (pure C++, see sql_text.hpp).
#include "outbox/pure.hpp"
#include "outbox/sql_text.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace outbox {

std::size_t
render_sql(const char *name, const char *text, const char *schema_quoted, char *out, std::size_t cap)
{
    const std::string_view placeholder(kSchemaPlaceholder);
    std::string_view rest(text);
    fmt::memory_buffer buf;
    for (std::size_t at; (at = rest.find(placeholder)) != std::string_view::npos;) {
        fmt::format_to(std::back_inserter(buf), "{}{}", rest.substr(0, at), schema_quoted);
        rest.remove_prefix(at + placeholder.size());
    }
    fmt::format_to(std::back_inserter(buf), "{}", rest);
    if (buf.size() >= cap)
        throw std::length_error(fmt::format("statement \"{}\" needs {} bytes, more than its {}", name, buf.size() + 1, cap));
    std::memcpy(out, buf.data(), buf.size());
    out[buf.size()] = '\0';
    return buf.size();
}

} // namespace outbox
