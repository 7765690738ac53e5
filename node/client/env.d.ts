/** The stylesheet imported by main.tsx: esbuild bundles it into app.css. */
declare module '*.css'
