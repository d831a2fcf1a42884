// The HTTP sink's engine, tested without PostgreSQL: webhook signatures, URL
// checks and redaction, the SSRF address ranges, and HttpClient against a
// local server (test/http/server.py, its port in HTTP_TEST_PORT), driven the
// way the sink worker drives it: one poll() on client.fd() with the client's
// timeout, then turn(). Prints "ok N - ..." / "not ok N - ..." lines; exits
// non-zero if any check failed. Run by test/http/run.sh.
#include "outbox/http_client.hpp"
#include "outbox/webhook_signature.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using namespace outbox;
using Clock = std::chrono::steady_clock;

namespace {

int checks = 0;
int failures = 0;

bool
check(bool ok, const std::string &name, const std::string &diagnostic = "")
{
    checks++;
    std::printf("%s %d - %s\n", ok ? "ok" : "not ok", checks, name.c_str());
    if (!ok) {
        failures++;
        if (!diagnostic.empty())
            std::printf("#   %s\n", diagnostic.c_str());
    }
    std::fflush(stdout);
    return ok;
}

double
ms_since(Clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string base_url;

std::string
describe(const HttpResult &r)
{
    return std::string(http_outcome_name(r.outcome)) + " status=" + std::to_string(r.status) +
           " retry_after=" + std::to_string(r.retry_after_s) + " elapsed=" + std::to_string((long) r.elapsed_ms) +
           "ms error=[" + r.error + "]";
}

// One turn of the worker's loop: wait on the client's fd for at most its own
// timeout (bounded by cap_ms, as the worker bounds it by its other
// deadlines), then turn() and collect results.
void
loop_once(HttpClient &c, std::vector<HttpResult> &out, long cap_ms, bool use_client_timeout = true)
{
    long t = use_client_timeout ? c.next_timeout_ms() : -1;
    if (t < 0 || t > cap_ms)
        t = cap_ms;
    pollfd p{c.fd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(t));
    c.turn();
    HttpResult r;
    while (c.pop_result(r))
        out.push_back(std::move(r));
}

// Drive until done() or max_ms pass; true if done() held.
bool
drive(HttpClient &c, std::vector<HttpResult> &out, long max_ms, const std::function<bool()> &done,
      bool use_client_timeout = true)
{
    auto t0 = Clock::now();
    while (!done()) {
        double left = max_ms - ms_since(t0);
        if (left <= 0)
            return false;
        loop_once(c, out, std::max(1L, static_cast<long>(left)), use_client_timeout);
    }
    return true;
}

HttpRequest
request(const std::string &path, std::uint64_t tag = 1, long timeout_ms = 5000)
{
    HttpRequest r;
    r.tag = tag;
    r.url = base_url + path;
    r.body = R"({"type":"test","data":{}})";
    r.timeout_ms = timeout_ms;
    r.connect_timeout_ms = 2000;
    r.allow_private = true; // the server is on 127.0.0.1
    return r;
}

// Send one request and wait for its result (at most max_ms).
HttpResult
send_one(HttpClient &c, HttpRequest req, long max_ms = 10000)
{
    std::vector<HttpResult> got;
    std::uint64_t tag = req.tag;
    c.start(std::move(req));
    drive(c, got, max_ms, [&] { return !got.empty(); });
    if (got.empty()) {
        HttpResult none;
        none.tag = tag;
        none.error = "(no result within the test's bound)";
        none.status = -1;
        return none;
    }
    return got.front();
}

bool
contains(const std::string &s, const std::string &what)
{
    return s.find(what) != std::string::npos;
}

// The server's counters: connections accepted, requests per path.
std::map<std::string, long>
server_stats(HttpClient &c)
{
    std::map<std::string, long> stats;
    HttpResult r = send_one(c, request("/_stats"));
    std::size_t at = 0;
    while (at < r.body.size()) {
        std::size_t end = r.body.find('\n', at);
        if (end == std::string::npos)
            end = r.body.size();
        std::string line = r.body.substr(at, end - at);
        at = end + 1;
        if (line.rfind("connections=", 0) == 0)
            stats["connections"] = std::atol(line.c_str() + 12);
        else if (line.rfind("path ", 0) == 0) {
            std::size_t sp = line.rfind(' ');
            stats[line.substr(5, sp - 5)] = std::atol(line.c_str() + sp + 1);
        }
    }
    return stats;
}

void
signature_tests()
{
    const char *key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const char *body = R"({"test": 2432232314})";
    std::string sig = webhook_signature(key, id, "1614265330", body);
    check(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "signature: the Standard Webhooks test vector",
          sig);

    unsigned char bytes[32];
    for (unsigned i = 0; i < sizeof bytes; i++)
        bytes[i] = static_cast<unsigned char>(i * 7 + 1);
    std::string fresh = make_webhook_secret(bytes, sizeof bytes);
    check(fresh.rfind("whsec_", 0) == 0 && fresh.size() == 6 + 44, "make_webhook_secret: whsec_ + base64 of 32 bytes",
          fresh);
    std::string header = webhook_signature_header({key, fresh}, id, "1614265330", body);
    check(header == sig + " " + webhook_signature(fresh, id, "1614265330", body),
          "signature header: one v1 signature per secret, space-separated (rotation)", header);
    check(split_webhook_secrets("  " + std::string(key) + "\t" + fresh + " ").size() == 2,
          "split_webhook_secrets: whitespace-separated");

    auto refused = [&](const std::string &secret, const std::string &name, const std::string &expect) {
        try {
            webhook_signature(secret, id, "1614265330", body);
            check(false, name, "no exception");
        } catch (const std::invalid_argument &e) {
            std::string what = e.what();
            std::string tail = secret.size() > 6 ? secret.substr(6) : secret;
            check(contains(what, expect) && (tail.empty() || !contains(what, tail)), name, what);
        }
    };
    refused("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "malformed secret: no whsec_ prefix", "must start with");
    refused("whsec_MfKQ9r8GKYqrTwjUPD8I*PZIo2LaLaSw", "malformed secret: not base64 (not echoed)", "base64");
    refused("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "malformed secret: a length no base64 has", "base64");
    refused("whsec_AAAAAAAA", "malformed secret: 6 bytes are too few", "24 to 64 bytes");
    refused("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS_", "malformed secret: base64url's _ refused", "base64");
    try {
        make_webhook_secret(bytes, 10);
        check(false, "make_webhook_secret: 10 bytes refused");
    } catch (const std::invalid_argument &) {
        check(true, "make_webhook_secret: 10 bytes refused");
    }
    try {
        webhook_signature(key, "a.b", "1614265330", body);
        check(false, "signature: an id with a '.' refused");
    } catch (const std::invalid_argument &) {
        check(true, "signature: an id with a '.' refused");
    }

    std::string out;
    const char *why = nullptr;
    check(base64_decode("TWFu", out, &why) && out == "Man" && base64_decode("TWE=", out, &why) && out == "Ma" &&
              base64_decode("TWE", out, &why) && out == "Ma" && base64_encode((const unsigned char *) "M", 1) == "TQ==",
          "base64: round trips, padding optional");
    check(!base64_decode("TWF=", out, &why) && !base64_decode("TQ=", out, &why) && !base64_decode("T W", out, &why),
          "base64: non-zero trailing bits, wrong padding and whitespace refused");
    char buf[kMaxWebhookSignatureHeader + 1];
    check(webhook_signature_into(std::string(key) + " " + fresh, id, "1614265330", body, buf, sizeof buf) &&
              header == buf,
          "webhook_signature_into: the header, into the caller's buffer");
    check(!webhook_signature_into("whsec_x", id, "1614265330", body, buf, sizeof buf) && contains(buf, "base64"),
          "webhook_signature_into: false and the message for a malformed secret", buf);
}

void
url_tests()
{
    struct {
        const char *in, *out;
    } redact[] = {
        {"https://user:pw@example.com:8443/hooks/x?token=abc#frag", "https://example.com:8443/hooks/x?\u2026"},
        {"http://example.com", "http://example.com/"},
        {"https://example.com/a/b", "https://example.com/a/b"},
        {"http://[::1]:8080/p?q", "http://[::1]:8080/p?\u2026"},
        {"not a url", "(invalid URL)"},
    };
    for (auto &c : redact) {
        std::string got = redact_url(c.in);
        check(got == c.out, std::string("redact_url: ") + c.in, got);
    }

    struct {
        const char *url;
        bool ok;
        const char *why;
    } urls[] = {
        {"https://example.com/hook", true, ""},
        {"http://127.0.0.1:8080/x?y=1", true, ""},
        {"ftp://example.com/x", false, "http or https, not ftp"},
        {"https://user:secret@example.com/", false, "user name or password"},
        {"https://example.com/#frag", false, "fragment"},
        {"/relative/path", false, "not an absolute URL"},
        {"https://", false, "not an absolute URL"},
        {"http:///nohost", false, "no host"},
        {"https://exa mple.com/", false, "space or a control character"},
        {"", false, "empty"},
    };
    for (auto &c : urls) {
        std::string why;
        bool ok = check_webhook_url(c.url, why);
        check(ok == c.ok && contains(why, c.why) && !contains(why, "secret@"),
              std::string("check_webhook_url: \"") + c.url + "\" " + (c.ok ? "accepted" : "refused"), why);
    }
    std::string why;
    check(!check_webhook_url("https://example.com/" + std::string(2100, 'a'), why) && contains(why, "2048"),
          "check_webhook_url: longer than 2048 bytes refused", why);

    struct {
        const char *ip, *kind;
    } ips[] = {
        {"127.0.0.1", "loopback"},      {"127.9.9.9", "loopback"},     {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},      {"172.31.255.255", "private"}, {"172.32.0.1", nullptr},
        {"192.168.1.1", "private"},     {"169.254.169.254", "link-local"}, {"100.100.100.200", "private"},
        {"0.0.0.0", "unspecified"},     {"224.0.0.1", "multicast"},    {"255.255.255.255", "reserved"},
        {"8.8.8.8", nullptr},           {"::1", "loopback"},           {"::", "unspecified"},
        {"fc00::1", "private"},         {"fd12:3456::1", "private"},   {"fe80::1", "link-local"},
        {"ff02::1", "multicast"},       {"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.0.0.1", "private"},
        {"64:ff9b::a9fe:a9fe", "link-local"}, {"2606:4700::1111", nullptr}, {"::ffff:8.8.8.8", nullptr},
        {"example.com", "not an IP address"},
    };
    for (auto &c : ips) {
        const char *kind = non_public_address_kind(std::string_view(c.ip));
        bool same = (kind == nullptr && c.kind == nullptr) ||
                    (kind != nullptr && c.kind != nullptr && std::string(kind) == c.kind);
        check(same, std::string("address ") + c.ip + ": " + (c.kind ? c.kind : "public"), kind ? kind : "public");
    }
}

void
http_tests()
{
    HttpClient c(256, 128);

    // 200, and what went on the wire.
    {
        HttpRequest req = request("/echo");
        req.headers = {"webhook-id: msg_1", "webhook-timestamp: 1614265330"};
        req.body = std::string(64 * 1024, 'b'); // big enough for curl to want "Expect: 100-continue"
        std::string sent = req.body;
        HttpResult r = send_one(c, req);
        check(r.outcome == HttpOutcome::Delivered && r.status == 200 && r.error.empty() && r.tag == 1,
              "200: delivered", describe(r));
        check(r.body.rfind("POST HTTP/1.1\n", 0) == 0 && contains(r.body, "content-type: application/json\n") &&
                  contains(r.body, "webhook-id: msg_1\n") && !contains(r.body, "expect:") &&
                  contains(r.body, "content-length: 65536\n"),
              "200: an HTTP/1.1 POST of application/json with our headers and no Expect", r.body.substr(0, 300));
        check(r.body_bytes > sent.size() && r.body.size() == kMaxResponseBody,
              "200: the echoed 64 kB body arrived and is kept to 4 kB", std::to_string(r.body_bytes));
    }

    {
        HttpResult r = send_one(c, request("/status/500"));
        check(r.outcome == HttpOutcome::Retry && r.status == 500 && contains(r.error, "http: 500") &&
                  contains(r.error, "Internal Server Error: status 500"),
              "500: retry, with status, reason and body in the error", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/redirect"));
        auto stats = server_stats(c);
        check(r.outcome == HttpOutcome::Retry && r.status == 302 && contains(r.error, "not followed") &&
                  stats["/redirect-target"] == 0,
              "302: retry, the redirect not followed", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/status/410"));
        check(r.outcome == HttpOutcome::Gone && r.status == 410, "410: gone", describe(r));
    }
    for (int status : {429, 503}) {
        HttpResult r = send_one(c, request("/status/" + std::to_string(status) + "/7"));
        check(r.outcome == HttpOutcome::Throttled && r.status == status && r.retry_after_s == 7,
              std::to_string(status) + " with Retry-After: 7: throttled, retry_after_s 7", describe(r));
    }
    for (int status : {502, 504}) {
        HttpResult r = send_one(c, request("/status/" + std::to_string(status)));
        check(r.outcome == HttpOutcome::Throttled && r.retry_after_s == -1,
              std::to_string(status) + ": throttled, no Retry-After", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/status/404"));
        check(r.outcome == HttpOutcome::Retry && r.status == 404, "404: retry", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/status/204"));
        check(r.outcome == HttpOutcome::Delivered && r.status == 204, "204: delivered", describe(r));
    }

    // A stalled server: the request's timeout ends it.
    {
        HttpResult r = send_one(c, request("/stall/5000", 1, 500));
        check(r.outcome == HttpOutcome::Retry && r.status == 0 && contains(r.error, "timeout") &&
                  r.elapsed_ms >= 450 && r.elapsed_ms < 1500,
              "stalled server: retry with a timeout after timeout_ms (500 ms)", describe(r));
    }
    // The same, waiting on fd() alone: the timerfd wakes the wait for curl's timer.
    {
        std::vector<HttpResult> got;
        auto t0 = Clock::now();
        c.start(request("/stall/5000", 2, 300));
        drive(c, got, 4000, [&] { return !got.empty(); }, false);
        double took = ms_since(t0);
        check(got.size() == 1 && got[0].outcome == HttpOutcome::Retry && took < 1300,
              "stalled server, waiting on fd() alone: the timer wakes it (" + std::to_string((long) took) + " ms)",
              got.empty() ? "no result" : describe(got[0]));
    }
    {
        HttpResult r = send_one(c, request("/drop"));
        check(r.outcome == HttpOutcome::Retry && r.status == 0 && contains(r.error, "receive"),
              "dropped connection: retry", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/garbage"));
        check(r.outcome == HttpOutcome::Retry && r.status == 0 && contains(r.error, "receive"),
              "a reply that is not HTTP: retry (it was sent)", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/body/200/1000000"));
        check(r.outcome == HttpOutcome::Delivered && r.body_bytes == 1000000 && r.body.size() == kMaxResponseBody &&
                  r.body.capacity() <= 2 * kMaxResponseBody,
              "a 1 MB response body: read, kept to 4 kB in memory", describe(r));
    }
    {
        HttpResult r = send_one(c, request("/body/500/10000"));
        check(r.outcome == HttpOutcome::Retry && r.error.size() <= 260 && contains(r.error, std::string(200, 'x')) &&
                  !contains(r.error, std::string(201, 'x')),
              "a 10 kB error body: at most 200 bytes of it in the error", std::to_string(r.error.size()));
    }

    // Keep-alive: sequential requests reuse one connection.
    {
        long before = server_stats(c)["connections"];
        bool all = true;
        for (int i = 0; i < 5; i++)
            all = all && send_one(c, request("/ok")).outcome == HttpOutcome::Delivered;
        long after = server_stats(c)["connections"];
        check(all && after - before <= 1, "keep-alive: 5 sequential requests (and 2 stats) on at most 1 new connection",
              std::to_string(after - before) + " new connections");
    }

    // SSRF: 127.0.0.1 (and a name resolving to it) refused unless allowed,
    // on a new connection (the socket is never created) and on a pooled one
    // opened by a request that allowed it (the pre-request check).
    {
        long before = server_stats(c)["/ok"];
        HttpClient fresh(16, 16);
        HttpRequest req = request("/ok");
        req.allow_private = false;
        HttpResult r = send_one(fresh, req);
        HttpRequest byname = request("/ok");
        byname.url = "http://localhost:" + base_url.substr(base_url.rfind(':') + 1) + "/ok";
        byname.allow_private = false;
        HttpResult r2 = send_one(fresh, byname);
        HttpResult warm = send_one(c, request("/ok")); // c has a pooled connection to 127.0.0.1 now
        HttpResult r3 = send_one(c, req);
        long after = server_stats(c)["/ok"];
        check(r.outcome == HttpOutcome::Refused && contains(r.error, "127.0.0.1 (loopback)") && r.status == 0,
              "private destination: 127.0.0.1 refused on a new connection when allow_private is false", describe(r));
        check(r2.outcome == HttpOutcome::Refused && contains(r2.error, "loopback"),
              "private destination: localhost (resolved) refused when allow_private is false", describe(r2));
        check(warm.outcome == HttpOutcome::Delivered && r3.outcome == HttpOutcome::Refused &&
                  contains(r3.error, "127.0.0.1 (loopback)"),
              "private destination: refused on a pooled connection too", describe(r3));
        check(after == before + 1, "private destination: no refused request reached the server",
              std::to_string(after - before) + " requests reached /ok (1 allowed)");
        HttpResult ok = send_one(c, request("/ok"));
        check(ok.outcome == HttpOutcome::Delivered, "private destination: allowed when allow_private is true",
              describe(ok));
    }
    // Bad requests: refused by start(), the result queued at once.
    {
        HttpRequest req = request("/ok", 42);
        req.url = "ftp://127.0.0.1/x";
        bool started = c.start(req);
        HttpResult r;
        bool popped = c.pop_result(r);
        check(!started && popped && r.tag == 42 && r.outcome == HttpOutcome::Refused && contains(r.error, "ftp"),
              "ftp:// refused by start(), result queued", describe(r));
        req.url = "https://user:pw@example.com/x";
        started = c.start(req);
        popped = c.pop_result(r);
        check(!started && popped && r.outcome == HttpOutcome::Refused && !contains(r.error, "pw"),
              "a URL with userinfo refused, not echoed", describe(r));
        req = request("/ok", 43);
        req.headers = {"X-Evil: a\r\nX-Injected: b"};
        started = c.start(req);
        popped = c.pop_result(r);
        check(!started && popped && r.outcome == HttpOutcome::Refused, "a header with a line break refused",
              describe(r));
    }
    // Nobody listening: a connect failure, retried.
    {
        HttpRequest req = request("/ok");
        req.url = "http://127.0.0.1:1/ok";
        HttpResult r = send_one(c, req);
        check(r.outcome == HttpOutcome::Retry && contains(r.error, "connect"), "connection refused: retry",
              describe(r));
    }
    check(c.in_flight() == 0 && c.results_waiting() == 0, "nothing left in flight or queued");

    // In-flight isolation: 100 stalled requests do not hold up 100 healthy
    // ones (to another endpoint: max_host_connections caps each).
    {
        HttpClient iso(256, 128);
        std::vector<HttpResult> got;
        for (std::uint64_t i = 0; i < 100; i++)
            iso.start(request("/stall/30000", 1000 + i, 20000));
        // The healthy endpoint is another host name (127.0.0.1 vs [::ffff:127.0.0.1]
        // would be the same address): "localhost" is curl's own 127.0.0.1.
        std::string port = base_url.substr(base_url.rfind(':') + 1);
        auto t0 = Clock::now();
        for (std::uint64_t i = 0; i < 100; i++) {
            HttpRequest req = request("/ok", 2000 + i, 20000);
            req.url = "http://localhost:" + port + "/ok";
            iso.start(req);
        }
        bool done = drive(iso, got, 10000, [&] { return got.size() >= 100; });
        double took = ms_since(t0);
        long healthy = std::count_if(got.begin(), got.end(), [](const HttpResult &r) {
            return r.tag >= 2000 && r.outcome == HttpOutcome::Delivered;
        });
        check(done && healthy == 100 && iso.in_flight() == 100 && took < 5000,
              "isolation: 100 healthy requests done in " + std::to_string((long) took) +
                  " ms while 100 stalled ones stay in flight",
              std::to_string(healthy) + " healthy delivered, " + std::to_string(iso.in_flight()) + " in flight");
        auto t1 = Clock::now();
        iso.abandon_all();
        double abandon = ms_since(t1);
        std::vector<HttpResult> after;
        loop_once(iso, after, 50);
        check(abandon < 500 && iso.in_flight() == 0 && after.empty(),
              "abandon_all: " + std::to_string((long) abandon) + " ms, nothing in flight, no results for them");
    }
}

} // namespace

int
main()
{
    const char *port = std::getenv("HTTP_TEST_PORT");
    signature_tests();
    url_tests();
    if (port == nullptr || *port == '\0') {
        check(false, "HTTP_TEST_PORT names the test server's port");
    } else {
        base_url = std::string("http://127.0.0.1:") + port;
        try {
            http_tests();
        } catch (const std::exception &e) {
            check(false, std::string("HTTP tests threw: ") + e.what());
        }
    }
    std::printf("# %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
