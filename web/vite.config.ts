import { defineConfig, loadEnv } from 'vite';

// The conclave server serves dist/ at "/" under a strict Content-Security-Policy (no inline
// script or style), so every script and stylesheet must be a file of its own.
// `npm run dev` proxies the API to a running server: CONCLAVE_SERVER, by default the
// development server that scripts/run starts.
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, '.', 'CONCLAVE_');
  return {
    base: '/',
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      target: 'es2022',
      assetsInlineLimit: 0,
      sourcemap: true,
    },
    server: {
      host: '127.0.0.1',
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
