import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/cli.ts', 'src/index.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  // One self-contained file per entry: the daemon loads a single module at start.
  splitting: false,
  target: 'node20',
  // Start-up speed: what every boot needs is bundled into the daemon; what only some boots need
  // (Xen, XAPI, PKCS#7) stays a separate package loaded on demand.
  noExternal: ['@vmsb/protocol', '@vmsb/efi', '@vmsb/nvram'],
  external: ['@vmsb/xen', '@vmsb/xapi', '@vmsb/auth'],
});
