// The npm ws package as a WebSocket peer of examples/websocket_echo and
// examples/websocket_client. Bounded: every mode ends by itself within 10 s.
//
//   node ws_peer.js client ws://127.0.0.1:PORT/   echo checks against our server
//   node ws_peer.js server                        an echo server for our client: prints
//                                                 "listening on 127.0.0.1:PORT", serves one
//                                                 connection, prints "closed CODE REASON"
'use strict';
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.error('ws_peer: the npm package ws is missing (scripts/test.sh installs it into ' +
                'build/npm; set NODE_PATH to its node_modules): ' + e.message);
  process.exit(3);
}

setTimeout(() => {
  console.error('ws_peer: gave up after 10 s');
  process.exit(2);
}, 10000).unref();

function fail(why) {
  console.error('ws_peer: ' + why);
  process.exit(1);
}

function client(url) {
  const ws = new WebSocket(url, { perMessageDeflate: true });
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131) % 251;
  const expected = ['text:héllo from node', 'binary:' + big.length, 'text:'];
  const got = [];
  let ponged = false;
  ws.on('open', () => {
    if (!ws.extensions.includes('permessage-deflate'))
      fail('permessage-deflate was not agreed: "' + ws.extensions + '"');
    ws.ping(Buffer.from('are you there'));
    ws.send('héllo from node');
    ws.send(big);
    ws.send('');
  });
  ws.on('pong', (data) => {
    if (data.toString() !== 'are you there') fail('pong payload ' + data);
    ponged = true;
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      if (!data.equals(big)) fail('the 1 MiB binary message came back different');
      got.push('binary:' + data.length);
    } else {
      got.push('text:' + data.toString());
    }
    if (got.length === expected.length) {
      if (JSON.stringify(got) !== JSON.stringify(expected))
        fail('got ' + JSON.stringify(got) + ', expected ' + JSON.stringify(expected));
      ws.close(4001, 'node done');
    }
  });
  ws.on('close', (code, reason) => {
    if (code !== 4001 || reason.toString() !== 'node done')
      fail('the close echoed ' + code + ' "' + reason + '"');
    if (!ponged) fail('no pong');
    console.log('ok ' + got.length + ' messages, close ' + code);
    process.exit(0);
  });
  ws.on('error', (e) => fail('client error: ' + e.message));
}

function server() {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: true });
  wss.on('listening', () => {
    console.log('listening on 127.0.0.1:' + wss.address().port);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code, reason) => {
      console.log('closed ' + code + ' ' + reason.toString() +
                  ' extensions ' + Object.keys(ws._extensions || {}).join(','));
      wss.close();
      process.exit(0);
    });
  });
}

if (process.argv[2] === 'client') client(process.argv[3]);
else if (process.argv[2] === 'server') server();
else fail('usage: ws_peer.js client URL | server');
