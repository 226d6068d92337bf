#!/usr/bin/env node
// An MCP server behind Membrane that trusts nothing it cannot verify: every call must carry a
// Txn-Token signed by the gateway (keys from its /.well-known/jwks.json), for this trust domain,
// typed txntoken+jwt and unexpired. Tools see who acts in which transaction.
//
//   npm install                                   (jose and the MCP SDK, pinned in package.json)
//   GATEWAY=http://127.0.0.1:8080 TRUST_DOMAIN=bank.example node verify-txn-token.mjs 3000
//
//   whoami {}                  -> {"sub", "txn", "tctx", "rctx"} of the verified token
//   lookup_customer {customer_id} -> refuses a customer other than the transaction's tctx.customer_id
import http from 'node:http';

import * as jose from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const gateway = process.env.GATEWAY ?? 'http://127.0.0.1:8080';
const trustDomain = process.env.TRUST_DOMAIN ?? 'membrane';
// Fetched once, refetched when a token names a key id it has not seen (the gateway rotated).
const gatewayKeys = jose.createRemoteJWKSet(new URL('/.well-known/jwks.json', gateway));

async function verifiedTransaction(req) {
  const token = req.headers['txn-token'];
  if (typeof token !== 'string') throw new Error('no Txn-Token');
  const { payload } = await jose.jwtVerify(token, gatewayKeys, { audience: trustDomain, typ: 'txntoken+jwt' });
  if (!payload.txn || !payload.sub) throw new Error('the transaction token lacks txn or sub');
  return payload;
}

function serverFor(transaction) {
  const server = new McpServer({ name: 'txn-verifying-example', version: '1.0.0' });
  server.registerTool('whoami', { description: 'Who acts, in which transaction', inputSchema: {} }, async () => ({
    content: [{ type: 'text', text: JSON.stringify({ sub: transaction.sub, txn: transaction.txn, tctx: transaction.tctx, rctx: transaction.rctx }) }],
  }));
  server.registerTool('lookup_customer', { description: 'One customer of the transaction', inputSchema: { customer_id: z.string() } },
    async ({ customer_id: id }) => {
      const allowed = transaction.tctx?.customer_id;
      if (allowed !== undefined && allowed !== id) {
        return { isError: true, content: [{ type: 'text', text: `transaction ${transaction.txn} is about customer ${allowed}` }] };
      }
      return { content: [{ type: 'text', text: `customer ${id}` }] };
    });
  return server;
}

// Calls (tools/call, resources/read, prompts/get) are transactions and must carry a verified token;
// the handshake and listings carry none when the gateway mints one per call.
const CALLS = new Set(['tools/call', 'resources/read', 'prompts/get']);

const httpServer = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    res.writeHead(400).end();
    return;
  }
  let transaction = null;
  if (CALLS.has(body?.method) || req.headers['txn-token'] !== undefined) {
    try {
      transaction = await verifiedTransaction(req);
    } catch (error) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: body?.id ?? null, error: { code: -32600, message: `invalid transaction token: ${error.message}` } }));
      return;
    }
  }
  const server = serverFor(transaction ?? {});
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
});

httpServer.listen(Number(process.argv[2] ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}/mcp`);
});
