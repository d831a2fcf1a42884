// The kafka sink kind: records in Kafka topics through librdkafka, laid out
// as Debezium's outbox event router lays them out. A message becomes one
// record: topic from the target's template (kafka.hpp), key = the ordering
// key (none without one), value = the payload's JSON text, headers "id" (the
// event id: what consumers dedupe on), "type", then each of the event's
// headers (but "id" and "type": those are the sink's), timestamp = occurred_at.
//
// One producer per target (by name; made again when its settings change):
// idempotent (enable.idempotence, so acks=all and no reordering or
// duplicates within the producer's life), partitioner murmur2_random (the
// partition Java clients, Kafka Connect and Debezium pick for a key),
// message.timeout.ms = the target's timeout (a dead broker becomes a failed
// delivery report before the worker's lease runs out). Nothing here blocks
// and nothing runs on librdkafka's threads: every producer's main queue
// (delivery reports, errors, and the log: log.queue plus
// rd_kafka_set_log_queue) writes to one non-blocking pipe when it becomes
// non-empty (rd_kafka_queue_io_event_enable); fd() is its read end, and
// turn() drains it and serves the queues with rd_kafka_poll(rk, 0), on the
// worker's thread. A full producer queue (QUEUE_FULL) gives a Busy result and
// has_room() false until the queue has drained a quarter.
#include "outbox/pure.hpp"
#include "outbox/sink.hpp"
#include "outbox/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace outbox {

