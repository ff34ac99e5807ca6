import { describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { classifyConnectionError } from '../../../lib/listener/connection-errors.js';

function databaseError(code: string, message: string): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  error.code = code;
  return error;
}

function systemError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyConnectionError', () => {
  it.each(['28P01', '28000', '3D000'])('marks SQLSTATE %s as fatal', (code) => {
    expect(classifyConnectionError(databaseError(code, 'no'), [])).toEqual({
      message: 'no',
      code,
      fatal: true,
    });
  });

  it.each(['53300', '57P01', '57P02', '57P03', '08006'])('retries SQLSTATE %s', (code) => {
    expect(classifyConnectionError(databaseError(code, 'later'), []).fatal).toBe(false);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT'])('retries %s', (code) => {
    expect(classifyConnectionError(systemError(code, 'net'), [])).toEqual({
      message: 'net',
      code,
      fatal: false,
    });
  });

  it('classifies by code, never by message text', () => {
    expect(
      classifyConnectionError(new Error('password authentication failed for user "x"'), []),
    ).toEqual({ message: 'password authentication failed for user "x"', fatal: false });
    expect(classifyConnectionError('a string', [])).toEqual({ message: 'a string', fatal: false });
  });

  it('scrubs secrets, the longest first', () => {
    const url = 'postgres://u:pw@h/db';
    expect(classifyConnectionError(new Error(`bad ${url} and pw`), ['pw', url]).message).toBe(
      'bad *** and ***',
    );
  });
});
