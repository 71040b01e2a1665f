-- The jobs table is a queue: rows are inserted, updated twice and left finished, in bursts. PostgreSQL's
-- default autovacuum waits for 20% of a table to change before vacuuming and 10% before analyzing,
-- which on a table that grew from a few rows to thousands leaves the planner without statistics (every
-- claim then reads the whole table) and index entries of dead row versions piling up. Vacuum and analyze
-- it after 1% of its rows (and at least 200) changed.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 200
);
