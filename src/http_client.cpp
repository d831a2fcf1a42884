// The HTTP sink's delivery engine (pure C++, see http_client.hpp).
//
// curl's multi socket interface: curl tells us which sockets to watch
// (on_socket) and when to call it back (on_timer); we keep both in one epoll
// set, the timer as a timerfd, so that the worker waits on one fd together
// with its latch (the shape pg_net uses, minus its inner wait).
//
// Memory: everything a result needs (its error text, the kept body) is
// allocated by start(), so turn() and pop_result() never allocate and cannot
// fail; curl's callbacks write only into that memory and into fixed arrays.
//
// The SSRF guard checks the address curl is about to connect to, after name
// resolution, so a name that resolves to 127.0.0.1 (or changes its answer
// between a check and the connection) cannot slip past it:
// CURLOPT_OPENSOCKETFUNCTION refuses to create the socket, so not even a SYN
// reaches a refused address (CURLOPT_PREREQFUNCTION, the other candidate in
// curl 7.88, runs only after the connection, and TLS, are up). curl then tries
// the name's next address, or fails with CURLE_COULDNT_CONNECT, reported as
// Refused. A pooled connection is not opened again; the pre-request callback
// checks the address of a reused one too, for a connection opened by a
// request that allowed private destinations.
#include "outbox/pure.hpp"
#include "outbox/http_client.hpp"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace outbox {

namespace {

using Clock = std::chrono::steady_clock;

// The longest error text (a result's error is reserved this big by start()).
constexpr std::size_t kMaxError = 512;

// curl_global_init is not safe to call concurrently with other curl calls:
// once, before the first handle.
void
global_init()
{
    static std::once_flag once;
    static CURLcode rc = CURLE_OK;
    std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (rc != CURLE_OK)
        throw std::runtime_error(fmt::format("libcurl could not be initialised: {}", curl_easy_strerror(rc)));
}

struct CurluDeleter {
    void operator()(CURLU *u) const noexcept { curl_url_cleanup(u); }
};
using Curlu = std::unique_ptr<CURLU, CurluDeleter>;

// One part of a parsed URL; false if it is absent.
bool
url_part(CURLU *u, CURLUPart what, std::string &out)
{
    char *part = nullptr;
    if (curl_url_get(u, what, &part, 0) != CURLUE_OK || part == nullptr)
        return false;
    out.assign(part);
    curl_free(part);
    return true;
}

// Parse url (NUL-free, bounded by the caller); any scheme parses, so that
// the check can name a wrong one.
CURLUcode
parse_url(std::string_view url, Curlu &u)
{
    u.reset(curl_url());
    if (!u)
        throw std::bad_alloc();
    const std::string copy(url);
    return curl_url_set(u.get(), CURLUPART_URL, copy.c_str(), CURLU_NON_SUPPORT_SCHEME);
}

// Append to out (of capacity cap, NUL-terminated at *len) with printf
// formatting; truncates.
void
append(char *out, std::size_t cap, std::size_t *len, const char *format, ...) __attribute__((format(printf, 4, 5)));
void
append(char *out, std::size_t cap, std::size_t *len, const char *format, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, format);
    int n = std::vsnprintf(out + *len, cap - *len, format, ap);
    va_end(ap);
    if (n > 0)
        *len = std::min(*len + static_cast<std::size_t>(n), cap - 1);
}

