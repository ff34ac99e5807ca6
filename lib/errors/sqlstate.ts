/** SQLSTATE codes the library reacts to. Errors are classified by code, never by message text. */
export const SqlState = {
  UniqueViolation: '23505',
  UndefinedTable: '42P01',
  InvalidSchemaName: '3F000',
  QueryCanceled: '57014',
  AdminShutdown: '57P01',
  CrashShutdown: '57P02',
  CannotConnectNow: '57P03',
  TooManyConnections: '53300',
  SerializationFailure: '40001',
  DeadlockDetected: '40P01',
  FeatureNotSupported: '0A000',
  InvalidSqlStatementName: '26000',
} as const;

/** The SQLSTATE of a `pg` DatabaseError, if the value is one. */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
