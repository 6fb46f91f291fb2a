import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// Fixed file names: the Rust binary embeds them with include_bytes!, so a build must
// not invent new names (cache busting is done with ETags instead).
// base './': index.html names its assets relative to itself (./assets/app.js), so the
// dashboard also works behind a reverse proxy under a path prefix (/modelmon/).
export default defineConfig({
  plugins: [vue()],
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: 'assets/app.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/app[extname]',
      },
    },
  },
})
