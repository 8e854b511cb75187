import type { StoreState } from '@vmsb/efi';

/** The result of reading a store in any format. Decoders never throw. */
export type DecodedNvram =
  | {
      readonly ok: true;
      readonly state: StoreState;
      /** What the source holds that the state does not keep, or oddities worth telling an administrator. */
      readonly warnings: readonly string[];
    }
  | { readonly ok: false; readonly error: string };

export function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** The VARS blob's ancillary data (MOR key, TCG2 PPI), which only that format carries. */
export function ancillaryLosses(state: StoreState): string[] {
  const losses: string[] = [];
  if (!isZero(state.morKey)) losses.push('the MemoryOverwriteRequestControlLock key');
  if (state.ppi.index !== 0 || !isZero(state.ppi.func))
    losses.push('the TCG2 physical-presence (PPI) index and function data');
  return losses;
}

/** A state with no ancillary data, for formats that do not carry it. */
export function emptyAncillary(): Pick<StoreState, 'morKey' | 'ppi'> {
  return { morKey: new Uint8Array(8), ppi: { index: 0, func: new Uint8Array(256) } };
}
