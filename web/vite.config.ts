import { defineConfig, loadEnv } from 'vite';

// The conclave server serves dist/ at "/" under a strict Content-Security-Policy (no inline
// script or style), so every script and stylesheet must be a file of its own.
// `npm run dev` proxies the API to a running server: CONCLAVE_SERVER, by default the
// development server that scripts/run starts.

// The browser's crypto is Rust compiled to WebAssembly: scripts/build-wasm writes the
// wasm-bindgen output (--target web) to target/wasm/web, which the app imports as
// `@conclave/wasm/...`, lazily, from the pages that need it; the binary becomes a file of
// dist/ like any other asset (the CSP allows 'wasm-unsafe-eval', same-origin loads only).
const WASM_DIR = decodeURIComponent(new URL('../target/wasm/web', import.meta.url).pathname);

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, '.', 'CONCLAVE_');
  return {
    base: '/',
    resolve: {
      alias: { '@conclave/wasm': WASM_DIR },
    },
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      target: 'es2022',
      assetsInlineLimit: 0,
      sourcemap: true,
    },
    server: {
      host: '127.0.0.1',
      // the wasm build lives outside web/
      fs: { allow: ['.', WASM_DIR] },
      proxy: {
        '/api': {
          target: env['CONCLAVE_SERVER'] ?? 'https://127.0.0.1:8443',
          changeOrigin: true,
          secure: false,
          ws: true,
        },
      },
    },
  };
});
