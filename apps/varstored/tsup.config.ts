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
  // Everything but the Xen binding and the XAPI client is bundled. The verifier (@vmsb/auth) is
  // bundled too but evaluated only when an authenticated write first needs it
  // (esbuild turns the dynamic import of a bundled module into a lazy initialiser): inside a chroot no
  // module file can be read any more, and loading it eagerly before the chroot cost xenopsd's path
  // its start-up time (BENCHMARKS.md, startup-xen). @vmsb/xen (and its subpaths: native bindings
  // found next to their package) and @vmsb/xapi stay packages, loaded before privileges drop.
  noExternal: [/^(?!@vmsb\/(xen|xapi)(\/|$))/],
  external: ['@vmsb/xen', '@vmsb/xen/host', '@vmsb/xapi'],
  define: { __VMSB_AUTH_BUNDLED__: 'true' },
});
