import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../logger.js';
import { names, type Topology } from './topology.js';

/** What one upgrade pass did, per legacy queue. */
export interface UpgradeReport {
  /** Messages moved into the `.v2` queues. */
  moved: number;
  /** Legacy queues deleted (empty, nobody consuming them). */
  deleted: string[];
  /** Legacy queues left in place: an older process still consumes them (a rolling upgrade). */
  kept: string[];
}

/**
 * Empties the queues of releases before `.v2` into the new ones, losing nothing, then deletes them.
 *
 * Why not redeclare: RabbitMQ refuses `queue.declare` with other arguments (406 PRECONDITION_FAILED),
 * and quorum queues need `x-overflow: reject-publish` for at-least-once dead-lettering. Why not a
 * policy (`overflow` and `dead-letter-strategy` may come from a policy since 3.10): policies are set
 * through the management HTTP API or `rabbitmqctl`, not AMQP, so the application could not make the
 * upgrade itself (the management plugin is not even enabled on every broker), and every later change
 * of arguments would need the same operator step again. A versioned name needs only AMQP.
 *
 * Per consumer, with its legacy queue `<ns>.<consumer>` present:
 * 1. its bindings are removed, so new events go only to `<ns>.<consumer>.v2` (declared before this);
 * 2. the legacy retry queues `<ns>.<consumer>.retry.<i>` are emptied into the new queue (their
 *    messages come back early, once), then the legacy main queue: each message is fetched with
 *    `basic.get`, published to the new queue with a publisher confirm and only then acked, so a crash
 *    in between leaves it in the legacy queue (the consumer inbox absorbs the copy);
 * 3. once empty, the legacy queues are deleted (the retry queues with `if-empty` and `if-unused`, the
 *    quorum queue after a check, as quorum queues support neither flag): while an older process still
 *    consumes the legacy queue (a rolling upgrade), nothing is deleted, because its retries still go
 *    through the legacy retry queues; the next connect finishes the job.
 * Every process runs it at connect; several at once only share the moving.
 */
export async function upgradeLegacyQueues(
  model: ChannelModel,
  t: Topology,
  log: Logger,
): Promise<UpgradeReport> {
  const report: UpgradeReport = { moved: 0, deleted: [], kept: [] };
  const ns = t.namespace;
  for (const q of t.queues) {
    const legacy = names.legacyQueue(ns, q.name);
    const main = await inspect(model, legacy);
    if (!main) continue;
    const target = names.queue(ns, q.name);
    const ch = await open(model);
    try {
      for (const b of q.bindings) await ch.unbindQueue(legacy, names.exchange(ns, b.exchange), b.routingKey);
    } finally {
      await ch.close().catch(() => undefined);
    }
    const retries: string[] = [];
    for (let tier = 0; ; tier++) {
      const name = names.legacyRetryQueue(ns, q.name, tier);
      if (!(await inspect(model, name))) break;
      retries.push(name);
    }
    for (const name of retries) report.moved += await move(model, name, target);
    report.moved += await move(model, legacy, target);
    const inUse = ((await inspect(model, legacy))?.consumerCount ?? 0) > 0;
    if (inUse) {
      report.kept.push(...retries, legacy);
      continue;
    }
    // Retry queues first: what expires in them meanwhile lands in the legacy queue, still there.
    let retriesGone = true;
    for (const name of retries) {
      if (await remove(model, name, { ifEmpty: true, ifUnused: true })) report.deleted.push(name);
      else {
        report.kept.push(name);
        retriesGone = false;
      }
    }
    // Quorum queues refuse if-empty and if-unused (540 NOT_IMPLEMENTED, which closes the whole
    // connection): check by hand. Nothing can reach the legacy queue any more (no bindings, no
    // retry queue, no consumer), so the check holds.
    const last = retriesGone ? await inspect(model, legacy) : null;
    if (last && last.messageCount === 0 && last.consumerCount === 0 && (await remove(model, legacy, {})))
      report.deleted.push(legacy);
    else report.kept.push(legacy);
  }
  if (report.moved > 0 || report.deleted.length > 0 || report.kept.length > 0)
    log.info(report, 'upgraded queues of an earlier release to .v2');
  if (report.kept.length > 0)
    log.warn(
      { kept: report.kept },
      'legacy queues still in use by an older process: kept; they are emptied and deleted at a later connect',
    );
  return report;
}

async function open(model: ChannelModel): Promise<Channel> {
  const ch = await model.createChannel();
  ch.on('error', () => undefined); // a 404 or 406 closes the channel: expected, answered below
  return ch;
}

/** `queue.declare passive`, on a channel of its own (a 404 closes the channel). */
async function inspect(
  model: ChannelModel,
  queue: string,
): Promise<{ messageCount: number; consumerCount: number } | null> {
  const ch = await open(model);
  try {
    return await ch.checkQueue(queue);
  } catch (err) {
    if ((err as { code?: unknown }).code === 404) return null;
    throw err;
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** Deletes a queue; false when RabbitMQ refuses (with `ifEmpty`/`ifUnused`: a message or consumer came). */
async function remove(model: ChannelModel, queue: string, opts: Options.DeleteQueue): Promise<boolean> {
  const ch = await open(model);
  try {
    await ch.deleteQueue(queue, opts);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 406) return false;
    throw err;
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** Moves every message of `from` into `to`: publish, confirm, then ack. */
async function move(model: ChannelModel, from: string, to: string): Promise<number> {
  const get = await open(model);
  const pub = await model.createConfirmChannel();
  pub.on('error', () => undefined);
  let moved = 0;
  try {
    for (;;) {
      const msg = await get.get(from, { noAck: false });
      if (!msg) break;
      await new Promise<void>((resolve, reject) => {
        pub.publish('', to, msg.content, republishOptions(msg), (err) =>
          err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
        );
      });
      get.ack(msg);
      moved += 1;
    }
  } finally {
    await get.close().catch(() => undefined);
    await pub.close().catch(() => undefined);
  }
  return moved;
}

/** The message's properties and headers, less what belonged to its old queue. */
function republishOptions(
  msg: ConsumeMessage | { properties: ConsumeMessage['properties'] },
): Options.Publish {
  const p = msg.properties;
  const headers = { ...(p.headers ?? {}) };
  // The delivery count and the TTL belonged to the legacy queue; the user id must match whoever
  // publishes, or RabbitMQ closes the channel.
  delete headers['x-delivery-count'];
  const out: Options.Publish = { headers, persistent: true };
  if (p.contentType) out.contentType = p.contentType as string;
  if (p.contentEncoding) out.contentEncoding = p.contentEncoding as string;
  if (p.correlationId) out.correlationId = p.correlationId as string;
  if (p.messageId) out.messageId = p.messageId as string;
  if (p.timestamp) out.timestamp = p.timestamp as number;
  if (p.type) out.type = p.type as string;
  if (p.appId) out.appId = p.appId as string;
  return out;
}
