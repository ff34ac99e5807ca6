-- A consume batch sends its settle and its COMMIT in one round trip, so a batch that must not
-- commit has to fail inside PostgreSQL, before the COMMIT runs. That is the case when another
-- consumer settled one of its messages first, which happens only after this consumer's lease
-- ran out: whoever commits first wins, and the other rolls back its batch with every write its
-- handlers made, so that each message is consumed once. The settle statement passes how many
-- messages it was given and how many rows it settled; a difference raises.
CREATE FUNCTION {{schema}}.check_settled(expected integer, settled integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
BEGIN
  IF settled <> expected THEN
    RAISE EXCEPTION 'another consumer settled % of the % messages of this batch first (its lease ran out); rolling back so that each message is consumed once',
      expected - settled, expected
      USING HINT = 'Raise leaseMs above the longest time a batch of handlers can take.';
  END IF;
  RETURN settled;
END
$$;
