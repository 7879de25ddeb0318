/**
 * Pieces the parts of the OpenAPI document share (./openapi.ts and
 * ./webhooks/openapi.ts): zod to JSON Schema, and the problem answers that
 * routes of one kind all give.
 */
import { z } from 'zod';

/** JSON Schema 2020-12 of a zod schema, of what it accepts (input) or produces (output). */
export const jsonSchema = (schema: z.ZodType, io: 'input' | 'output' = 'output') =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

export const retryAfterHeader = {
  'Retry-After': {
    description: 'Seconds to wait before trying again',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
};

export const problem = (description: string, headers?: object) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

/** What every route that reads or writes the database can answer whatever it does. */
export const databaseProblems = {
  '503': problem('The database is unreachable', retryAfterHeader),
};

/** A path parameter that is not a UUID, or not valid percent-encoding. */
export const badIdProblem = problem('The id is not a UUID, or not valid percent-encoding');

/** What a route that reads a JSON body answers for a body it cannot read. */
export const bodyProblems = {
  '413': problem('Body over 64 KiB'),
  '415': problem('Not application/json, or an unsupported charset or Content-Encoding'),
};
