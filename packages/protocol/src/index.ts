export { EfiStatus, type EfiStatusName, type EfiStatusValue, statusName, statusMeaning, isError } from './status.js';
export { Limits, PROTOCOL_VERSION, COMMAND_PORT, Command, type CommandName, type CommandCode } from './limits.js';
export { guidFromText, guidToText } from './guid.js';
export { utf16le, fromUtf16le } from './utf16.js';
export {
  decodeRequest,
  encodeResponse,
  encodedResponseSize,
  encodeStatus,
  encodeRequest,
  encodedRequestSize,
  decodeResponse,
  type Request,
  type GetVariableRequest,
  type SetVariableRequest,
  type GetNextVariableNameRequest,
  type QueryVariableInfoRequest,
  type NotifySBFailureRequest,
  type DecodedRequest,
  type DecodeError,
  type Response,
  type DecodedResponse,
} from './codec.js';
export { bytesEqual, concatBytes, copyBytes, hex } from './bytes.js';
export type { LogLevel, GuestHandler } from './guest.js';
export {
  FirmwareClient,
  ProtocolError,
  type RequestHandler,
  type AsyncRequestHandler,
  type Answer,
  type TransactionalDispatch,
  type GetVariableResult,
  type GetNextVariableNameResult,
  type QueryVariableInfoResult,
  type VariableKey,
  type VariableValue,
} from './firmware.js';
