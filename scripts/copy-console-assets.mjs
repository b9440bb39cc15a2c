// `npm run build`: the console's templates and static files sit beside its code; tsc compiles only
// the code, so this copies them next to the compiled files in dist/.
import { cpSync, rmSync } from 'node:fs';

for (const dir of ['views', 'static']) {
  const to = `dist/infra/http/console/${dir}`;
  rmSync(to, { recursive: true, force: true });
  cpSync(`infra/http/console/${dir}`, to, { recursive: true });
}
