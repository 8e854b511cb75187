import { existsSync } from 'node:fs';
import { defineConfig } from 'tsup';

// One bundle per executable: `varstore` (src/cli/main.ts) and each compatibility tool
// (src/compat/<tool>.ts → dist/varstore-<tool>.js).
const entry: Record<string, string> = {};
if (existsSync('src/cli/main.ts')) entry.varstore = 'src/cli/main.ts';
for (const tool of ['ls', 'get', 'set', 'rm', 'sb-state']) {
  if (existsSync(`src/compat/${tool}.ts`)) entry[`varstore-${tool}`] = `src/compat/${tool}.ts`;
}

export default defineConfig({
  entry,
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
  // Optional, native, loaded only when a privilege option asks for it (src/compat/lib/privileges.ts).
  external: ['@vmsb/xen'],
});
