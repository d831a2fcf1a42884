\set n random(1, 1000000000)
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (:n % 1000, (:n % 997) * 1.37, 'new');
INSERT INTO raw_events (id, type, payload) VALUES (gen_random_uuid(), 'order.created', bench_payload(:n));
COMMIT;