namespace {

constexpr std::size_t kMaxTopicLen = 249;
constexpr std::size_t kMaxLogLines = 100;
constexpr int kDefaultTimeoutMs = 30000;

bool
topic_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// Expand a template; false (why) on an unknown placeholder. With type null,
// each placeholder becomes "x" (to check the template's own characters).
bool
expand(const char *tmpl, const char *type, std::string &out, std::string &why)
{
    out.clear();
    for (const char *p = tmpl; *p != '\0';) {
        if (*p != '$') {
            out += *p++;
            continue;
        }
        const char *close = p[1] == '{' ? std::strchr(p + 2, '}') : nullptr;
        if (close == nullptr) {
            why = "a '$' must start ${type} or ${aggregate}";
            return false;
        }
        std::string name(p + 2, close - (p + 2));
        if (name == "type") {
            out += type == nullptr ? "x" : type;
        } else if (name == "aggregate") {
            if (type == nullptr) {
                out += "x";
            } else {
                const char *dot = std::strchr(type, '.');
                out.append(type, dot == nullptr ? std::strlen(type) : static_cast<std::size_t>(dot - type));
            }
        } else {
            why = "unknown placeholder ${" + name.substr(0, 64) + "} (there are ${type} and ${aggregate})";
            return false;
        }
        p = close + 1;
    }
    return true;
}

bool
topic_name_check(const std::string &t, std::string &why)
{
    if (t.empty() || t.size() > kMaxTopicLen) {
        why = "a topic name has 1 to 249 characters";
        return false;
    }
    if (t == "." || t == "..") {
        why = "\".\" and \"..\" are not topic names";
        return false;
    }
    for (char c : t)
        if (!topic_char(c)) {
            why = "a topic name has only letters, digits, '.', '_' and '-'";
            return false;
        }
    return true;
}

// Set by the sink on every producer; not settable per target.
constexpr const char *kSetBySink[] = {
    "bootstrap.servers", "metadata.broker.list", "enable.idempotence", "acks", "request.required.acks",
    "partitioner", "partitioner_cb", "log.queue", "message.timeout.ms", "delivery.timeout.ms",
    "transactional.id", "transaction.timeout.ms", "enable.gapless.guarantee", "retries", "message.send.max.retries",
    "queuing.strategy", "produce.offset.report", "debug", "log_level", "plugin.library.paths", "interceptors",
    "opaque", "dr_cb", "dr_msg_cb", "error_cb", "log_cb", "stats_cb", "statistics.interval.ms",
    "enabled_events", "background_event_cb", "socket_cb", "connect_cb", "closesocket_cb", "open_cb",
    "resolve_cb", "throttle_cb", "oauthbearer_token_refresh_cb", "enable.sasl.oauthbearer.unsecure.jwt",
    "test.mock.num.brokers", "test.mock.broker.rtt",
};

// What a target may tune.
constexpr const char *kAllowed[] = {
    "linger.ms", "queue.buffering.max.ms", "batch.num.messages", "batch.size", "compression.type",
    "compression.codec", "compression.level", "message.max.bytes", "request.timeout.ms",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "socket.keepalive.enable", "socket.timeout.ms",
    "socket.connection.setup.timeout.ms", "socket.send.buffer.bytes", "socket.nagle.disable", "client.id",
    "client.rack", "retry.backoff.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms",
    "topic.metadata.refresh.interval.ms", "metadata.max.age.ms", "connections.max.idle.ms",
    "broker.address.family", "sticky.partitioning.linger.ms", "max.in.flight.requests.per.connection",
    "max.in.flight", "client.dns.lookup", "api.version.request.timeout.ms",
};

bool
starts_with(const char *s, const char *prefix)
{
    return std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

} // namespace

bool
kafka_topic_template_check(const char *tmpl, std::string &why)
{
    std::string t;
    if (tmpl == nullptr) {
        why = "the topic must not be null";
        return false;
    }
    if (!expand(tmpl, nullptr, t, why))
        return false;
    return topic_name_check(t, why);
}

bool
kafka_topic_for(const char *tmpl, const char *type, std::string &topic, std::string &why)
{
    if (!expand(tmpl, type == nullptr ? "" : type, topic, why))
        return false;
    if (!topic_name_check(topic, why)) {
        why = "the topic \"" + topic.substr(0, 64) + "\" (type \"" + std::string(type == nullptr ? "" : type).substr(0, 64) +
              "\") is not a topic name: " + why;
        return false;
    }
    return true;
}

bool
kafka_bootstrap_check(const char *servers, std::string &why)
{
    if (servers == nullptr || servers[0] == '\0') {
        why = "no bootstrap servers: give host:port[,host:port...]";
        return false;
    }
    std::string s(servers);
    std::size_t start = 0;
    while (start <= s.size()) {
        std::size_t comma = s.find(',', start);
        std::string one = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        std::size_t colon = one.rfind(':');
        bool ok = colon != std::string::npos && colon > 0 && colon + 1 < one.size() && one.size() <= 300;
        for (std::size_t i = 0; ok && i < one.size(); i++) {
            char c = one[i];
            if (i > colon)
                ok = c >= '0' && c <= '9';
            else
                ok = topic_char(c) || c == ':' || c == '[' || c == ']';
        }
        if (ok) {
            long port = std::strtol(one.c_str() + colon + 1, nullptr, 10);
            ok = port > 0 && port < 65536;
        }
        if (!ok) {
            why = "bootstrap server \"" + one.substr(0, 64) + "\" is not host:port";
            return false;
        }
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return true;
}

bool
kafka_credential_property(const char *name)
{
    return std::strcmp(name, "security.protocol") == 0 || starts_with(name, "sasl.") || starts_with(name, "ssl.") ||
           starts_with(name, "ssl_");
}

bool
kafka_property_allowed(const char *name, std::string &why)
{
    for (const char *a : kAllowed)
        if (std::strcmp(a, name) == 0)
            return true;
    if (kafka_credential_property(name)) {
        why = std::string("property \"") + name +
              "\" is a credential: it is read from the file named by outbox.kafka_credentials_file, never from SQL";
        return false;
    }
    for (const char *f : kSetBySink)
        if (std::strcmp(f, name) == 0) {
            why = std::string("property \"") + name + "\" is set by the sink and cannot be changed";
            return false;
        }
    why = std::string("unknown or not allowed producer property \"") + std::string(name).substr(0, 64) + "\"";
    return false;
}

bool
kafka_properties_check(const char *const *pairs, int n, std::string &why)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == nullptr) {
        why = "out of memory";
        return false;
    }
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        const char *name = pairs[2 * i];
        const char *value = pairs[2 * i + 1];
        if (name == nullptr || value == nullptr) {
            why = "a property's name and value must not be null";
            ok = false;
        } else if (!kafka_property_allowed(name, why)) {
            ok = false;
        } else {
            char errstr[256];
            if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
                why = std::string("property \"") + name + "\": its value is not valid (" + errstr + ")";
                ok = false;
            }
        }
    }
    rd_kafka_conf_destroy(conf);
    return ok;
}

