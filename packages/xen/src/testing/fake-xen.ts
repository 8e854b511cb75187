// Test side of the fake hypervisor (fake/fakexen.c): creates a domain in a temporary directory and
// plays its vCPUs. It stands in for Xen itself: the ioreq page protocol, event channels, guest RAM
// and xenstore, as the binding sees them through the Xen libraries' API.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createXenApi, type XenApi } from '../api.js';
import { defaultBuildDir, loadBinding } from '../native.js';

export const PAGE = 4096;
export const BUFFER_SIZE = 16 * PAGE;

/** xen/hvm/ioreq.h */
export const Ioreq = {
  READ: 1,
  WRITE: 0,
  TYPE_PIO: 0,
  TYPE_COPY: 1,
  TYPE_PCI_CONFIG: 2,
  TYPE_TIMEOFFSET: 7,
  TYPE_INVALIDATE: 8,
  STATE_NONE: 0,
  STATE_READY: 1,
  STATE_INPROCESS: 2,
  STATE_RESP_READY: 3,
} as const;

export type Outcome = 'completed' | 'unclaimed' | 'timeout' | 'bad-state' | 'busy' | 'no-server';

export interface IoResult {
  outcome: Outcome;
  server: number;
  /** The slot's data as Xen takes it back (all ones when no server claimed the access). */
  data: bigint;
}

export interface RawIo {
  addr: number | bigint;
  data?: number | bigint;
  count?: number;
  size: number;
  dir: number;
  type?: number;
  dataIsPtr?: number;
  df?: number;
  /** 0: route by port range as Xen does; 1: hand to the first enabled server as given. */
  route?: 0 | 1;
}

export interface Snapshot {
  domid: number;
  vcpus: number;
  ramPages: number;
  counters: {
    dmOpen: number;
    fmOpen: number;
    evOpen: number;
    xsOpen: number;
    dmRestricted: number;
    fmRestricted: number;
    evRestricted: number;
    foreignPages: number;
    foreignMaps: number;
    deliveries: number;
    notifies: number;
    xsWrites: number;
  };
  servers: {
    id: number;
    enabled: boolean;
    gfnPublished: boolean;
    resourceMaps: number;
    ranges: { isMmio: boolean; start: number; end: number }[];
    channels: {
      remotePort: number;
      bound: boolean;
      localPort: number;
      masked: boolean;
      pending: boolean;
      notifies: number;
      state: number;
    }[];
  }[];
}

interface NativeHypervisor {
  io(vcpu: number, io: RawIo, timeoutMs: number): Promise<IoResult>;
  kick(vcpu: number): void;
  setFaults(faults: number): void;
  ramRead(offset: number, length: number): Buffer;
  ramWrite(offset: number, bytes: Uint8Array): void;
  xenstoreRead(path: string): string | undefined;
  xenstoreWrite(path: string, value: string): void;
  snapshot(): Snapshot;
  close(): void;
}

interface HvModule {
  Hypervisor: {
    new (dir: string): NativeHypervisor;
    create(dir: string, domid: number, vcpus: number, ramPages: number): void;
  };
  faults: { noMapResource: number; badVcpus: number; failBind: number; rangeBusy: number };
  constants: { legacyGfnBase: number; remotePortBase: number };
}

const release = join(defaultBuildDir, 'Release');
/** The fake Xen libraries, for LD_PRELOAD under the production binding. */
export const fakeLibrary = join(release, 'libvmsbfakexen.so');
const hvFile = join(release, 'vmsb_fakexen_hv.node');
const fakeBindingFile = join(release, 'vmsb_xen_fake.node');

/** Whether the native targets were built (they are whenever the Xen headers are present). */
export const fakeBuilt = existsSync(hvFile) && existsSync(fakeBindingFile) && existsSync(fakeLibrary);

let hvModule: HvModule | undefined;
function hv(): HvModule {
  hvModule ??= createRequire(import.meta.url)(hvFile) as HvModule;
  return hvModule;
}

