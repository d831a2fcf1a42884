-- W6 consumer: claim a batch of 100 with a lease (outbox_claim), then
-- complete it (outbox_complete): two transactions, as a lease consumer does.
-- All rows of one claim carry the same lease token.
SELECT array_agg(id) AS ids, min(lease_token) AS token FROM outbox_claim(100, NULL, 'w6') \gset
SELECT outbox_complete(:ids, :token);
