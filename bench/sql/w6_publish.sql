-- W6 publisher: W1's transaction (a business row and outbox_publish()) with
-- the event shaped as W6's fill shapes the backlog (bench/lib/growth.sh):
-- 4 types, an ordering key on half of the events (:keys keys, pgbench -D),
-- a traceparent header on a quarter. The claims on the empty outbox then
-- take events like those at the front of the full one.
\set n random(1, 1000000000)
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (:n % 1000, (:n % 997) * 1.37, 'new');
SELECT outbox_publish((ARRAY['order.created', 'order.paid', 'order.shipped', 'customer.updated'])[1 + :n % 4],
                      bench_payload(:n),
                      CASE WHEN :n % 2 = 0 THEN 'customer-' || (:n / 2 % :keys) END,
                      CASE WHEN :n % 4 = 1 THEN jsonb_build_object('traceparent', '00-' || md5(:n::text) || '-' || left(md5((:n + 1)::text), 16) || '-01') END);
COMMIT;
