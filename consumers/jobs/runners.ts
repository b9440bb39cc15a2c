import type { RoleContext } from '../../infra/roles.js';
import type { JobKind } from '../../infra/schedules/schedules-file.js';
import type { JobRunner } from './jobs.handler.js';

/** Test overrides of the built-in runners. */
export interface RunnerOptions {}

/** The built-in runner of each kind, wired to this process's configuration. */
export function defaultRunners(_ctx: RoleContext, _opts: RunnerOptions): Partial<Record<JobKind, JobRunner>> {
  return {};
}
