-- Whether a feed's domain indicators cover their sub-domains when the feed
-- does not say (issue 22): on by default, as for every other source.
ALTER TABLE intel_feeds ADD COLUMN subdomains BIGINT NOT NULL DEFAULT 1;
