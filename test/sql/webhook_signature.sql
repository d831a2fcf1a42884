-- outbox_webhook_signature(): the Standard Webhooks signature the HTTP sink
-- sends, for a whsec_ secret (or several, space-separated, while a secret is
-- rotated). Errors name the bad argument and never repeat a secret.
\set SHOW_CONTEXT never

-- The spec's test vector (libraries/python/tests/test_webhooks.py).
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                                1614265330, '{"test": 2432232314}') AS signature;
-- Another body, id or timestamp signs differently.
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                                1614265331, '{"test": 2432232314}') AS other_timestamp;

-- Rotation: one signature per secret, in order, separated by a space.
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
                                'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}') AS rotation;
SELECT split_part(outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
                                           'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'), ' ', 2)
     = outbox_webhook_signature('whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
                                'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}') AS second_is_new_secret;

-- An empty body is a body.
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 0, '') AS empty_body;

-- NULL arguments: 22004, naming the argument.
\set VERBOSITY sqlstate
SELECT outbox_webhook_signature(NULL, 'msg_1', 1, '{}');
\set VERBOSITY default
SELECT outbox_webhook_signature(NULL, 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', NULL, 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', NULL, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1, NULL);

-- Malformed secrets: 22023; the message says what is wrong and does not
-- repeat the secret.
\set VERBOSITY sqlstate
SELECT outbox_webhook_signature('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1, '{}');
\set VERBOSITY default
SELECT outbox_webhook_signature('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_SecretSecret*SecretSecretSecret', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_SecretSecretSecretSecretSecretSec', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAx=', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_U2VjcmV0', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('whsec_', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('', 'msg_1', 1, '{}');
SELECT outbox_webhook_signature('   ', 'msg_1', 1, '{}');
-- In a rotation, which secret is bad.
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_SecretSecret', 'msg_1', 1, '{}');
-- At most 8 secrets.
SELECT outbox_webhook_signature(repeat('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ', 9), 'msg_1', 1, '{}');
SELECT length(outbox_webhook_signature(repeat('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ', 8), 'msg_1', 1, '{}')) AS eight_signatures;

-- The id and timestamp must keep "id.timestamp.body" unambiguous.
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg.1', 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '', 1, '{}');
SELECT outbox_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', -1, '{}');

-- Declared IMMUTABLE PARALLEL SAFE, not STRICT; only outbox_admin may call it.
SELECT provolatile, proparallel, proisstrict FROM pg_proc WHERE proname = 'outbox_webhook_signature';
SELECT has_function_privilege('public', 'outbox_webhook_signature(text, text, bigint, text)', 'EXECUTE') AS public,
       has_function_privilege('outbox_admin', 'outbox_webhook_signature(text, text, bigint, text)', 'EXECUTE') AS admin;
