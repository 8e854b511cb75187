/**
 * Test doubles of @vmsb/xapi's peers: XAPI's pool API on its local socket, and xapi-guard's
 * per-VM socket. For tests only.
 */
export {
  startPoolDouble,
  generatePool,
  type PoolDouble,
  type PoolDoubleOptions,
  type PoolVm,
  type PoolVmSpec,
  type PoolVmKind,
  type PoolFault,
  type PoolFaultOptions,
  type PoolCall,
} from './pool-double.js';
export {
  startGuardDouble,
  type GuardDouble,
  type GuardDoubleOptions,
  type GuardFault,
  type GuardCall,
  type GuardMessage,
  type FaultOptions,
  type CertificatesState,
} from './guard-double.js';
