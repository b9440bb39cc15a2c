import { describe, expect, it } from 'vitest';
import { createAttachmentAnalysisHandler } from '../../consumers/attachment-analysis/attachment-analysis.handler.js';
import { createConversionHandler } from '../../consumers/conversion/conversion.handler.js';
import { createDriveUploadHandler } from '../../consumers/drive-upload/drive-upload.handler.js';
import { createJobsHandler } from '../../consumers/jobs/jobs.handler.js';
import { createOutboundApiHandler } from '../../consumers/outbound-api/outbound-api.handler.js';
import { createTelegramBotHandler } from '../../consumers/telegram-bot/telegram-bot.handler.js';
import { createTelegramNotifierHandler } from '../../consumers/telegram-notifier/telegram-notifier.handler.js';
import { postroomTopology, SUBSCRIPTIONS } from './subscriptions.js';

describe('consumer subscriptions', () => {
  // Dependencies are never touched when a definition is only made, not run.
  const deps = { hooks: [] } as never;
  const definitions = [
    createAttachmentAnalysisHandler(deps),
    createDriveUploadHandler(deps),
    createConversionHandler(deps),
    createOutboundApiHandler(deps),
    createJobsHandler(deps),
    createTelegramBotHandler(deps),
    createTelegramNotifierHandler(deps),
  ];

  it('binds each queue to exactly the events its handler accepts, one definition per consumer', () => {
    expect(definitions.map((d) => d.name).sort()).toEqual(Object.keys(SUBSCRIPTIONS).sort());
    const queues = new Map(
      postroomTopology().queues.map((q) => [q.name, q.bindings.map((b) => b.routingKey)]),
    );
    for (const d of definitions) expect(queues.get(d.name), d.name).toEqual([...d.events]);
  });
});
