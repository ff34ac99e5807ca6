-- Every message row is inserted, claimed, settled and later deleted by retention, and a settled
-- row's entry leaves the pending index only when vacuum runs. PostgreSQL's defaults wait until
-- 20% of a table has changed; on a table of a million messages that is 200,000 settled rows
-- whose index entries a claim starting from the oldest pending row walks through. Vacuum and
-- analyze the messages table after 1% and 2% of it changed instead. The settings are ordinary
-- storage parameters: change them with ALTER TABLE ... SET (...) if your operations need others.
ALTER TABLE {{schema}}.messages SET (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_insert_scale_factor = 0.01,
  autovacuum_analyze_scale_factor = 0.02
);