/** The package API over the binding linked against the fake libraries (this process uses VMSB_FAKE_XEN). */
export function fakeApi(): XenApi {
  return createXenApi(() => loadBinding('vmsb_xen_fake'));
}

export type Fault = keyof HvModule['faults'];

/** Guards each simulated vCPU against waiting forever; a request that takes this long has hung. */
const IO_TIMEOUT_MS = 10_000;

export class FakeXen {
  readonly dir: string;
  private readonly native: NativeHypervisor;

  constructor(
    readonly domid = 7,
    readonly vcpus = 2,
    readonly ramPages = 256,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'vmsb-fakexen-'));
    hv().Hypervisor.create(this.dir, domid, vcpus, ramPages);
    this.native = new (hv().Hypervisor)(this.dir);
  }

  /** Environment for a process whose Xen libraries are this fake (production binding + LD_PRELOAD). */
  env(): Record<string, string> {
    return { VMSB_FAKE_XEN: this.dir, LD_PRELOAD: fakeLibrary };
  }

  /** Makes this process's fake-linked binding talk to this hypervisor. */
  useInProcess(): void {
    process.env.VMSB_FAKE_XEN = this.dir;
  }

  raw(vcpu: number, io: RawIo, timeoutMs = IO_TIMEOUT_MS): Promise<IoResult> {
    return this.native.io(vcpu, { type: Ioreq.TYPE_PIO, count: 1, route: 0, ...io }, timeoutMs);
  }

  /** OUT of `size` bytes to `port`, as the guest's instruction would reach Xen. */
  out(vcpu: number, port: number, size: number, value: number): Promise<IoResult> {
    return this.raw(vcpu, { addr: port, size, dir: Ioreq.WRITE, data: value });
  }

  /** IN of `size` bytes from `port`; `value` is what lands in the guest's register. */
  async in(vcpu: number, port: number, size: number): Promise<IoResult & { value: number }> {
    const r = await this.raw(vcpu, { addr: port, size, dir: Ioreq.READ });
    const mask = (1n << BigInt(size * 8)) - 1n;
    return { ...r, value: Number(r.data & mask) };
  }

  kick(vcpu: number): void {
    this.native.kick(vcpu);
  }

  setFaults(...faults: Fault[]): void {
    this.native.setFaults(faults.reduce((acc, f) => acc | hv().faults[f], 0));
  }

  writeRam(offset: number, bytes: Uint8Array): void {
    this.native.ramWrite(offset, bytes);
  }

  readRam(offset: number, length: number): Buffer {
    return this.native.ramRead(offset, length);
  }

  /** Writes `bytes` at the start of the 16-page buffer at `gfn`, zero-filling the rest as a guest would. */
  writeBuffer(gfn: number, bytes: Uint8Array): void {
    const buffer = new Uint8Array(BUFFER_SIZE);
    buffer.set(bytes);
    this.native.ramWrite(gfn * PAGE, buffer);
  }

  readBuffer(gfn: number, length = BUFFER_SIZE): Buffer {
    return this.native.ramRead(gfn * PAGE, length);
  }

  xenstoreRead(path: string): string | undefined {
    return this.native.xenstoreRead(path);
  }

  xenstoreWrite(path: string, value: string): void {
    this.native.xenstoreWrite(path, value);
  }

  snapshot(): Snapshot {
    return this.native.snapshot();
  }

  /** The state of vCPU `vcpu`'s slot in server `server`'s page. */
  slotState(vcpu: number, server = 0): number | undefined {
    return this.snapshot().servers.find((s) => s.id === server)?.channels[vcpu]?.state;
  }

  dispose(): void {
    // The binding keeps its xenstore connection for the life of the process; this hypervisor's goes with it.
    const binding = loadBinding('vmsb_xen_fake');
    if (binding.ok) binding.binding.xenstoreClose();
    this.native.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const legacyGfnBase = (): number => hv().constants.legacyGfnBase;

/** Resolves once `predicate` holds, checking between turns of the event loop. */
export async function until(predicate: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
