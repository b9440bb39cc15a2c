import type { Static, TObject, TSchema } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { ValidationError } from '../../errors.js';

/**
 * Request validation with the schemas of `schemas.ts`. Query strings arrive as text: numbers and
 * booleans are coerced and defaults filled in; anything not in the schema is refused, so a misspelt
 * filter is an error instead of being silently ignored.
 */
const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);

const compiled = new WeakMap<TSchema, ValidateFunction>();

/** Validates (a copy of) `input` against `schema`; throws a `ValidationError` naming every problem (answered 400). */
export function parseRequest<T extends TObject>(
  schema: T,
  input: unknown,
  where: 'query' | 'path',
): Static<T> {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const copy: Record<string, unknown> = { ...((input ?? {}) as Record<string, unknown>) };
  if (validate(copy)) return copy as Static<T>;
  const problems = (validate.errors ?? []).map((e) => {
    const at = e.instancePath
      ? e.instancePath.slice(1)
      : String(e.params['additionalProperty'] ?? e.params['missingProperty'] ?? '');
    if (e.keyword === 'additionalProperties') return `${at}: unknown ${where} parameter`;
    return `${at}: ${e.message ?? 'is invalid'}`;
  });
  throw new ValidationError(`Invalid ${where} parameters`, [...new Set(problems)]);
}

/** OpenAPI `parameters` for the properties of a schema (query or path), from the same schema that validates them. */
export function openApiParameters(schema: TObject, where: 'query' | 'path'): Record<string, unknown>[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, s]) => {
    const { description, ...rest } = s as TSchema & { description?: string; default?: unknown };
    return {
      name,
      in: where,
      required:
        where === 'path' || (required.has(name) && (s as { default?: unknown }).default === undefined),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}
