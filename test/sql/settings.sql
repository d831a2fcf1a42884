-- Settings that can be wrong are refused with the reason, and the value in
-- effect stays.

-- The first retry's backoff ceiling may not be above the largest one.
SET outbox.base_backoff = '20min';
SET outbox.max_backoff = '500ms';
SHOW outbox.base_backoff;
SHOW outbox.max_backoff;
-- In the order that keeps them in step, both move; equal is fine.
BEGIN;
SET LOCAL outbox.max_backoff = '30min';
SET LOCAL outbox.base_backoff = '20min';
SHOW outbox.base_backoff;
SET LOCAL outbox.base_backoff = '30min';
SHOW outbox.base_backoff;
ROLLBACK;
SHOW outbox.base_backoff;
SHOW outbox.max_backoff;

-- outbox.role must be able to name a role (whether it exists, the launcher
-- finds out). Checked when written, although only a reload applies it.
ALTER SYSTEM SET outbox.role = 'public';
ALTER SYSTEM SET outbox.role = 'current_user';
ALTER SYSTEM SET outbox.role = 'a_name_of_sixty_four_bytes_is_one_byte_longer_than_a_role_may_be';
ALTER SYSTEM SET outbox.databases = 'a,,b';

-- The relay's batch size is its own, set for the server (a reload applies it).
SET outbox.relay_batch_size = 10;
SHOW outbox.relay_batch_size;
SET outbox.batch_size = 10;
SHOW outbox.batch_size;
RESET outbox.batch_size;
