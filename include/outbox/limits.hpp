// Limits of the SQL API (and of the relay, which uses it).
#pragma once

namespace outbox {

constexpr int kMaxNameBytes = 255;      // event type, ordering key, type pattern, consumer
constexpr int kMaxBatch = 10000;        // events one claim (or one relay batch) takes
constexpr int kMaxPublishBatch = 100000; // events of outbox_publish_batch, ids of one call
constexpr int kMinLeaseSeconds = 1;
constexpr int kMaxLeaseSeconds = 86400;
constexpr int kMaxErrorBytes = 8192;    // last_error is truncated beyond this

} // namespace outbox
