import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Request,
  type Response,
  decodeRequest,
  encodeResponse,
  encodeStatus,
  encodedRequestSize,
} from './codec.js';
import { FirmwareClient, ProtocolError } from './firmware.js';
import { Limits } from './limits.js';
import { EfiStatus } from './status.js';
import { utf16le } from './utf16.js';

const VENDOR = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * A minimal varstored over the codec: variables in insertion order, BUFFER_TOO_SMALL as the daemon
 * answers it. It records each request it decoded and the length the transport said was encoded.
 */
class MiniDaemon {
  readonly requests: { request: Request; length: number }[] = [];
  constructor(readonly variables: { name: Uint8Array; guid: Uint8Array; attributes: number; data: Uint8Array }[]) {}

  answer = (buffer: Uint8Array, length: number): Uint8Array => {
    expect(buffer.length).toBe(Limits.BUFFER_SIZE);
    const decoded = decodeRequest(buffer.slice());
    if (!decoded.ok) throw new Error(decoded.reason);
    this.requests.push({ request: decoded.request, length });
    const out = new Uint8Array(Limits.BUFFER_SIZE);
    return out.subarray(0, encodeResponse(this.respond(decoded.request), out));
  };

  private find(name: Uint8Array, guid: Uint8Array): number {
    return this.variables.findIndex((v) => hex(v.name) === hex(name) && hex(v.guid) === hex(guid));
  }

  private respond(r: Request): Response {
    switch (r.command) {
      case 'GetVariable': {
        const v = this.variables[this.find(r.name, r.guid)];
        if (v === undefined) return { command: r.command, status: EfiStatus.NOT_FOUND };
        if (r.dataSize < v.data.length)
          return { command: r.command, status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: v.data.length };
        return { command: r.command, status: EfiStatus.SUCCESS, attributes: v.attributes, data: v.data };
      }
      case 'SetVariable':
        this.variables.push({ name: r.name, guid: r.guid, attributes: r.attributes, data: r.data });
        return { command: r.command, status: EfiStatus.SUCCESS };
      case 'GetNextVariableName': {
        const at = r.name.length === 0 ? 0 : this.find(r.name, r.guid) + 1;
        const v = this.variables[at];
        if (v === undefined) return { command: r.command, status: EfiStatus.NOT_FOUND };
        if (r.nameSize < v.name.length + 2)
          return { command: r.command, status: EfiStatus.BUFFER_TOO_SMALL, requiredSize: v.name.length + 2 };
        return { command: r.command, status: EfiStatus.SUCCESS, name: v.name, guid: v.guid };
      }
      case 'QueryVariableInfo':
        return {
          command: r.command,
          status: EfiStatus.SUCCESS,
          maximumStorageSize: 1000,
          remainingStorageSize: 900,
          maximumVariableSize: 100,
        };
      case 'NotifySBFailure':
        return { command: r.command, status: EfiStatus.SUCCESS };
    }
  }
}

const variableArb = fc.record({
  name: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).map(utf16le),
  // varstored holds no empty variable: empty data deletes.
  data: fc.uint8Array({ minLength: 1, maxLength: 64 }),
});

