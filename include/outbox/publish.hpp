// Publishing one event: shared by outbox_publish, outbox_publish_batch and the relay.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// The arguments of one event; NULL pointers are absent values.
struct PublishArgs {
    text *type;
    Jsonb *payload;
    text *ordering_key;
    Jsonb *headers;
    bool has_deliver_at;
    TimestampTz deliver_at;
    Interval *delay;
    pg_uuid_t *id;
};

// Raise a clear ERROR for bad arguments; changes nothing.
void validate_publish(const PublishArgs &a);

// Insert one validated event (between spi_begin and spi_end); writes its id.
void publish_one(const PublishArgs &a, pg_uuid_t *id_out);

} // namespace outbox
