import { defineConfig } from 'vite';

// The dashboard, built into web/dist and served by kpi-live at `/`.
export default defineConfig({
  root: import.meta.dirname,
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:3434', ws: true }, '/health': 'http://127.0.0.1:3434' } },
});
