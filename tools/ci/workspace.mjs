// Lists the workspace packages (the globs in pnpm-workspace.yaml are packages/*, apps/*, tools/*).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function workspacePackages(root) {
  const found = [];
  for (const group of ['packages', 'apps', 'tools']) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const manifest = join(dir, name, 'package.json');
      if (!existsSync(manifest)) continue;
      found.push({ dir: join(dir, name), manifest: JSON.parse(readFileSync(manifest, 'utf8')) });
    }
  }
  return found;
}
