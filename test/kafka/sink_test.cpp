// The kafka sink kind, tested without PostgreSQL against librdkafka's mock
// cluster (test/kafka/mockcluster.c, 3 brokers, started here as a child and
// driven through its stdin), driven the way the sink worker drives a kind:
// one poll() on sink->fd() with the kind's timeout, then turn() and
// pop_result(). Topics are read back with a librdkafka consumer. Prints
// "ok N - ..." / "not ok N - ..." lines; exits non-zero if a check failed.
// Run by test/kafka/run.sh (MOCKCLUSTER names the helper).
#include "outbox/kafka.hpp"
#include "outbox/sink.hpp"

#include <librdkafka/rdkafka.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
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

// The mock cluster, a child process; commands on its stdin, one answer line
// each on its stdout.
struct Cluster {
    pid_t pid = -1;
    FILE *in = nullptr;
    FILE *out = nullptr;
    std::string bootstraps;

    bool start(const char *path)
    {
        int to[2], from[2];
        if (pipe(to) != 0 || pipe(from) != 0)
            return false;
        pid = fork();
        if (pid == 0) {
            dup2(to[0], 0);
            dup2(from[1], 1);
            close(to[1]);
            close(from[0]);
            execl(path, path, "3", static_cast<char *>(nullptr));
            _exit(127);
        }
        close(to[0]);
        close(from[1]);
        in = fdopen(to[1], "w");
        out = fdopen(from[0], "r");
        bootstraps = line();
        return !bootstraps.empty() && bootstraps.find(':') != std::string::npos;
    }
    std::string line()
    {
        char buf[4096];
        if (std::fgets(buf, sizeof buf, out) == nullptr)
            return "";
        std::string s(buf);
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
            s.pop_back();
        return s;
    }
    bool cmd(const std::string &c)
    {
        std::fprintf(in, "%s\n", c.c_str());
        std::fflush(in);
        std::string answer = line();
        if (answer.rfind("ok", 0) != 0) {
            std::printf("# mockcluster: %s -> %s\n", c.c_str(), answer.c_str());
            return false;
        }
        return true;
    }
    void stop()
    {
        if (in != nullptr) {
            std::fclose(in);
            in = nullptr;
        }
        if (pid > 0) {
            int st;
            for (int i = 0; i < 50 && waitpid(pid, &st, WNOHANG) == 0; i++)
                usleep(100000);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            pid = -1;
        }
    }
};

Cluster cluster;

struct Results {
    std::vector<SinkResult> all;
    int logs = 0;
    std::vector<std::string> log_lines;
};

// One turn of the worker's loop.
void
loop_once(Sink &s, Results &out, long cap_ms)
{
    long t = s.next_timeout_ms();
    if (t < 0 || t > cap_ms)
        t = cap_ms;
    pollfd p{s.fd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(t));
    s.turn();
    SinkResult r;
    while (s.pop_result(r))
        out.all.push_back(r);
    int level;
    char buf[1024];
    while (s.pop_log(level, buf, sizeof buf)) {
        out.logs++;
        if (out.log_lines.size() < 5)
            out.log_lines.push_back(buf);
    }
}

bool
drive(Sink &s, Results &out, long max_ms, const std::function<bool()> &done)
{
    auto t0 = Clock::now();
    while (!done()) {
        if (ms_since(t0) > max_ms)
            return false;
        loop_once(s, out, 100);
    }
    return true;
}

struct Record {
    std::string topic;
    int partition;
    long long offset;
    bool has_key;
    std::string key;
    std::string value;
    std::vector<std::pair<std::string, std::string>> headers;
    long long ts;
};

