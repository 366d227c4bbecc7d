import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Everything goes into content-hashed files under /assets/: the daemon
// serves them as immutable, and its CSP allows no inline script or style.
export default defineConfig({
  plugins: [preact()],
  // `npm run dev`: the API of a running daemon (TALON_URL, else the default port).
  server: { proxy: { '/api': process.env.TALON_URL || 'http://127.0.0.1:4545' } },
  build: {
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
    reportCompressedSize: false,
  },
});
