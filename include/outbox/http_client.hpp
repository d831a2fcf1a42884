// The HTTP sink's delivery engine: webhook POSTs on libcurl's multi socket
// interface, driven by one wait on one file descriptor, never blocking.
// Implemented in pure C++ (src/http_client.cpp, see outbox/pure.hpp): the sink
// worker reaches it through outbox::cpp_call (start) or directly (the
// noexcept members), and nothing here calls PostgreSQL.
//
// How a worker drives it (docs/SINKS.md §5.2):
//
//     HttpClient client(max_total, max_host);          // one per process, for its life
//     loop:
//         client.start(request) for each claimed delivery (up to the free slots)
//         t = min(client.next_timeout_ms() (-1: none), our own deadlines)
//         WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT
//                           | WL_EXIT_ON_PM_DEATH, client.fd(), t, ...)
//         ResetLatch, CHECK_FOR_INTERRUPTS, reload ...
//         client.turn();                                // always, whatever woke us
//         while (client.pop_result(r)) record r (in one short transaction)
//
// Every started request ends in exactly one HttpResult with its tag, unless
// abandon_all() (or the destructor) drops it first; a dropped delivery stays
// leased in its table and is sent again after the lease expires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace outbox {

// At most this much of a response body is kept (the rest is read and thrown
// away: the transfer never fails for a big body).
constexpr std::size_t kMaxResponseBody = 4096;
// At most this much of it goes into an error text (bodies can echo input).
constexpr std::size_t kMaxErrorBody = 200;
// The longest webhook URL accepted.
constexpr std::size_t kMaxWebhookUrl = 2048;
// Used when a request's timeout_ms (connect_timeout_ms) is not positive.
constexpr long kDefaultTimeoutMs = 15000;
constexpr long kDefaultConnectTimeoutMs = 10000;

struct HttpRequest {
    std::uint64_t tag = 0;                 // the caller's, returned in the result
    std::string url;                       // http:// or https:// (check_webhook_url)
    std::vector<std::string> headers;      // "Name: value", no CR or LF; Content-Type and
                                           // Expect are set already
    std::string body;                      // sent as is, as application/json
    long timeout_ms = kDefaultTimeoutMs;   // the whole request, from start()
    long connect_timeout_ms = kDefaultConnectTimeoutMs;
    bool allow_private = false;            // may the destination be loopback, private, link-local ...?
};

enum class HttpOutcome {
    Delivered, // 2xx
    Retry,     // other statuses (3xx: redirects are not followed), timeout, connect, DNS or TLS
               // failure, dropped connection
    Throttled, // 429, 502, 503, 504: back off, honour retry_after_s
    Gone,      // 410: disable the endpoint
    Refused,   // never sent: a bad URL or header, a scheme other than http or https, a
               // destination address that is not allowed
};

// "delivered", "retry", "throttled", "gone", "refused".
const char *http_outcome_name(HttpOutcome outcome) noexcept;

struct HttpResult {
    std::uint64_t tag = 0;
    HttpOutcome outcome = HttpOutcome::Retry;
    int status = 0;             // the HTTP status, 0 if no response came
    long retry_after_s = -1;    // the response's Retry-After in seconds (a date is converted), -1
                                // if none; the caller caps it
    std::string error;          // empty when delivered; otherwise short and safe to log: a class
                                // word ("http", "timeout", "connect", "dns", "tls", "send",
                                // "receive", "refused", "curl"), then the status and reason and at
                                // most kMaxErrorBody bytes of the body, or curl's message; no URL
    std::string body;           // the first kMaxResponseBody bytes of the response body
    std::size_t body_bytes = 0; // the whole body's size as received
    double elapsed_ms = 0;      // from start() to the end of the transfer
};

class HttpClient {
public:
    // One client per process: its multi handle holds the connection pool
    // (keep-alive reuse) and the DNS cache. max_total_connections and
    // max_host_connections (a host is a name and port) cap open connections,
    // 0 for no cap; requests beyond a cap wait inside curl, and their timeout
    // runs meanwhile, so start no more than the caps allow. Throws
    // std::runtime_error if libcurl, epoll or timerfd cannot be set up, or
    // std::bad_alloc.
    HttpClient(long max_total_connections, long max_host_connections);
    ~HttpClient();
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    // Hand one request to curl; never blocks (name resolution runs in
    // curl's resolver threads, which never touch our state). Returns true
    // when it is in flight. Returns false when it could not be started: its
    // result (Refused for a bad URL or header, Retry if curl could not take
    // it) is queued already for pop_result(). Throws std::bad_alloc only
    // (then nothing is queued and nothing is in flight for it).
    bool start(HttpRequest request);

    // An epoll fd (EPOLL_CLOEXEC) holding curl's sockets and a timerfd for
    // curl's timer: readable when the client needs a turn().
    int fd() const noexcept;

    // Milliseconds until curl's timer expires (0: now), -1 if none is set:
    // the outer wait's timeout (the timerfd in fd() also fires then).
    long next_timeout_ms() const noexcept;

    // Serve what is ready: sockets, curl's timer, finished transfers (their
    // results go to the queue). Never blocks. Problems end up in results.
    void turn() noexcept;

    // The next finished request's result, if any.
    bool pop_result(HttpResult &out) noexcept;

    // Requests started and not finished yet.
    std::size_t in_flight() const noexcept;
    // Results waiting in the queue.
    std::size_t results_waiting() const noexcept;

    // Drop every request in flight (their connections are closed; no
    // result comes for them). Queued results stay. Returns promptly: a name
    // still being resolved is left to its thread.
    void abandon_all() noexcept;

    struct Transfer; // one request, from start() to pop_result()

private:
    void finish(Transfer &t, int curl_code) noexcept;
    void arm_timer(std::int64_t at_ns) noexcept;

    void *multi_ = nullptr; // CURLM *
    int epoll_fd_ = -1;
    int timer_fd_ = -1;
    // curl's timer (CLOCK_MONOTONIC ns; -1: none), and when the timerfd is
    // set to fire (-1: not set). The timerfd is set again only when curl's
    // timer moves earlier than it: when curl moves it later (it does on
    // nearly every call), it fires early and turn() sets it again, once.
    std::int64_t timer_at_ns_ = -1;
    std::int64_t timer_armed_ns_ = -1;
    std::list<Transfer> in_flight_;
    std::list<Transfer> done_;

    friend struct HttpCallbacks; // libcurl's callbacks (src/http_client.cpp)
};

// Is url a webhook URL we send to: absolute http or https with a host, no
// user name or password, no fragment, at most kMaxWebhookUrl bytes? If not,
// *why says what is wrong (without repeating the URL). Throws std::bad_alloc.
bool check_webhook_url(std::string_view url, std::string &why);

// url for logs: scheme://host[:port]/path, with a query replaced by "?…" and
// any user name and password left out; "(invalid URL)" if it does not parse.
// Throws std::bad_alloc.
std::string redact_url(std::string_view url);

// nullptr if the address may be sent to without allow_private; otherwise
// what it is: "loopback", "private", "link-local", "unspecified",
// "multicast", "reserved" (also for an IPv4 address inside an IPv6 one:
// mapped, compatible or NAT64).
const char *non_public_address_kind(const struct sockaddr *address) noexcept;
// The same for a numeric address in text ("10.1.2.3", "::ffff:127.0.0.1");
// "not an IP address" if it is none.
const char *non_public_address_kind(std::string_view ip) noexcept;

} // namespace outbox
