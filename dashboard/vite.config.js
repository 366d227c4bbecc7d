import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Everything goes into content-hashed files under /assets/: the daemon
// serves them as immutable, and its CSP allows no inline script or style.
export default defineConfig({
  plugins: [preact()],
  build: {
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
    reportCompressedSize: false,
  },
});
