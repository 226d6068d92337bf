import { startGateway, spawnManaged, NODE, SOURCE_DIR, cleanup, rawFetch, MCP_ACCEPT, everythingStdioCommand, stdioUpstreamFlag } from './harness.mjs';
import path from 'node:path';
const V = '2026-07-28';
function hdr({version=V, method, name, extra={}}={}) {
  const h = {'content-type':'application/json', accept: MCP_ACCEPT};
  if (version) h['mcp-protocol-version']=version;
  if (method) h['mcp-method']=method;
  if (name !== undefined) h['mcp-name']=name;
  return {...h, ...extra};
}
function body({id=1, method, params={}, metaVersion=V, caps={}}) {
  const meta = {};
  if (metaVersion) meta['io.modelcontextprotocol/protocolVersion']=metaVersion;
  if (caps) meta['io.modelcontextprotocol/clientCapabilities']=caps;
  return {jsonrpc:'2.0', id, method, params:{...params, _meta: meta}};
}
const show = (label, r) => console.log(label, r.status, r.contentType, r.text.slice(0,400));
try {
const modern = spawnManaged('modern', NODE, [path.join(SOURCE_DIR,'tests/fixtures/modern-server.mjs'), '0', '60000']);
const m = await modern.waitForLine(/listening on (\S+)/);
const gw = await startGateway(['--upstream', `mod=${m[1]}`, '--upstream', stdioUpstreamFlag('evs', everythingStdioCommand())]);
for (const up of ['mod','evs']) {
const u = gw.mcp(up);
show('ok echo', await rawFetch(u, {headers: hdr({method:'tools/call', name:'echo'}), body: body({method:'tools/call', params:{name:'echo', arguments:{message:'hi'}}})}));
show('b64 echo', await rawFetch(u, {headers: hdr({method:'tools/call', name:'=?base64?'+Buffer.from('echo').toString('base64')+'?='}), body: body({method:'tools/call', params:{name:'echo', arguments:{message:'hi'}}})}));
show('b64 nonascii', await rawFetch(u, {headers: hdr({method:'tools/call', name:'=?base64?'+Buffer.from('écho 日本').toString('base64')+'?='}), body: body({method:'tools/call', params:{name:'écho 日本', arguments:{message:'hi'}}})}));
show('tools/list', await rawFetch(u, {headers: hdr({method:'tools/list'}), body: body({method:'tools/list'})}));
show('hdr 2099', await rawFetch(u, {headers: hdr({version:'2099-01-01', method:'tools/list'}), body: body({method:'tools/list'})}));
show('meta 2099', await rawFetch(u, {headers: hdr({method:'tools/list'}), body: body({method:'tools/list', metaVersion:'2099-01-01'})}));
show('no hdr', await rawFetch(u, {headers: hdr({version:null, method:'tools/list'}), body: body({method:'tools/list'})}));
show('meta differs', await rawFetch(u, {headers: hdr({method:'tools/list'}), body: body({method:'tools/list', metaVersion:'2025-11-25'})}));
show('no method hdr', await rawFetch(u, {headers: hdr({}), body: body({method:'tools/list'})}));
show('method differs', await rawFetch(u, {headers: hdr({method:'prompts/list'}), body: body({method:'tools/list'})}));
show('no name', await rawFetch(u, {headers: hdr({method:'tools/call'}), body: body({method:'tools/call', params:{name:'echo', arguments:{message:'hi'}}})}));
show('name differs', await rawFetch(u, {headers: hdr({method:'tools/call', name:'stats'}), body: body({method:'tools/call', params:{name:'echo', arguments:{message:'hi'}}})}));
show('uri differs', await rawFetch(u, {headers: hdr({method:'resources/read', name:'test://counter'}), body: body({method:'resources/read', params:{uri:'test://static'}})}));
show('no caps', await rawFetch(u, {headers: hdr({method:'tools/list'}), body: body({method:'tools/list', caps:null})}));
show('no meta version', await rawFetch(u, {headers: hdr({method:'tools/list'}), body: body({method:'tools/list', metaVersion:null})}));
show('response', await rawFetch(u, {headers: hdr({}), body: {jsonrpc:'2.0', id: 5, result:{}}}));
show('GET', await rawFetch(u, {method:'GET', headers: {accept:'text/event-stream', 'mcp-protocol-version':V}}));
show('DELETE', await rawFetch(u, {method:'DELETE', headers: {'mcp-protocol-version':V}}));
show('garbage state', await rawFetch(u, {headers: hdr({method:'tools/call', name:'echo'}), body: body({method:'tools/call', params:{name:'echo', arguments:{message:'hi'}, requestState:'ms1.garbage', inputResponses:{}}})}));
show('elicit', await rawFetch(u, {headers: hdr({method:'tools/call', name:'trigger-elicitation-request'}), body: body({method:'tools/call', caps:{elicitation:{}}, params:{name:'trigger-elicitation-request', arguments:{}}})}));
}
} catch (e) { console.log('ERR', e); }
await cleanup();
process.exit(0);