describe('FirmwareClient', () => {
  it('lists, reads and writes the same way over a synchronous and an asynchronous transport', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(variableArb, { selector: (v) => hex(v.name), maxLength: 12 }),
        fc.integer({ min: 0, max: 100 }),
        async (vars, initialNameSize) => {
          const make = () => new MiniDaemon(vars.map((v) => ({ ...v, guid: VENDOR, attributes: 7 })));
          const syncDaemon = make();
          const asyncDaemon = make();
          const sync = new FirmwareClient(syncDaemon.answer);
          const later = new FirmwareClient(async (buffer, length) => asyncDaemon.answer(buffer, length));

          const listed = sync.listVariables(initialNameSize);
          expect(listed.map((v) => hex(v.name))).toEqual(vars.map((v) => hex(v.name)));
          expect(await later.listVariables(initialNameSize)).toEqual(listed);
          for (const v of vars) {
            const read = sync.readVariable(v.name, VENDOR);
            expect(read).toEqual({ attributes: 7, data: v.data });
            expect(await later.readVariable(v.name, VENDOR)).toEqual(read);
          }
          // The same requests, in the same order, each announced with its encoded length.
          expect(asyncDaemon.requests).toEqual(syncDaemon.requests);
          for (const { request, length } of syncDaemon.requests) {
            expect(length).toBe(encodedRequestSize(request));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('grows the name buffer only when told BUFFER_TOO_SMALL, as a caller of GetNextVariableName does', () => {
    const name = utf16le('LongerThanFour');
    const daemon = new MiniDaemon([{ name, guid: VENDOR, attributes: 7, data: Uint8Array.of(1) }]);
    new FirmwareClient(daemon.answer).listVariables(4);
    expect(daemon.requests.map(({ request }) => request.command === 'GetNextVariableName' && request.nameSize)).toEqual(
      [4, name.length + 2, name.length + 2],
    );
  });

  it('reads absent variables as undefined and carries atRuntime in every request that has it', () => {
    const daemon = new MiniDaemon([]);
    const fw = new FirmwareClient(daemon.answer);
    fw.atRuntime = true;
    expect(fw.readVariable(utf16le('Missing'), VENDOR)).toBeUndefined();
    expect(fw.setVariable(utf16le('A'), VENDOR, 7, Uint8Array.of(1))).toBe(EfiStatus.SUCCESS);
    expect(fw.getNextVariableName(new Uint8Array(0), new Uint8Array(16))).toEqual({
      status: EfiStatus.SUCCESS,
      name: utf16le('A'),
      guid: VENDOR,
    });
    expect(fw.queryVariableInfo(7)).toEqual({
      status: EfiStatus.SUCCESS,
      maximumStorageSize: 1000,
      remainingStorageSize: 900,
      maximumVariableSize: 100,
    });
    expect(fw.notifySBFailure()).toBe(EfiStatus.SUCCESS);
    expect(daemon.requests.map(({ request }) => 'atRuntime' in request && request.atRuntime)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });

  it('lays the reply over the request, as the guest buffer keeps what the daemon did not overwrite', () => {
    // A status-only SUCCESS to GetVariable: the attributes and data length come from the request's
    // bytes after the status (its name length, then name), exactly what the guest would read.
    const fw = new FirmwareClient(() => {
      const out = new Uint8Array(8);
      encodeStatus(EfiStatus.SUCCESS, out);
      return out;
    });
    expect(() => fw.getVariable(utf16le('A'), VENDOR)).toThrow(ProtocolError);
    // Bytes 8..11 are the low half of the name length (4), bytes 12..19 its high half and the four
    // name bytes (0): a data length of 0.
    expect(fw.getVariable(new Uint8Array(4), VENDOR)).toEqual({
      status: EfiStatus.SUCCESS,
      attributes: 4,
      data: new Uint8Array(0),
    });
  });

  it('refuses a reply larger than the guest buffer and an undecodable one with ProtocolError', async () => {
    const huge = new FirmwareClient(() => new Uint8Array(Limits.BUFFER_SIZE + 1));
    expect(() => huge.notifySBFailure()).toThrow(/does not fit the 65536-byte guest buffer/);
    const truncated = new FirmwareClient(async () => Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0xff));
    await expect(truncated.getVariable(new Uint8Array(0), VENDOR, 1)).rejects.toThrow(
      /undecodable reply to GetVariable: .* runs past the end of the reply/,
    );
  });

  it('shows each request and its decoded reply to the observer', async () => {
    const daemon = new MiniDaemon([]);
    const seen: string[] = [];
    const fw = new FirmwareClient(
      async (b: Uint8Array, n: number) => daemon.answer(b, n),
      (request, response) => seen.push(`${request.command} ${response.status.toString(16)}`),
    );
    await fw.setVariable(utf16le('A'), VENDOR, 7, Uint8Array.of(1));
    await fw.readVariable(utf16le('A'), VENDOR);
    expect(seen).toEqual(['SetVariable 0', 'GetVariable 8000000000000005', 'GetVariable 0']);
  });
});

describe('FirmwareClient.forStore', () => {
  /** A store that always has a change pending: its reply on commit, DEVICE_ERROR on rollback. */
  function pendingStore(log: string[]) {
    const reply = (status: bigint): Uint8Array => {
      const out = new Uint8Array(8);
      encodeStatus(status, out);
      return out;
    };
    return {
      dispatch: () => ({
        response: reply(EfiStatus.SUCCESS),
        pending: {
          state: 'next',
          commit: () => log.push('commit'),
          rollback: () => {
            log.push('rollback');
            return reply(EfiStatus.DEVICE_ERROR);
          },
        },
      }),
    };
  }

  it('commits what persists and rolls back what does not, synchronously', () => {
    const log: string[] = [];
    expect(FirmwareClient.forStore(pendingStore(log)).notifySBFailure()).toBe(EfiStatus.SUCCESS);
    expect(FirmwareClient.forStore(pendingStore(log), () => false).notifySBFailure()).toBe(EfiStatus.DEVICE_ERROR);
    expect(log).toEqual(['commit', 'rollback']);
  });

  it('waits for an asynchronous persist before the reply counts', async () => {
    const log: string[] = [];
    const saved: string[] = [];
    const ok = FirmwareClient.forStore(pendingStore(log), async (state) => {
      saved.push(state);
      return true;
    });
    const refused = FirmwareClient.forStore(pendingStore(log), async () => false);
    expect(await ok.notifySBFailure()).toBe(EfiStatus.SUCCESS);
    expect(await refused.notifySBFailure()).toBe(EfiStatus.DEVICE_ERROR);
    expect(saved).toEqual(['next']);
    expect(log).toEqual(['commit', 'rollback']);
  });
});
