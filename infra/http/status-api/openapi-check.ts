import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/**
 * Checks real answers against an OpenAPI 3.1 document (the one served at `/openapi.json`): the
 * response schema of a route, method and status, with every `$ref` resolved inside the document.
 * The tests use it so that the document, not the code, says what an answer may contain.
 */
export interface DocumentValidator {
  /** Problems of `body` as the answer `status` of `method route` (empty: valid); throws when the document has no such answer. */
  problems(route: string, method: string, status: number, body: unknown): string[];
  /** Throws with every problem when `body` is not a valid answer. */
  expectValid(route: string, method: string, status: number, body: unknown): void;
}

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

/** Builds a validator over one OpenAPI document. */
export function documentValidator(doc: Record<string, unknown>): DocumentValidator {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: false });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema(doc, 'openapi.json');

  const responsePointer = (route: string, method: string, status: number): string => {
    const paths = doc['paths'] as Record<
      string,
      Record<string, { responses?: Record<string, { $ref?: string }> }>
    >;
    const response = paths[route]?.[method]?.responses?.[String(status)];
    if (!response)
      throw new Error(`The OpenAPI document has no ${status} answer for ${method.toUpperCase()} ${route}`);
    const base = response.$ref
      ? response.$ref.slice(1)
      : `/${pointer('paths', route, method, 'responses', String(status))}`;
    return `${base}/${pointer('content', 'application/json', 'schema')}`;
  };

  const problems = (route: string, method: string, status: number, body: unknown): string[] => {
    const ref = `openapi.json#${responsePointer(route, method, status)}`;
    const validate = ajv.getSchema(ref);
    if (!validate) throw new Error(`No JSON schema at ${ref}`);
    if (validate(body)) return [];
    return (validate.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'} ${JSON.stringify(e.params)}`,
    );
  };

  return {
    problems,
    expectValid(route, method, status, body) {
      const found = problems(route, method, status, body);
      if (found.length > 0)
        throw new Error(
          `${method.toUpperCase()} ${route} ${status} breaks the OpenAPI document:\n  ${found.join('\n  ')}\n${JSON.stringify(body)}`,
        );
    },
  };
}
