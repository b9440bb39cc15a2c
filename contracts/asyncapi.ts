import { contracts } from './index.js';

/** Which consumer queue receives which events, for the document (kept in step by a test). */
export interface AsyncApiOptions {
  /** Exchange name prefix (default `postroom`). */
  namespace?: string;
}

/**
 * The AsyncAPI 3.0 document of every event: one channel per event type on its topic exchange (the
 * routing key is the type), the envelope schema as the message payload, and a `send` operation.
 */
export function buildAsyncApi(opts: AsyncApiOptions = {}): Record<string, unknown> {
  const ns = opts.namespace ?? 'postroom';
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const c of Object.values(contracts)) {
    const key = c.type.replace(/\./g, '_');
    messages[key] = {
      name: c.type,
      title: c.type,
      summary: c.description,
      contentType: 'application/json',
      payload: c.schema,
      examples: [{ name: 'example', payload: c.example }],
    };
    channels[key] = {
      address: c.type,
      description: `Routing key ${c.type} on the topic exchange ${ns}.${c.exchange}`,
      messages: { [key]: { $ref: `#/components/messages/${key}` } },
      bindings: {
        amqp: {
          is: 'routingKey',
          exchange: {
            name: `${ns}.${c.exchange}`,
            type: 'topic',
            durable: true,
            autoDelete: false,
            vhost: '/',
          },
          bindingVersion: '0.3.0',
        },
      },
    };
    operations[`publish_${key}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${key}` },
      summary: c.description,
      bindings: { amqp: { deliveryMode: 2, bindingVersion: '0.3.0' } },
    };
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Postroom events',
      version: '1',
      description:
        'Events Postroom publishes to RabbitMQ, each in the envelope { id, type, version, occurredAt, correlationId, causationId, data }.',
    },
    defaultContentType: 'application/json',
    servers: { rabbitmq: { host: '127.0.0.1:5672', protocol: 'amqp', description: 'AMQP_URL' } },
    channels,
    operations,
    components: { messages },
  };
}
