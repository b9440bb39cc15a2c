import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { pino } from 'pino';
import { contracts, EXCHANGES, type EmailReceivedV1, type EventType } from '../contracts/index.js';
import { Broker } from '../infra/broker/connection.js';
import { createEvent } from '../infra/broker/events.js';
import { deleteTopology, type Topology } from '../infra/broker/topology.js';
import type { Logger } from '../infra/logger.js';
import { TEST_AMQP_URL } from './env.js';

/** A logger for tests: silent unless TEST_LOG_LEVEL is set. */
export function testLogger(): Logger {
  return pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
}

/**
 * An `email.received` event of an email with no attachments (a new id unless given; correlation id:
 * the email id), with `data` overriding any field.
 */
export function emailReceivedEvent(data: Partial<EmailReceivedV1['data']> = {}): EmailReceivedV1 {
  const emailId = data.emailId ?? randomUUID();
  return createEvent(
    'email.received',
    {
      emailId,
      messageId: `${emailId}@test`,
      source: 'imap',
      subject: 'hello',
      from: 'ana@example.com',
      receivedAt: new Date().toISOString(),
      attachmentCount: 0,
      warnings: [],
      chatId: null,
      ...data,
    },
    { correlationId: emailId },
  );
}

/** A random namespace, so each test file has its own exchanges and queues on the shared RabbitMQ. */
export function testNamespace(label = 't'): string {
  return `test-${label}-${randomBytes(4).toString('hex')}`;
}

/** Builds a topology for test consumers bound to the given event types. */
export function testTopology(
  namespace: string,
  consumers: Record<string, readonly EventType[]>,
  retryDelaysMs: readonly number[] = [100, 200],
): Topology {
  return {
    namespace,
    exchanges: [...EXCHANGES],
    queues: Object.entries(consumers).map(([name, events]) => ({
      name,
      bindings: events.map((e) => ({ exchange: contracts[e].exchange, routingKey: e })),
    })),
    retryDelaysMs,
    deliveryLimit: 5,
  };
}

/** Starts a broker connection for tests (fast reconnects, short confirm timeout). */
export async function startTestBroker(
  topology: Topology,
  url = TEST_AMQP_URL,
  log = testLogger(),
): Promise<Broker> {
  const broker = new Broker({
    url,
    topology,
    log,
    connectionName: `test ${topology.namespace}`,
    reconnectDelayMs: 100,
    maxReconnectDelayMs: 1_000,
    confirmTimeoutMs: 5_000,
  });
  await broker.start();
  return broker;
}

/** Deletes a test namespace's exchanges and queues. */
export async function deleteTestTopology(topology: Topology): Promise<void> {
  const conn = await connect(TEST_AMQP_URL);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await deleteTopology(ch, topology);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Polls `fn` until it returns a truthy value or the time is up; returns that value. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what} (last value: ${JSON.stringify(last)})`,
  );
}
