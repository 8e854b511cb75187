// The changeset gate: every versioned package whose shipped files changed since the last release has
// a pending changeset naming it, and every pending changeset parses and names packages that exist.
//
// The base ("since when") is, first found: $CHANGESET_BASE (e.g. `main` on a feature branch); the
// newest release tag reachable from HEAD (`changeset tag` writes `<name>@<version>`); the newest
// commit that consumed changesets (`pnpm version-packages` deletes them); the repository's first
// commit (nothing was ever released). CI checks out main, so a branch-relative base would compare
// main with itself and prove nothing. See CONTRIBUTING.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { workspacePackages } from './workspace.mjs';

const root = process.cwd();
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
const fail = (message) => {
  console.error(`changeset check: ${message}`);
  process.exit(1);
};

const workspaceNames = new Set(workspacePackages(root).map(({ manifest }) => manifest.name));

function releaseBase() {
  if (process.env.CHANGESET_BASE) {
    const ref = process.env.CHANGESET_BASE;
    try {
      return { ref: git('rev-parse', '--verify', `${ref}^{commit}`), why: `$CHANGESET_BASE=${ref}`, branch: true };
    } catch {
      fail(`$CHANGESET_BASE=${ref} is not a commit in this clone (fetch it, or unset the variable)`);
    }
  }
  const tags = git('tag', '--merged', 'HEAD', '--sort=-creatordate')
    .split('\n')
    .filter((t) => workspaceNames.has(t.slice(0, t.lastIndexOf('@'))));
  if (tags[0]) return { ref: git('rev-parse', `${tags[0]}^{commit}`), why: `release tag ${tags[0]}` };
  const versioned = git(
    'log',
    '-1',
    '--diff-filter=D',
    '--format=%H',
    '--',
    '.changeset/*.md',
    ':(exclude).changeset/README.md',
  );
  if (versioned) return { ref: versioned, why: `commit ${versioned.slice(0, 12)}, the last to consume changesets` };
  if (git('rev-parse', '--is-shallow-repository') === 'true')
    fail('this is a shallow clone: the last release cannot be found (git fetch --unshallow, or set $CHANGESET_BASE)');
  const first = git('rev-list', '--max-parents=0', 'HEAD').split('\n')[0];
  return { ref: first, why: `the first commit ${first.slice(0, 12)} (nothing has been released)` };
}

// Files that change nothing for a package's users: its tests, test fixtures, benchmarks, build
// configuration and README.
const NOT_SHIPPED = [/\.test\.ts$/, /^(bench|fixtures)\//, /^(tsconfig|tsup\.config|vitest\.config)\b/, /^README\.md$/];

const base = releaseBase();
console.log(`changeset check: changes since ${base.why}`);

// 1. `changeset status` reads every pending changeset and refuses one it cannot parse.
try {
  execFileSync('pnpm', ['exec', 'changeset', 'status', `--since=${base.ref}`], { cwd: root, stdio: 'pipe' });
} catch (e) {
  process.stderr.write(e.stdout ?? '');
  process.stderr.write(e.stderr ?? '');
  fail('`changeset status` refused the pending changesets (above)');
}

const changedFiles = new Set([
  ...git('diff', '--name-only', base.ref).split('\n'),
  ...git('ls-files', '--others', '--exclude-standard').split('\n'),
]);

// 2. Package names, which `changeset status` does not check, and coverage: it asks for one changeset
//    of any kind, but each changed package needs its own. Since a release every pending changeset counts (`version-packages` consumed the older
//    ones); since $CHANGESET_BASE only those the branch wrote.
const pending = readdirSync(join(root, '.changeset')).map((f) => `.changeset/${f}`);
const named = new Set();
for (const path of base.branch ? [...changedFiles] : pending) {
  const file = path.startsWith('.changeset/') ? path.slice('.changeset/'.length) : '';
  if (!file.endsWith('.md') || file === 'README.md' || !existsSync(join(root, path))) continue;
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readFileSync(join(root, path), 'utf8'));
  if (!front) fail(`${path} has no front matter (---, then "package": patch|minor|major lines, then ---)`);
  for (const line of front[1].split('\n')) {
    const m = /^\s*["']?([^"':]+)["']?\s*:\s*(major|minor|patch)\s*$/.exec(line);
    if (m && !workspaceNames.has(m[1])) fail(`${path} names ${m[1]}, which is not a package of this workspace`);
    if (m) named.add(m[1]);
    else if (line.trim() !== '') fail(`${path}: cannot read the line ${JSON.stringify(line)}`);
  }
}

const missing = [];
for (const { dir: pkgDir, manifest } of workspacePackages(root)) {
  if (manifest.private || !manifest.version) continue;
  const prefix = `${relative(root, pkgDir)}/`;
  const shipped = [...changedFiles].filter(
    (f) => f.startsWith(prefix) && !NOT_SHIPPED.some((re) => re.test(f.slice(prefix.length))),
  );
  if (shipped.length > 0 && !named.has(manifest.name)) missing.push(`${manifest.name} (${shipped[0]} …)`);
}
if (missing.length > 0)
  fail(
    `changed without a changeset: ${missing.join(', ')}. Run \`pnpm changeset\`, pick these packages and ` +
      'describe the change for their users.',
  );
console.log(`changeset check: ok (${named.size} packages named by the changesets that count)`);