// Append at most max bytes of text as one line of valid UTF-8: control
// characters become spaces, bytes that are not UTF-8 become '?', a sequence
// is never cut (the text goes into logs and into text columns).
void
append_printable(char *out, std::size_t cap, std::size_t *len, std::string_view text, std::size_t max)
{
    std::size_t end = std::min(cap - 1, *len + max);
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    std::size_t n = text.size();
    for (std::size_t i = 0; i < n && *len < end;) {
        unsigned char c = p[i];
        std::size_t seq = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool valid = seq > 0 && i + seq <= n;
        for (std::size_t k = 1; valid && k < seq; k++)
            valid = (p[i + k] & 0xC0) == 0x80;
        if (valid && seq == 2 && c < 0xC2)
            valid = false; // overlong
        if (!valid) {
            out[(*len)++] = '?';
            i++;
            continue;
        }
        if (seq == 1) {
            out[(*len)++] = (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
            i++;
            continue;
        }
        if (*len + seq > end)
            break;
        std::memcpy(out + *len, p + i, seq);
        *len += seq;
        i += seq;
    }
    out[*len] = '\0';
}

const char *
ipv4_kind(std::uint32_t a) noexcept
{
    if (a >> 24 == 0)
        return "unspecified"; // 0.0.0.0/8: "this network" (Linux connects 0.0.0.0 to the host itself)
    if (a >> 24 == 127)
        return "loopback";
    if (a >> 24 == 10 || (a & 0xFFF00000u) == 0xAC100000u || (a & 0xFFFF0000u) == 0xC0A80000u)
        return "private";
    if ((a & 0xFFC00000u) == 0x64400000u)
        return "private"; // 100.64.0.0/10, carrier-grade NAT (and some clouds' metadata service)
    if ((a & 0xFFFF0000u) == 0xA9FE0000u)
        return "link-local"; // 169.254.0.0/16, cloud metadata services among them
    if (a >> 28 == 0xE)
        return "multicast";
    if (a >> 28 == 0xF)
        return "reserved"; // 240.0.0.0/4 and the broadcast address
    return nullptr;
}

const char *
ipv6_kind(const unsigned char b[16]) noexcept
{
    static const unsigned char zero[16] = {};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const unsigned char nat64[12] = {0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(b, zero, 16) == 0)
        return "unspecified";
    if (std::memcmp(b, zero, 15) == 0 && b[15] == 1)
        return "loopback";
    // An IPv4 address inside: ::ffff:a.b.c.d (mapped), ::a.b.c.d (the old
    // "compatible" form), 64:ff9b::a.b.c.d (NAT64, which a gateway may route
    // to an internal IPv4 network).
    if (std::memcmp(b, mapped, 12) == 0 || std::memcmp(b, zero, 12) == 0 || std::memcmp(b, nat64, 12) == 0) {
        std::uint32_t a = static_cast<std::uint32_t>(b[12]) << 24 | static_cast<std::uint32_t>(b[13]) << 16 |
                          static_cast<std::uint32_t>(b[14]) << 8 | b[15];
        return ipv4_kind(a);
    }
    if ((b[0] & 0xFE) == 0xFC)
        return "private"; // fc00::/7, unique local
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80)
        return "link-local"; // fe80::/10
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0)
        return "private"; // fec0::/10, the deprecated site-local
    if (b[0] == 0xFF)
        return "multicast";
    return nullptr;
}

} // namespace

const char *
non_public_address_kind(const struct sockaddr *address) noexcept
{
    if (address == nullptr)
        return "not an IP address";
    if (address->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(address);
        return ipv4_kind(ntohl(in->sin_addr.s_addr));
    }
    if (address->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(address);
        return ipv6_kind(in6->sin6_addr.s6_addr);
    }
    return "not an IP address";
}

const char *
non_public_address_kind(std::string_view ip) noexcept
{
    char text[INET6_ADDRSTRLEN + 1];
    if (ip.size() >= sizeof text)
        return "not an IP address";
    std::memcpy(text, ip.data(), ip.size());
    text[ip.size()] = '\0';
    sockaddr_in in{};
    sockaddr_in6 in6{};
    if (inet_pton(AF_INET, text, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        return non_public_address_kind(reinterpret_cast<const sockaddr *>(&in));
    }
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        return non_public_address_kind(reinterpret_cast<const sockaddr *>(&in6));
    }
    return "not an IP address";
}

const char *
http_outcome_name(HttpOutcome outcome) noexcept
{
    switch (outcome) {
    case HttpOutcome::Delivered:
        return "delivered";
    case HttpOutcome::Retry:
        return "retry";
    case HttpOutcome::Throttled:
        return "throttled";
    case HttpOutcome::Gone:
        return "gone";
    case HttpOutcome::Refused:
        return "refused";
    }
    return "?";
}

