// Test doubles: not part of the main entry. `@vmsb/xen/testing`: the fake hypervisor's test side.
export * from './fake-xen.js';
