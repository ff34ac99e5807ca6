-- Every message row is updated twice: the claim (attempts and lease, columns outside every index)
-- and the settle. The claim is meant to be a HOT update: the new row version stays on its page and
-- no index gets a new entry. That needs room on the page, and rows are inserted together and
-- claimed together, so a page needs room for a second version of every row on it, 8 bytes longer
-- than the first (the lease). At fillfactor 80 about one claim in four found that room in a
-- bulk-inserted backlog, and the rest added an entry to every index; at 45 nearly all do, and
-- draining a backlog writes about a third less WAL. The price is space: consumed rows kept for the
-- deduplication window stay at this density. The setting applies to pages filled from now on;
-- existing pages are not rewritten. See docs/operations.md#page-space.
ALTER TABLE {{schema}}.messages SET (fillfactor = 45);
