-- The console shows an alert's (or any target's) history from the audit
-- log; without this index that is a scan of the whole log. The overview
-- counts alerts per hour of first sighting.
CREATE INDEX audit_target ON audit_log (target_type, target_id, id);
CREATE INDEX alerts_first_seen ON alerts (first_seen);
