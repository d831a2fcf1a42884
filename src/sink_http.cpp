// The http sink kind: Standard Webhooks over HTTP(S), on the pure engine
// (http_client.cpp) and signing (webhook_signature.cpp). A message becomes a
// POST of the event's JSON with the headers webhook-id (the event id, the same
// on every attempt), webhook-timestamp (this attempt's) and webhook-signature
// (one v1 signature per secret), plus the endpoint's static headers.
#include "outbox/pure.hpp"
#include "outbox/sink.hpp"
#include "outbox/http_client.hpp"
#include "outbox/webhook_signature.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <string>

namespace outbox {

namespace {

SinkOutcome
outcome_of(HttpOutcome o) noexcept
{
    switch (o) {
    case HttpOutcome::Delivered:
        return SinkOutcome::Delivered;
    case HttpOutcome::Throttled:
        return SinkOutcome::Throttled;
    case HttpOutcome::Gone:
        return SinkOutcome::Gone;
    case HttpOutcome::Refused:
        return SinkOutcome::Refused;
    case HttpOutcome::Retry:
        break;
    }
    return SinkOutcome::Retry;
}

class HttpSink final : public Sink {
public:
    explicit HttpSink(long max_in_flight) : client_(max_in_flight, max_in_flight) {}

    bool send(const SinkTarget &target, const SinkMessage &message) noexcept override
    {
        try {
            HttpRequest req;
            req.tag = message.tag;
            req.url = target.url;
            req.body.assign(message.body, message.body_len);
            req.timeout_ms = target.timeout_ms;
            req.allow_private = target.allow_private;
            char ts[32];
            std::snprintf(ts, sizeof ts, "%lld", static_cast<long long>(std::time(nullptr)));
            req.headers.reserve(3 + target.nheaders);
            req.headers.push_back(std::string("webhook-id: ") + message.event_id);
            req.headers.push_back(std::string("webhook-timestamp: ") + ts);
            if (target.secrets != nullptr && target.secrets[0] != '\0') {
                std::string sig = webhook_signature_header(split_webhook_secrets(target.secrets), message.event_id,
                                                           ts, req.body);
                req.headers.push_back("webhook-signature: " + sig);
            }
            for (int i = 0; i < target.nheaders; i++)
                req.headers.emplace_back(target.headers[i]);
            (void) client_.start(std::move(req));  // false: a Refused result is queued
            return true;
        } catch (...) {
            return false;  // out of memory, or a secret that cannot sign: the worker fails the attempt
        }
    }

    int fd() const noexcept override { return client_.fd(); }
    long next_timeout_ms() const noexcept override { return client_.next_timeout_ms(); }
    void turn() noexcept override { client_.turn(); }
    std::size_t in_flight() const noexcept override { return client_.in_flight(); }
    std::size_t results_waiting() const noexcept override { return client_.results_waiting(); }
    void abandon_all() noexcept override { client_.abandon_all(); }

    bool pop_result(SinkResult &out) noexcept override
    {
        if (!client_.pop_result(r_))
            return false;
        out.tag = r_.tag;
        out.outcome = outcome_of(r_.outcome);
        out.status = r_.status;
        out.retry_after_s = r_.retry_after_s;
        std::snprintf(out.error, sizeof out.error, "%s", r_.error.c_str());
        return true;
    }

private:
    HttpClient client_;
    HttpResult r_;  // reused: pop_result does not allocate once it has grown
};

} // namespace

Sink *
make_http_sink(long max_in_flight, char *why, std::size_t why_len) noexcept
{
    try {
        return new HttpSink(max_in_flight);
    } catch (const std::exception &e) {
        std::snprintf(why, why_len, "%s", e.what());
    } catch (...) {
        std::snprintf(why, why_len, "unknown error");
    }
    return nullptr;
}

} // namespace outbox