bool
check_webhook_url(std::string_view url, std::string &why)
{
    if (url.empty()) {
        why = "the URL is empty";
        return false;
    }
    if (url.size() > kMaxWebhookUrl) {
        why = fmt::format("the URL is longer than {} bytes", kMaxWebhookUrl);
        return false;
    }
    if (url.find('\0') != std::string_view::npos) {
        why = "the URL contains a NUL byte";
        return false;
    }
    for (unsigned char c : url)
        if (c <= ' ' || c == 0x7f) {
            why = "the URL contains a space or a control character";
            return false;
        }
    // An authority right after "scheme://": curl would read "http:///x" as
    // the host x, a URL without a host by RFC 3986.
    if (std::size_t at = url.find("://"); at != std::string_view::npos &&
        at + 3 < url.size() && (url[at + 3] == '/' || url[at + 3] == '?' || url[at + 3] == '#')) {
        why = "the URL has no host";
        return false;
    }
    Curlu u;
    if (CURLUcode rc = parse_url(url, u); rc != CURLUE_OK) {
        if (rc == CURLUE_OUT_OF_MEMORY)
            throw std::bad_alloc();
        why = fmt::format("not an absolute URL ({})", curl_url_strerror(rc));
        return false;
    }
    std::string part;
    if (!url_part(u.get(), CURLUPART_SCHEME, part) || (part != "http" && part != "https")) {
        why = "the URL's scheme must be http or https";
        if (!part.empty() && part.size() <= 16)
            why += fmt::format(", not {}", part);
        return false;
    }
    if (url_part(u.get(), CURLUPART_USER, part) || url_part(u.get(), CURLUPART_PASSWORD, part) ||
        url_part(u.get(), CURLUPART_OPTIONS, part)) {
        why = "the URL must not contain a user name or password (send credentials in a header)";
        return false;
    }
    if (!url_part(u.get(), CURLUPART_HOST, part) || part.empty()) {
        why = "the URL has no host";
        return false;
    }
    if (url_part(u.get(), CURLUPART_FRAGMENT, part)) {
        why = "the URL must not contain a fragment (#...)";
        return false;
    }
    return true;
}

std::string
redact_url(std::string_view url)
{
    Curlu u;
    if (url.size() > kMaxWebhookUrl || url.find('\0') != std::string_view::npos || parse_url(url, u) != CURLUE_OK)
        return "(invalid URL)";
    std::string scheme, host, port, path, query;
    if (!url_part(u.get(), CURLUPART_SCHEME, scheme) || !url_part(u.get(), CURLUPART_HOST, host))
        return "(invalid URL)";
    std::string out = scheme + "://" + host;
    if (url_part(u.get(), CURLUPART_PORT, port))
        out += ":" + port;
    if (url_part(u.get(), CURLUPART_PATH, path))
        out += path;
    if (url_part(u.get(), CURLUPART_QUERY, query))
        out += "?\u2026";
    return out;
}

// One request, from start() until its result is popped.
struct HttpClient::Transfer {
    Transfer() = default;
    Transfer(const Transfer &) = delete;
    Transfer &operator=(const Transfer &) = delete;
    ~Transfer() { release(); }

    // Free curl's handle and header list (after it left the multi handle)
    // and the request's buffers.
    void
    release() noexcept
    {
        if (easy != nullptr)
            curl_easy_cleanup(easy);
        easy = nullptr;
        curl_slist_free_all(headers);
        headers = nullptr;
        std::string().swap(request.body);
        std::string().swap(request.url);
        std::vector<std::string>().swap(request.headers);
    }

    // The result's error text, within the capacity start() reserved.
    void
    set_error(const char *text, std::size_t n) noexcept
    {
        result.error.assign(text, std::min(n, result.error.capacity()));
    }

    std::list<Transfer>::iterator self; // its node (splicing between lists keeps it valid)
    CURL *easy = nullptr;
    curl_slist *headers = nullptr;
    HttpRequest request;
    Clock::time_point started;
    HttpResult result;
    char reason[64] = "";              // the last status line's reason phrase
    char refused[INET6_ADDRSTRLEN + 32] = ""; // a destination refused: "127.0.0.1 (loopback)"
    char errbuf[CURL_ERROR_SIZE] = "";
};

