-- The Authorization header a feed poll sends (a TAXII server's bearer token
-- or basic credentials, a MISP key), kept for the poller and never shown
-- back through the API. NULL: the feed is fetched without one.
ALTER TABLE intel_feeds ADD COLUMN auth_header TEXT;
