// Kafka targets: the checks the SQL functions and the kafka sink kind share
// (pure C++, sink_kafka.cpp), so that what SQL accepts is what the producer
// takes.
#pragma once
#include <string>

namespace outbox {

// The topic template when a target names none: Debezium's outbox router
// routes by aggregate type to outbox.event.<aggregate>.
constexpr const char *kKafkaDefaultTopic = "outbox.event.${aggregate}";

// A topic template is a topic name (letters, digits, '.', '_', '-'; at most
// 249 bytes) in which ${type} stands for the event's type and ${aggregate} for
// its first segment (up to the first '.'). False (why) if it is not one.
bool kafka_topic_template_check(const char *tmpl, std::string &why);

// The topic of an event of type `type`; false (why) if the result is not a
// legal topic name (a type with characters a topic cannot have, say).
bool kafka_topic_for(const char *tmpl, const char *type, std::string &topic, std::string &why);

// "host:port[,host:port...]"; false (why) otherwise.
bool kafka_bootstrap_check(const char *servers, std::string &why);

// Whether a producer property may be set per target. Refused: the ones the
// sink sets itself (enable.idempotence, acks, partitioner, log.queue,
// message.timeout.ms (the target's timeout), bootstrap.servers, ...), the
// credentials (security.protocol, sasl.*, ssl.*: only from the credentials
// file), and every property not on the allow-list.
bool kafka_property_allowed(const char *name, std::string &why);

// Properties as name/value pairs (pairs[2i], pairs[2i+1]): each allowed, and a
// value librdkafka accepts for it. False (why: the name, never the value).
bool kafka_properties_check(const char *const *pairs, int n, std::string &why);

// Whether a name may be set from the credentials file: security.protocol,
// sasl.* and ssl.* (the file holds lines "name=value"; '#' starts a comment).
bool kafka_credential_property(const char *name);

} // namespace outbox
