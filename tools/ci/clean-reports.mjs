// Removes last run's Vitest reports so the summary can never count a stale one.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { workspacePackages } from './workspace.mjs';

for (const { dir } of workspacePackages(process.cwd())) {
  rmSync(join(dir, '.vitest', 'report.json'), { force: true });
}
