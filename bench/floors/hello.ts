import { createServer } from 'node:http';

/** The server ceiling: bare node:http answering a fixed body. */
const port = Number(process.env.PORT);
const body = Buffer.from('hello world');
createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
}).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
// Exit normally on SIGTERM so --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
