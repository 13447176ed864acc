import { defineConfig } from 'vite';

// The dashboard (index.html, served by kpi-live at `/`) and the public view
// (public.html, at `/public` when KPI_PUBLIC_VIEW is on), built into web/dist.
export default defineConfig({
  root: import.meta.dirname,
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rollupOptions: { input: { main: `${import.meta.dirname}/index.html`, public: `${import.meta.dirname}/public.html` } },
  },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:3434', ws: true }, '/health': 'http://127.0.0.1:3434' } },
});
