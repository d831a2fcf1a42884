\set n random(1, 1000000000)
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (:n % 1000, (:n % 997) * 1.37, 'new');
COMMIT;
