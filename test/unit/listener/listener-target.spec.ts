import { describe, expect, it } from '@jest/globals';
import { describeTarget } from '../../../lib/listener/listener-target.js';

describe('describeTarget', () => {
  it('names user@host:port/database and never the password', () => {
    const target = describeTarget({ connectionString: 'postgres://app:s3cret@db:6543/orders' });
    expect(target).toBe('app@db:6543/orders');
  });

  it('gives a connection string and the equivalent config the same key', () => {
    expect(describeTarget({ connectionString: 'postgresql://app:a@db:5432/orders' })).toBe(
      describeTarget({
        connection: { user: 'app', password: 'b', host: 'db', port: 5432, database: 'orders' },
      }),
    );
  });

  it('decodes escaped parts and honours host/port query parameters', () => {
    expect(describeTarget({ connectionString: 'postgres://a%40b@x/my%20db' })).toBe(
      'a@b@x:5432/my db',
    );
    expect(
      describeTarget({ connectionString: 'postgres://app@/orders?host=/var/run/pg&port=5433' }),
    ).toBe('app@/var/run/pg:5433/orders');
  });

  it('names an unreadable connection string by number, stably, without showing it', () => {
    const secret = 'postgres://u:p@ss w0rd@[bad/db';
    const first = describeTarget({ connectionString: secret });
    expect(first).toMatch(/\(connection string #\d+\)/);
    expect(first).not.toContain('w0rd');
    expect(describeTarget({ connectionString: secret })).toBe(first);
    expect(describeTarget({ connectionString: `${secret}2` })).not.toBe(first);
  });
});
