// The seam between the sink worker and the kinds of external targets.
//
// The sink worker (sink_worker.cpp) owns the tables, the transactions, the
// leases and the retry policy; a sink kind owns its network I/O: it takes a
// message for a target, works on it without blocking, and reports an outcome.
// Each kind lives in its own file (sink_http.cpp: webhooks) and is named in
// the registry (sinks.cpp); adding a kind is one file plus its line there.
//
// A kind is pure C++ (its file includes outbox/pure.hpp; this header is
// shared with the worker): it never calls PostgreSQL (its library's threads
// least of all), every method is noexcept, and it reports problems through
// results. The worker waits on every kind's fd() together with its latch in
// one wait.
#pragma once
#include <cstddef>
#include <cstdint>

namespace outbox {

constexpr std::size_t kSinkErrorLen = 512;

// Where a message goes (the row of its endpoint, as the worker read it).
// The fields after allow_private are for broker kinds (kafka); a kind that
// does not use them (http) ignores them, and a worker that builds a target by
// aggregate initialisation leaves them null (0).
struct SinkTarget {
    const char *name;             // the endpoint's name
    const char *url;
    const char *const *headers;   // static headers, "Name: value"
    int nheaders;
    int timeout_ms;               // kafka: message.timeout.ms (the whole attempt, retries included)
    const char *secrets;          // signing secrets, space-separated (the newest first)
    bool allow_private;           // may it be a loopback, private or link-local address?
    // kafka:
    const char *bootstrap_servers;  // "host:port,host:port"
    const char *topic;              // the topic template (kafka.hpp); null: kKafkaDefaultTopic
    const char *const *properties;  // producer properties, name/value pairs: [2i] name, [2i+1] value
    int nproperties;                // pairs
    const char *credentials_file;   // TLS/SASL properties (kafka.hpp), read by the kind; null: none
};

// One delivery attempt: an event to a target. The fields after body_len are
// for broker kinds (kafka); null (0) when the worker does not set them.
struct SinkMessage {
    std::uint64_t tag;            // the worker's, returned in the result
    const char *event_id;         // the idempotency key (the same on every attempt)
    const char *body;             // the event as JSON (kafka: the record's value, the payload's JSON text)
    std::size_t body_len;
    // kafka:
    const char *event_type;           // the header "type", and the topic's ${type} / ${aggregate}
    const char *key;                  // the record key (the ordering key); null: no key
    std::size_t key_len;
    const char *const *event_headers; // the event's headers, name/value pairs: [2i] name, [2i+1] value
    int nevent_headers;               // pairs
    std::int64_t timestamp_ms;        // the record's timestamp (occurred_at), ms since the epoch; 0: now
};

enum class SinkOutcome {
    Delivered,  // acknowledged
    Retry,      // failed: try again after the backoff
    Throttled,  // the target asks to slow down: back off, at least retry_after_s
    Gone,       // the target is gone for good: disable the endpoint
    Refused,    // never sent (bad target, address not allowed): a failed attempt
    Busy,       // never sent: the kind's queue is full (kafka: QUEUE_FULL). Not the target's
                // fault: the attempt should not be charged; stop claiming for this kind
                // until has_room() says so again, then send it again
};

struct SinkResult {
    std::uint64_t tag;
    SinkOutcome outcome;
    int status;                   // protocol status (HTTP), 0 if none
    long retry_after_s;           // -1: none
    char error[kSinkErrorLen];    // "" when delivered; short, safe to log (no secrets, no query strings)
};

class Sink {
public:
    virtual ~Sink() = default;
    // Start delivering `message` to `target`; never blocks. False: it could
    // not even be queued (out of memory): the attempt is the worker's to fail.
    virtual bool send(const SinkTarget &target, const SinkMessage &message) noexcept = 0;
    // A pollable fd, readable when the kind needs a turn; -1 if none.
    virtual int fd() const noexcept = 0;
    // When it needs a turn without I/O, in ms (-1: no timer).
    virtual long next_timeout_ms() const noexcept = 0;
    // Work on what is ready, without blocking.
    virtual void turn() noexcept = 0;
    // The next finished attempt, if any.
    virtual bool pop_result(SinkResult &out) noexcept = 0;
    virtual std::size_t in_flight() const noexcept = 0;
    // How many results pop_result() has ready.
    virtual std::size_t results_waiting() const noexcept = 0;
    // Drop every attempt in flight (shutdown): no results for them.
    virtual void abandon_all() noexcept = 0;
    // Whether it takes more messages now (false: its queue is (nearly) full;
    // claim nothing for this kind until it is true again). Kinds without a
    // queue of their own always do.
    virtual bool has_room() const noexcept { return true; }
    // How many messages its library's own queue holds (kafka: librdkafka's
    // outq, waiting to be sent or for their delivery report, over every
    // producer); -1 for a kind without such a queue.
    virtual long queue_length() const noexcept { return -1; }
    // The next line its library logged (queued, and handed over here on the
    // worker's own thread, for the worker to log), if any. level is syslog's
    // (3 error, 4 warning, 6 info, 7 debug); the text is safe to log.
    virtual bool pop_log(int &level, char *buf, std::size_t len) noexcept { return false; }
};

// A new sink of kind `kind` ("http", "kafka"), or null for an unknown kind (or when it
// cannot be created: *why says why). max_in_flight bounds its connections.
Sink *make_sink(const char *kind, long max_in_flight, char *why, std::size_t why_len) noexcept;

} // namespace outbox