// libcurl's callbacks. They run on the thread that called into curl (ours,
// from turn(), start() or abandon_all()), never on a resolver thread, and
// must not throw: they only store into memory set aside before.
struct HttpCallbacks {
    static int
    on_socket(CURL *, curl_socket_t s, int what, void *clientp, void *) noexcept
    {
        auto *c = static_cast<HttpClient *>(clientp);
        if (what == CURL_POLL_REMOVE) {
            epoll_ctl(c->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
            return 0;
        }
        epoll_event ev{};
        ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
        ev.data.fd = s;
        // Level-triggered. If adding fails (the watch limit), curl's timeout
        // still ends the transfer: it cannot hang.
        if (epoll_ctl(c->epoll_fd_, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
            epoll_ctl(c->epoll_fd_, EPOLL_CTL_ADD, s, &ev);
        return 0;
    }

    // curl's timer: `timeout_ms` from now (0: now; -1: none). The timerfd
    // is set only if it would fire later than that (or is not set): a
    // timer moved later leaves it as it is, and a timer removed lets it
    // fire for nothing (turn() then sets it again if need be). A
    // timerfd_settime per call cost ~9 % of the sink worker's CPU.
    static int
    on_timer(CURLM *, long timeout_ms, void *clientp) noexcept
    {
        auto *c = static_cast<HttpClient *>(clientp);
        if (timeout_ms < 0) {
            c->timer_at_ns_ = -1;
            return 0;
        }
        c->timer_at_ns_ = monotonic_ns() + static_cast<std::int64_t>(timeout_ms) * 1000000;
        if (c->timer_armed_ns_ < 0 || c->timer_armed_ns_ > c->timer_at_ns_)
            c->arm_timer(c->timer_at_ns_);
        return 0;
    }

    static std::int64_t
    monotonic_ns() noexcept
    {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    }

    static std::size_t
    on_body(char *data, std::size_t size, std::size_t n, void *clientp) noexcept
    {
        auto *t = static_cast<HttpClient::Transfer *>(clientp);
        std::size_t len = size * n;
        t->result.body_bytes += len;
        std::size_t room = kMaxResponseBody - std::min(kMaxResponseBody, t->result.body.size());
        if (room > 0)
            t->result.body.append(data, std::min(len, room)); // within the reserved capacity
        return len; // all of it taken: a big body never fails the transfer
    }

    static std::size_t
    on_header(char *data, std::size_t size, std::size_t n, void *clientp) noexcept
    {
        auto *t = static_cast<HttpClient::Transfer *>(clientp);
        std::size_t len = size * n;
        // "HTTP/1.1 503 Service Unavailable\r\n": keep the reason of the
        // last status line (an interim 1xx comes before the final one).
        if (len > 5 && std::memcmp(data, "HTTP/", 5) == 0) {
            std::size_t i = 5;
            while (i < len && data[i] != ' ')
                i++;
            while (i < len && data[i] == ' ')
                i++;
            while (i < len && data[i] >= '0' && data[i] <= '9')
                i++;
            while (i < len && data[i] == ' ')
                i++;
            std::size_t end = len;
            while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' '))
                end--;
            std::size_t out = 0;
            t->reason[0] = '\0';
            append_printable(t->reason, sizeof t->reason, &out, std::string_view(data + i, end - i), 48);
        }
        return len;
    }

    // Record a refused destination; true if it is refused.
    static bool
    refuse(HttpClient::Transfer *t, const char *kind, const char *ip) noexcept
    {
        if (kind == nullptr)
            return false;
        std::snprintf(t->refused, sizeof t->refused, "%s (%s)", ip, kind);
        return true;
    }

    static curl_socket_t
    on_open_socket(void *clientp, curlsocktype purpose, curl_sockaddr *address) noexcept
    {
        auto *t = static_cast<HttpClient::Transfer *>(clientp);
        if (purpose == CURLSOCKTYPE_IPCXN) {
            char ip[INET6_ADDRSTRLEN] = "?";
            if (address->family == AF_INET)
                inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(&address->addr)->sin_addr, ip, sizeof ip);
            else if (address->family == AF_INET6)
                inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(&address->addr)->sin6_addr, ip, sizeof ip);
            if (refuse(t, non_public_address_kind(&address->addr), ip))
                return CURL_SOCKET_BAD; // curl tries the next address, or fails to connect
        }
        return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    }

    static int
    on_prereq(void *clientp, char *primary_ip, char *, int, int) noexcept
    {
        auto *t = static_cast<HttpClient::Transfer *>(clientp);
        if (refuse(t, non_public_address_kind(std::string_view(primary_ip ? primary_ip : "")),
                   primary_ip ? primary_ip : "?"))
            return CURL_PREREQFUNC_ABORT;
        return CURL_PREREQFUNC_OK;
    }
};

