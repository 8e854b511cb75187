// A minimal daemon for tests, run with LD_PRELOAD=libvmsbfakexen.so and VMSB_FAKE_XEN: serves the fake
// domain through the production binding (dist/), reads xenstore, announces readiness, drops privileges
// as asked, prints one JSON line about its state, and keeps serving until SIGTERM.
//   node serve-child.mjs <url of dist/index.js> '{"domid":N,"drop":{...},"exitAfterStart":false}'
import { openSync, readdirSync, readSync } from 'node:fs';

const [, , indexUrl, optionsJson] = process.argv;
const xen = await import(indexUrl);
const { domid, drop, exitAfterStart } = JSON.parse(optionsJson);

// Opened before any chroot, read after it: the kernel's view of this process's privileges.
const status = openSync('/proc/self/status', 'r');

const server = await xen.startIoreqServer({
  domid,
  handler: {
    // Answers with the first 16 bytes of the request, reversed.
    handleCommand: async (request) => Uint8Array.from(request.subarray(0, 16)).reverse(),
    ppiRead: (index, size) => index * 3 + size,
    ppiWrite: async () => {},
  },
  log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
});
if (exitAfterStart) process.exit(3); // without close(): the server must still be released

// As the daemon: platform keys are read before the drop, readiness is announced after it (once
// NVRAM is loaded, inside the chroot), over the xenstore connection opened before the drop.
const platform = xen.xenstoreRead(`/local/domain/${domid}/platform/secureboot`);

let dropError;
try {
  xen.dropPrivileges(drop);
} catch (e) {
  dropError = e.message;
}
xen.xenstoreWrite(`/local/domain/${domid}/varstored-pid`, String(process.pid));
const buf = Buffer.alloc(8192);
const proc = buf.subarray(0, readSync(status, buf, 0, buf.length, 0)).toString();
// Under depriv setuid is filtered (it would end the process): the binding proved it failed before.
let regain = drop.depriv ? 'not tried' : 'succeeded';
if (!drop.depriv) {
  try {
    process.setuid(0);
  } catch (e) {
    regain = e.code;
  }
}
let root;
try {
  root = readdirSync('/').sort();
} catch (e) {
  root = e.code;
}
process.on('SIGTERM', () => {
  server.close().then(() => process.exit(0));
});
console.log(
  JSON.stringify({
    dropError,
    uid: process.getuid(),
    euid: process.geteuid(),
    gid: process.getgid(),
    egid: process.getegid(),
    groups: process.getgroups(),
    noNewPrivs: /^NoNewPrivs:\s*1$/m.test(proc),
    cwd: process.cwd(),
    root,
    regain,
    platform,
    vcpus: server.vcpus,
  }),
);
