import { describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestDatabase } from '../helpers/database.js';

describe('test database', () => {
  it('creates an isolated database on a real PostgreSQL', async () => {
    const db = await createTestDatabase();
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query('select current_database() as name');
    await client.end();
    await db.drop();
    expect(rows[0].name).toBe(db.name);
  });
});
