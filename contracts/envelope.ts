import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/** Shared ajv instance for every contract: strict schemas, all errors reported, formats checked. */
export const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);

/** A UUID (v4 or v7) used for every id Postroom makes. */
export const Uuid = Type.String({ format: 'uuid', description: 'UUID' });
/** An ISO-8601 timestamp with zone. */
export const Timestamp = Type.String({ format: 'date-time', description: 'ISO-8601 timestamp' });
/** A lower-case hex SHA-256. */
export const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the bytes, hex' });
/** Nullable helper: `T | null`. */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/**
 * The envelope every event travels in. `correlationId` follows one email (or Telegram update) through
 * every stage; `causationId` is the id of the event that caused this one (null for the first).
 */
export function Envelope<Name extends string, Data extends TSchema>(type: Name, version: number, data: Data) {
  return Type.Object(
    {
      id: Uuid,
      type: Type.Literal(type),
      version: Type.Literal(version),
      occurredAt: Timestamp,
      correlationId: Type.String({ minLength: 1, maxLength: 200 }),
      causationId: Nullable(Type.String({ minLength: 1, maxLength: 200 })),
      data,
    },
    { additionalProperties: false, $id: `postroom/${type}/v${version}` },
  );
}

/** The envelope fields without `data`, for reading the header of any event before its type is known. */
export const EnvelopeHeader = Type.Object({
  id: Uuid,
  type: Type.String({ minLength: 1 }),
  version: Type.Integer({ minimum: 1 }),
  occurredAt: Timestamp,
  correlationId: Type.String({ minLength: 1 }),
  causationId: Nullable(Type.String({ minLength: 1 })),
  data: Type.Unknown(),
});
/** The envelope header type. */
export type EnvelopeHeader = Static<typeof EnvelopeHeader>;

/** Everything Postroom knows about one event type. */
export interface EventContract<Name extends string = string, S extends TSchema = TSchema> {
  /** The event type, also its routing key. */
  type: Name;
  /** Schema version (a breaking change is a new file with a new version). */
  version: number;
  /** Short name of the topic exchange it is published to (prefixed with the namespace). */
  exchange: string;
  /** JSON Schema of the whole envelope. */
  schema: S;
  /** Compiled validator of the whole envelope. */
  validate: ValidateFunction<Static<S>>;
  /** A valid example, for docs and tests. */
  example: Static<S>;
  /** One line on when it is published. */
  description: string;
}

/** Declares an event contract and compiles its validator once. */
export function defineEvent<Name extends string, Data extends TSchema>(def: {
  type: Name;
  version: number;
  exchange: string;
  data: Data;
  description: string;
  example: Static<Data>;
}): EventContract<Name, ReturnType<typeof Envelope<Name, Data>>> {
  const schema = Envelope(def.type, def.version, def.data);
  const validate = ajv.compile<Static<typeof schema>>(schema);
  const example = {
    id: '0192f6a0-0000-7000-8000-000000000001',
    type: def.type,
    version: def.version,
    occurredAt: '2026-11-26T10:00:00.000Z',
    correlationId: '0192f6a0-0000-7000-8000-0000000000aa',
    causationId: null,
    data: def.example,
  } as unknown as Static<typeof schema>;
  return {
    type: def.type,
    version: def.version,
    exchange: def.exchange,
    schema,
    validate,
    example,
    description: def.description,
  };
}

/** Formats ajv errors as `path: message` lines. */
export function formatErrors(errors: ValidateFunction['errors']): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'is invalid'}`);
}
