-- The whole life of an event in one session: publish, claim, complete.
SET outbox.require_transaction = off;
CREATE TABLE orders (id int PRIMARY KEY);

BEGIN;
INSERT INTO orders VALUES (1);
SELECT outbox_publish('order.created', '{"id": 1}') IS NOT NULL AS published;
COMMIT;

SELECT type, payload, status, retry_count FROM outbox_events;
CREATE TEMP TABLE claimed AS SELECT * FROM outbox_claim(10, '30 seconds', 'basics');
SELECT type, payload, attempt, lease_expires_at > now() AS leased FROM claimed;
SELECT outbox_complete(array_agg(id), min(lease_token)) FROM claimed;
SELECT count(*) AS left_in_outbox FROM outbox_events;
SELECT type, payload, status FROM outbox_events_archive;
