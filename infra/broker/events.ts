import { randomUUID } from 'node:crypto';
import { contracts, formatErrors, type EventOf, type EventType } from '../../contracts/index.js';
import { ValidationError } from '../errors.js';

/** Where an event comes from: the correlation it continues and the event that caused it. */
export interface EventOrigin {
  /** Id that follows one email (or update) through every stage; usually the email id. */
  correlationId: string;
  /** Id of the event that caused this one, or null for a first event. */
  causationId?: string | null;
}

/** Builds a new, validated event envelope. Throws `ValidationError` when `data` breaks the schema. */
export function createEvent<T extends EventType>(
  type: T,
  data: EventOf<T>['data'],
  origin: EventOrigin,
): EventOf<T> {
  const contract = contracts[type];
  const event = {
    id: randomUUID(),
    type,
    version: contract.version,
    occurredAt: new Date().toISOString(),
    correlationId: origin.correlationId,
    causationId: origin.causationId ?? null,
    data,
  } as unknown as EventOf<T>;
  assertValidEvent(event);
  return event;
}

/** Checks an envelope against the schema of its type; throws `ValidationError` naming each problem. */
export function assertValidEvent(event: unknown): asserts event is EventOf<EventType> {
  const type = (event as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(contracts, type))
    throw new ValidationError('Unknown event type', [
      `/type: ${JSON.stringify(type)} is not a Postroom event`,
    ]);
  const contract = contracts[type as EventType];
  if (!contract.validate(event))
    throw new ValidationError(`Invalid ${type} event`, formatErrors(contract.validate.errors));
}
