/**
 * AMQP over TLS (`amqps://` with `AMQP_TLS_CA`) against a RabbitMQ node of its own whose only listener
 * is TLS, with a certificate from a private CA: the right CA connects and messages flow; a wrong CA
 * is refused and the log says which variable to set.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { testTopology, waitFor } from '../../test/broker.js';
import { startTlsRabbitmq, type TlsServer } from '../../test/throwaway-servers.js';
import { Broker } from './connection.js';

let server: TlsServer;

beforeAll(async () => {
  server = await startTlsRabbitmq();
}, 150_000);
afterAll(async () => {
  await server?.stop();
}, 60_000);

/** A logger whose lines the test can read. */
function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: () => Array<{ msg: string }> } {
  const lines: Array<{ msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as { msg: string });
      done();
    },
  });
  return { log: createLogger('info', sink), lines: () => lines };
}

describe('amqps:// with AMQP_TLS_CA against a TLS-only RabbitMQ', () => {
  it('connects with the CA that signed the certificate, and a published event is consumed', async () => {
    const topology = testTopology('tls', {});
    const { log } = capturingLogger();
    const broker = new Broker({
      url: `amqps://guest:guest@localhost:${server.port}/`,
      tlsCa: readFileSync(server.certs.caFile),
      topology,
      log,
      reconnectDelayMs: 100,
      maxReconnectDelayMs: 500,
    });
    try {
      await broker.start();
      expect(broker.isConnected()).toBe(true);
      const ch = await broker.createChannel();
      const exchange = `${topology.namespace}.tls-check`;
      await ch.assertExchange(exchange, 'fanout', { autoDelete: true });
      const q = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(q.queue, exchange, '');
      await broker.publish(exchange, 'tls.check', Buffer.from('over TLS'), { messageId: 'm1' });
      await waitFor(async () => (await ch.get(q.queue, { noAck: true })) !== false, 10_000, 'message back');
    } finally {
      await broker.close();
    }
  });

  it('refuses a certificate its CA did not sign, and logs which variable to set', async () => {
    const { log, lines } = capturingLogger();
    const broker = new Broker({
      url: `amqps://guest:guest@127.0.0.1:${server.port}/`,
      tlsCa: readFileSync(server.otherCaFile),
      topology: testTopology('tls-wrong', {}),
      log,
      reconnectDelayMs: 100,
      maxReconnectDelayMs: 500,
    });
    void broker.start();
    try {
      await waitFor(
        () =>
          lines().some((l) => /^RabbitMQ's TLS certificate was refused \(.+\): set AMQP_TLS_CA/.test(l.msg)),
        10_000,
        'refusal logged',
      );
      expect(broker.isConnected()).toBe(false);
    } finally {
      await broker.close();
    }
  });
});
