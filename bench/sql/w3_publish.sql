-- W3 publisher: one business row and one event per transaction. The event's
-- n is the order's id, so the latency is measured from the commit time of
-- the order row (track_commit_timestamp) to the handler's clock.
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (1, 13.70, 'new') RETURNING id AS order_id \gset
SELECT outbox_publish('order.created', bench_payload(:order_id));
COMMIT;
