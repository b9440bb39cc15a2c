/**
 * The tool host: a small Node process that starts the outside programs (soffice, pdfinfo, pdftoppm)
 * for Postroom, so that starting one forks this 40 MB process instead of Postroom's 200 MB one (see
 * run-tool.ts). Postroom forks it with an IPC channel and sends one request per run; each run is
 * `runToolHere`, with its time limit and process-group kill. It exits when Postroom goes (the channel
 * closes), killing whatever still runs; signals sent to the terminal's process group (Ctrl-C) are left
 * to Postroom, which stops when its work in flight (these runs included) is done.
 */
import { runToolHere, type ToolHostAnswer, type ToolHostRequest } from './run-tool.js';

const send = (answer: ToolHostAnswer): void => {
  process.send?.(answer);
};

if (!process.send) {
  process.stderr.write('tool-host: start me from Postroom (with an IPC channel)\n');
  process.exit(2);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
process.on('disconnect', () => process.exit(0));
process.on('message', (req: ToolHostRequest) => {
  const options = {
    timeoutMs: req.timeoutMs,
    onStart: (pid: number) => send({ id: req.id, type: 'start', pid }),
    ...(req.env ? { env: req.env } : {}),
    ...(req.cwd ? { cwd: req.cwd } : {}),
  };
  runToolHere(req.command, req.args, options).then(
    (result) => send({ id: req.id, type: 'done', result }),
    (err: NodeJS.ErrnoException) =>
      send({ id: req.id, type: 'error', message: err.message, ...(err.code ? { code: err.code } : {}) }),
  );
});