HttpClient::HttpClient(long max_total_connections, long max_host_connections)
{
    global_init();
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0)
        throw std::runtime_error(fmt::format("epoll_create1: {}", std::strerror(errno)));
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) {
        int e = errno;
        close(epoll_fd_);
        throw std::runtime_error(fmt::format("timerfd_create: {}", std::strerror(e)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = timer_fd_;
    CURLM *m = nullptr;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev) != 0 || (m = curl_multi_init()) == nullptr) {
        int e = errno;
        close(timer_fd_);
        close(epoll_fd_);
        throw std::runtime_error(m == nullptr ? "libcurl could not create a multi handle"
                                              : fmt::format("epoll_ctl: {}", std::strerror(e)));
    }
    multi_ = m;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &HttpCallbacks::on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &HttpCallbacks::on_timer);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, std::max(0L, max_total_connections));
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, std::max(0L, max_host_connections));
    // Keep idle connections for reuse up to the cap (curl's default shrinks
    // the pool to 4 per easy handle added, and ours come and go).
    if (max_total_connections > 0)
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, max_total_connections);
    // HTTP/1.1 only: no multiplexing.
    curl_multi_setopt(m, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_NOTHING));
}

HttpClient::~HttpClient()
{
    abandon_all();
    done_.clear();
    curl_multi_cleanup(static_cast<CURLM *>(multi_));
    close(timer_fd_);
    close(epoll_fd_);
}

bool
HttpClient::start(HttpRequest request)
{
    std::list<Transfer> one;
    Transfer &t = one.emplace_back();
    t.self = one.begin();
    t.result.tag = request.tag;
    t.result.error.reserve(kMaxError);
    t.started = Clock::now();
    t.request = std::move(request);

    auto fail = [&](HttpOutcome outcome, const std::string &why) {
        t.result.outcome = outcome;
        t.set_error(why.data(), why.size());
        t.release();
        done_.splice(done_.end(), one);
        return false;
    };

    std::string why;
    if (!check_webhook_url(t.request.url, why))
        return fail(HttpOutcome::Refused, "refused: " + why);
    for (const std::string &h : t.request.headers)
        if (h.find_first_of("\r\n", 0, 3) != std::string::npos)
            return fail(HttpOutcome::Refused, "refused: a request header contains a line break or NUL");

    t.result.body.reserve(kMaxResponseBody);
    t.easy = curl_easy_init();
    if (t.easy == nullptr)
        return fail(HttpOutcome::Retry, "curl: could not create a transfer");

    for (const char *h : {"Content-Type: application/json", "Expect:"}) {
        curl_slist *l = curl_slist_append(t.headers, h);
        if (l == nullptr)
            throw std::bad_alloc();
        t.headers = l;
    }
    for (const std::string &h : t.request.headers) {
        curl_slist *l = curl_slist_append(t.headers, h.c_str());
        if (l == nullptr)
            throw std::bad_alloc();
        t.headers = l;
    }

    CURL *e = t.easy;
    long timeout = t.request.timeout_ms > 0 ? t.request.timeout_ms : kDefaultTimeoutMs;
    long connect_timeout = t.request.connect_timeout_ms > 0 ? t.request.connect_timeout_ms : kDefaultConnectTimeoutMs;
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, option, value);
    };
    set(CURLOPT_PRIVATE, static_cast<void *>(&t));
    set(CURLOPT_URL, t.request.url.c_str());
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    set(CURLOPT_FOLLOWLOCATION, 0L);   // a 3xx is a failure (Standard Webhooks)
    set(CURLOPT_NOSIGNAL, 1L);         // no SIGALRM for name resolution timeouts
    set(CURLOPT_PROXY, "");            // no proxy from the environment (http_proxy ...)
    set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    set(CURLOPT_POST, 1L);
    set(CURLOPT_POSTFIELDS, t.request.body.data());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.request.body.size()));
    set(CURLOPT_HTTPHEADER, t.headers);
    set(CURLOPT_USERAGENT, "outbox");
    set(CURLOPT_TIMEOUT_MS, timeout);
    set(CURLOPT_CONNECTTIMEOUT_MS, std::min(connect_timeout, timeout));
    // Dropping a transfer while its name is resolved detaches the resolver
    // thread instead of waiting for getaddrinfo to return.
    set(CURLOPT_QUICK_EXIT, 1L);
    set(CURLOPT_WRITEFUNCTION, &HttpCallbacks::on_body);
    set(CURLOPT_WRITEDATA, static_cast<void *>(&t));
    set(CURLOPT_HEADERFUNCTION, &HttpCallbacks::on_header);
    set(CURLOPT_HEADERDATA, static_cast<void *>(&t));
    set(CURLOPT_ERRORBUFFER, t.errbuf);
    if (!t.request.allow_private) {
        set(CURLOPT_OPENSOCKETFUNCTION, &HttpCallbacks::on_open_socket);
        set(CURLOPT_OPENSOCKETDATA, static_cast<void *>(&t));
        set(CURLOPT_PREREQFUNCTION, &HttpCallbacks::on_prereq);
        set(CURLOPT_PREREQDATA, static_cast<void *>(&t));
    }
    if (rc == CURLE_OUT_OF_MEMORY)
        throw std::bad_alloc();
    if (rc != CURLE_OK)
        return fail(HttpOutcome::Refused, fmt::format("refused: libcurl refused an option ({})", curl_easy_strerror(rc)));

    // In flight from here: the timeout runs from the add.
    in_flight_.splice(in_flight_.end(), one);
    CURLMcode mrc = curl_multi_add_handle(static_cast<CURLM *>(multi_), e);
    if (mrc != CURLM_OK) {
        one.splice(one.end(), in_flight_, t.self);
        if (mrc == CURLM_OUT_OF_MEMORY)
            throw std::bad_alloc();
        return fail(HttpOutcome::Retry, fmt::format("curl: {}", curl_multi_strerror(mrc)));
    }
    return true;
}