namespace {

class KafkaSink;

struct Producer {
    KafkaSink *owner = nullptr;
    std::string name;
    std::string fingerprint;  // what it was made from
    rd_kafka_t *rk = nullptr;
    rd_kafka_queue_t *mainq = nullptr;
    std::size_t in_flight = 0;
    bool fatal = false;
};

struct LogLine {
    int level;
    std::string text;
};

SinkOutcome
outcome_of(rd_kafka_resp_err_t err) noexcept
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return SinkOutcome::Delivered;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return SinkOutcome::Refused;
    default:
        return SinkOutcome::Retry;
    }
}

class KafkaSink final : public Sink {
public:
    KafkaSink() = default;
    KafkaSink(const KafkaSink &) = delete;
    KafkaSink &operator=(const KafkaSink &) = delete;

    bool open(char *why, std::size_t why_len) noexcept
    {
        if (pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
            std::snprintf(why, why_len, "pipe: %s", std::strerror(errno));
            pipe_[0] = pipe_[1] = -1;
            return false;
        }
        return true;
    }

    ~KafkaSink() override
    {
        abandon_all();
        for (auto &kv : producers_)
            destroy(*kv.second);
        for (auto &p : retiring_)
            destroy(*p);
        if (pipe_[0] >= 0)
            close(pipe_[0]);
        if (pipe_[1] >= 0)
            close(pipe_[1]);
    }

