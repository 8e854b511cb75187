// Test doubles: not part of the main entry. `@vmsb/xapi/testing`.
export * from './guard-double.js';