// Every record of the topics, from the beginning to the end.
std::vector<Record>
read_topics(const std::vector<std::string> &topics, int partitions)
{
    std::vector<Record> recs;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstraps.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "outbox-sink-test", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == nullptr) {
        std::printf("# consumer: %s\n", errstr);
        return recs;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(0);
    for (const std::string &t : topics)
        for (int p = 0; p < partitions; p++)
            rd_kafka_topic_partition_list_add(parts, t.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    int eofs = 0;
    int want = static_cast<int>(topics.size()) * partitions;
    std::set<std::pair<std::string, int>> at_eof;
    auto t0 = Clock::now();
    while (static_cast<int>(at_eof.size()) < want && ms_since(t0) < 30000) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == nullptr)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_eof.insert({rd_kafka_topic_name(m->rkt), m->partition});
            eofs++;
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            Record r;
            r.topic = rd_kafka_topic_name(m->rkt);
            r.partition = m->partition;
            r.offset = m->offset;
            r.has_key = m->key != nullptr;
            if (m->key != nullptr)
                r.key.assign(static_cast<const char *>(m->key), m->key_len);
            r.value.assign(static_cast<const char *>(m->payload), m->len);
            rd_kafka_timestamp_type_t tstype;
            r.ts = rd_kafka_message_timestamp(m, &tstype);
            rd_kafka_headers_t *h = nullptr;
            if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                const char *name;
                const void *val;
                size_t size;
                for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
                     i++)
                    r.headers.emplace_back(name, std::string(static_cast<const char *>(val), size));
            }
            recs.push_back(std::move(r));
            // A partition that gets a record after its EOF is not at its end.
            at_eof.erase({rd_kafka_topic_name(m->rkt), m->partition});
        } else {
            std::printf("# consumer: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return recs;
}

// Kafka's murmur2 (the Java client's Utils.murmur2), and the partition Java
// producers pick for a key: toPositive(murmur2(key)) % partitions.
int
java_partition(const std::string &key, int partitions)
{
    const uint32_t seed = 0x9747b28c, m = 0x5bd1e995;
    const int r = 24;
    std::size_t len = key.size();
    uint32_t h = seed ^ static_cast<uint32_t>(len);
    const unsigned char *data = reinterpret_cast<const unsigned char *>(key.data());
    std::size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (static_cast<uint32_t>(data[i + 3]) << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3:
        h ^= static_cast<uint32_t>(data[i + 2]) << 16;
        // fall through
    case 2:
        h ^= static_cast<uint32_t>(data[i + 1]) << 8;
        // fall through
    case 1:
        h ^= data[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<int>((h & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

std::string
uuid_of(int n)
{
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
    return buf;
}

struct Msg {
    std::uint64_t tag;
    std::string id, type, key, body;
    std::vector<std::string> headers;  // pairs
    std::vector<const char *> header_ptrs;
    long long ts;
    bool keyed = true;

    SinkMessage view()
    {
        header_ptrs.clear();
        for (const std::string &h : headers)
            header_ptrs.push_back(h.c_str());
        SinkMessage m{};
        m.tag = tag;
        m.event_id = id.c_str();
        m.body = body.c_str();
        m.body_len = body.size();
        m.event_type = type.c_str();
        m.key = keyed ? key.c_str() : nullptr;
        m.key_len = key.size();
        m.event_headers = header_ptrs.data();
        m.nevent_headers = static_cast<int>(headers.size() / 2);
        m.timestamp_ms = ts;
        return m;
    }
};

SinkTarget
target(const char *name, const char *topic, int timeout_ms, const char *const *props = nullptr, int nprops = 0,
       const char *bootstraps = nullptr, const char *credentials = nullptr)
{
    SinkTarget t{};
    t.name = name;
    t.timeout_ms = timeout_ms;
    t.bootstrap_servers = bootstraps != nullptr ? bootstraps : cluster.bootstraps.c_str();
    t.topic = topic;
    t.properties = props;
    t.nproperties = nprops;
    t.credentials_file = credentials;
    return t;
}

int
count_outcome(const std::vector<SinkResult> &rs, SinkOutcome o)
{
    return static_cast<int>(std::count_if(rs.begin(), rs.end(), [o](const SinkResult &r) { return r.outcome == o; }));
}

std::string
first_error(const std::vector<SinkResult> &rs)
{
    for (const SinkResult &r : rs)
        if (r.outcome != SinkOutcome::Delivered)
            return r.error;
    return "";
}

// Send msgs (as the worker would: only while has_room()), collect results
// until each has one.
bool
send_all(Sink &s, const SinkTarget &t, std::vector<Msg> &msgs, Results &res, long max_ms)
{
    std::size_t next = 0, before = res.all.size();
    auto t0 = Clock::now();
    while (res.all.size() - before < msgs.size()) {
        if (ms_since(t0) > max_ms)
            return false;
        while (next < msgs.size() && s.has_room()) {
            SinkMessage m = msgs[next].view();
            if (!s.send(t, m))
                return false;
            next++;
            if (next % 500 == 0)
                break;  // a turn now and then, as the worker's claims are batches
        }
        loop_once(s, res, 50);
    }
    return true;
}

void
test_checks()
{
    std::string why, topic;
    check(kafka_topic_template_check(kKafkaDefaultTopic, why), "the default topic template is valid");
    check(kafka_topic_template_check("orders", why) && kafka_topic_template_check("x.${type}.y", why),
          "a fixed topic and ${type} are valid templates");
    check(!kafka_topic_template_check("outbox.${nope}", why) && why.find("${nope}") != std::string::npos,
          "an unknown placeholder is refused, named", why);
    check(!kafka_topic_template_check("a topic", why) && !kafka_topic_template_check("", why) &&
              !kafka_topic_template_check("..", why) && !kafka_topic_template_check("$type", why) &&
              !kafka_topic_template_check(std::string(250, 'a').c_str(), why),
          "spaces, empty, \"..\", a bare $, 250 characters: refused");
    check(kafka_topic_for(kKafkaDefaultTopic, "order.created", topic, why) && topic == "outbox.event.order",
          "${aggregate} is the type's first segment", topic);
    check(kafka_topic_for("e.${type}", "order.created", topic, why) && topic == "e.order.created" &&
              !kafka_topic_for("e.${type}", "order/created", topic, why),
          "${type} is the whole type; a type a topic cannot hold is refused");
    check(kafka_bootstrap_check("127.0.0.1:9092,kafka-1.example:9093", why) && !kafka_bootstrap_check("", why) &&
              !kafka_bootstrap_check(nullptr, why) && !kafka_bootstrap_check("host", why) &&
              !kafka_bootstrap_check("host:0", why) && !kafka_bootstrap_check("a:1,,b:2", why),
          "bootstrap servers are host:port lists");
    const char *good[] = {"linger.ms", "20", "compression.type", "lz4", "client.id", "x"};
    check(kafka_properties_check(good, 3, why), "allowed properties with valid values pass", why);
    const char *badval[] = {"linger.ms", "soon"};
    check(!kafka_properties_check(badval, 1, why) && why.find("linger.ms") != std::string::npos,
          "a value librdkafka refuses is refused", why);
    const char *forbidden[] = {"acks", "1"};
    check(!kafka_properties_check(forbidden, 1, why) && why.find("set by the sink") != std::string::npos,
          "acks cannot be changed", why);
    const char *cred[] = {"sasl.password", "hunter2"};
    check(!kafka_properties_check(cred, 1, why) && why.find("credential") != std::string::npos &&
              why.find("hunter2") == std::string::npos,
          "credentials are refused in properties (and not echoed)", why);
    const char *unknown[] = {"plugin.library.paths", "/tmp/x.so", "no.such.thing", "1"};
    check(!kafka_properties_check(unknown, 1, why) && !kafka_properties_check(unknown + 2, 1, why),
          "plugin.library.paths and unknown names are refused", why);
}

void
test_bulk(Sink &s)
{
    // 10,000 messages over 50 keys, two topics (by aggregate).
    cluster.cmd("topic outbox.event.order 3");
    cluster.cmd("topic outbox.event.invoice 3");
    const int n = 10000, keys = 50;
    std::vector<Msg> msgs(n);
    for (int i = 0; i < n; i++) {
        Msg &m = msgs[i];
        m.tag = static_cast<std::uint64_t>(i);
        m.id = uuid_of(i);
        int k = i % keys;
        m.type = k % 2 == 0 ? "order.created" : "invoice.paid";
        m.key = "key-" + std::to_string(k);
        m.body = "{\"n\": " + std::to_string(i) + ", \"key\": \"" + m.key + "\"}";
        m.headers = {"tenant", "t" + std::to_string(k % 7), "trace", "tr-" + std::to_string(i), "id", "not-the-id"};
        m.ts = 1700000000000LL + i;
    }
    SinkTarget t = target("bulk", nullptr, 30000);
    Results res;
    auto t0 = Clock::now();
    bool done = send_all(s, t, msgs, res, 60000);
    double ms = ms_since(t0);
    check(done && count_outcome(res.all, SinkOutcome::Delivered) == n,
          "10,000 messages over 50 keys: every delivery report says delivered (" + std::to_string((long) ms) + " ms)",
          "results " + std::to_string(res.all.size()) + ", first error: " + first_error(res.all));
    std::set<std::uint64_t> tags;
    for (const SinkResult &r : res.all)
        tags.insert(r.tag);
    check(tags.size() == static_cast<std::size_t>(n) && *tags.rbegin() == static_cast<std::uint64_t>(n - 1),
          "one result per message, by tag");
    check(s.in_flight() == 0 && s.results_waiting() == 0, "nothing left in flight");

    std::vector<Record> recs = read_topics({"outbox.event.order", "outbox.event.invoice"}, 3);
    check(recs.size() == static_cast<std::size_t>(n), "read back: 10,000 records",
          "read " + std::to_string(recs.size()));
    std::map<std::string, const Record *> by_id;
    bool fields_ok = true, headers_ok = true;
    std::string diag;
    for (const Record &r : recs) {
        std::string id;
        for (auto &h : r.headers)
            if (h.first == "id")
                id = h.second;
        by_id[id] = &r;
    }
    check(by_id.size() == static_cast<std::size_t>(n), "the ids read back are the ids sent (no duplicates)",
          std::to_string(by_id.size()) + " distinct ids");
    std::map<std::string, int> key_partition;
    bool partition_ok = true, murmur_ok = true;
    for (int i = 0; i < n && fields_ok; i++) {
        auto it = by_id.find(msgs[i].id);
        if (it == by_id.end()) {
            fields_ok = false;
            diag = "missing " + msgs[i].id;
            break;
        }
        const Record &r = *it->second;
        const Msg &m = msgs[i];
        std::string want_topic = m.type == "order.created" ? "outbox.event.order" : "outbox.event.invoice";
        if (r.topic != want_topic || !r.has_key || r.key != m.key || r.value != m.body || r.ts != m.ts) {
            fields_ok = false;
            diag = "record of " + m.id + ": topic " + r.topic + " key " + r.key + " value " + r.value + " ts " +
                   std::to_string(r.ts);
        }
        std::vector<std::pair<std::string, std::string>> want = {
            {"id", m.id}, {"type", m.type}, {"tenant", m.headers[1]}, {"trace", m.headers[3]}};
        if (r.headers != want) {
            headers_ok = false;
            diag = "headers of " + m.id;
        }
        auto kp = key_partition.emplace(m.key, r.partition);
        if (kp.first->second != r.partition)
            partition_ok = false;
        if (r.partition != java_partition(m.key, 3))
            murmur_ok = false;
    }
    check(fields_ok, "every record: topic by aggregate, key = ordering key, value = payload, timestamp = occurred_at",
          diag);
    check(headers_ok, "headers: id (the event's, not the event header \"id\"), type, then the event's headers", diag);
    check(partition_ok, "each key on one partition");
    check(murmur_ok, "each key on the partition a Java producer picks (murmur2)");
    // Per-key order: within a partition, a key's records in publish order.
    std::map<std::string, std::vector<std::pair<long long, int>>> per_key;
    for (const Record &r : recs) {
        int num = std::atoi(r.value.c_str() + std::strlen("{\"n\": "));
        per_key[r.key].push_back({r.offset, num});
    }
    bool order_ok = per_key.size() == static_cast<std::size_t>(keys);
    for (auto &kv : per_key) {
        std::sort(kv.second.begin(), kv.second.end());
        for (std::size_t j = 1; j < kv.second.size(); j++)
            if (kv.second[j].second <= kv.second[j - 1].second)
                order_ok = false;
    }
    check(order_ok, "per key: offsets follow the publish order (50 keys)");
}

void
test_produce_errors(Sink &s)
{
    cluster.cmd("topic errs 3");
    // Retriable errors on the next Produce requests: the idempotent producer
    // retries them itself; each message once, in order.
    check(cluster.cmd("err produce 6 7 19 6 7"), "inject 5 Produce errors (NOT_LEADER, TIMED_OUT, NOT_ENOUGH_REPLICAS)");
    std::vector<Msg> msgs(30);
    for (int i = 0; i < 30; i++) {
        msgs[i].tag = 100000 + i;
        msgs[i].id = uuid_of(100000 + i);
        msgs[i].type = "e";
        msgs[i].key = "k" + std::to_string(i % 2);
        msgs[i].body = std::to_string(i);
        msgs[i].ts = 1700000000000LL;
    }
    SinkTarget t = target("errs", "errs", 20000);
    Results res;
    bool done = send_all(s, t, msgs, res, 30000);
    check(done && count_outcome(res.all, SinkOutcome::Delivered) == 30,
          "after injected Produce errors every message is delivered", first_error(res.all));
    std::vector<Record> recs = read_topics({"errs"}, 3);
    std::map<std::string, std::vector<int>> seq;
    for (const Record &r : recs)
        seq[r.key].push_back(std::atoi(r.value.c_str()));
    bool ok = recs.size() == 30;
    for (auto &kv : seq)
        for (std::size_t j = 1; j < kv.second.size(); j++)
            ok = ok && kv.second[j] > kv.second[j - 1];
    check(ok, "read back: 30 records, no duplicate, per-key order kept through the retries",
          std::to_string(recs.size()) + " records");

    // A non-retriable error: the delivery report says so (a failed attempt).
    check(cluster.cmd("err produce 10 10 10 10 10 10 10 10 10 10"), "inject MSG_SIZE_TOO_LARGE errors");
    std::vector<Msg> one(1);
    one[0].tag = 200000;
    one[0].id = uuid_of(200000);
    one[0].type = "e";
    one[0].key = "k";
    one[0].body = "x";
    Results r2;
    done = send_all(s, t, one, r2, 30000);
    check(done && r2.all.size() == 1 && r2.all[0].outcome != SinkOutcome::Delivered &&
              std::string(r2.all[0].error).find("MSG_SIZE_TOO_LARGE") != std::string::npos,
          "a permanent Produce error comes back as a failed attempt, named", done ? r2.all[0].error : "no result");
    cluster.cmd("clear produce");
}

void
test_brokers_down(Sink &s)
{
    cluster.cmd("topic down 3");
    std::vector<Msg> msgs(40);
    for (int i = 0; i < 40; i++) {
        msgs[i].tag = 300000 + i;
        msgs[i].id = uuid_of(300000 + i);
        msgs[i].type = "e";
        msgs[i].key = "k" + std::to_string(i % 4);
        msgs[i].body = std::to_string(i);
    }
    // A short outage inside the timeout: nothing lost, nothing fails.
    SinkTarget t = target("down", "down", 20000);
    Results warm;
    std::vector<Msg> first(msgs.begin(), msgs.begin() + 1);
    send_all(s, t, first, warm, 20000);  // connected and metadata known
    check(cluster.cmd("down all"), "all brokers down");
    std::vector<Msg> batch1(msgs.begin() + 1, msgs.begin() + 20);
    Results res;
    for (Msg &m : batch1) {
        SinkMessage v = m.view();
        s.send(t, v);
    }
    auto t0 = Clock::now();
    drive(s, res, 1500, [] { return false; });
    check(res.all.empty() && s.in_flight() == batch1.size(), "while they are down, nothing is reported",
          std::to_string(res.all.size()) + " results");
    check(cluster.cmd("up all"), "brokers up again after " + std::to_string((long) ms_since(t0)) + " ms");
    bool done = drive(s, res, 20000, [&] { return res.all.size() == batch1.size(); });
    check(done && count_outcome(res.all, SinkOutcome::Delivered) == static_cast<int>(batch1.size()),
          "a short outage: every message delivered once the brokers are back", first_error(res.all));
    check(res.logs > 0, "librdkafka's log reached us through pop_log (" + std::to_string(res.logs) + " lines)",
          res.log_lines.empty() ? "" : res.log_lines[0]);

    // A long outage: the delivery reports fail (after the target's timeout),
    // the worker sends them again, they arrive.
    SinkTarget quick = target("down-quick", "down", 2000);
    Results w2;
    send_all(s, quick, first, w2, 20000);
    check(cluster.cmd("down all"), "all brokers down again");
    std::vector<Msg> batch2(msgs.begin() + 20, msgs.end());
    Results r2;
    t0 = Clock::now();
    done = send_all(s, quick, batch2, r2, 15000);
    bool all_timed_out = done && count_outcome(r2.all, SinkOutcome::Retry) == static_cast<int>(batch2.size());
    check(all_timed_out && std::string(r2.all[0].error).find("_MSG_TIMED_OUT") != std::string::npos,
          "a long outage: each message fails with _MSG_TIMED_OUT after the timeout (" +
              std::to_string((long) ms_since(t0)) + " ms)",
          first_error(r2.all));
    check(cluster.cmd("up all"), "brokers up");
    Results r3;
    done = send_all(s, quick, batch2, r3, 20000);
    check(done && count_outcome(r3.all, SinkOutcome::Delivered) == static_cast<int>(batch2.size()),
          "sent again, every one is delivered", first_error(r3.all));
    std::vector<Record> recs = read_topics({"down"}, 3);
    std::set<std::string> ids;
    for (const Record &r : recs)
        for (auto &h : r.headers)
            if (h.first == "id")
                ids.insert(h.second);
    bool all = true;
    for (const Msg &m : msgs)
        all = all && ids.count(m.id) == 1;
    check(all, "read back: every message of both outages is on the topic (" + std::to_string(recs.size()) +
                   " records, " + std::to_string(ids.size()) + " ids)");
}

void
test_backpressure(Sink &s)
{
    cluster.cmd("topic slow 3");
    const char *props[] = {"queue.buffering.max.messages", "20"};
    SinkTarget t = target("slow", "slow", 20000, props, 1);
    Results warm;
    std::vector<Msg> one(1);
    one[0].tag = 400000;
    one[0].id = uuid_of(400000);
    one[0].type = "e";
    one[0].body = "w";
    one[0].keyed = false;
    send_all(s, t, one, warm, 20000);
    cluster.cmd("rtt all 300");
    std::vector<Msg> msgs(60);
    Results res;
    int busy_at = -1;
    for (int i = 0; i < 60; i++) {
        msgs[i].tag = 400001 + i;
        msgs[i].id = uuid_of(400001 + i);
        msgs[i].type = "e";
        msgs[i].body = std::to_string(i);
        msgs[i].keyed = false;
        SinkMessage v = msgs[i].view();
        s.send(t, v);
        if (!s.has_room() && busy_at < 0)
            busy_at = i;
    }
    SinkResult r;
    int busy = 0;
    s.turn();
    while (s.pop_result(r))
        busy += r.outcome == SinkOutcome::Busy;
    check(busy_at >= 0 && busy > 0 && busy_at <= 20,
          "a full producer queue: Busy results and has_room() false (after " + std::to_string(busy_at) + " messages, " +
              std::to_string(busy) + " Busy)");
    cluster.cmd("rtt all 0");
    drive(s, res, 20000, [&] { return s.in_flight() == 0; });
    check(s.has_room() && count_outcome(res.all, SinkOutcome::Delivered) == 60 - busy,
          "the queue drains: has_room() again, the queued ones delivered",
          std::to_string(count_outcome(res.all, SinkOutcome::Delivered)) + " delivered");
}

void
test_bad_targets(Sink &s, const char *dir)
{
    Results res;
    Msg m;
    m.tag = 500000;
    m.id = uuid_of(500000);
    m.type = "a b";
    m.body = "{}";
    SinkMessage v = m.view();
    SinkTarget bad_topic = target("bad-topic", "t.${type}", 5000);
    s.send(bad_topic, v);
    SinkTarget no_brokers = target("no-brokers", "t", 5000, nullptr, 0, "");
    s.send(no_brokers, v);
    const char *forbidden[] = {"enable.idempotence", "false"};
    SinkTarget bad_prop = target("bad-prop", "t", 5000, forbidden, 1);
    s.send(bad_prop, v);

    std::string creds = std::string(dir) + "/credentials";
    FILE *f = std::fopen(creds.c_str(), "w");
    std::fprintf(f, "# test\nsasl.password=SECRETVALUE\nlinger.ms=5\n");
    std::fclose(f);
    SinkTarget bad_creds = target("bad-creds", "t", 5000, nullptr, 0, nullptr, creds.c_str());
    s.send(bad_creds, v);
    std::string creds2 = std::string(dir) + "/credentials2";
    f = std::fopen(creds2.c_str(), "w");
    std::fprintf(f, "security.protocol=SECRETPROTO\n");
    std::fclose(f);
    SinkTarget bad_creds2 = target("bad-creds2", "t", 5000, nullptr, 0, nullptr, creds2.c_str());
    s.send(bad_creds2, v);
    SinkTarget missing = target("missing-creds", "t", 5000, nullptr, 0, nullptr, "/nonexistent/creds");
    s.send(missing, v);
    drive(s, res, 2000, [&] { return res.all.size() == 6; });
    bool ok = res.all.size() == 6;
    std::string diag;
    for (const SinkResult &r : res.all) {
        diag += std::string("[") + r.error + "] ";
        ok = ok && r.outcome == SinkOutcome::Refused && r.error[0] != '\0' &&
             std::strstr(r.error, "SECRET") == nullptr;
    }
    check(ok, "bad topic, no brokers, a forbidden property, bad credential files: Refused at once, the reason given",
          diag);
    check(res.all.size() == 6 && std::strstr(res.all[3].error, "line 3") != nullptr &&
              std::strstr(res.all[3].error, "linger.ms") != nullptr,
          "a credentials file with another property: the line named, no value shown", diag);

    // A valid credentials file is taken (PLAINTEXT: the mock has no TLS).
    f = std::fopen(creds.c_str(), "w");
    std::fprintf(f, "security.protocol=plaintext\nsasl.mechanisms=PLAIN\n");
    std::fclose(f);
    cluster.cmd("topic creds 1");
    SinkTarget good = target("good-creds", "creds", 10000, nullptr, 0, nullptr, creds.c_str());
    std::vector<Msg> one(1);
    one[0] = m;
    one[0].type = "e";
    Results r2;
    bool done = send_all(s, good, one, r2, 15000);
    check(done && count_outcome(r2.all, SinkOutcome::Delivered) == 1, "a valid credentials file: delivered",
          first_error(r2.all));
}

void
test_abandon(Sink &s)
{
    cluster.cmd("topic gone 1");
    SinkTarget t = target("abandon", "gone", 20000);
    check(cluster.cmd("down all"), "brokers down");
    std::vector<Msg> msgs(10);
    for (int i = 0; i < 10; i++) {
        msgs[i].tag = 600000 + i;
        msgs[i].id = uuid_of(600000 + i);
        msgs[i].type = "e";
        msgs[i].body = "x";
        SinkMessage v = msgs[i].view();
        s.send(t, v);
    }
    Results res;
    drive(s, res, 300, [] { return false; });
    auto t0 = Clock::now();
    s.abandon_all();
    double ms = ms_since(t0);
    drive(s, res, 300, [] { return false; });
    check(s.in_flight() == 0 && res.all.empty() && ms < 500,
          "abandon_all: nothing in flight, no results, without blocking (" + std::to_string((long) ms) + " ms)");
    cluster.cmd("up all");
}

} // namespace

int
main()
{
    const char *mock = std::getenv("MOCKCLUSTER");
    const char *dir = std::getenv("KAFKA_TEST_DIR");
    if (mock == nullptr || dir == nullptr) {
        std::printf("not ok 1 - MOCKCLUSTER and KAFKA_TEST_DIR must be set (test/kafka/run.sh)\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    test_checks();
    bool started = cluster.start(mock);
    if (!check(started, "the mock cluster starts (3 brokers): " + cluster.bootstraps))
        return 1;
    char why[256] = "";
    Sink *s = make_sink("kafka", 1000, why, sizeof why);
    if (!check(s != nullptr && s->fd() >= 0 && s->next_timeout_ms() == -1 && s->has_room(),
               "make_sink(\"kafka\"): a sink with an fd, idle", why))
        return 1;
    test_bulk(*s);
    test_produce_errors(*s);
    test_brokers_down(*s);
    test_backpressure(*s);
    test_bad_targets(*s, dir);
    test_abandon(*s);
    auto t0 = Clock::now();
    delete s;
    check(ms_since(t0) < 3000, "the sink is destroyed quickly (" + std::to_string((long) ms_since(t0)) + " ms)");
    cluster.stop();
    std::printf("# %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
