/**
 * Database failures told apart by their codes (PostgreSQL SQLSTATE, Prisma
 * error codes, the pg driver adapter's error kinds, socket error codes), never
 * by message text: which ones are the database's state at the moment, and
 * pass when it recovers, rather than the statement's own fault.
 */

/** Single SQLSTATEs that a later attempt outlives. */
const TRANSIENT_SQLSTATES: ReadonlySet<string> = new Set([
  // read_only_sql_transaction: a hot standby, e.g. the old primary right after a failover.
  '25006',
  // idle_in_transaction_session_timeout: the server closed the session.
  '25P03',
  // serialization_failure, deadlock_detected: the transaction lost a race.
  '40001',
  '40P01',
  // lock_not_available (lock_timeout).
  '55P03',
  // admin_shutdown, crash_shutdown, cannot_connect_now (starting up), database_dropped... (57P0x).
  '57P01',
  '57P02',
  '57P03',
  '57P04',
  '57P05',
]);

/**
 * SQLSTATE classes that a later attempt outlives: 08 connection exception,
 * 53 insufficient resources (disk full, out of memory, too many connections),
 * 58 system error (I/O).
 */
const TRANSIENT_SQLSTATE_CLASSES: ReadonlySet<string> = new Set(['08', '53', '58']);

/** Prisma's codes for a database it cannot reach or use now (P1xxx connectivity, pool and transaction timeouts, write conflicts). */
const TRANSIENT_PRISMA_CODES: ReadonlySet<string> = new Set([
  'P1001', // can't reach the database server
  'P1002', // the server was reached but timed out
  'P1008', // operations timed out
  'P1017', // the server closed the connection
  'P2024', // timed out fetching a connection from the pool
  'P2028', // transaction API error (the transaction was closed or timed out)
  'P2034', // write conflict or deadlock: retry the transaction
  'P2037', // too many database connections
]);

/** @prisma/adapter-pg's error kinds for a database that cannot answer now (the API's 503). */
export const UNREACHABLE_ADAPTER_KINDS: ReadonlySet<string> = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);

/** @prisma/adapter-pg's error kinds for the conditions above: unreachable, or a lost write race. */
export const TRANSIENT_ADAPTER_KINDS: ReadonlySet<string> = new Set([
  ...UNREACHABLE_ADAPTER_KINDS,
  'TransactionWriteConflict',
]);

/** Socket errors on the way to the database. */
const TRANSIENT_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** True for a SQLSTATE (5 characters) that a later attempt outlives. */
export function isTransientSqlState(code: string): boolean {
  return (
    /^[0-9A-Z]{5}$/.test(code) &&
    (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2)))
  );
}

interface ErrorFields {
  code?: unknown;
  originalCode?: unknown;
  kind?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: unknown };
}

/** The error and what it wraps: causes and Prisma's driver adapter error (bounded). */
function chain(error: unknown): ErrorFields[] {
  const out: ErrorFields[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || seen.has(e) || depth > 6) return;
    seen.add(e);
    const fields = e as ErrorFields;
    out.push(fields);
    visit(fields.cause, depth + 1);
    visit(fields.meta?.driverAdapterError, depth + 1);
  };
  visit(error, 0);
  return out;
}

/**
 * True when a database error is the database's state, not the statement's
 * fault: unreachable or restarting, read-only (a standby after a failover),
 * out of connections or resources, a lost serialization race or a lock wait
 * given up. A statement cancelled by `statement_timeout` (57014) is not: a
 * statement that keeps taking too long is treated like any other failure.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  return chain(error).some((e) => {
    if (typeof e.kind === 'string' && TRANSIENT_ADAPTER_KINDS.has(e.kind)) return true;
    return [e.code, e.originalCode].some(
      (code) =>
        typeof code === 'string' &&
        (TRANSIENT_PRISMA_CODES.has(code) ||
          TRANSIENT_SOCKET_CODES.has(code) ||
          isTransientSqlState(code)),
    );
  });
}