int
HttpClient::fd() const noexcept
{
    return epoll_fd_;
}

long
HttpClient::next_timeout_ms() const noexcept
{
    long ms = -1;
    if (curl_multi_timeout(static_cast<CURLM *>(multi_), &ms) != CURLM_OK)
        return 0;
    return ms;
}

// Set the timerfd to fire at `at_ns` (CLOCK_MONOTONIC; a time passed fires
// at once).
void
HttpClient::arm_timer(std::int64_t at_ns) noexcept
{
    itimerspec its{};
    std::int64_t at = at_ns > 0 ? at_ns : 1; // a zero it_value would disarm it
    its.it_value.tv_sec = static_cast<time_t>(at / 1000000000);
    its.it_value.tv_nsec = static_cast<long>(at % 1000000000);
    if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr) == 0)
        timer_armed_ns_ = at;
    else
        timer_armed_ns_ = -1;
}

void
HttpClient::turn() noexcept
{
    CURLM *m = static_cast<CURLM *>(multi_);
    int running = 0;
    bool timer_due = false;
    epoll_event events[64];
    // A bounded number of rounds: the set is level-triggered, so whatever
    // is left makes fd() readable again.
    for (int round = 0; round < 8; round++) {
        int n = epoll_wait(epoll_fd_, events, 64, 0);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == timer_fd_) {
                std::uint64_t expirations;
                [[maybe_unused]] ssize_t r = read(timer_fd_, &expirations, sizeof expirations);
                timer_armed_ns_ = -1; // it fired: set no more
                // Early, if curl's timer moved later meanwhile (set again
                // below).
                timer_due = timer_at_ns_ >= 0 && timer_at_ns_ <= HttpCallbacks::monotonic_ns();
                continue;
            }
            int mask = 0;
            if (events[i].events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;
            curl_multi_socket_action(m, fd, mask, &running);
        }
        if (n < 64)
            break;
    }
    // curl's timer also covers its own bookkeeping (starting a transfer just
    // added, connect timeouts, retrying the next address).
    if (timer_due || next_timeout_ms() == 0)
        curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);

    int left = 0;
    while (CURLMsg *msg = curl_multi_info_read(m, &left)) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        void *p = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
        CURLcode code = msg->data.result; // msg is invalid once the handle is removed
        if (p != nullptr)
            finish(*static_cast<Transfer *>(p), code);
    }
    // curl's timer still pending with the timerfd not set (it fired early):
    // set it for the timer.
    if (timer_at_ns_ >= 0 && timer_armed_ns_ < 0)
        arm_timer(timer_at_ns_);
}

