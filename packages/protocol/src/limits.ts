/** Limits shared by OVMF's XenVariable driver and varstored. */
export const Limits = {
  /** The guest's communication buffer: 16 pages. */
  BUFFER_SIZE: 65536,
  /** Longest variable name in bytes (UTF-16LE, no terminator). */
  NAME_MAX: 4096,
  /** Largest variable data in bytes. */
  DATA_MAX: 57344,
  /** Total store capacity in bytes, counting OVERHEAD per variable. */
  TOTAL_MAX: 131072,
  /** Bytes accounted per variable on top of name and data. */
  OVERHEAD: 128,
} as const;

/** The only protocol version OVMF and varstored speak. */
export const PROTOCOL_VERSION = 1;

/** I/O port the guest writes the buffer's frame number to. */
export const COMMAND_PORT = 0x100;

export const Command = {
  GetVariable: 0,
  SetVariable: 1,
  GetNextVariableName: 2,
  QueryVariableInfo: 3,
  NotifySBFailure: 4,
} as const;

export type CommandName = keyof typeof Command;
export type CommandCode = (typeof Command)[CommandName];
