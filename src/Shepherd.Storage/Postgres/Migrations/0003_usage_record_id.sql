-- Records are deduplicated by record_id, the gateway's own id for each request, no longer by request_id: a request
-- id may come from the client (x-request-id) and repeat, and a second request with the same id must still count.
ALTER TABLE usage_records ADD COLUMN record_id text;
UPDATE usage_records SET record_id = request_id WHERE record_id IS NULL;
ALTER TABLE usage_records ALTER COLUMN record_id SET NOT NULL;
CREATE UNIQUE INDEX usage_records_record_id ON usage_records (record_id);
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_request_id_key;