    bool send(const SinkTarget &target, const SinkMessage &message) noexcept override
    {
        try {
            std::string why;
            Producer *p = producer_for(target, why);
            if (p == nullptr) {
                refuse(message.tag, SinkOutcome::Refused, "kafka: " + why);
                return true;
            }
            std::string topic;
            if (!kafka_topic_for(target.topic != nullptr ? target.topic : kKafkaDefaultTopic, message.event_type, topic,
                                 why)) {
                refuse(message.tag, SinkOutcome::Refused, "kafka: " + why);
                return true;
            }
            rd_kafka_headers_t *hdrs = rd_kafka_headers_new(static_cast<std::size_t>(2 + message.nevent_headers));
            rd_kafka_header_add(hdrs, "id", -1, message.event_id, -1);
            if (message.event_type != nullptr)
                rd_kafka_header_add(hdrs, "type", -1, message.event_type, -1);
            for (int i = 0; i < message.nevent_headers; i++) {
                const char *n = message.event_headers[2 * i];
                const char *v = message.event_headers[2 * i + 1];
                if (n == nullptr || std::strcmp(n, "id") == 0 || std::strcmp(n, "type") == 0)
                    continue;
                rd_kafka_header_add(hdrs, n, -1, v, v == nullptr ? 0 : -1);
            }
            std::size_t key_len = message.key == nullptr ? 0 : message.key_len;
            void *key = const_cast<char *>(message.key);
            void *value = const_cast<char *>(message.body);
            std::int64_t ts = message.timestamp_ms;
            void *opaque = reinterpret_cast<void *>(static_cast<std::uintptr_t>(message.tag));
            rd_kafka_resp_err_t err = rd_kafka_producev(
                p->rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE(value, message.body_len), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(ts),
                RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_headers_destroy(hdrs);  // not taken on failure
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    full_ = true;
                    full_at_ = in_flight_;
                    refuse(message.tag, SinkOutcome::Busy, "kafka: the producer's queue is full");
                } else {
                    refuse(message.tag, outcome_of(err) == SinkOutcome::Retry ? SinkOutcome::Refused : outcome_of(err),
                           std::string("kafka: ") + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err));
                }
                return true;
            }
            p->in_flight++;
            in_flight_++;
            return true;
        } catch (...) {
            return false;
        }
    }

    int fd() const noexcept override { return pipe_[0]; }

    long next_timeout_ms() const noexcept override
    {
        // The pipe says when a queue gets something; a turn now and then
        // anyway (a retiring producer to destroy, an event missed). Results
        // and log lines already collected are the worker's to take when it
        // chooses (it coalesces results for a few ms): a timeout of 0 while
        // they wait made its loop spin.
        return in_flight_ > 0 || !retiring_.empty() ? 1000 : -1;
    }

    void turn() noexcept override
    {
        char buf[256];
        while (read(pipe_[0], buf, sizeof buf) > 0) {
        }
        for (auto it = producers_.begin(); it != producers_.end();) {
            Producer &p = *it->second;
            serve(p);
            if (p.fatal) {
                // Unusable (an idempotence failure, say): what it holds fails
                // (a Retry each), and the next message makes a new producer.
                rd_kafka_purge(p.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
                serve(p);
                try {
                    retiring_.push_back(std::move(it->second));
                } catch (...) {
                    ++it;
                    continue;
                }
                it = producers_.erase(it);
            } else {
                ++it;
            }
        }
        for (auto it = retiring_.begin(); it != retiring_.end();) {
            serve(**it);
            if ((*it)->in_flight == 0) {
                destroy(**it);
                it = retiring_.erase(it);
            } else {
                ++it;
            }
        }
        if (full_ && (in_flight_ == 0 || in_flight_ * 4 <= full_at_ * 3))
            full_ = false;
    }

    bool pop_result(SinkResult &out) noexcept override
    {
        if (results_.empty())
            return false;
        out = results_.front();
        results_.pop_front();
        return true;
    }

    std::size_t in_flight() const noexcept override { return in_flight_; }
    std::size_t results_waiting() const noexcept override { return results_.size(); }
    bool has_room() const noexcept override { return !full_; }
    long queue_length() const noexcept override
    {
        long n = 0;
        for (auto &kv : producers_)
            if (kv.second->rk != nullptr)
                n += rd_kafka_outq_len(kv.second->rk);
        return n;
    }

    bool pop_log(int &level, char *buf, std::size_t len) noexcept override
    {
        if (logs_dropped_ > 0) {
            level = 4;
            std::snprintf(buf, len, "kafka: %zu log lines dropped", logs_dropped_);
            logs_dropped_ = 0;
            return true;
        }
        if (logs_.empty())
            return false;
        level = logs_.front().level;
        std::snprintf(buf, len, "%s", logs_.front().text.c_str());
        logs_.pop_front();
        return true;
    }

    void abandon_all() noexcept override
    {
        discarding_ = true;
        for (auto &kv : producers_) {
            rd_kafka_purge(kv.second->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                              RD_KAFKA_PURGE_F_NON_BLOCKING);
            serve(*kv.second);
        }
        for (auto &p : retiring_) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
            serve(*p);
        }
        discarding_ = false;
        results_.clear();
        in_flight_ = 0;
        full_ = false;
        for (auto &kv : producers_)
            kv.second->in_flight = 0;
        for (auto &p : retiring_)
            p->in_flight = 0;
    }

    // librdkafka's callbacks, run by rd_kafka_poll on this thread.
    void delivered(Producer &p, const rd_kafka_message_t *m) noexcept
    {
        if (p.in_flight > 0)
            p.in_flight--;
        if (in_flight_ > 0)
            in_flight_--;
        if (discarding_)
            return;
        try {
            results_.emplace_back();
            SinkResult &r = results_.back();
            r.tag = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m->_private));
            r.outcome = outcome_of(m->err);
            r.status = 0;
            r.retry_after_s = -1;
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
                r.error[0] = '\0';
            else
                std::snprintf(r.error, sizeof r.error, "kafka: %s: %s", rd_kafka_err2name(m->err),
                              rd_kafka_err2str(m->err));
        } catch (...) {
            // Out of memory: no result; the worker's lease runs out and it is sent again.
        }
    }

    void logged(int level, const char *fac, const char *text) noexcept
    {
        if (logs_.size() >= kMaxLogLines) {
            logs_dropped_++;
            return;
        }
        try {
            logs_.push_back(LogLine{level, std::string("kafka: ") + fac + ": " + text});
        } catch (...) {
            logs_dropped_++;
        }
    }

