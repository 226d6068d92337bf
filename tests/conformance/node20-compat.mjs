// Preloaded (`node --import`) into the conformance CLI. Its bundle imports `globSync` from 'fs',
// which Node has only since 22, so on Node 20 it fails to link before running anything. Only its
// `tier-check` command calls globSync; the `server` command run here never does. So the bundle's
// 'fs' gets a module with Node's fs plus a globSync that says why it cannot work.
import fs from 'node:fs';
import { register } from 'node:module';

const asModule = (source) => `data:text/javascript,${encodeURIComponent(source)}`;

if (typeof fs.globSync !== 'function') {
  const fsWithGlob = asModule(`
    export * from 'node:fs';
    export { default } from 'node:fs';
    export function globSync() { throw new Error('fs.globSync needs Node 22 or later'); }`);
  register(asModule(`
    export async function resolve(specifier, context, next) {
      if ((specifier === 'fs' || specifier === 'node:fs') &&
          context.parentURL?.includes('/@modelcontextprotocol/conformance/')) {
        return { url: ${JSON.stringify(fsWithGlob)}, shortCircuit: true };
      }
      return next(specifier, context);
    }`));
}
