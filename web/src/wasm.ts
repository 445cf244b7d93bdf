// The browser's crypto: crates/conclave-wasm compiled to WebAssembly (scripts/build-wasm,
// aliased as `@conclave/wasm` in vite.config.ts). Loaded on first use only, so pages that
// need no crypto (sign-in, the meeting list) never download it.

export type ConclaveWasm = typeof import('@conclave/wasm/conclave_wasm.js');

let loading: Promise<ConclaveWasm> | null = null;

/** The initialised module; loads and instantiates it the first time. */
export function loadWasm(): Promise<ConclaveWasm> {
  if (loading === null) {
    loading = (async () => {
      const [wasm, binary] = await Promise.all([
        import('@conclave/wasm/conclave_wasm.js'),
        import('@conclave/wasm/conclave_wasm_bg.wasm?url'),
      ]);
      await wasm.default({ module_or_path: binary.default });
      return wasm;
    })();
    // A failed load (network) may succeed on the next try.
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}
