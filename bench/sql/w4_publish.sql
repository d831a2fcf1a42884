-- W4 publisher: one business row and one event per transaction; n numbers
-- the events 1..N so the consumers can check exactly-once delivery.
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (1, 13.70, 'new');
SELECT outbox_publish('order.created', bench_payload(nextval('bench_n')));
COMMIT;
