// The registry of sink kinds (see sink.hpp): one line per kind.
#include "outbox/pure.hpp"
#include "outbox/sink.hpp"

#include <cstring>
#include <cstdio>

namespace outbox {

Sink *make_http_sink(long max_in_flight, char *why, std::size_t why_len) noexcept;  // sink_http.cpp
Sink *make_kafka_sink(long max_in_flight, char *why, std::size_t why_len) noexcept; // sink_kafka.cpp

namespace {

struct SinkKind {
    const char *name;
    Sink *(*make)(long max_in_flight, char *why, std::size_t why_len) noexcept;
};

constexpr SinkKind kKinds[] = {
    {"http", make_http_sink},
    {"kafka", make_kafka_sink},
};

} // namespace

Sink *
make_sink(const char *kind, long max_in_flight, char *why, std::size_t why_len) noexcept
{
    for (const SinkKind &k : kKinds)
        if (std::strcmp(k.name, kind) == 0)
            return k.make(max_in_flight, why, why_len);
    std::snprintf(why, why_len, "unknown sink kind \"%s\"", kind);
    return nullptr;
}

} // namespace outbox