void
HttpClient::finish(Transfer &t, int curl_code) noexcept
{
    const auto code = static_cast<CURLcode>(curl_code);
    CURL *e = t.easy;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t retry_after = 0;
    curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(static_cast<CURLM *>(multi_), e);

    HttpResult &r = t.result;
    r.status = static_cast<int>(status);
    r.retry_after_s = retry_after > 0 ? static_cast<long>(retry_after) : -1;
    r.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - t.started).count();

    char text[kMaxError];
    std::size_t len = 0;
    text[0] = '\0';
    if (code == CURLE_OK) {
        if (status >= 200 && status <= 299)
            r.outcome = HttpOutcome::Delivered;
        else if (status == 410)
            r.outcome = HttpOutcome::Gone;
        else if (status == 429 || status == 502 || status == 503 || status == 504)
            r.outcome = HttpOutcome::Throttled;
        else
            r.outcome = HttpOutcome::Retry;
        if (r.outcome != HttpOutcome::Delivered) {
            append(text, sizeof text, &len, "http: %ld", status);
            if (t.reason[0] != '\0')
                append(text, sizeof text, &len, " %s", t.reason);
            if (status >= 300 && status <= 399)
                append(text, sizeof text, &len, " (redirects are not followed)");
            if (!r.body.empty()) {
                append(text, sizeof text, &len, ": ");
                append_printable(text, sizeof text, &len, r.body, kMaxErrorBody);
            }
        }
    } else if (t.refused[0] != '\0' && (code == CURLE_COULDNT_CONNECT || code == CURLE_ABORTED_BY_CALLBACK)) {
        r.outcome = HttpOutcome::Refused;
        append(text, sizeof text, &len, "refused: the destination address %s is not allowed (private destinations are off)",
               t.refused);
    } else {
        const char *what;
        switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
            what = "timeout";
            break;
        case CURLE_COULDNT_RESOLVE_HOST:
            what = "dns";
            break;
        case CURLE_COULDNT_CONNECT:
            what = "connect";
            break;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CLIENTCERT:
            what = "tls";
            break;
        case CURLE_SEND_ERROR:
            what = "send";
            break;
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL: // at this point: a reply that is not HTTP ("HTTP/0.9")
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            what = "receive";
            break;
        default:
            what = "curl";
            break;
        }
        // Refused only if surely never sent: curl could not parse the URL
        // (start() checked it, so hardly ever). CURLE_UNSUPPORTED_PROTOCOL is
        // not such a case: start() checked the scheme, and curl also reports
        // a reply that is not HTTP with it, after the request went out.
        r.outcome = code == CURLE_URL_MALFORMAT ? HttpOutcome::Refused : HttpOutcome::Retry;
        append(text, sizeof text, &len, "%s: %s", what, curl_easy_strerror(code));
        if (t.errbuf[0] != '\0') {
            append(text, sizeof text, &len, " (");
            append_printable(text, sizeof text, &len, t.errbuf, 200);
            append(text, sizeof text, &len, ")");
        }
        if (status > 0)
            append(text, sizeof text, &len, " after HTTP %ld", status);
    }
    t.set_error(text, len);
    t.release();
    // The request's node moves from in_flight_ to done_ (no allocation).
    done_.splice(done_.end(), in_flight_, t.self);
}

bool
HttpClient::pop_result(HttpResult &out) noexcept
{
    if (done_.empty())
        return false;
    out = std::move(done_.front().result);
    done_.pop_front();
    return true;
}

std::size_t
HttpClient::in_flight() const noexcept
{
    return in_flight_.size();
}

std::size_t
HttpClient::results_waiting() const noexcept
{
    return done_.size();
}

void
HttpClient::abandon_all() noexcept
{
    CURLM *m = static_cast<CURLM *>(multi_);
    for (Transfer &t : in_flight_)
        if (t.easy != nullptr)
            curl_multi_remove_handle(m, t.easy);
    in_flight_.clear();
}

} // namespace outbox
