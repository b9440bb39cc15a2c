import { describe, expect, it } from 'vitest';
import { buildAsyncApi } from './asyncapi.js';
import { contracts, type EventType } from './index.js';

describe('event contracts', () => {
  it.each(Object.keys(contracts) as EventType[])(
    '%s: its example is valid and wrong data is refused',
    (type) => {
      const c = contracts[type];
      expect(c.validate(c.example), JSON.stringify(c.validate.errors)).toBe(true);
      expect(c.validate({ ...c.example, data: { ...c.example.data, unexpected: 1 } })).toBe(false);
      expect(c.validate({ ...c.example, id: 'not-a-uuid' })).toBe(false);
      expect(c.validate({ ...c.example, type: 'something.else' })).toBe(false);
    },
  );

  it('describes every event in an AsyncAPI 3 document with its exchange and routing key', () => {
    const doc = buildAsyncApi() as {
      asyncapi: string;
      channels: Record<
        string,
        { address: string; bindings: { amqp: { exchange: { name: string; type: string } } } }
      >;
    };
    expect(doc.asyncapi).toBe('3.0.0');
    const addresses = Object.values(doc.channels).map((ch) => ch.address);
    expect(addresses.sort()).toEqual(Object.keys(contracts).sort());
    const received = Object.values(doc.channels).find((ch) => ch.address === 'email.received');
    expect(received?.bindings.amqp.exchange).toMatchObject({ name: 'postroom.mail', type: 'topic' });
  });
});
