export { Random, parseSeed, hashSeed } from './random.js';
export {
  fuzz,
  fuzzDispatch,
  fuzzDaemon,
  replayDispatch,
  replayDaemon,
  type FuzzOptions,
  type FuzzReport,
  type FuzzFailure,
  type FuzzTargetName,
} from './fuzz.js';
export { FrameGenerator, type FuzzInput, type VariableRef } from './generate.js';
export { DispatchTarget, FUZZ_PLATFORM, zeroFilled, type StepRecord } from './dispatch-target.js';
export { DaemonTarget } from './daemon-target.js';
export { DaemonProcess, varstoredEntry, type DaemonOptions, type DaemonExit } from './daemon.js';
export { fuzzCorpus, testKeys, TEST_OWNER, FUZZ_VENDOR, type Corpus, type SeedWrite, type TestKey } from './corpus.js';
export {
  checkReply,
  checkReplyAgainstStore,
  checkPlainWrite,
  checkStore,
  checkPersistable,
  sameState,
  type Violation,
} from './invariants.js';
export { parseDer, encodeDer, nest, tlv, lengthOctets, type DerNode, type LengthForm } from './der.js';
export { costSearch, type CostlyFrame, type CostSearchOptions } from './cost.js';
