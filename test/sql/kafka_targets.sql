-- Kafka targets and subscriptions: create, subscribe, and bad input refused
-- with a clear SQLSTATE and nothing changed. (Delivery itself is tested by
-- test/kafka and TAP.)
SET outbox.require_transaction = off;
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- A target with the defaults: topic outbox.event.${aggregate}, no properties,
-- a 30 s timeout, 1000 in flight.
SELECT outbox_create_kafka_target('kafka', '127.0.0.1:9092,127.0.0.1:9093');
SELECT outbox_create_kafka_target('kafka-typed', 'kafka-1.internal:9092', 'events.${type}',
                                  '{"linger.ms": "20", "compression.type": "lz4", "client.id": "db1"}',
                                  '10 seconds', 50);
SELECT outbox_create_kafka_target('kafka-fixed', 'k:9092', 'orders');
SELECT name, kind, url, bootstrap_servers, topic, properties, timeout_ms, max_in_flight, state
  FROM outbox_endpoints ORDER BY name;
-- No signing secret: it is not a webhook.
SELECT count(*) AS secrets FROM outbox_endpoint_secrets;

-- Subscribe.
SELECT outbox_subscribe_kafka('orders_to_kafka', 'order.*', 'kafka');
SELECT outbox_subscribe_kafka('all_to_kafka', '*', 'kafka-typed');
SELECT name, event_type, handler, sink, endpoint, paused FROM outbox_subscriptions ORDER BY name;

-- Bad input: each refused with its SQLSTATE; nothing is created.
SELECT try($$SELECT outbox_create_kafka_target(NULL, 'k:9092')$$);
SELECT try($$SELECT outbox_create_kafka_target('', 'k:9092')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', NULL)$$);
SELECT try($$SELECT outbox_create_kafka_target('x', '')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:99999')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'a:1,,b:2')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', NULL)$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', '')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'outbox.${nope}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'a topic')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'x.$type')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', repeat('a', 250))$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', NULL)$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '[]')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"linger.ms": 5}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"linger.ms": "soon"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"no.such.property": "1"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"acks": "1"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"enable.idempotence": "false"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"partitioner": "random"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"debug": "all"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"plugin.library.paths": "/tmp/x"}')$$);
-- Credentials are refused, and their values never appear in the error.
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"sasl.password": "hunter2"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"security.protocol": "SASL_SSL"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{"ssl.key.password": "p"}')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{}', '1 hour')$$);
SELECT try($$SELECT outbox_create_kafka_target('x', 'k:9092', 'orders', '{}', NULL, 0)$$);
SELECT try($$SELECT outbox_create_kafka_target('kafka', 'k:9092')$$);
SELECT try($$SELECT outbox_create_endpoint('kafka', 'http://127.0.0.1:9/hook')$$);
SELECT count(*) AS endpoints FROM outbox_endpoints;

SELECT try($$SELECT outbox_subscribe_kafka(NULL, 'order.*', 'kafka')$$);
SELECT try($$SELECT outbox_subscribe_kafka('x', NULL, 'kafka')$$);
SELECT try($$SELECT outbox_subscribe_kafka('x', 'order.*', NULL)$$);
SELECT try($$SELECT outbox_subscribe_kafka('x', '', 'kafka')$$);
SELECT try($$SELECT outbox_subscribe_kafka('x', 'order.*', 'nope')$$);
SELECT try($$SELECT outbox_subscribe_kafka('orders_to_kafka', 'order.*', 'kafka')$$);
-- Kinds do not mix: webhooks go to HTTP endpoints, Kafka subscriptions to Kafka targets.
SELECT outbox_create_endpoint('hook', 'http://127.0.0.1:9/hook') LIKE 'whsec_%' AS created;
SELECT try($$SELECT outbox_subscribe_kafka('x', 'order.*', 'hook')$$);
SELECT try($$SELECT outbox_subscribe_webhook('x', 'order.*', 'kafka')$$);
SELECT try($$SELECT outbox_rotate_endpoint_secret('kafka')$$);
SELECT try($$SELECT outbox_alter_endpoint('kafka', url => 'http://127.0.0.1:9/x')$$);
-- outbox_alter_kafka_target: NULL keeps a value; properties are replaced as
-- a whole; the checks of outbox_create_kafka_target apply, and a refused
-- change changes nothing.
SELECT outbox_alter_kafka_target('kafka-typed', bootstrap_servers => 'kafka-2.internal:9092', max_in_flight => 80);
SELECT outbox_alter_kafka_target('kafka-typed', topic => 'events.${aggregate}', properties => '{"linger.ms": "50"}',
                                 timeout => '20 seconds');
SELECT name, bootstrap_servers, topic, properties, timeout_ms, max_in_flight FROM outbox_endpoints WHERE name = 'kafka-typed';
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', 'k')$$);
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', topic => 'a topic')$$);
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', properties => '{"acks": "1"}')$$);
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', properties => '{"sasl.password": "hunter2"}')$$);
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', properties => '[]')$$);
SELECT try($$SELECT outbox_alter_kafka_target('kafka-typed', max_in_flight => 0)$$);
SELECT try($$SELECT outbox_alter_kafka_target('hook', 'k:9092')$$);
SELECT try($$SELECT outbox_alter_kafka_target('nope', 'k:9092')$$);
SELECT try($$SELECT outbox_alter_kafka_target(NULL, 'k:9092')$$);
SELECT name, bootstrap_servers, topic, properties, timeout_ms, max_in_flight FROM outbox_endpoints WHERE name = 'kafka-typed';
-- outbox_endpoint_stats() shows the kind, and a Kafka target's brokers as its url.
SELECT endpoint, kind, url FROM outbox_endpoint_stats() ORDER BY endpoint;
-- The table itself refuses a row that mixes the kinds.
SELECT try($$UPDATE outbox_endpoints SET url = 'http://x/' WHERE name = 'kafka'$$);
SELECT try($$INSERT INTO outbox_subscriptions (name, event_type, owner, sink, endpoint)
             VALUES ('x', '*', current_user::regrole, 'kafka', NULL)$$);
SELECT count(*) AS subscriptions FROM outbox_subscriptions;

-- Pause, resume and drop work on Kafka targets as on endpoints.
SELECT outbox_pause_endpoint('kafka');
SELECT name, state FROM outbox_endpoints WHERE name = 'kafka';
SELECT outbox_resume_endpoint('kafka');
SELECT try($$SELECT outbox_drop_endpoint('kafka')$$);
SELECT outbox_unsubscribe('orders_to_kafka');
SELECT outbox_drop_endpoint('kafka');
SELECT endpoint, kind, url, state, breaker, pending FROM outbox_endpoint_stats() ORDER BY endpoint;

-- The credentials file is a setting only superusers see and set.
SELECT name, setting, context FROM pg_settings WHERE name = 'outbox.kafka_credentials_file';
CREATE ROLE kafka_nobody;
SET ROLE kafka_nobody;
SELECT try($$SELECT outbox_create_kafka_target('y', 'k:9092')$$);
SELECT try($$SELECT outbox_subscribe_kafka('y', '*', 'kafka-typed')$$);
-- (the message is PostgreSQL's, worded otherwise from 16 on: the SQLSTATE only)
SELECT left(try($$SHOW outbox.kafka_credentials_file$$), 5) AS sqlstate;
RESET ROLE;
DROP ROLE kafka_nobody;

SELECT outbox_unsubscribe('all_to_kafka');
SELECT outbox_drop_endpoint('kafka-typed');
SELECT outbox_drop_endpoint('kafka-fixed');
SELECT outbox_drop_endpoint('hook');
DROP FUNCTION try(text);
