// bin/node-flags starts the daemon from its start-up snapshot (build-snapshot.mjs) only while the blob
// can be loaded: node refuses a blob made with other V8 options, and the daemon would not start.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const app = dirname(dirname(fileURLToPath(import.meta.url)));
const nodeFlags = join(app, 'bin', 'node-flags');
const scratch = mkdtempSync(join(tmpdir(), 'vmsb-node-flags-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('bin/node-flags and the start-up snapshot', () => {
  it('starts from the blob, and from dist/cli.js when the blob was made with other options or is older than node', () => {
    // A copy of dist/ whose files can be replaced one by one (hard links: nothing is copied).
    const dist = join(scratch, 'dist');
    execFileSync('cp', ['-al', join(app, 'dist'), dist]);
    // `pnpm build` makes no snapshot (it is a packaging option: README.md, start-up snapshot): make
    // one in the copy, as `pnpm --filter varstored build:snapshot` does in dist/.
    const nativeDir = `${relative(dist, join(app, 'node_modules/@vmsb/xen/build/Release'))}/`;
    execFileSync(process.execPath, [join(app, 'build-snapshot.mjs'), '--out', dist, '--native-dir', nativeDir]);
    const help = () => spawnSync(nodeFlags, [join(dist, 'cli.js'), '--help'], { encoding: 'utf8' });
    const options = /^options='(.+)'$/m.exec(readFileSync(nodeFlags, 'utf8'))?.[1];
    expect(readFileSync(join(dist, 'varstored.blob.flags'), 'utf8')).toBe(`${options}\n`);
    expect(help().stdout).toMatch(/^Usage: varstored/);

    // The blob is what starts it: an unusable one stops it.
    const blob = join(dist, 'varstored.blob');
    const made = readFileSync(blob);
    rmSync(blob);
    writeFileSync(blob, made.subarray(0, 4096));
    expect(help().status).not.toBe(0);

    // Made with other options: not used, the daemon starts from dist/cli.js.
    rmSync(join(dist, 'varstored.blob.flags'));
    writeFileSync(join(dist, 'varstored.blob.flags'), '--no-expose-wasm\n');
    const otherOptions = help();
    expect(otherOptions.stderr).toBe('');
    expect(otherOptions.stdout).toMatch(/^Usage: varstored/);

    // Older than the node on PATH (node was upgraded since the build): not used either.
    writeFileSync(join(dist, 'varstored.blob.flags'), `${options}\n`);
    expect(help().status).not.toBe(0);
    utimesSync(blob, new Date(0), new Date(0));
    const olderThanNode = help();
    expect(olderThanNode.stderr).toBe('');
    expect(olderThanNode.stdout).toMatch(/^Usage: varstored/);
  });
});