private:
    static void dr_cb(rd_kafka_t *, const rd_kafka_message_t *m, void *opaque)
    {
        Producer *p = static_cast<Producer *>(opaque);
        p->owner->delivered(*p, m);
    }
    static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
    {
        Producer *p = static_cast<Producer *>(rd_kafka_opaque(rk));
        if (p != nullptr)
            p->owner->logged(level, fac, buf);
    }
    static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
    {
        Producer *p = static_cast<Producer *>(opaque);
        if (err == RD_KAFKA_RESP_ERR__FATAL)
            p->fatal = true;
        std::string text = std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
        p->owner->logged(err == RD_KAFKA_RESP_ERR__FATAL ? 3 : 4, "ERROR", text.c_str());
    }

    void serve(Producer &p) noexcept
    {
        while (rd_kafka_poll(p.rk, 0) > 0) {
        }
    }

    static void destroy(Producer &p) noexcept
    {
        if (p.mainq != nullptr) {
            rd_kafka_queue_io_event_enable(p.mainq, -1, nullptr, 0);
            rd_kafka_queue_destroy(p.mainq);
            p.mainq = nullptr;
        }
        if (p.rk != nullptr) {
            rd_kafka_destroy(p.rk);
            p.rk = nullptr;
        }
    }

    void refuse(std::uint64_t tag, SinkOutcome outcome, const std::string &error)
    {
        results_.emplace_back();
        SinkResult &r = results_.back();
        r.tag = tag;
        r.outcome = outcome;
        r.status = 0;
        r.retry_after_s = -1;
        std::snprintf(r.error, sizeof r.error, "%s", error.c_str());
    }

    static std::string fingerprint(const SinkTarget &t)
    {
        std::string f = std::string(t.bootstrap_servers != nullptr ? t.bootstrap_servers : "") + '\n' +
                        std::to_string(t.timeout_ms) + '\n' + (t.credentials_file != nullptr ? t.credentials_file : "");
        for (int i = 0; i < 2 * t.nproperties; i++)
            f += std::string("\n") + (t.properties[i] != nullptr ? t.properties[i] : "");
        return f;
    }

    static bool set(rd_kafka_conf_t *conf, const char *name, const char *value, std::string &why)
    {
        char errstr[256];
        if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
            return true;
        why = std::string("property \"") + name + "\": " + errstr;
        return false;
    }

    // The credentials file: lines "name=value" of security.protocol, sasl.*
    // and ssl.* properties. Errors name the line and the property, never a
    // value.
    static bool read_credentials(rd_kafka_conf_t *conf, const char *path, std::string &why)
    {
        std::ifstream in(path);
        if (!in) {
            why = std::string("cannot read the credentials file \"") + path + "\": " + std::strerror(errno);
            return false;
        }
        std::string line;
        int lineno = 0;
        while (std::getline(in, line)) {
            lineno++;
            std::size_t b = line.find_first_not_of(" \t\r");
            if (b == std::string::npos || line[b] == '#')
                continue;
            std::size_t eq = line.find('=', b);
            if (eq == std::string::npos) {
                why = std::string("credentials file \"") + path + "\", line " + std::to_string(lineno) +
                      ": not name=value";
                return false;
            }
            std::string name = line.substr(b, eq - b);
            while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
                name.pop_back();
            std::string value = line.substr(eq + 1);
            while (!value.empty() && (value.back() == '\r' || value.back() == '\n'))
                value.pop_back();
            if (!kafka_credential_property(name.c_str())) {
                why = std::string("credentials file \"") + path + "\", line " + std::to_string(lineno) + ": \"" +
                      name.substr(0, 64) + "\" is not a security.protocol, sasl.* or ssl.* property";
                return false;
            }
            char errstr[256];
            if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
                why = std::string("credentials file \"") + path + "\", line " + std::to_string(lineno) + ": \"" +
                      name.substr(0, 64) + "\" is not valid";
                return false;
            }
        }
        return true;
    }

    Producer *producer_for(const SinkTarget &t, std::string &why)
    {
        std::string name = t.name != nullptr ? t.name : "";
        std::string fp = fingerprint(t);
        auto it = producers_.find(name);
        if (it != producers_.end()) {
            if (it->second->fingerprint == fp)
                return it->second.get();
            // Changed: the old one delivers what it holds, then goes.
            retiring_.push_back(std::move(it->second));
            producers_.erase(it);
        }
        if (!kafka_bootstrap_check(t.bootstrap_servers, why))
            return nullptr;
        if (!kafka_properties_check(t.properties, t.nproperties, why))
            return nullptr;

        auto p = std::make_unique<Producer>();
        p->owner = this;
        p->name = name;
        p->fingerprint = fp;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        std::string timeout = std::to_string(t.timeout_ms > 0 ? t.timeout_ms : kDefaultTimeoutMs);
        std::string client_id = "outbox-" + name.substr(0, 200);
        bool ok = set(conf, "bootstrap.servers", t.bootstrap_servers, why) &&
                  set(conf, "client.id", client_id.c_str(), why) &&
                  set(conf, "socket.keepalive.enable", "true", why) &&
                  // Brokers back: reconnect soon (the default backs off to 10 s).
                  set(conf, "reconnect.backoff.max.ms", "1000", why) &&
                  // 1 ms, not librdkafka's 5 (half the sink's share of the
                  // latency at 1,000 events/s), nor 0: then each record of a claim
                  // woke a broker thread and went out in a request of its
                  // own, and with the 5 requests an idempotent producer may
                  // have out per broker a backlog drained at 22,000 records/s
                  // instead of 32,000 (W9's mock cluster). A target may set it.
                  set(conf, "linger.ms", "1", why);
        for (int i = 0; ok && i < t.nproperties; i++)
            ok = set(conf, t.properties[2 * i], t.properties[2 * i + 1], why);
        if (ok && t.credentials_file != nullptr && t.credentials_file[0] != '\0')
            ok = read_credentials(conf, t.credentials_file, why);
        // Last: these the target cannot change.
        ok = ok && set(conf, "enable.idempotence", "true", why) && set(conf, "acks", "all", why) &&
             set(conf, "partitioner", "murmur2_random", why) && set(conf, "message.timeout.ms", timeout.c_str(), why) &&
             set(conf, "log.queue", "true", why);
        if (!ok) {
            rd_kafka_conf_destroy(conf);
            return nullptr;
        }
        rd_kafka_conf_set_opaque(conf, p.get());
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_log_cb(conf, log_cb);
        rd_kafka_conf_set_error_cb(conf, error_cb);
        char errstr[512];
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (p->rk == nullptr) {
            rd_kafka_conf_destroy(conf);
            why = std::string("cannot make a producer: ") + errstr;
            return nullptr;
        }
        rd_kafka_set_log_queue(p->rk, nullptr);  // the log to the main queue, served by rd_kafka_poll
        p->mainq = rd_kafka_queue_get_main(p->rk);
        rd_kafka_queue_io_event_enable(p->mainq, pipe_[1], "1", 1);
        Producer *raw = p.get();
        producers_.emplace(name, std::move(p));
        // What was queued before the pipe was attached.
        serve(*raw);
        return raw;
    }

    int pipe_[2] = {-1, -1};
    std::map<std::string, std::unique_ptr<Producer>> producers_;
    std::vector<std::unique_ptr<Producer>> retiring_;
    std::deque<SinkResult> results_;
    std::deque<LogLine> logs_;
    std::size_t logs_dropped_ = 0;
    std::size_t in_flight_ = 0;
    bool full_ = false;
    std::size_t full_at_ = 0;
    bool discarding_ = false;
};

} // namespace

Sink *
make_kafka_sink(long max_in_flight, char *why, std::size_t why_len) noexcept
{
    try {
        auto *s = new KafkaSink();
        if (!s->open(why, why_len)) {
            delete s;
            return nullptr;
        }
        return s;
    } catch (const std::exception &e) {
        std::snprintf(why, why_len, "%s", e.what());
    } catch (...) {
        std::snprintf(why, why_len, "unknown error");
    }
    return nullptr;
}

} // namespace outbox
